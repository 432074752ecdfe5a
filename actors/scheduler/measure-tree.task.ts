/**
 * @module measure-tree.task
 * Runs on a task-pool thread: the size and file count of a directory tree, without following
 * symlinks (a symlink counts as one entry of its own size). Stops early past `stopAboveBytes`,
 * since the caller only needs to know the quota is exceeded.
 *
 * Uploads are hostile, so no path is trusted to still be what it was: each directory is opened
 * with O_NOFOLLOW and read through its descriptor (/proc/self/fd), so one swapped for a link
 * between listing and descending is measured as the link, never walked into. A root that is not
 * a directory is an error: the caller checked it, so something changed it under our feet.
 */
import { constants } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface MeasureInput {
  dir: string;
  stopAboveBytes: number;
}

export interface MeasureOutput {
  sizeBytes: number;
  fileCount: number;
  stoppedEarly: boolean;
}

const NOT_A_DIRECTORY = new Set(['ELOOP', 'ENOTDIR']);

/** The entries of the directory at `path`, or undefined if `path` is not a directory (a link). */
async function listDirectory(path: string) {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (err) {
    if (NOT_A_DIRECTORY.has((err as NodeJS.ErrnoException).code ?? '')) return undefined;
    throw err;
  }
  try {
    return await readdir(`/proc/self/fd/${handle.fd}`, { withFileTypes: true });
  } finally {
    await handle.close();
  }
}

export default async function measureTree({ dir, stopAboveBytes }: MeasureInput): Promise<MeasureOutput> {
  let sizeBytes = 0;
  let fileCount = 0;
  /** Counts one entry of its own size; true once past the limit. */
  const count = async (path: string) => {
    sizeBytes += (await lstat(path)).size;
    fileCount++;
    return sizeBytes > stopAboveBytes;
  };
  const pending = [dir];
  while (pending.length > 0) {
    const current = pending.pop()!;
    const entries = await listDirectory(current);
    if (!entries) {
      if (current === dir) throw new Error(`${dir} is not a directory (a symbolic link is never followed)`);
      // A directory when listed, a link (or file) when opened: measured as what it is now.
      if (await count(current)) return { sizeBytes, fileCount, stoppedEarly: true };
      continue;
    }
    for (const entry of entries) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) pending.push(path);
      else if (await count(path)) return { sizeBytes, fileCount, stoppedEarly: true };
    }
  }
  return { sizeBytes, fileCount, stoppedEarly: false };
}
