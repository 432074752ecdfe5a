/**
 * @module actors/containers/measure-disk.task
 * Runs on a task-pool thread: how much disk the places a running job writes to take up — the
 * blocks really allocated (a sparse file counts what it uses, a hard-linked file once) — and how
 * many entries they hold. Never follows a symlink; stops as soon as either bound is passed, so
 * one pass costs at most `maxEntries` lstat calls however large the tree. Files the job deleted
 * but keeps open still take disk no walk can see: they are found through /proc, among the open
 * files of the container's processes.
 */
import type { Dir, Stats } from 'node:fs';
import { chmod, lstat, opendir, readdir, readlink, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';

export interface MeasureDiskInput {
  /** Host directories; one that does not exist (yet, or any more) counts as empty. */
  roots: string[];
  /** Host pid of a process in the job's container (its init): whose pid namespace to look into. */
  containerPid?: number;
  stopAboveBytes: number;
  maxEntries: number;
}

export interface MeasureDiskOutput {
  bytes: number;
  entries: number;
  /** A bound stopped the walk: bytes and entries are what was seen until then. */
  stoppedEarly: boolean;
  /** Directories that could not be read even after giving their owner access back: how many, a few of them. */
  unreadable: { count: number; examples: string[] };
}

const VANISHED = new Set(['ENOENT', 'ENOTDIR']);
const OWNER_RX = 0o500;
/** Memory, not disk (and charged to the job's memory limit): tmpfs, ramfs. */
const MEMORY_FILESYSTEMS = new Set([0x01021994, 0x858458f6]);

interface PendingDir {
  path: string;
  uid: number;
  mode: number;
}

export default async function measureDisk({ roots, containerPid, stopAboveBytes, maxEntries }: MeasureDiskInput): Promise<MeasureDiskOutput> {
  const out: MeasureDiskOutput = { bytes: 0, entries: 0, stoppedEarly: false, unreadable: { count: 0, examples: [] } };
  const seenInodes = new Set<string>();
  const passed = () => out.bytes > stopAboveBytes || out.entries >= maxEntries;
  if (containerPid !== undefined) {
    for (const file of await deletedButOpen(containerPid)) {
      if (seenInodes.has(file.inode)) continue;
      seenInodes.add(file.inode);
      out.entries++;
      out.bytes += file.bytes;
      if (passed()) {
        out.stoppedEarly = true;
        return out;
      }
    }
  }
  const pending: PendingDir[] = [];
  for (const root of roots) {
    const info = await lstat(root).catch(() => undefined);
    if (info?.isDirectory()) pending.push({ path: root, uid: info.uid, mode: info.mode });
  }
  while (pending.length > 0) {
    const current = pending.pop()!;
    const dir = await openForMeasuring(current, out);
    if (!dir) continue;
    for await (const entry of dir) {
      const path = join(current.path, entry.name);
      let info: Stats;
      try {
        info = await lstat(path);
      } catch (err) {
        if (VANISHED.has((err as NodeJS.ErrnoException).code ?? '')) continue;
        // Listed but not searchable (a directory of someone else's, mode r without x).
        noteUnreadable(out, current.path);
        break;
      }
      out.entries++;
      if (info.isDirectory()) pending.push({ path, uid: info.uid, mode: info.mode });
      else if (info.nlink > 1) {
        const inode = `${info.dev}:${info.ino}`;
        if (seenInodes.has(inode)) continue;
        seenInodes.add(inode);
      }
      out.bytes += info.blocks * 512;
      if (passed()) {
        out.stoppedEarly = true;
        // Leaving the loop early closes the directory handle.
        return out;
      }
    }
  }
  return out;
}

/**
 * Opens a directory for reading its entries and their sizes. A job can chmod its own directories
 * to 000; where its files are ours (rootless Podman with keep-id) the owner gets read and search
 * back first, as the artifact indexer does, so nothing hides from the measurement. Undefined
 * when it vanished meanwhile, or cannot be read (then it is noted in `out.unreadable`).
 */
async function openForMeasuring({ path, uid, mode }: PendingDir, out: MeasureDiskOutput): Promise<Dir | undefined> {
  try {
    if (uid === process.getuid?.() && (mode & OWNER_RX) !== OWNER_RX) await chmod(path, (mode & 0o7777) | OWNER_RX);
    return await opendir(path);
  } catch (err) {
    if (!VANISHED.has((err as NodeJS.ErrnoException).code ?? '')) noteUnreadable(out, path);
    return undefined;
  }
}

function noteUnreadable(out: MeasureDiskOutput, path: string): void {
  out.unreadable.count++;
  if (out.unreadable.examples.length < 3) out.unreadable.examples.push(path);
}

/**
 * Regular files with no name left (unlinked, still open) held by the processes sharing the pid
 * namespace of `containerPid`, on disk filesystems. Processes that come and go meanwhile are
 * skipped; /proc entries are read, never followed out of /proc except to stat the open file.
 */
async function deletedButOpen(containerPid: number): Promise<Array<{ inode: string; bytes: number }>> {
  const namespace = await readlink(`/proc/${containerPid}/ns/pid`).catch(() => undefined);
  if (namespace === undefined) return [];
  const found: Array<{ inode: string; bytes: number }> = [];
  for (const pid of (await readdir('/proc')).filter((name) => /^\d+$/.test(name))) {
    if ((await readlink(`/proc/${pid}/ns/pid`).catch(() => undefined)) !== namespace) continue;
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => []);
    for (const fd of fds) {
      const link = `/proc/${pid}/fd/${fd}`;
      if (!(await readlink(link).catch(() => '')).endsWith(' (deleted)')) continue;
      try {
        const [info, fs] = await Promise.all([stat(link), statfs(link)]);
        if (info.isFile() && info.nlink === 0 && !MEMORY_FILESYSTEMS.has(fs.type)) found.push({ inode: `${info.dev}:${info.ino}`, bytes: info.blocks * 512 });
      } catch {
        // Closed or exited meanwhile.
      }
    }
  }
  return found;
}
