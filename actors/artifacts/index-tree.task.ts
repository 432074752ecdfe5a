/**
 * @module index-tree.task
 * Runs on a task-pool thread: walks a job's artifact directory after its container exited and
 * decides what is served. Top-level entries are the artifacts (a directory is one artifact);
 * symlinks that resolve outside the directory, entries with invalid names and files over the
 * limits are deleted, each with a reason. Walk order is sorted, so the same tree always keeps
 * the same files.
 */
import { chmod, lstat, readdir, realpath, rm, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { artifactNameProblem } from '../contract/artifacts.ts';

export interface IndexInput {
  dir: string;
  fileMaxBytes: number;
  jobMaxBytes: number;
  maxFiles: number;
}

export interface IndexedArtifact {
  name: string;
  sizeBytes: number;
  createdAt: number;
  kind: 'file' | 'directory' | 'symlink';
}

export interface Dropped {
  path: string;
  reason: 'escaping_symlink' | 'invalid_name' | 'file_too_large' | 'too_many_files' | 'job_too_large';
}

export type IndexOutput =
  | { ok: true; artifacts: IndexedArtifact[]; dropped: Dropped[] }
  | { ok: false; code: 'artifact_copy_permission'; message: string };

interface FileEntry {
  path: string;
  top: string;
  size: number;
}

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * A job can chmod its own files to 000. Where the container user is ours (keep-id), give the
 * owner its access back, so indexing, downloads and cleanup still work; only entries another
 * user owns can then end in artifact_copy_permission.
 */
async function ownerCanUse(path: string, bits: number): Promise<void> {
  const info = await lstat(path);
  if (info.uid === process.getuid?.() && (info.mode & bits) !== bits) await chmod(path, (info.mode & 0o7777) | bits);
}

export default async function indexTree(input: IndexInput): Promise<IndexOutput> {
  try {
    return await walk(input);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      return { ok: false, code: 'artifact_copy_permission', message: `cannot read ${relative(input.dir, (err as NodeJS.ErrnoException).path ?? input.dir) || '/artifacts'}: permission denied` };
    }
    throw err;
  }
}

async function walk({ dir, fileMaxBytes, jobMaxBytes, maxFiles }: IndexInput): Promise<IndexOutput> {
  const dropped: Dropped[] = [];
  let root: string;
  try {
    root = await realpath(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, artifacts: [], dropped };
    throw err;
  }
  const inside = async (path: string): Promise<boolean> => {
    try {
      const target = await realpath(path);
      return target === root || target.startsWith(root + sep);
    } catch {
      return false; // dangling: resolves nowhere, so not inside
    }
  };
  const drop = async (path: string, reason: Dropped['reason']) => {
    await rm(path, { recursive: true, force: true });
    dropped.push({ path: relative(root, path), reason });
  };

  const files: FileEntry[] = [];
  const tops: Array<{ name: string; kind: IndexedArtifact['kind']; createdAt: number }> = [];

  const collect = async (current: string, top: string): Promise<void> => {
    await ownerCanUse(current, 0o700);
    const entries = (await readdir(current, { withFileTypes: true })).sort(byName);
    for (const entry of entries) {
      const path = join(current, entry.name);
      if (entry.isSymbolicLink()) {
        if (await inside(path)) files.push({ path, top, size: 0 });
        else await drop(path, 'escaping_symlink');
      } else if (entry.isDirectory()) {
        await collect(path, top);
      } else {
        await ownerCanUse(path, 0o600);
        files.push({ path, top, size: (await lstat(path)).size });
      }
    }
  };

  for (const entry of (await readdir(root, { withFileTypes: true })).sort(byName)) {
    const path = join(root, entry.name);
    if (artifactNameProblem(entry.name)) {
      await drop(path, 'invalid_name');
      continue;
    }
    const info = await lstat(path);
    const createdAt = Math.round(info.birthtimeMs || info.mtimeMs);
    if (entry.isSymbolicLink()) {
      if (!(await inside(path))) {
        await drop(path, 'escaping_symlink');
        continue;
      }
      tops.push({ name: entry.name, kind: 'symlink', createdAt });
      files.push({ path, top: entry.name, size: (await stat(path)).size });
    } else if (entry.isDirectory()) {
      tops.push({ name: entry.name, kind: 'directory', createdAt });
      await collect(path, entry.name);
    } else {
      await ownerCanUse(path, 0o600);
      tops.push({ name: entry.name, kind: 'file', createdAt });
      files.push({ path, top: entry.name, size: info.size });
    }
  }

  const sizes = new Map<string, number>();
  const droppedTops = new Set<string>();
  let count = 0;
  let total = 0;
  for (const file of files) {
    let reason: Dropped['reason'] | undefined;
    if (file.size > fileMaxBytes) reason = 'file_too_large';
    else if (count >= maxFiles) reason = 'too_many_files';
    else if (total + file.size > jobMaxBytes) reason = 'job_too_large';
    if (reason) {
      await drop(file.path, reason);
      if (file.path === join(root, file.top)) droppedTops.add(file.top);
      continue;
    }
    count++;
    total += file.size;
    sizes.set(file.top, (sizes.get(file.top) ?? 0) + file.size);
  }

  const artifacts = tops
    .filter((t) => !droppedTops.has(t.name))
    .map((t) => ({ name: t.name, kind: t.kind, createdAt: t.createdAt, sizeBytes: sizes.get(t.name) ?? 0 }));
  return { ok: true, artifacts, dropped };
}
