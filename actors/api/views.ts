/**
 * @module views
 * Rows to the JSON the contract promises: ISO 8601 UTC timestamps without milliseconds, and
 * each job field only in the states api.md lists it for.
 */
import type { JobListItemResponse, JobResponse } from '../contract/api-schemas.ts';
import { isTerminal } from '../contract/jobs.ts';
import type { JobRow, UploadRow } from '../store/rows.ts';

export function isoTime(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const seconds = (ms: number) => Math.max(0, Math.round(ms / 1000));

/** `queuePosition`: its place in the queue (from 1) while it is queued. */
export function jobView(job: JobRow, now = Date.now(), queuePosition?: number): JobResponse {
  const view: JobResponse = {
    id: job.id,
    type: job.job_type,
    status: job.status,
    image: job.image,
    cpus: job.cpus,
    memory_gb: job.memory_gb,
    timeout_minutes: job.timeout_minutes,
    created_at: isoTime(job.created_at)!,
  };
  if (job.job_type === 'worker') view.command = job.command ?? undefined;
  else {
    view.task = job.task ?? undefined;
    view.git_branch = job.git_branch ?? undefined;
  }
  if (job.files_id) view.files_id = job.files_id;
  if (job.queued_at !== null) {
    view.queued_at = isoTime(job.queued_at)!;
    // Waited so far while queued, else how long it waited before it was admitted (or gave up).
    view.queue_wait_seconds = seconds((job.admitted_at ?? (job.status === 'queued' ? now : job.completed_at ?? now)) - job.queued_at);
    view.queue_timeout_minutes = job.queue_timeout_minutes ?? undefined;
    if (job.status === 'queued' && queuePosition !== undefined) view.queue_position = queuePosition;
  }
  // Started ahead of a waiting queue head, by a backfill that could not delay it.
  if (job.backfilled === 1) view.backfilled = true;
  if (job.started_at !== null) view.started_at = isoTime(job.started_at)!;
  if (job.status === 'running' && job.started_at !== null) view.elapsed_seconds = seconds(now - job.started_at);
  if (isTerminal(job.status)) {
    view.exit_code = job.exit_code;
    view.completed_at = isoTime(job.completed_at);
    if (job.completed_at !== null) view.duration_seconds = seconds(job.completed_at - (job.started_at ?? job.created_at));
  }
  if (job.error !== null) view.error = job.error;
  if (job.status === 'timed_out' && job.started_at !== null && job.completed_at !== null) {
    view.actual_runtime_seconds = seconds(job.completed_at - job.started_at);
  }
  return view;
}

export function jobListItem(job: JobRow, queuePosition?: number): JobListItemResponse {
  return {
    id: job.id,
    type: job.job_type,
    status: job.status,
    command: job.command,
    exit_code: job.exit_code,
    created_at: isoTime(job.created_at)!,
    completed_at: isoTime(job.completed_at),
    ...(queuePosition === undefined ? {} : { queue_position: queuePosition }),
  };
}

export function uploadView(upload: UploadRow): Record<string, unknown> {
  return {
    upload_id: upload.id,
    state: upload.state,
    size_bytes: upload.size_bytes,
    file_count: upload.file_count,
    created_at: isoTime(upload.created_at),
    finalized_at: isoTime(upload.finalized_at),
    expires_at: isoTime(upload.expires_at),
  };
}
