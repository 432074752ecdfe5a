/**
 * @module actors/containers/kubernetes-artifacts
 * The host side of the artifact copy-out of a job Pod (pod-spec.ts ARTIFACTS_COPY_COMMAND): the
 * tar the `artifacts` holder container writes is hostile, and is unpacked into the job's host
 * artifact directory under the rules of pod-spec.ts's ArtifactUnpack. Every entry is made
 * relative to an open directory descriptor (dir-fd.ts), directories are opened with O_NOFOLLOW,
 * files are created with O_CREAT | O_EXCL | O_NOFOLLOW (an entry already there, from a copy made
 * before a restart, is unlinked first, never written through). Symlinks are created as symlinks,
 * unresolved: the indexer applies storage.md's rule to them as it does on Podman. Hard links,
 * devices, fifos, absolute or `..` paths and names failing artifactNameProblem are dropped and
 * reported. The byte and entry caps stop the copy while it streams.
 */
import { constants } from 'node:fs';
import { mkdir, open, symlink, unlink, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { artifactNameProblem } from '../contract/artifacts.ts';
import { at, errorCode, openDirAt } from '../artifacts/dir-fd.ts';
import type { ArtifactUnpack, ArtifactUnpackResult } from './pod-spec.ts';

const NEW_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Unpacks `stream` (a tar) into `target.targetDirFd`; resolves when the stream is consumed or a cap is hit. */
export async function unpackArtifacts(stream: Readable, target: ArtifactUnpack): Promise<ArtifactUnpackResult> {
  const result: ArtifactUnpackResult = { files: 0, bytes: 0, dropped: [], truncated: false };
  // Directories opened so far, by their path below the target ('' is the target itself).
  const dirs = new Map<string, FileHandle>();
  let entries = 0;
  const extract = tar.extract();

  const dirFd = async (parts: string[]): Promise<number> => {
    let fd = target.targetDirFd;
    for (let i = 0; i < parts.length; i++) {
      const key = parts.slice(0, i + 1).join('/');
      let handle = dirs.get(key);
      if (!handle) {
        const name = Buffer.from(parts[i]!);
        await mkdir(at(fd, name), { mode: 0o755 }).catch((err) => { if (errorCode(err) !== 'EEXIST') throw err; });
        handle = await openDirAt(fd, name);
        dirs.set(key, handle);
      }
      fd = handle.fd;
    }
    return fd;
  };

  const handleEntry = async (header: tar.Header, body: tar.Extract extends AsyncIterable<infer S> ? S : never): Promise<void> => {
    const name = header.name.replace(/^\.\//, '').replace(/\/$/, '');
    if (name === '' || name === '.') return void body.resume(); // the emptyDir's root
    const parts: string[] = name.split('/');
    const problem = header.name.startsWith('/') ? 'an absolute path' : parts.map((p) => artifactNameProblem(p)).find(Boolean);
    const drop = (reason: string) => {
      result.dropped.push({ name, reason });
      body.resume();
    };
    if (problem) return drop(problem);
    if (++entries > target.maxEntries) {
      result.truncated = true;
      return drop(`more than ${target.maxEntries} entries`);
    }
    if (header.type === 'directory') {
      await dirFd(parts);
      return void body.resume();
    }
    const parent = await dirFd(parts.slice(0, -1));
    const leaf = Buffer.from(parts.at(-1)!);
    if (header.type === 'symlink') {
      await unlink(at(parent, leaf)).catch(() => undefined);
      await symlink(header.linkname ?? '', at(parent, leaf));
      return void body.resume();
    }
    if (header.type !== 'file' && header.type !== 'contiguous-file') return drop(`a ${header.type ?? 'unknown'} entry is not an artifact`);
    const size = header.size ?? 0;
    if (result.bytes + size > target.maxBytes) {
      result.truncated = true;
      return drop(`past the copy's ${target.maxBytes} byte budget`);
    }
    await unlink(at(parent, leaf)).catch(() => undefined);
    const file = await open(at(parent, leaf), NEW_FILE, 0o644);
    try {
      for await (const chunk of body) await file.write(chunk as Buffer);
      await file.chmod((header.mode ?? 0o644) & 0o755 | 0o600);
    } finally {
      await file.close();
    }
    result.files++;
    result.bytes += size;
  };

  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, body, next) => {
      if (result.truncated) {
        body.resume();
        return next();
      }
      // An entry that cannot be made (a path through a link: ENOTDIR from O_DIRECTORY | O_NOFOLLOW) is dropped, not the copy.
      handleEntry(header, body).then(() => next(), (err: Error) => {
        result.dropped.push({ name: header.name, reason: errorCode(err) ?? err.message });
        body.resume();
        next();
      });
    });
    extract.on('finish', () => resolve());
    extract.on('error', reject);
  });
  const fed = (async () => {
    for await (const chunk of stream) {
      if (extract.destroyed) break;
      if (!extract.write(chunk)) await new Promise<void>((r) => extract.once('drain', () => r()));
    }
    extract.end(undefined);
  })();
  try {
    await Promise.all([done, fed]);
  } finally {
    for (const handle of dirs.values()) await handle.close().catch(() => undefined);
  }
  return result;
}
