/**
 * @module measure-tree.task
 * Runs on a task-pool thread: the size and file count of a directory tree, without following
 * symlinks (a symlink counts as one entry of its own size). Stops early past `stopAboveBytes`,
 * since the caller only needs to know the quota is exceeded.
 */
import { lstat, readdir } from 'node:fs/promises';
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

export default async function measureTree({ dir, stopAboveBytes }: MeasureInput): Promise<MeasureOutput> {
  let sizeBytes = 0;
  let fileCount = 0;
  const pending = [dir];
  while (pending.length > 0) {
    const current = pending.pop()!;
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) {
        pending.push(path);
        continue;
      }
      sizeBytes += (await lstat(path)).size;
      fileCount++;
      if (sizeBytes > stopAboveBytes) return { sizeBytes, fileCount, stoppedEarly: true };
    }
  }
  return { sizeBytes, fileCount, stoppedEarly: false };
}
