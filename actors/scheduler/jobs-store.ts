/**
 * @module jobs-store
 * Every write to jobs, idempotency keys, artifacts and the uploads jobs use. Each method is one
 * SQLite transaction, and the scheduler is a single thread, so "check and reserve" is one atomic
 * step: concurrent requests can never admit more than fits or create two jobs for one key. A
 * transition is read, decided (lifecycle.ts) and written in one transaction too, with the
 * commands that touch the store carried out inside it.
 */
import { randomBytes } from 'node:crypto';
import { apiError } from '../contract/errors.ts';
import type { Db } from '../store/database.ts';
import { JobReads } from '../store/job-reads.ts';
import type { JobRow, UploadRow } from '../store/rows.ts';
import type { JobRequest } from './job-request.ts';
import type { Command, Transition } from './lifecycle.ts';

export interface Capacity {
  cpus: number;
  memoryGb: number;
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export function newJobId(): string {
  const bytes = randomBytes(16);
  return `job_${Array.from(bytes, (b) => ALPHABET[b % ALPHABET.length]).join('')}`;
}

/** The lifecycle may change these columns; everything else about a job is fixed at admission. */
const LIFECYCLE_COLUMNS = [
  'status', 'container_id', 'exit_code', 'error', 'error_code', 'outcome', 'started_at', 'completed_at', 'log_truncated',
  'kill_requested_at', 'kill_reason', 'resources_released_at', 'artifacts_indexed_at', 'artifacts_deleted_at',
  'logs_deleted_at', 'pending_finish', 'failure', 'admitted_at', 'backfilled',
] as const satisfies ReadonlyArray<keyof JobRow>;

/** Where a new job goes: straight to its container, or into the queue (scheduler/admission.ts decides). */
export type Placement = { status: 'pending'; backfilled: boolean } | { status: 'queued'; queueTimeoutMinutes: number };

/** Commands the store carries out inside the transition's own transaction. */
export type StoreCommand = Extract<Command, { type: 'consumeUpload' | 'expireUpload' | 'storeArtifacts' | 'dropArtifactRows' | 'forgetClientKey' }>;

const STORE_COMMANDS = new Set<Command['type']>(['consumeUpload', 'expireUpload', 'storeArtifacts', 'dropArtifactRows', 'forgetClientKey']);

export function isStoreCommand(command: Command): command is StoreCommand {
  return STORE_COMMANDS.has(command.type);
}

export class JobsStore {
  private readonly db: Db;
  readonly reads: JobReads;
  /**
   * For an upload id the database does not know: returns when rsync has written the upload and
   * nobody finalized it yet, throws upload_not_found (with why) when it is no upload at all.
   */
  private readonly checkUnfinalized: (uploadId: string) => void;

  constructor(db: Db, checkUnfinalized: (uploadId: string) => void) {
    this.db = db;
    this.reads = new JobReads(db);
    this.checkUnfinalized = checkUnfinalized;
  }

  get(id: string): JobRow | undefined {
    return this.reads.job(id);
  }

