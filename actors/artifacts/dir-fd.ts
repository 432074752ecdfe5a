/**
 * @module dir-fd
 * Reading and removing a hostile tree relative to open directory descriptors. Node has no
 * openat/unlinkat, but `/proc/self/fd/<fd>/<name>` resolves the same way: the kernel follows the
 * descriptor's magic link to the directory it was opened on, then one name. Every path given to
 * a syscall is thus a few bytes plus one name however deep the tree goes (a job can nest past
 * PATH_MAX with relative mkdir/cd), and names are Buffers, so bytes that are not UTF-8 still
 * address their entry. Nothing here follows a symlink: directories open with O_NOFOLLOW, and
 * modes change through an O_PATH descriptor of the very inode that was looked at.
 */
import { constants, type Stats } from 'node:fs';
import { chmod, lstat, open, readdir, rename, rmdir, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

/** Linux's O_PATH (the same value on x86-64 and arm64); Node's constants do not carry it. */
const O_PATH = 0o10000000;
const DIRECTORY = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** The path of `name` inside the directory open as `fd`, or of that directory itself. */
export function at(fd: number, name?: Buffer): Buffer {
  const dir = Buffer.from(`/proc/self/fd/${fd}`);
  return name ? Buffer.concat([dir, Buffer.from('/'), name]) : dir;
}

export function errorCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** The names in the directory open as `fd`, in byte order (the walk's order, stable across runs). */
export async function namesAt(fd: number): Promise<Buffer[]> {
  return (await readdir(at(fd), { encoding: 'buffer' })).sort(Buffer.compare);
}

/**
 * A job can chmod its own entries to 000. Where the container user is ours (rootless keep-id,
 * or root), give the owner its access back so indexing, downloads and cleanup still work; an
 * entry another user owns keeps its mode and fails with EACCES where it is used.
 */
export async function giveOwnerAccess(parentFd: number, name: Buffer, seen: Stats, bits: number): Promise<void> {
  if (seen.uid !== process.getuid?.() || (seen.mode & bits) === bits) return;
  const handle = await open(at(parentFd, name), O_PATH | constants.O_NOFOLLOW);
  try {
    const now = await handle.stat();
    if (now.ino !== seen.ino || now.dev !== seen.dev || now.isSymbolicLink()) return; // replaced meanwhile
    await chmod(at(handle.fd), (now.mode & 0o7777) | bits);
  } finally {
    await handle.close();
  }
}

/** Opens directory `name` of `parentFd` (never through a symlink), restoring the owner's access first. */
export async function openDirAt(parentFd: number, name: Buffer, seen?: Stats): Promise<FileHandle> {
  await giveOwnerAccess(parentFd, name, seen ?? (await lstat(at(parentFd, name))), 0o700);
  return open(at(parentFd, name), DIRECTORY);
}

/**
 * Removes `name` from the directory open as `parentFd`, whatever it is and however deep it goes,
 * with at most three descriptors open: before a subdirectory goes, its own subdirectories are
 * renamed up into the directory being removed, so depth turns into width. Stops (false) at the
 * deadline or at the first entry it may not remove; what it removed stays removed, and what it
 * moved stays inside `name`.
 */
export async function removeAt(parentFd: number, name: Buffer, deadline = Infinity): Promise<boolean> {
  let info: Stats;
  try {
    info = await lstat(at(parentFd, name));
  } catch (err) {
    return errorCode(err) === 'ENOENT';
  }
  try {
    if (!info.isDirectory()) {
      await unlink(at(parentFd, name));
      return true;
    }
    const dir = await openDirAt(parentFd, name, info);
    try {
      if (!(await empty(dir.fd, deadline))) return false;
    } finally {
      await dir.close();
    }
    await rmdir(at(parentFd, name));
    return true;
  } catch {
    return false;
  }
}

/**
 * `rm -rf path` for a tree a job wrote: fs.rm builds full paths and fails past PATH_MAX, which a
 * job's directory can pass. Throws when something in it cannot be removed (another user's entry).
 */
export async function removeTree(path: string): Promise<void> {
  let parent: FileHandle;
  try {
    parent = await open(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY); // the operator's path: may be a link
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return;
    throw err;
  }
  try {
    if (!(await removeAt(parent.fd, Buffer.from(basename(path))))) {
      throw new Error(`could not remove all of ${path}: an entry in it may belong to another user; remove it as root`);
    }
  } finally {
    await parent.close();
  }
}

/** Ignores an entry that is already gone. */
async function unlessGone<T>(work: Promise<T>): Promise<T | undefined> {
  try {
    return await work;
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

async function empty(fd: number, deadline: number): Promise<boolean> {
  let spare = 0;
  for (let names = await namesAt(fd); names.length > 0; names = await namesAt(fd)) {
    for (const name of names) {
      if (Date.now() >= deadline) return false;
      const info = await unlessGone(lstat(at(fd, name)));
      if (!info) continue;
      if (!info.isDirectory()) {
        await unlessGone(unlink(at(fd, name)));
        continue;
      }
      const sub = await unlessGone(openDirAt(fd, name, info));
      if (!sub) continue;
      try {
        for (const inner of await namesAt(sub.fd)) {
          const innerInfo = await unlessGone(lstat(at(sub.fd, inner)));
          if (!innerInfo) continue;
          if (!innerInfo.isDirectory()) {
            await unlessGone(unlink(at(sub.fd, inner)));
            continue;
          }
          await giveOwnerAccess(sub.fd, inner, innerInfo, 0o700); // moving a directory rewrites its `..`
          spare = (await unlessGone(hoist(sub.fd, inner, fd, spare))) ?? spare;
        }
      } finally {
        await sub.close();
      }
      await unlessGone(rmdir(at(fd, name)));
    }
  }
  return true;
}

/** Renames directory `name` of `fromFd` into `toFd` under the first free spare name; returns the next. */
async function hoist(fromFd: number, name: Buffer, toFd: number, next: number): Promise<number> {
  for (;; next++) {
    try {
      await rename(at(fromFd, name), at(toFd, Buffer.from(`.flashpods-removing-${next}`)));
      return next + 1;
    } catch (err) {
      // Taken by a non-empty directory or a file (an empty directory is simply replaced: it was going anyway).
      if (!['EEXIST', 'ENOTEMPTY', 'ENOTDIR', 'EISDIR'].includes(errorCode(err) ?? '')) throw err;
    }
  }
}
