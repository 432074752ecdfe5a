/**
 * @module jobs-store
 * Every write to jobs, idempotency keys and the uploads they use. Each method is one SQLite
 * transaction, and the scheduler is a single thread, so "check and reserve" is one atomic step:
 * concurrent requests can never admit more than fits or create two jobs for one key.
 */
import { randomBytes } from 'node:crypto';
import { apiError } from '../contract/errors.ts';
import { entrypointExitError, JOB_ERRORS, type JobState } from '../contract/jobs.ts';
import type { Db } from '../store/database.ts';
import type { JobRow, UploadRow } from '../store/rows.ts';
import type { JobRequest } from './job-request.ts';

export interface Capacity {
  cpus: number;
  memoryGb: number;
}

export interface Usage extends Capacity {
  jobs: number;
}

export interface Finish {
  /** null when no container ran (or it vanished). */
  exitCode: number | null;
  oomKilled?: boolean;
  /** A note for `error` that does not change the outcome (e.g. dropped artifacts). */
  error?: string;
  /** The job fails with this error whatever its exit code (e.g. artifact indexing failed). */
  failure?: string;
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export function newJobId(): string {
  const bytes = randomBytes(16);
  return `job_${Array.from(bytes, (b) => ALPHABET[b % ALPHABET.length]).join('')}`;
}

export class JobsStore {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  get(id: string): JobRow | undefined {
    return this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
  }

  /** Resources of every job whose container may be alive (reserved, starting, running, or being killed). */
  usage(): Usage {
    const row = this.db
      .prepare('SELECT count(*) AS jobs, coalesce(sum(cpus), 0) AS cpus, coalesce(sum(memory_gb), 0) AS memoryGb FROM jobs WHERE resources_released_at IS NULL')
      .get() as Usage;
    return row;
  }

