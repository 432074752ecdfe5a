/**
 * @module uploads
 * The upload state machine (uploading → finalized → consumed, uploading|finalized → expired).
 * rsync writes into `<uploads>/<id>/`; finalize measures it off the event loop, checks the
 * quotas, and renames it into the sealed area outside the rsync module, so the snapshot a job
 * sees can no longer change. A sealed directory is deleted once its job's container is gone, or
 * when the upload expires.
 */
import { existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { TaskPool } from '../../runtime/task-pool.ts';
import { apiError } from '../contract/errors.ts';
import { ID_PATTERNS } from '../contract/jobs.ts';
import type { Db } from '../store/database.ts';
import type { UploadRow } from '../store/rows.ts';
import type { MeasureInput, MeasureOutput } from './measure-tree.task.ts';

export interface UploadSettings {
  uploadsDir: string;
  sealedDir: string;
  maxBytes: number;
  totalBytes: number;
  unfinalizedTtlMs: number;
  finalizedTtlMs: number;
}

export function checkUploadId(id: string): void {
  if (!ID_PATTERNS.upload.test(id)) throw apiError('invalid_upload_id', `${JSON.stringify(id)} is not an upload id; they look like upload_ followed by 12 letters or digits.`);
}

export class Uploads {
  private readonly db: Db;
  private readonly settings: UploadSettings;
  private readonly measure: TaskPool<MeasureInput, MeasureOutput>;
  private readonly finalizing = new Set<string>();

  constructor(db: Db, settings: UploadSettings, measure: TaskPool<MeasureInput, MeasureOutput>) {
    this.db = db;
    this.settings = settings;
    this.measure = measure;
  }

  get(id: string): UploadRow | undefined {
    return this.db.prepare('SELECT * FROM uploads WHERE id = ?').get(id) as UploadRow | undefined;
  }

  async finalize(id: string, now = Date.now()): Promise<UploadRow> {
    checkUploadId(id);
    this.refuseUnlessUploading(this.get(id), id);
    if (this.finalizing.has(id)) throw apiError('upload_already_finalized', `Upload ${id} is being finalized by another request.`);
    const dir = join(this.settings.uploadsDir, id);
    let createdAt: number;
    try {
      const st = statSync(dir);
      if (!st.isDirectory()) throw new Error('not a directory');
      createdAt = Math.round(st.birthtimeMs || st.ctimeMs);
    } catch {
      throw apiError('upload_not_found', `No upload ${id}: rsync the directory to rsync://<host>/uploads/${id}/ first.`);
    }

    this.finalizing.add(id);
    try {
      const measured = await this.measure.run({ dir, stopAboveBytes: this.settings.maxBytes });
      if (measured.stoppedEarly) {
        throw apiError('insufficient_storage', `Upload ${id} is larger than the ${this.settings.maxBytes}-byte limit per upload; upload less (exclude build outputs).`, {
          limit_bytes: this.settings.maxBytes,
        });
      }
      const held = this.db.prepare("SELECT coalesce(sum(size_bytes), 0) FROM uploads WHERE state = 'finalized'").pluck().get() as number;
      if (held + measured.sizeBytes > this.settings.totalBytes) {
        throw apiError('insufficient_storage', `Finalizing ${measured.sizeBytes} bytes would exceed the ${this.settings.totalBytes}-byte quota for all uploads (${held} in use); wait for older uploads to be used or expire.`, {
          limit_bytes: this.settings.totalBytes, used_bytes: held, requested_bytes: measured.sizeBytes,
        });
      }
      // Re-check: the state may have changed while the tree was measured.
      this.refuseUnlessUploading(this.get(id), id);
      renameSync(dir, join(this.settings.sealedDir, id));
      this.db
        .prepare(
          `INSERT INTO uploads (id, state, size_bytes, file_count, created_at, finalized_at, expires_at)
           VALUES (@id, 'finalized', @size, @count, @created, @now, @expires)
           ON CONFLICT (id) DO UPDATE SET state = 'finalized', size_bytes = @size, file_count = @count, finalized_at = @now, expires_at = @expires`,
        )
        .run({ id, size: measured.sizeBytes, count: measured.fileCount, created: createdAt, now, expires: now + this.settings.finalizedTtlMs });
      return this.get(id)!;
    } finally {
      this.finalizing.delete(id);
    }
  }

  /** DELETE /uploads/{id}: an upload no job holds is expired and its files removed. */
  remove(id: string, now = Date.now()): void {
    checkUploadId(id);
    const row = this.get(id);
    const rsyncDir = join(this.settings.uploadsDir, id);
    if (!row && !existsSync(rsyncDir)) throw apiError('upload_not_found', `No upload ${id}.`);
    if (row?.job_id && row.state !== 'expired') {
      throw apiError('upload_already_consumed', `Upload ${id} belongs to job ${row.job_id}; cancel the job instead.`);
    }
    this.db
      .prepare(
        `INSERT INTO uploads (id, state, created_at, expires_at) VALUES (?, 'expired', ?, ?)
         ON CONFLICT (id) DO UPDATE SET state = 'expired', expires_at = min(expires_at, excluded.expires_at)`,
      )
      .run(id, now, now);
    rmSync(rsyncDir, { recursive: true, force: true });
    this.removeSealed(id);
  }

  /** Deletes the sealed files of an upload that no container can still need. Idempotent. */
  sweep(id: string): void {
    const row = this.get(id);
    if (!row) return;
    const jobGone = row.job_id === null
      || (this.db.prepare('SELECT resources_released_at IS NOT NULL FROM jobs WHERE id = ?').pluck().get(row.job_id) as number | undefined) === 1;
    if (row.state === 'expired' || (row.state === 'consumed' && jobGone)) this.removeSealed(id);
  }

  sealedPath(id: string): string {
    return join(this.settings.sealedDir, id);
  }

  private removeSealed(id: string): void {
    rmSync(join(this.settings.sealedDir, id), { recursive: true, force: true });
  }

  private refuseUnlessUploading(row: UploadRow | undefined, id: string): void {
    if (!row || row.state === 'uploading') return;
    if (row.state === 'finalized') throw apiError('upload_already_finalized', `Upload ${id} is already finalized; create the job with files_id ${id}.`);
    if (row.state === 'consumed') throw apiError('upload_already_consumed', `Upload ${id} was already used by job ${row.job_id}; upload again.`);
    throw apiError('upload_expired', `Upload ${id} expired; upload the files again.`);
  }
}
