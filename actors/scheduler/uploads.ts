/**
 * @module uploads
 * The upload state machine (uploading → finalized → consumed, uploading|finalized → expired).
 * rsync writes into `<uploads>/<id>/`; finalize moves it into the sealed area outside the rsync
 * module, measures it there off the event loop, and checks the quotas, so the snapshot a job
 * sees is exactly what finalize measured and can no longer change. A sealed directory is deleted
 * once its job's container is gone, or when the upload expires.
 *
 * Every upload is hostile: an upload path is judged with lstat (a symlink is refused, never
 * followed) and must be a directory owned by the uid the rsync daemon writes as, which is the
 * API's own (shared/spec/host.md: module `uploads` written as user flashpods, the API's user).
 *
 * Why the move comes first and the transfer check second (docs/operations.md "Uploads: what
 * finalize seals"): a transfer keeps its cwd in the directory however it is renamed, so a rename
 * alone seals nothing while rsync runs. Once the directory is out of the module, no transfer that
 * starts later can reach it; one that started earlier registered itself before writing a byte
 * (scripts/rsyncd/transfer-hook.sh), so the register read after the move sees every transfer that
 * could still write into it. Finalize gives such a transfer a moment to end (rsync's own exit
 * trails the client's), then refuses with 409 `upload_in_progress` and moves the directory back.
 */