  /** Idempotent lookup, admission and reservation in one transaction. */
  create(req: JobRequest, capacity: Capacity, now = Date.now()): { job: JobRow; created: boolean } {
    return this.db.transaction(() => {
      if (req.clientJobId) {
        const existing = this.db
          .prepare('SELECT j.* FROM idempotency_keys k JOIN jobs j ON j.id = k.job_id WHERE k.client_job_id = ? AND k.active = 1')
          .get(req.clientJobId) as JobRow | undefined;
        if (existing) return { job: existing, created: false };
      }
      if (req.filesId) this.checkUploadUsable(req.filesId);

      const used = this.usage();
      const available = { cpus: capacity.cpus - used.cpus, memory_gb: capacity.memoryGb - used.memoryGb };
      if (req.cpus > available.cpus || req.memoryGb > available.memory_gb) {
        throw apiError('insufficient_resources', 'Not enough resources to start job', {
          flatten: true,
          requested: { cpus: req.cpus, memory_gb: req.memoryGb },
          available: { cpus: Math.max(0, available.cpus), memory_gb: Math.max(0, available.memory_gb) },
          host_capacity: { cpus: capacity.cpus, memory_gb: capacity.memoryGb },
          running_jobs: used.jobs,
        });
      }

      const id = newJobId();
      this.db
        .prepare(
          `INSERT INTO jobs (id, job_type, status, command, task, context, git_branch, files_id, image, cpus, memory_gb, timeout_minutes, created_at, need_github_token)
           VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(id, req.type, req.command ?? null, req.task ?? null, req.context ?? null, req.gitBranch ?? null, req.filesId ?? null, req.image, req.cpus, req.memoryGb, req.timeoutMinutes, now, req.needGithubToken ? 1 : 0);
      if (req.clientJobId) {
        this.db.prepare('INSERT INTO idempotency_keys (client_job_id, job_id, active, created_at) VALUES (?, ?, 1, ?)').run(req.clientJobId, id, now);
      }
      if (req.filesId) this.db.prepare('UPDATE uploads SET job_id = ? WHERE id = ?').run(id, req.filesId);
      return { job: this.get(id)!, created: true };
    })();
  }

  private checkUploadUsable(uploadId: string): void {
    const upload = this.db.prepare('SELECT * FROM uploads WHERE id = ?').get(uploadId) as UploadRow | undefined;
    if (!upload) throw apiError('upload_not_found', `No finalized upload ${uploadId}; rsync the directory, then POST /uploads/${uploadId}/finalize.`);
    if (upload.state === 'uploading') throw apiError('upload_not_finalized', `Upload ${uploadId} is not finalized; POST /uploads/${uploadId}/finalize first.`);
    if (upload.state === 'expired') throw apiError('upload_expired', `Upload ${uploadId} expired; upload the files again.`);
    if (upload.state === 'consumed' || upload.job_id !== null) {
      throw apiError('upload_already_consumed', `Upload ${uploadId} is already used by job ${upload.job_id}; each upload feeds one job.`);
    }
  }

  /** pending → starting; false when the job moved on meanwhile (e.g. it was cancelled). */
  markStarting(id: string): boolean {
    return this.db.prepare("UPDATE jobs SET status = 'starting' WHERE id = ? AND status = 'pending'").run(id).changes === 1;
  }

  /**
   * starting → running, and the job's upload becomes consumed. Returns the job's status after
   * the call: anything but `running` (cancelled meanwhile) tells the caller to kill the container.
   */
  markRunning(id: string, containerId: string, startedAt: number): JobState | undefined {
    return this.db.transaction(() => {
      this.db.prepare("UPDATE jobs SET status = 'running', container_id = ?, started_at = ? WHERE id = ? AND status IN ('pending', 'starting')").run(containerId, startedAt, id);
      const job = this.get(id);
      if (!job) return undefined;
      if (job.started_at === null) this.db.prepare('UPDATE jobs SET started_at = ?, container_id = ? WHERE id = ?').run(startedAt, containerId, id);
      if (job.files_id) {
        this.db.prepare("UPDATE uploads SET state = 'consumed', consumed_at = ? WHERE id = ? AND state = 'finalized'").run(startedAt, job.files_id);
      }
      return job.status;
    })();
  }

  /** How the container ended, kept until the job's final status is written (after removal). */
  recordExit(id: string, finish: Finish): void {
    this.db.prepare('UPDATE jobs SET pending_finish = ? WHERE id = ?').run(JSON.stringify(finish), id);
  }

  /**
   * Records how the container ended, and with `released` that it is gone, in one step. A kill we asked for decides the state (cancelled stays
   * cancelled, a timeout kill becomes timed_out); otherwise the exit code does.
   */
  finish(id: string, finish: Finish, released: boolean, now = Date.now()): JobRow | undefined {
    return this.db.transaction(() => {
      const job = this.get(id);
      if (!job) return undefined;
      if (released) this.releaseResources(id, now);
      if (job.status !== 'pending' && job.status !== 'starting' && job.status !== 'running' && job.status !== 'cancelled') return job;
      if (job.status === 'cancelled' && job.exit_code !== null) return job;

      let status: JobState;
      let error: string | null = finish.error ?? null;
      if (job.status === 'cancelled') status = 'cancelled';
      else if (job.kill_reason === 'timeout') {
        status = 'timed_out';
        error = JOB_ERRORS.timeout;
      } else if (finish.failure) {
        status = 'failed';
        error = finish.failure;
      } else if (finish.exitCode === 0) status = 'completed';
      else {
        status = 'failed';
        // Exit 90/91 from Flashpods' identity step (contract/jobs.ts ENTRYPOINT_EXIT_CODES).
        const identity = entrypointExitError({ jobType: job.job_type, needGithubToken: job.need_github_token === 1 }, finish.exitCode);
        if (identity) error = finish.error ? `${identity}; ${finish.error}` : identity;
      }
      if (finish.oomKilled && status === 'failed' && !finish.failure) error = JOB_ERRORS.oomKilled;
      if (status === 'cancelled') error = finish.error ?? null;

      this.db
        .prepare('UPDATE jobs SET status = ?, exit_code = ?, error = coalesce(?, error), completed_at = coalesce(completed_at, ?), pending_finish = NULL WHERE id = ?')
        .run(status, finish.exitCode, error, now, id);
      if (job.started_at === null && job.files_id) this.expireUpload(job.files_id, now);
      return this.get(id);
    })();
  }

  /** The container is gone (or never existed): admission may hand its resources out again. */
  releaseResources(id: string, now = Date.now()): void {
    this.db.prepare('UPDATE jobs SET resources_released_at = ? WHERE id = ? AND resources_released_at IS NULL').run(now, id);
  }

  /**
   * DELETE /jobs/:id. The job is `cancelled` at once; its resources stay counted until the
   * container is really gone. Returns the row as it was before.
   */
  cancel(id: string, now = Date.now()): JobRow {
    return this.db.transaction(() => {
      const job = this.get(id);
      if (!job) throw apiError('job_not_found', `No job ${id}.`);
      if (!['pending', 'starting', 'running'].includes(job.status)) {
        throw apiError('job_already_terminal', `Job ${id} is already ${job.status}.`);
      }
      this.db
        .prepare("UPDATE jobs SET status = 'cancelled', kill_requested_at = ?, kill_reason = 'cancel', completed_at = ? WHERE id = ?")
        .run(now, now, id);
      if (job.status === 'pending') {
        // No container was ever asked for: nothing to wait for.
        this.releaseResources(id, now);
        if (job.files_id) this.expireUpload(job.files_id, now);
      } else if (job.status === 'starting' && job.files_id) {
        this.expireUpload(job.files_id, now);
      }
      return job;
    })();
  }

  /** The timeout clock ran out: remember why we are about to kill it. */
  requestTimeoutKill(id: string, now = Date.now()): boolean {
    return this.db
      .prepare("UPDATE jobs SET kill_requested_at = ?, kill_reason = 'timeout' WHERE id = ? AND status = 'running' AND kill_reason IS NULL")
      .run(now, id).changes === 1;
  }

  /**
   * Replaces the job's artifact rows in one transaction and marks it indexed. Re-indexing after
   * a crash replaces rather than conflicts, and names come from one directory listing, so the
   * contract's artifact_copy_conflict cannot arise here.
   */
  recordArtifacts(id: string, artifacts: Array<{ name: string; sizeBytes: number; createdAt: number }>, now = Date.now()): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM artifacts WHERE job_id = ?').run(id);
      const insert = this.db.prepare('INSERT INTO artifacts (job_id, name, path, size_bytes, created_at) VALUES (?, ?, ?, ?, ?)');
      for (const a of artifacts) insert.run(id, a.name, a.name, a.sizeBytes, a.createdAt);
      this.db.prepare('UPDATE jobs SET artifacts_indexed_at = ? WHERE id = ?').run(now, id);
    })();
  }

  markLogTruncated(id: string): void {
    this.db.prepare('UPDATE jobs SET log_truncated = 1 WHERE id = ?').run(id);
  }

  private expireUpload(uploadId: string, now: number): void {
    this.db.prepare("UPDATE uploads SET state = 'expired', expires_at = ? WHERE id = ? AND state = 'finalized'").run(now, uploadId);
  }
}