  /**
   * Idempotent lookup, the upload check, admission and reservation in one transaction.
   * `admit` decides whether the request fits (lifecycle.ts); it throws the 429 when it does not.
   */
  /**
   * One transaction: the idempotency key, the upload, then `place` (which may refuse by throwing,
   * and may first move other jobs, through `transition`) decides where the new job goes.
   */
  create(req: JobRequest, place: (req: JobRequest, id: string, now: number) => Placement, now = Date.now()): { job: JobRow; created: boolean } {
    return this.db.transaction(() => {
      if (req.clientJobId) {
        const existing = this.db
          .prepare('SELECT j.* FROM idempotency_keys k JOIN jobs j ON j.id = k.job_id WHERE k.client_job_id = ? AND k.active = 1')
          .get(req.clientJobId) as JobRow | undefined;
        if (existing) return { job: existing, created: false };
      }
      if (req.filesId) this.checkUploadUsable(req.filesId);
      const id = newJobId();
      const placement = place(req, id, now);
      const queued = placement.status === 'queued';
      // FIFO order survives restarts and never ties: one more than any number given before.
      const seq = queued ? (this.db.prepare('SELECT coalesce(max(queue_seq), 0) + 1 FROM jobs').pluck().get() as number) : null;
      this.db
        .prepare(
          `INSERT INTO jobs (id, job_type, status, command, task, context, git_branch, files_id, image, cpus, memory_gb, timeout_minutes, created_at, need_github_token,
                             queued_at, queue_seq, queue_timeout_minutes, admitted_at, backfilled)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(id, req.type, placement.status, req.command ?? null, req.task ?? null, req.context ?? null, req.gitBranch ?? null, req.filesId ?? null, req.image, req.cpus, req.memoryGb,
          req.timeoutMinutes, now, req.needGithubToken ? 1 : 0,
          queued ? now : null, seq, queued ? placement.queueTimeoutMinutes : null, queued ? null : now, placement.status === 'pending' && placement.backfilled ? 1 : 0);
      if (req.clientJobId) {
        this.db.prepare('INSERT INTO idempotency_keys (client_job_id, job_id, active, created_at) VALUES (?, ?, 1, ?)').run(req.clientJobId, id, now);
      }
      if (req.filesId) this.db.prepare('UPDATE uploads SET job_id = ? WHERE id = ?').run(id, req.filesId);
      return { job: this.get(id)!, created: true };
    })();
  }

  private checkUploadUsable(uploadId: string): void {
    const upload = this.reads.upload(uploadId);
    if (!upload) {
      // The database learns of an upload at finalize: until then it is rsync's directory, if any.
      this.checkUnfinalized(uploadId);
      throw apiError('upload_not_finalized', `Upload ${uploadId} is still uploading; POST /uploads/${uploadId}/finalize first.`);
    }
    if (upload.state === 'uploading') throw apiError('upload_not_finalized', `Upload ${uploadId} is not finalized; POST /uploads/${uploadId}/finalize first.`);
    if (upload.state === 'expired') throw apiError('upload_expired', `Upload ${uploadId} expired; upload the files again.`);
    if (upload.state === 'consumed' || upload.job_id !== null) {
      throw apiError('upload_already_consumed', `Upload ${uploadId} is already used by job ${upload.job_id}; each upload feeds one job.`);
    }
  }

  /**
   * Reads the job, lets `decide` compute its transition, writes the changed columns and carries
   * out the transition's store commands, all in one transaction. Undefined for an unknown job.
   */
  transition(id: string, decide: (job: JobRow) => Transition): { before: JobRow; after: Transition } | undefined {
    return this.db.transaction(() => {
      const before = this.get(id);
      if (!before) return undefined;
      const after = decide(before);
      this.save(before, after.job);
      for (const command of after.commands) if (isStoreCommand(command)) this.carryOut(command);
      return { before, after };
    })();
  }

  private save(before: JobRow, after: JobRow): void {
    const changed = LIFECYCLE_COLUMNS.filter((c) => before[c] !== after[c]);
    if (changed.length === 0) return;
    this.db
      .prepare(`UPDATE jobs SET ${changed.map((c) => `${c} = @${c}`).join(', ')} WHERE id = @id`)
      .run({ id: before.id, ...Object.fromEntries(changed.map((c) => [c, after[c]])) });
  }

  private carryOut(command: StoreCommand): void {
    switch (command.type) {
      case 'consumeUpload':
        this.db.prepare("UPDATE uploads SET state = 'consumed', consumed_at = ? WHERE id = ? AND state = 'finalized'").run(command.at, command.uploadId);
        return;
      case 'expireUpload':
        this.db.prepare("UPDATE uploads SET state = 'expired', expires_at = ? WHERE id = ? AND state = 'finalized'").run(command.at, command.uploadId);
        return;
      case 'storeArtifacts': {
        // Re-indexing after a crash replaces rather than conflicts, and names come from one
        // directory listing, so the contract's artifact_copy_conflict cannot arise here.
        this.db.prepare('DELETE FROM artifacts WHERE job_id = ?').run(command.jobId);
        const insert = this.db.prepare('INSERT INTO artifacts (job_id, name, path, size_bytes, created_at) VALUES (?, ?, ?, ?, ?)');
        for (const a of command.artifacts) insert.run(command.jobId, a.name, a.name, a.sizeBytes, a.createdAt);
        return;
      }
      case 'dropArtifactRows':
        this.db.prepare('DELETE FROM artifacts WHERE job_id = ?').run(command.jobId);
        return;
      case 'forgetClientKey':
        this.db.prepare('UPDATE idempotency_keys SET active = 0 WHERE job_id = ? AND active = 1').run(command.jobId);
        return;
    }
  }

  upload(id: string): UploadRow | undefined {
    return this.reads.upload(id);
  }
}
