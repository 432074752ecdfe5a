/**
 * @module mcp/downloads
 * download_artifact's local side. The destination is resolved inside one directory (the
 * download directory: FLASHPODS_DOWNLOAD_DIR, else the shim's working directory), checked on
 * real paths so a symlinked parent cannot lead outside it, and an existing file is refused
 * unless `overwrite` is true. The body streams to a hidden `.partial` file next to the
 * destination and is moved into place only once complete (no-clobber via link(2) unless
 * overwriting); every failure removes the partial file.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, realpath, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { artifactNameProblem } from '../actors/contract/artifacts.ts';
import type { ApiClient } from './api-client.ts';
import { ToolFailure } from './errors.ts';

export interface SaveTarget {
  /** The download directory, as a real path. */
  root: string;
  /** The file to write. */
  path: string;
  /** save_to named a directory, so the file name came from the artifact name. */
  intoDirectory: boolean;
}

const inside = (root: string, path: string): boolean => {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
};

const exists = (path: string) => lstat(path).then(() => true, () => false);

export function checkArtifactName(name: string): void {
  const problem = artifactNameProblem(name);
  if (problem) throw new ToolFailure('invalid_artifact_name', `${JSON.stringify(name)} is not an artifact name: ${problem}. Artifact names are the top-level names listed by get_job_artifacts.`);
}

/** Resolves save_to; refuses anything outside the download directory or an existing file (unless overwrite). */
export async function resolveSaveTo(downloadDir: string, saveTo: string | undefined, artifactName: string, overwrite: boolean): Promise<SaveTarget> {
  checkArtifactName(artifactName);
  let root: string;
  try {
    root = await realpath(downloadDir);
  } catch {
    throw new ToolFailure('invalid_save_to', `The download directory ${downloadDir} does not exist; create it or set FLASHPODS_DOWNLOAD_DIR.`);
  }
  const raw = saveTo === undefined || saveTo === '' ? '.' : saveTo;
  if (raw.includes('\0')) throw new ToolFailure('invalid_save_to', 'save_to contains a NUL byte.');
  const outside = (what: string) => new ToolFailure('invalid_save_to', `save_to ${JSON.stringify(raw)} ${what}, outside the download directory ${root}; give a path inside it (relative paths are resolved against it).`);

  const target = resolve(root, raw);
  if (!inside(root, target)) throw outside(`resolves to ${target}`);
  const isDir = raw.endsWith('/') || raw.endsWith(sep) || (await stat(target).then((s) => s.isDirectory(), () => false));
  const path = isDir ? join(target, artifactName) : target;
  if (path === root || !inside(root, path)) throw outside(`resolves to ${path}`);

  // The nearest existing ancestor, on its real path, must be inside too (no symlinked escape).
  let ancestor = dirname(path);
  while (!(await exists(ancestor))) ancestor = dirname(ancestor);
  const realAncestor = await realpath(ancestor).catch(() => ancestor);
  if (!inside(root, realAncestor)) throw outside(`leads through ${ancestor} → ${realAncestor}`);

  const existing = await lstat(path).catch(() => undefined);
  if (existing?.isDirectory()) throw new ToolFailure('invalid_save_to', `${path} is a directory; name a file, or end save_to with "/" to save into it.`);
  if (existing && !overwrite) throw new ToolFailure('file_exists', `${path} already exists; pass overwrite: true to replace it, or choose another save_to.`, { path });
  return { root, path, intoDirectory: isDir };
}

export interface DownloadResult {
  saved_to: string;
  size_bytes: number;
  sha256: string;
  content_type: string;
  overwritten: boolean;
  attempts: number;
}

export interface DownloadOptions {
  api: ApiClient;
  jobId: string;
  artifactName: string;
  target: SaveTarget;
  overwrite: boolean;
  signal?: AbortSignal | undefined;
  onProgress?: ((bytes: number, total: number | undefined) => void) | undefined;
  onRetry?: ((message: string) => void) | undefined;
}

