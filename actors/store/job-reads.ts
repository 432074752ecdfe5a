/**
 * @module store/job-reads
 * The read model: every query anyone outside the scheduler may ask of the store, as typed
 * functions. The scheduler owns the schema and writes; the API opens the database read-only and
 * answers from here (WAL lets it read while the scheduler writes), so reads keep working while
 * the scheduler restarts, and a schema change shows up here, where the compiler sees it.
 */
import { ACTIVE_STATES, TERMINAL_STATES, type JobState, type JobType } from '../contract/jobs.ts';
import type { Db } from './database.ts';
import type { ArtifactRow, JobRow, UploadRow } from './rows.ts';

export interface HeldResources {
  jobs: number;
  cpus: number;
  memoryGb: number;
}

/** `status IN ('a', 'b')` for a fixed set of states: one source for each set (contract/jobs.ts). */
export function statusIn(states: readonly JobState[]): string {
  return `status IN (${states.map((s) => `'${s}'`).join(', ')})`;
}

/**
 * Jobs whose container may still exist or whose end is still being recorded — the reconcile
 * pass asks about each of them. The SQL twin of lifecycle.ts's `isSettled`, negated.
 */
export const UNSETTLED = `(status <> 'queued' AND (${statusIn(ACTIVE_STATES)} OR resources_released_at IS NULL OR (artifacts_indexed_at IS NULL AND status NOT IN ('cleaning', 'cleaned'))))`;

/** Jobs whose container may be alive (jobs.md "Admission control"); see heldResources. */
const HOLDING = `status <> 'queued' AND resources_released_at IS NULL AND pending_finish IS NULL AND outcome IS NULL`;

export class JobReads {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  job(id: string): JobRow | undefined {
    return this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
  }

  /** Newest first; `states` undefined means every state; only queued jobs: in queue order, first to start first. */
  jobs(states: readonly JobState[] | undefined, limit: number): { jobs: JobRow[]; total: number } {
    const where = states ? `WHERE ${statusIn(states)}` : '';
    const order = states?.length === 1 && states[0] === 'queued' ? 'queue_seq' : 'created_at DESC, id DESC';
    const jobs = this.db.prepare(`SELECT * FROM jobs ${where} ORDER BY ${order} LIMIT ?`).all(limit) as JobRow[];
    const total = this.db.prepare(`SELECT count(*) FROM jobs ${where}`).pluck().get() as number;
    return { jobs, total };
  }

  unsettledJobs(): JobRow[] {
    return this.db.prepare(`SELECT * FROM jobs WHERE ${UNSETTLED} ORDER BY created_at`).all() as JobRow[];
  }

  /** Jobs that ended and may have files left for cleanup to delete. */
  endedJobs(): JobRow[] {
    return this.db.prepare(`SELECT * FROM jobs WHERE ${statusIn([...TERMINAL_STATES, 'cleaning'])} ORDER BY completed_at`).all() as JobRow[];
  }

  /**
   * Resources of every job whose container may be alive (jobs.md "Admission control"): admission
   * counts them as in use. A container whose exit is recorded (pending_finish, or the final
   * outcome written at the exit) runs nothing any more, even while Podman is still removing it:
   * a client told `completed` can start the next job at once.
   */
  heldResources(): HeldResources {
    return this.db
      .prepare(`SELECT count(*) AS jobs, coalesce(sum(cpus), 0) AS cpus, coalesce(sum(memory_gb), 0) AS memoryGb FROM jobs WHERE ${HOLDING}`)
      .get() as HeldResources;
  }

  /** The jobs heldResources counts, one by one (the queue pass bounds when each ends). */
  holdingJobs(): JobRow[] {
    return this.db.prepare(`SELECT * FROM jobs WHERE ${HOLDING}`).all() as JobRow[];
  }

  /** The queue, first to start first. */
  queue(): JobRow[] {
    return this.db.prepare("SELECT * FROM jobs WHERE status = 'queued' ORDER BY queue_seq").all() as JobRow[];
  }

  queueLength(): number {
    return this.db.prepare("SELECT count(*) FROM jobs WHERE status = 'queued'").pluck().get() as number;
  }

  /** How long each job that left the queue waited there (queued_at → admitted_at), by type. */
  queueWaits(): Array<{ type: JobType; seconds: number }> {
    return this.db.prepare('SELECT job_type AS type, (admitted_at - queued_at) / 1000.0 AS seconds FROM jobs WHERE queued_at IS NOT NULL AND admitted_at IS NOT NULL')
      .all() as Array<{ type: JobType; seconds: number }>;
  }

  /** Jobs started ahead of a waiting queue head, by a backfill that could not delay it. */
  backfilledCount(): number {
    return this.db.prepare('SELECT count(*) FROM jobs WHERE backfilled = 1').pluck().get() as number;
  }

  /** A queued job's place in the queue, from 1; undefined for a job not queued. */
  queuePosition(job: JobRow): number | undefined {
    if (job.status !== 'queued' || job.queue_seq === null) return undefined;
    return 1 + (this.db.prepare("SELECT count(*) FROM jobs WHERE status = 'queued' AND queue_seq < ?").pluck().get(job.queue_seq) as number);
  }

  artifacts(jobId: string): ArtifactRow[] {
    return this.db.prepare('SELECT * FROM artifacts WHERE job_id = ? ORDER BY name').all(jobId) as ArtifactRow[];
  }

  artifact(jobId: string, name: string): ArtifactRow | undefined {
    return this.db.prepare('SELECT * FROM artifacts WHERE job_id = ? AND name = ?').get(jobId, name) as ArtifactRow | undefined;
  }

  upload(id: string): UploadRow | undefined {
    return this.db.prepare('SELECT * FROM uploads WHERE id = ?').get(id) as UploadRow | undefined;
  }

  /** The id that labels this database's containers (INSTANCE_LABEL). */
  instanceId(): string {
    return this.db.prepare("SELECT value FROM meta WHERE key = 'instance_id'").pluck().get() as string;
  }

  // For /metrics:

  countsByState(): Map<JobState, number> {
    const rows = this.db.prepare('SELECT status, count(*) AS n FROM jobs GROUP BY status').all() as Array<{ status: JobState; n: number }>;
    return new Map(rows.map((r) => [r.status, r.n]));
  }

  /** Jobs that ended failed or timed_out, cleaned ones included (cancelled jobs are not failures). */
  failedCount(): number {
    return this.db.prepare("SELECT count(*) FROM jobs WHERE outcome IN ('failed', 'timed_out')").pluck().get() as number;
  }

  /** Run time (started to ended) of every job that ran and ended. */
  runTimes(): Array<{ type: JobType; seconds: number }> {
    return this.db
      .prepare('SELECT job_type AS type, (completed_at - started_at) / 1000.0 AS seconds FROM jobs WHERE started_at IS NOT NULL AND completed_at IS NOT NULL')
      .all() as Array<{ type: JobType; seconds: number }>;
  }
}
