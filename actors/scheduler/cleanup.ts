/**
 * @module cleanup
 * The cleanup pass the scheduler runs every minute (configurable): expires uploads past their
 * TTL, removes directories and files nobody owns, deletes artifacts 1 h and logs 24 h after a
 * job ended, and moves jobs through `cleaning → cleaned`. Every step writes its intent before
 * deleting and is idempotent, so a pass killed half-way is completed by the next one: nothing is
 * deleted twice, nothing leaks, and an idempotency key is released only once both the log and
 * the artifacts are gone.
 */
import { lstat, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { removeTree } from '../artifacts/dir-fd.ts';
import { ID_PATTERNS } from '../contract/jobs.ts';
import type { Db } from '../store/database.ts';
import type { JobRow, UploadRow } from '../store/rows.ts';

export interface CleanupSettings {
  uploadsDir: string;
  sealedDir: string;
  artifactsDir: string;
  logsDir: string;
  uploadUnfinalizedTtlMs: number;
  logTtlMs: number;
  artifactTtlMs: number;
  logsTotalBytes: number;
}

export type CleanupAction =
  | 'upload_expired'
  | 'orphan_removed'
  | 'artifacts_deleted'
  | 'log_deleted'
  | 'log_evicted'
  | 'job_cleaned';

export type CleanupCounts = Partial<Record<CleanupAction, number>>;

export interface DiskUsage {
  uploads: number;
  artifacts: number;
  logs: number;
}

const TERMINAL = "('completed', 'failed', 'timed_out', 'cancelled')";

async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export class Cleanup {
  private readonly db: Db;
  private readonly settings: CleanupSettings;
  private readonly onAction: (action: CleanupAction, subject: string) => void;
  /** An upload finalize is moving and measuring: neither its rsync nor its sealed directory is an orphan. */
  private readonly finalizing: (uploadId: string) => boolean;
  private counts: CleanupCounts = {};

  constructor(
    db: Db,
    settings: CleanupSettings,
    onAction: (action: CleanupAction, subject: string) => void,
    finalizing: (uploadId: string) => boolean = () => false,
  ) {
    this.db = db;
    this.settings = settings;
    this.onAction = onAction;
    this.finalizing = finalizing;
  }

  private did(action: CleanupAction, subject: string): void {
    this.counts[action] = (this.counts[action] ?? 0) + 1;
    this.onAction(action, subject);
  }

  async runPass(now = Date.now()): Promise<{ counts: CleanupCounts; usage: DiskUsage }> {
    this.counts = {};
    await this.expireUploads(now);
    await this.removeOrphans();
    await this.deleteDueArtifacts(now);
    await this.evictLogsOverCap();
    await this.cleanDueJobs(now);
    return { counts: this.counts, usage: await this.usage() };
  }

  private async expireUploads(now: number): Promise<void> {
    const { uploadsDir, sealedDir, uploadUnfinalizedTtlMs } = this.settings;
    for (const name of await entries(uploadsDir)) {
      if (!ID_PATTERNS.upload.test(name)) continue; // orphans are removeOrphans' business
      const row = this.db.prepare('SELECT * FROM uploads WHERE id = ?').get(name) as UploadRow | undefined;
      // lstat: an upload is hostile, a link in it is never followed (its own age is what counts).
      const info = await lstat(join(uploadsDir, name)).catch(() => undefined);
      if (!info || this.finalizing(name)) continue;
      const createdAt = Math.round(info.birthtimeMs || info.ctimeMs);
      // A directory for an id already finalized or expired is a late or repeated rsync: not an upload.
      const stale = row ? row.state !== 'uploading' : createdAt + uploadUnfinalizedTtlMs <= now;
      if (!stale) continue;
      this.db
        .prepare(`INSERT INTO uploads (id, state, created_at, expires_at) VALUES (?, 'expired', ?, ?) ON CONFLICT (id) DO NOTHING`)
        .run(name, createdAt, now);
      await removeTree(join(uploadsDir, name));
      this.did('upload_expired', name);
    }
    const due = this.db
      .prepare("SELECT id FROM uploads WHERE state = 'finalized' AND job_id IS NULL AND expires_at <= ?")
      .pluck()
      .all(now) as string[];
    for (const id of due) {
      this.db.prepare("UPDATE uploads SET state = 'expired' WHERE id = ? AND state = 'finalized'").run(id);
      await removeTree(join(sealedDir, id));
      this.did('upload_expired', id);
    }
  }

  /** Files and directories no row accounts for (crash leftovers, junk in the rsync module). */
  private async removeOrphans(): Promise<void> {
    const { uploadsDir, sealedDir, artifactsDir, logsDir } = this.settings;
    for (const name of await entries(uploadsDir)) {
      if (ID_PATTERNS.upload.test(name)) continue;
      await removeTree(join(uploadsDir, name));
      this.did('orphan_removed', `uploads/${name}`);
    }
    for (const name of await entries(sealedDir)) {
      const row = this.db.prepare('SELECT u.state, u.job_id, j.resources_released_at FROM uploads u LEFT JOIN jobs j ON j.id = u.job_id WHERE u.id = ?').get(name) as
        | { state: string; job_id: string | null; resources_released_at: number | null }
        | undefined;
      const needed = row && (row.state === 'finalized' || (row.state === 'consumed' && row.resources_released_at === null));
      if (needed || this.finalizing(name)) continue;
      await removeTree(join(sealedDir, name));
      this.did('orphan_removed', `sealed/${name}`);
    }
    const jobState = this.db.prepare('SELECT artifacts_deleted_at, logs_deleted_at FROM jobs WHERE id = ?');
    for (const name of await entries(artifactsDir)) {
      const job = jobState.get(name) as Pick<JobRow, 'artifacts_deleted_at' | 'logs_deleted_at'> | undefined;
      if (job && job.artifacts_deleted_at === null) continue;
      await removeTree(join(artifactsDir, name));
      this.did('orphan_removed', `artifacts/${name}`);
    }
    for (const name of await entries(logsDir)) {
      const job = jobState.get(name.replace(/\.log$/, '')) as Pick<JobRow, 'artifacts_deleted_at' | 'logs_deleted_at'> | undefined;
      if (job && job.logs_deleted_at === null) continue;
      await rm(join(logsDir, name), { force: true });
      this.did('orphan_removed', `logs/${name}`);
    }
  }

  private async deleteDueArtifacts(now: number): Promise<void> {
    const due = this.db
      .prepare(`SELECT id FROM jobs WHERE status IN ${TERMINAL} AND resources_released_at IS NOT NULL AND artifacts_indexed_at IS NOT NULL
                AND artifacts_deleted_at IS NULL AND completed_at + ? <= ?`)
      .pluck()
      .all(this.settings.artifactTtlMs, now) as string[];
    for (const id of due) {
      await removeTree(join(this.settings.artifactsDir, id));
      this.db.transaction(() => {
        this.db.prepare('DELETE FROM artifacts WHERE job_id = ?').run(id);
        this.db.prepare('UPDATE jobs SET artifacts_deleted_at = ? WHERE id = ?').run(now, id);
      })();
      this.did('artifacts_deleted', id);
    }
  }

  /** Over the total cap for logs, the oldest finished jobs' logs go first. */
  private async evictLogsOverCap(): Promise<void> {
    let total = await this.logsBytes();
    if (total <= this.settings.logsTotalBytes) return;
    const oldest = this.db
      .prepare(`SELECT id FROM jobs WHERE status IN ${TERMINAL} AND resources_released_at IS NOT NULL AND logs_deleted_at IS NULL ORDER BY completed_at`)
      .pluck()
      .iterate() as IterableIterator<string>;
    for (const id of oldest) {
      if (total <= this.settings.logsTotalBytes) break;
      const path = join(this.settings.logsDir, `${id}.log`);
      const size = (await stat(path).catch(() => undefined))?.size ?? 0;
      await rm(path, { force: true });
      this.db.prepare('UPDATE jobs SET logs_deleted_at = ? WHERE id = ?').run(Date.now(), id);
      total -= size;
      this.did('log_evicted', id);
    }
  }

  private async cleanDueJobs(now: number): Promise<void> {
    const due = this.db
      .prepare(`SELECT id FROM jobs WHERE (status IN ${TERMINAL} AND resources_released_at IS NOT NULL AND artifacts_deleted_at IS NOT NULL
                AND (logs_deleted_at IS NOT NULL OR completed_at + ? <= ?)) OR status = 'cleaning'`)
      .pluck()
      .all(this.settings.logTtlMs, now) as string[];
    for (const id of due) {
      this.db.prepare("UPDATE jobs SET status = 'cleaning' WHERE id = ?").run(id);
      await rm(join(this.settings.logsDir, `${id}.log`), { force: true });
      await removeTree(join(this.settings.artifactsDir, id));
      this.db.transaction(() => {
        this.db.prepare("UPDATE jobs SET status = 'cleaned', logs_deleted_at = coalesce(logs_deleted_at, ?) WHERE id = ?").run(now, id);
        this.db.prepare('UPDATE idempotency_keys SET active = 0 WHERE job_id = ? AND active = 1').run(id);
      })();
      this.did('job_cleaned', id);
    }
  }

  private async logsBytes(): Promise<number> {
    let total = 0;
    for (const name of await entries(this.settings.logsDir)) total += (await stat(join(this.settings.logsDir, name)).catch(() => undefined))?.size ?? 0;
    return total;
  }

  private async usage(): Promise<DiskUsage> {
    const artifacts = this.db.prepare('SELECT coalesce(sum(size_bytes), 0) FROM artifacts').pluck().get() as number;
    const uploads = this.db.prepare("SELECT coalesce(sum(size_bytes), 0) FROM uploads WHERE state = 'finalized' OR state = 'consumed'").pluck().get() as number;
    return { uploads, artifacts, logs: await this.logsBytes() };
  }
}
