/**
 * @module index-tree.task
 * Runs on a task-pool thread: walks a job's artifact directory after its container exited and
 * decides what is served. Top-level entries are the artifacts (a directory is one artifact).
 *
 * Indexing is total: whatever one entry does — escape or loop through a symlink, nest past
 * PATH_MAX, refuse access, fail to read, vanish, pass a limit or the time budget — costs that
 * entry, never the walk. Each dropped entry comes back with its reason, and every job gets its
 * index. The walk holds one descriptor per directory level (dir-fd.ts), and levels stop at
 * PATH_MAX, so it never needs a long path nor more than ~2,000 descriptors.
 *
 * Dropped entries are removed from disk, because a directory artifact is downloaded as a tar of
 * whatever lies under it. When one cannot be removed (another user's, or out of time) its whole
 * top-level artifact is withheld: not listed, so never served, and deleted with the job's
 * directory at cleanup. Entries and bytes count only what is listed. Directories count toward the
 * entry limit (`maxEntries`, the contract's "files per job"), as each costs an inode and a tar
 * entry. Walk order is by name bytes, so the same tree always keeps the same entries.
 */
import { isUtf8 } from 'node:buffer';
import { constants, type Stats } from 'node:fs';
import { lstat, open, realpath, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { artifactNameProblem } from '../contract/artifacts.ts';
import { at, errorCode, giveOwnerAccess, namesAt, openDirAt, removeAt } from './dir-fd.ts';

export interface IndexInput {
  dir: string;
  fileMaxBytes: number;
  jobMaxBytes: number;
  maxEntries: number;
  /** The walk stops here; what it has not reached by then is withheld. */
  budgetMs: number;
}

export interface IndexedArtifact {
  name: string;
  sizeBytes: number;
  createdAt: number;
  kind: 'file' | 'directory' | 'symlink';
}

export type DropReason =
  | 'escaping_symlink'
  | 'unresolvable_symlink'
  | 'invalid_name'
  | 'path_too_long'
  | 'unreadable'
  | 'vanished'
  | 'file_too_large'
  | 'too_many_files'
  | 'job_too_large'
  | 'out_of_time'
  | 'withheld';

/** One reason's drops: how many, and the first few (paths inside /artifacts, with the errno where one applies). */
export interface Dropped {
  reason: DropReason;
  count: number;
  examples: Array<{ path: string; code?: string }>;
}

export type IndexOutput =
  | { ok: true; artifacts: IndexedArtifact[]; dropped: Dropped[] }
  | { ok: false; code: 'artifact_copy_permission'; message: string };

/** Linux's PATH_MAX, counting the terminating NUL: a longer host path cannot be downloaded or cleaned by path. */
export const PATH_MAX = 4096;
/** Examples kept per reason: enough for the log and the job's note, bounded however many entries a job drops. */
const EXAMPLES_KEPT = 20;

class OutOfTime extends Error {}

/** What one top-level artifact adds up to while it is walked. */
interface Top {
  sizeBytes: number;
  /** False once something under it was dropped but could not be removed. */
  removable: boolean;
}

const text = (name: Buffer) => name.toString('utf8');

export default async function indexTree(input: IndexInput): Promise<IndexOutput> {
  const deadline = Date.now() + input.budgetMs;
  let root: string;
  try {
    root = await realpath(input.dir);
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return { ok: true, artifacts: [], dropped: [] };
    throw err;
  }
  const parent = await open(dirname(root), constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    let dir;
    try {
      dir = await openDirAt(parent.fd, Buffer.from(basename(root)));
    } catch (err) {
      // The job's own directory (not an entry in it): Flashpods made it, so this is the contract's failure.
      if (errorCode(err) === 'EACCES' || errorCode(err) === 'EPERM') return { ok: false, code: 'artifact_copy_permission', message: 'cannot read /artifacts: permission denied' };
      throw err;
    }
    try {
      return await new Walk(input, root, deadline).run(dir.fd);
    } finally {
      await dir.close();
    }
  } finally {
    await parent.close();
  }
}

class Walk {
  private entries = 0;
  private bytes = 0;
  private readonly dropped = new Map<DropReason, Dropped>();

  private readonly rootBytes: number;

  constructor(
    private readonly limits: IndexInput,
    private readonly root: string,
    private readonly deadline: number,
  ) {
    this.rootBytes = Buffer.byteLength(root);
  }

  async run(rootFd: number): Promise<IndexOutput> {
    const artifacts: IndexedArtifact[] = [];
    const names = await namesAt(rootFd);
    for (const [i, name] of names.entries()) {
      const path = text(name);
      if (!isUtf8(name) || artifactNameProblem(path)) {
        await this.discard(rootFd, name, path, 'invalid_name');
        continue;
      }
      const before = { entries: this.entries, bytes: this.bytes };
      const top: Top = { sizeBytes: 0, removable: true };
      let info: Stats | undefined;
      try {
        info = await this.visit(rootFd, name, path, this.rootBytes + 1 + name.length, top, true);
      } catch (err) {
        if (!(err instanceof OutOfTime)) throw err;
        for (const rest of names.slice(i)) this.drop('out_of_time', text(rest));
        break;
      }
      if (!info || !top.removable) {
        this.entries = before.entries;
        this.bytes = before.bytes;
        if (info) this.drop('withheld', path);
        continue;
      }
      const kind = info.isSymbolicLink() ? 'symlink' : info.isDirectory() ? 'directory' : 'file';
      artifacts.push({ name: path, kind, createdAt: Math.round(info.birthtimeMs || info.mtimeMs), sizeBytes: top.sizeBytes });
    }
    return { ok: true, artifacts, dropped: [...this.dropped.values()] };
  }

  private drop(reason: DropReason, path: string, code?: string): void {
    const group = this.dropped.get(reason) ?? { reason, count: 0, examples: [] };
    group.count++;
    if (group.examples.length < EXAMPLES_KEPT) group.examples.push(code ? { path, code } : { path });
    this.dropped.set(reason, group);
  }

  /** Drops an entry and removes it; one that stays on disk withholds its artifact. Returns undefined (dropped). */
  private async discard(parentFd: number, name: Buffer, path: string, reason: DropReason, top?: Top, code?: string): Promise<undefined> {
    this.drop(reason, path, code);
    if (!(await removeAt(parentFd, name, this.deadline)) && top) top.removable = false;
    return undefined;
  }

  /** Indexes one entry (and what is under it); returns its lstat when it is kept. */
  private async visit(parentFd: number, name: Buffer, path: string, pathBytes: number, top: Top, isTop: boolean): Promise<Stats | undefined> {
    if (Date.now() >= this.deadline) throw new OutOfTime();
    if (pathBytes >= PATH_MAX) return this.discard(parentFd, name, path, 'path_too_long', top);
    // Nested names travel in tar headers and in paths built from strings: they must be text.
    if (!isUtf8(name)) return this.discard(parentFd, name, path, 'invalid_name', top);
    try {
      const info = await giveOwnerAccessIfFile(parentFd, name);
      if (info.isSymbolicLink()) return await this.symlink(parentFd, name, path, info, top, isTop);
      if (info.isDirectory()) return await this.directory(parentFd, name, path, pathBytes, info, top);
      return this.admit(parentFd, name, path, info, info.size, top);
    } catch (err) {
      if (err instanceof OutOfTime) throw err;
      const code = errorCode(err);
      if (code === 'ENOENT') {
        this.drop('vanished', path);
        return undefined;
      }
      return this.discard(parentFd, name, path, 'unreadable', top, code ?? (err as Error).message);
    }
  }

  private async symlink(parentFd: number, name: Buffer, path: string, info: Stats, top: Top, isTop: boolean): Promise<Stats | undefined> {
    let target: string;
    try {
      target = await realpath(at(parentFd, name));
    } catch (err) {
      return this.discard(parentFd, name, path, 'unresolvable_symlink', top, errorCode(err));
    }
    if (target !== this.root && !target.startsWith(`${this.root}/`)) return this.discard(parentFd, name, path, 'escaping_symlink', top);
    // A top-level link is served as what it points to; one inside a directory travels as a link.
    const size = isTop ? (await stat(at(parentFd, name))).size : 0;
    return this.admit(parentFd, name, path, info, size, top);
  }

  private async directory(parentFd: number, name: Buffer, path: string, pathBytes: number, info: Stats, top: Top): Promise<Stats | undefined> {
    if (this.entries >= this.limits.maxEntries) return this.discard(parentFd, name, path, 'too_many_files', top);
    const dir = await openDirAt(parentFd, name, info);
    try {
      const names = await namesAt(dir.fd);
      this.entries++;
      for (const child of names) await this.visit(dir.fd, child, `${path}/${text(child)}`, pathBytes + 1 + child.length, top, false);
    } finally {
      await dir.close();
    }
    return info;
  }

  /** A file or link against the limits: kept and counted, or dropped. */
  private async admit(parentFd: number, name: Buffer, path: string, info: Stats, size: number, top: Top): Promise<Stats | undefined> {
    const { fileMaxBytes, maxEntries, jobMaxBytes } = this.limits;
    const reason: DropReason | undefined =
      size > fileMaxBytes ? 'file_too_large' : this.entries >= maxEntries ? 'too_many_files' : this.bytes + size > jobMaxBytes ? 'job_too_large' : undefined;
    if (reason) return this.discard(parentFd, name, path, reason, top);
    this.entries++;
    this.bytes += size;
    top.sizeBytes += size;
    return info;
  }
}

/** lstat, and a regular file the owner locked gets read access back so downloads work. */
async function giveOwnerAccessIfFile(parentFd: number, name: Buffer): Promise<Stats> {
  const info = await lstat(at(parentFd, name));
  if (info.isFile()) await giveOwnerAccess(parentFd, name, info, 0o600);
  return info;
}