const localFailure = (path: string, err: unknown) =>
  err instanceof ToolFailure ? err : new ToolFailure('download_failed', `Writing ${path} failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}. No partial file was left behind.`);

/** Streams the artifact to disk; a directory artifact arrives as a tar stream and is saved as `<name>.tar`. */
export async function downloadArtifact(options: DownloadOptions): Promise<DownloadResult> {
  const { api, jobId, artifactName, target, overwrite } = options;
  let overwritten = false;
  const answer = await api.stream('GET', `/jobs/${encodeURIComponent(jobId)}/artifacts/${encodeURIComponent(artifactName)}`, {
    signal: options.signal,
    headers: { accept: '*/*' },
    onRetry: (n) => options.onRetry?.(`download: ${n.why}; attempt ${n.attempts + 1} in ${n.delayMs} ms`),
  }, async (res, ctx) => {
    const contentType = res.headers.get('content-type') ?? 'application/octet-stream';
    const isTar = contentType.startsWith('application/x-tar');
    const finalPath = isTar && target.intoDirectory ? `${target.path}.tar` : target.path;
    if (finalPath !== target.path && !overwrite && (await exists(finalPath))) {
      await res.body?.cancel();
      throw new ToolFailure('file_exists', `${finalPath} already exists; pass overwrite: true to replace it, or choose another save_to.`, { path: finalPath });
    }
    const lengthHeader = res.headers.get('content-length');
    const expected = lengthHeader !== null && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
    const partial = join(dirname(finalPath), `.${basename(finalPath)}.${randomBytes(4).toString('hex')}.partial`);
    let file;
    try {
      await mkdir(dirname(finalPath), { recursive: true });
      const realParent = await realpath(dirname(finalPath));
      if (!inside(target.root, realParent)) throw new ToolFailure('invalid_save_to', `${dirname(finalPath)} leads outside the download directory ${target.root}.`);
      file = await open(partial, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
    } catch (err) {
      await res.body?.cancel().catch(() => undefined);
      throw localFailure(finalPath, err);
    }
    const hash = createHash('sha256');
    let bytes = 0;
    let committed = false;
    try {
      const body = res.body ? Readable.fromWeb(res.body as WebReadableStream<Uint8Array>) : Readable.from([]);
      for await (const chunk of body as AsyncIterable<Buffer>) {
        ctx.touch();
        hash.update(chunk);
        try {
          await file.write(chunk);
        } catch (err) {
          body.destroy();
          throw localFailure(finalPath, err);
        }
        bytes += chunk.length;
        options.onProgress?.(bytes, expected);
      }
      // A body that ends short is a broken connection: retried like any network error.
      if (expected !== undefined && bytes !== expected) throw new Error(`connection closed after ${bytes} of ${expected} bytes`);
      try {
        await file.sync();
        await file.close();
        file = undefined;
        if (overwrite) {
          overwritten = await exists(finalPath);
          await rename(partial, finalPath);
        } else {
          await commitNoClobber(partial, finalPath);
        }
        committed = true;
      } catch (err) {
        throw localFailure(finalPath, err);
      }
      return { saved_to: finalPath, size_bytes: bytes, sha256: hash.digest('hex'), content_type: contentType };
    } finally {
      await file?.close().catch(() => undefined);
      if (!committed) await unlink(partial).catch(() => undefined);
    }
  });
  return { ...answer.body, overwritten, attempts: answer.attempts };
}

/** Moves `partial` to `path` unless something is already there. */
async function commitNoClobber(partial: string, path: string): Promise<void> {
  try {
    await link(partial, path);
    await unlink(partial);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new ToolFailure('file_exists', `${path} appeared while downloading; pass overwrite: true to replace it.`, { path });
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV') throw err;
  }
  // No hard links here (e.g. FAT): claim the name exclusively, then move the data over it.
  try {
    await (await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644)).close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ToolFailure('file_exists', `${path} appeared while downloading; pass overwrite: true to replace it.`, { path });
    throw err;
  }
  await rename(partial, path);
}
