/**
 * @module cleanup
 * The cleanup pass the scheduler runs every minute (configurable): expires uploads past their
 * TTL and removes directories and files nobody owns; for jobs it only reports the pass (and
 * disk pressure) to the lifecycle, which decides what is due — artifacts 1 h and logs 24 h after
 * a job ended, then `cleaning → cleaned` — and it carries out the deletions the lifecycle
 * commands. Every job step is recorded as intent before the files go and is idempotent, so a
 * pass killed half-way is completed by the next one: nothing is deleted twice, nothing leaks,
 * and an idempotency key is released only once both the log and the artifacts are gone.
 */
import { lstat, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { removeTree } from '../artifacts/dir-fd.ts';
import type { JobPaths } from '../contract/job-paths.ts';
import { ID_PATTERNS } from '../contract/jobs.ts';
import type { Db } from '../store/database.ts';
import type { JobReads } from '../store/job-reads.ts';
import type { JobRow, UploadRow } from '../store/rows.ts';
import { isSettled, type Command, type Fact } from './lifecycle.ts';

export interface CleanupSettings {
  uploadsDir: string;
  sealedDir: string;
  artifactsDir: string;
  logsDir: string;
  uploadUnfinalizedTtlMs: number;
  logsTotalBytes: number;
}

export type CleanupAction =
  | 'upload_expired'
  | 'orphan_removed'
  | 'artifacts_deleted'
  | 'log_evicted'
  | 'job_cleaned';

export type CleanupCounts = Partial<Record<CleanupAction, number>>;

export interface DiskUsage {
  uploads: number;
  artifacts: number;
  logs: number;
}

/** The file deletions the lifecycle commands; each is answered with the fact that it happened. */
export type FileCommand = Extract<Command, { type: 'deleteArtifacts' | 'deleteLog' | 'deleteJobFiles' }>;

export function isFileCommand(command: Command): command is FileCommand {
  return command.type === 'deleteArtifacts' || command.type === 'deleteLog' || command.type === 'deleteJobFiles';
}

/** Feeds a fact to the lifecycle and carries out what it commands; resolves once its file deletions are done. */
export type Apply = (jobId: string, fact: Fact) => Promise<void>;

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
  private readonly reads: JobReads;
  private readonly paths: JobPaths;
  private readonly settings: CleanupSettings;
  private readonly onAction: (action: CleanupAction, subject: string) => void;
  /** An upload finalize is moving and measuring: neither its rsync nor its sealed directory is an orphan. */
  private readonly finalizing: (uploadId: string) => boolean;
  private counts: CleanupCounts = {};

  constructor(
    db: Db,
    reads: JobReads,
    paths: JobPaths,
    settings: CleanupSettings,
    onAction: (action: CleanupAction, subject: string) => void,
    finalizing: (uploadId: string) => boolean = () => false,
  ) {
    this.db = db;
    this.reads = reads;
    this.paths = paths;
    this.settings = settings;
    this.onAction = onAction;
    this.finalizing = finalizing;
  }

  private did(action: CleanupAction, subject: string): void {
    this.counts[action] = (this.counts[action] ?? 0) + 1;
    this.onAction(action, subject);
  }

  async runPass(apply: Apply, now = Date.now()): Promise<{ counts: CleanupCounts; usage: DiskUsage }> {
    this.counts = {};
    await this.expireUploads(now);
    await this.removeOrphans();
    for (const job of this.reads.endedJobs()) await apply(job.id, { type: 'cleanupPass' });
    await this.evictLogsOverCap(apply);
    return { counts: this.counts, usage: await this.usage() };
  }

  /** Carries out a deletion the lifecycle commanded; returns the fact to report. */
  async carryOut(command: FileCommand): Promise<Fact> {
    switch (command.type) {
      case 'deleteArtifacts':
        await removeTree(command.dir);
        this.did('artifacts_deleted', command.jobId);
        return { type: 'artifactsDeleted' };
      case 'deleteLog':
        await rm(command.path, { force: true });
        this.did('log_evicted', command.jobId);
        return { type: 'logDeleted' };
      case 'deleteJobFiles':
        await rm(command.logPath, { force: true });
        await Promise.all(command.containerFiles.map((path) => rm(path, { force: true })));
        await removeTree(command.artifactsDir);
        this.did('job_cleaned', command.jobId);
        return { type: 'jobFilesDeleted' };
    }
  }

  private async expireUploads(now: number): Promise<void> {
    const { uploadsDir, uploadUnfinalizedTtlMs } = this.settings;
    for (const name of await entries(uploadsDir)) {
      if (!ID_PATTERNS.upload.test(name)) continue; // orphans are removeOrphans' business
      const row = this.reads.upload(name);
      // lstat: an upload is hostile, a link in it is never followed (its own age is what counts).
      const info = await lstat(this.paths.rsyncUpload(name)).catch(() => undefined);
      if (!info || this.finalizing(name)) continue;
      const createdAt = Math.round(info.birthtimeMs || info.ctimeMs);
      // A directory for an id already finalized or expired is a late or repeated rsync: not an upload.
      const stale = row ? row.state !== 'uploading' : createdAt + uploadUnfinalizedTtlMs <= now;
      if (!stale) continue;
      this.db
        .prepare(`INSERT INTO uploads (id, state, created_at, expires_at) VALUES (?, 'expired', ?, ?) ON CONFLICT (id) DO NOTHING`)
        .run(name, createdAt, now);
      await removeTree(this.paths.rsyncUpload(name));
      this.did('upload_expired', name);
    }
    const due = this.db
      .prepare("SELECT id FROM uploads WHERE state = 'finalized' AND job_id IS NULL AND expires_at <= ?")
      .pluck()
      .all(now) as string[];
    for (const id of due) {
      this.db.prepare("UPDATE uploads SET state = 'expired' WHERE id = ? AND state = 'finalized'").run(id);
      await removeTree(this.paths.sealedUpload(id));
      this.did('upload_expired', id);
    }
  }

  /** Files and directories no row accounts for (crash leftovers, junk in the rsync module). */
  private async removeOrphans(): Promise<void> {
    const { uploadsDir, sealedDir, artifactsDir, logsDir } = this.settings;
    for (const name of await entries(uploadsDir)) {
      if (ID_PATTERNS.upload.test(name)) continue;
      await removeTree(this.paths.rsyncUpload(name));
      this.did('orphan_removed', `uploads/${name}`);
    }
    for (const name of await entries(sealedDir)) {
      const row = this.db.prepare('SELECT u.state, u.job_id, j.resources_released_at FROM uploads u LEFT JOIN jobs j ON j.id = u.job_id WHERE u.id = ?').get(name) as
        | (Pick<UploadRow, 'state' | 'job_id'> & Pick<JobRow, 'resources_released_at'>)
        | undefined;
      const needed = row && (row.state === 'finalized' || (row.state === 'consumed' && row.resources_released_at === null));
      if (needed || this.finalizing(name)) continue;
      await removeTree(this.paths.sealedUpload(name));
      this.did('orphan_removed', `sealed/${name}`);
    }
    for (const name of await entries(artifactsDir)) {
      const job = this.reads.job(name);
      if (job && job.artifacts_deleted_at === null) continue;
      await removeTree(this.paths.artifacts(name));
      this.did('orphan_removed', `artifacts/${name}`);
    }
    for (const name of await entries(logsDir)) {
      const jobId = this.paths.jobOfLogFile(name);
      const job = jobId === undefined ? undefined : this.reads.job(jobId);
      if (job && job.logs_deleted_at === null) continue;
      await rm(join(logsDir, name), { force: true });
      this.did('orphan_removed', `logs/${name}`);
    }
  }

  /** Over the total cap for logs, the oldest settled jobs' logs go first (the lifecycle decides each). */
  private async evictLogsOverCap(apply: Apply): Promise<void> {
    let total = await this.logsBytes();
    if (total <= this.settings.logsTotalBytes) return;
    for (const job of this.reads.endedJobs()) {
      if (total <= this.settings.logsTotalBytes) break;
      if (!isSettled(job) || job.logs_deleted_at !== null) continue;
      const size = (await stat(this.paths.log(job.id)).catch(() => undefined))?.size ?? 0;
      await apply(job.id, { type: 'logEvicted' });
      total -= size;
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