import { lstatSync, renameSync, rmSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import type { TaskPool } from '../../runtime/task-pool.ts';
import { apiError } from '../contract/errors.ts';
import { ID_PATTERNS, UPLOAD_ID_SHAPE } from '../contract/jobs.ts';
import type { Db } from '../store/database.ts';
import type { UploadRow } from '../store/rows.ts';
import type { MeasureInput, MeasureOutput } from './measure-tree.task.ts';
import { transfersInto } from './rsync-transfers.ts';

export interface UploadSettings {
  uploadsDir: string;
  sealedDir: string;
  /** The rsync daemon's register of transfers in progress (rsync-transfers.ts). */
  transfersDir: string;
  /** The uid every upload directory must belong to: the rsync module's uid, the API's own. */
  ownerUid: number;
  maxBytes: number;
  totalBytes: number;
  unfinalizedTtlMs: number;
  finalizedTtlMs: number;
}

/**
 * How long finalize waits for a transfer into the upload to end before refusing. The client's
 * rsync exits when it has the daemon's final report; the daemon's side (and its post-xfer hook)
 * ends a few milliseconds later, so a finalize sent right after rsync returned must not see it.
 */
const TRANSFER_END_WAIT_MS = 2_000;
const TRANSFER_POLL_MS = 50;

export function checkUploadId(id: string): void {
  if (!ID_PATTERNS.upload.test(id)) throw apiError('invalid_upload_id', `${JSON.stringify(id)} is not an upload id; they look like ${UPLOAD_ID_SHAPE}.`);
}

function kindOf(st: Stats): { found: 'symlink' | 'file' | 'special'; words: string } {
  if (st.isSymbolicLink()) return { found: 'symlink', words: 'a symbolic link' };
  if (st.isFile()) return { found: 'file', words: 'a file' };
  return { found: 'special', words: 'a special file' };
}

/**
 * The lstat of an upload directory, or 404 `upload_not_found` saying what is there instead:
 * nothing, a symbolic link, another kind of file, or a directory someone else owns. Never follows
 * a link. `path` is `<uploads>/<id>` or `<sealed>/<id>`; messages name the rsync module's view.
 */
export function lstatUploadDir(path: string, id: string, ownerUid: number): Stats {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch {
    throw apiError('upload_not_found', `No upload ${id}: rsync the directory to rsync://<host>/uploads/${id}/ first.`);
  }
  if (!st.isDirectory()) {
    const { found, words } = kindOf(st);
    const hint = found === 'symlink' ? 'Flashpods never follows links in uploads. Send the directory itself' : 'Send a directory';
    throw apiError('upload_not_found', `uploads/${id} is ${words}, not a directory. ${hint}: rsync -a <dir>/ rsync://<host>/uploads/${id}/ (both trailing slashes).`, { found });
  }
  if (st.uid !== ownerUid) {
    throw apiError('upload_not_found', `uploads/${id} belongs to uid ${st.uid}, not to uid ${ownerUid} the rsync daemon writes as, so rsync did not create it; upload it again through rsync://<host>/uploads/${id}/.`, {
      found: 'foreign_owner',
    });
  }
  return st;
}

/** When rsync created the upload directory (birth time where the filesystem records it). */
export const uploadCreatedAt = (st: Stats) => Math.round(st.birthtimeMs || st.ctimeMs);

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

  /** Whether finalize owns `<sealed>/<id>` right now (the cleanup pass leaves it alone). */
  isFinalizing(id: string): boolean {
    return this.finalizing.has(id);
  }

  async finalize(id: string, now = Date.now()): Promise<UploadRow> {
    checkUploadId(id);
    this.refuseUnlessUploading(this.get(id), id);
    if (this.finalizing.has(id)) throw apiError('upload_already_finalized', `Upload ${id} is being finalized by another request.`);
    const { uploadsDir, ownerUid } = this.settings;
    const dir = join(uploadsDir, id);
    const sealed = this.sealedPath(id);
    const createdAt = uploadCreatedAt(lstatUploadDir(dir, id, ownerUid));

    this.finalizing.add(id);
    try {
      // A leftover of a finalize that crashed between the move and the database write.
      rmSync(sealed, { recursive: true, force: true });
      renameSync(dir, sealed);
      let measured: MeasureOutput;
      try {
        // Again after the move: the client may have swapped a link in since the lstat above.
        lstatUploadDir(sealed, id, ownerUid);
        await this.waitForTransfersInto(id);
        measured = await this.measure.run({ dir: sealed, stopAboveBytes: this.settings.maxBytes });
        this.checkQuotas(id, measured);
        // Re-check: the state may have changed while the tree was measured.
        this.refuseUnlessUploading(this.get(id), id);
      } catch (err) {
        this.unseal(id);
        throw err;
      }
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

  /** Resolves once no transfer may write into upload `id`, or refuses with 409 upload_in_progress. */
  private async waitForTransfersInto(id: string): Promise<void> {
    const deadline = Date.now() + TRANSFER_END_WAIT_MS;
    for (;;) {
      const active = transfersInto(this.settings.transfersDir, id);
      if (active === 0) return;
      if (Date.now() >= deadline) {
        throw apiError('upload_in_progress', `rsync is still writing into upload ${id} (${active} transfer${active === 1 ? '' : 's'} in progress); finalize once rsync has exited. A transfer whose client went away ends at the rsync daemon's timeout.`, {
          active_transfers: active,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, TRANSFER_POLL_MS));
    }
  }

  private checkQuotas(id: string, measured: MeasureOutput): void {
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
  }

  /**
   * A refused finalize hands the directory back to the rsync module, as it was. If a transfer
   * started since has made a new one there, that transfer is re-sending the upload: the older
   * copy goes.
   */
  private unseal(id: string): void {
    try {
      renameSync(this.sealedPath(id), join(this.settings.uploadsDir, id));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return; // DELETE /uploads/{id} removed it meanwhile
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR' && code !== 'EISDIR') throw err;
      this.removeSealed(id);
    }
  }

  /** DELETE /uploads/{id}: an upload no job holds is expired and its files removed. */
  remove(id: string, now = Date.now()): void {
    checkUploadId(id);
    const row = this.get(id);
    const rsyncDir = join(this.settings.uploadsDir, id);
    if (!row && !lstatSync(rsyncDir, { throwIfNoEntry: false })) throw apiError('upload_not_found', `No upload ${id}.`);
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

  /**
   * An agent's writable /work can hold a tree past PATH_MAX, where rmSync fails: what is left then
   * is an orphan the cleanup pass removes by descriptor (removeTree), so this never throws.
   */
  private removeSealed(id: string): void {
    try {
      rmSync(join(this.settings.sealedDir, id), { recursive: true, force: true });
    } catch {
      // Left to the cleanup pass, see above.
    }
  }

  private refuseUnlessUploading(row: UploadRow | undefined, id: string): void {
    if (!row || row.state === 'uploading') return;
    if (row.state === 'finalized') throw apiError('upload_already_finalized', `Upload ${id} is already finalized; create the job with files_id ${id}.`);
    if (row.state === 'consumed') throw apiError('upload_already_consumed', `Upload ${id} was already used by job ${row.job_id}; upload again.`);
    throw apiError('upload_expired', `Upload ${id} expired; upload the files again.`);
  }
}
