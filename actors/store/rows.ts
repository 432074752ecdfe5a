/**
 * @module rows
 * The shapes of rows as SQLite returns them, shared by the writer (scheduler) and the readers.
 */
import type { JobErrorCode, JobState, JobType } from '../contract/jobs.ts';

export interface JobRow {
  id: string;
  user_id: string;
  job_type: JobType;
  status: JobState;
  command: string | null;
  task: string | null;
  context: string | null;
  git_branch: string | null;
  files_id: string | null;
  image: string;
  cpus: number;
  memory_gb: number;
  timeout_minutes: number;
  container_id: string | null;
  exit_code: number | null;
  error: string | null;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
  log_truncated: 0 | 1;
  kill_requested_at: number | null;
  kill_reason: 'cancel' | 'timeout' | null;
  resources_released_at: number | null;
  artifacts_indexed_at: number | null;
  artifacts_deleted_at: number | null;
  logs_deleted_at: number | null;
  /** JSON of the lifecycle's Ending: how the container ended, until the final status is written. */
  pending_finish: string | null;
  /** 1: a worker that exchanges a JWT-SVID for GITHUB_TOKEN (FLASHPODS_NEED_GITHUB_TOKEN=true). */
  need_github_token: 0 | 1;
  /** The code of `error` (contract/jobs.ts JobError); null for notes and for jobs from before it existed. */
  error_code: JobErrorCode | null;
  /** The terminal status reached, kept through cleaning and cleaned. */
  outcome: 'completed' | 'failed' | 'timed_out' | 'cancelled' | 'expired' | null;
  /** The queue (issue 15): FIFO order is queue_seq; null for a job that never queued. */
  queued_at: number | null;
  queue_seq: number | null;
  queue_timeout_minutes: number | null;
  /** When it was given resources: created_at unless it queued, else when it left the queue. */
  admitted_at: number | null;
  /** Started ahead of a waiting queue head, by a backfill that could not delay it. */
  backfilled: 0 | 1;
  /** JSON of a JobError decided while the container ran (a disk-budget kill); it fails the job. */
  failure: string | null;
}

export interface ArtifactRow {
  id: number;
  job_id: string;
  name: string;
  path: string;
  size_bytes: number;
  created_at: number;
}

export type UploadState = 'uploading' | 'finalized' | 'consumed' | 'expired';

export interface UploadRow {
  id: string;
  user_id: string;
  state: UploadState;
  size_bytes: number | null;
  file_count: number | null;
  created_at: number;
  finalized_at: number | null;
  consumed_at: number | null;
  expires_at: number;
  job_id: string | null;
}
