/**
 * @module artifacts-routes
 * GET /jobs/:id/artifacts and GET /jobs/:id/artifacts/:name. Downloads are streamed from disk
 * (files with HTTP Range, directories as a tar stream), never held in memory. Every file is
 * opened first and its real path checked through /proc/self/fd afterwards, so a symlink swapped
 * in after indexing cannot make the server read outside the job's artifact directory.
 */
import { constants } from 'node:fs';
import { lstat, open, readdir, readlink, realpath, type FileHandle } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { Readable } from 'node:stream';
import type { Hono } from 'hono';
import { pack as tarPack } from 'tar-stream';
import { artifactNameProblem } from '../contract/artifacts.ts';
import type { FlashpodsConfig } from '../contract/config.ts';
import type { JobPaths } from '../contract/job-paths.ts';
import { apiError } from '../contract/errors.ts';
import { ID_PATTERNS, isTerminal } from '../contract/jobs.ts';
import type { JobReads } from '../store/job-reads.ts';
import type { ArtifactRow, JobRow } from '../store/rows.ts';
import type { AppEnv } from './app.ts';
import { isoTime } from './views.ts';
import type { ArtifactListResponse } from '../contract/api-schemas.ts';

export interface ArtifactsRoutesDeps {
  config: FlashpodsConfig;
  paths: JobPaths;
  reads: JobReads;
}

/** Opens `path` and proves the file actually opened lies inside `root` (already a real path). */
export async function openInside(root: string, path: string): Promise<FileHandle | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  const opened = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => '');
  if (!opened.startsWith(root + sep)) {
    await handle.close();
    return undefined;
  }
  return handle;
}

function disposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  const header = `attachment; filename="${ascii}"`;
  return ascii === filename ? header : `${header}; filename*=UTF-8''${encodeURIComponent(filename)}`;
}

function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = header.trim().match(/^bytes=(\d*)-(\d*)$/);
  if (!m || (m[1] === '' && m[2] === '')) return undefined; // malformed or multi-range: serve it whole
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return 'unsatisfiable';
  return { start, end };
}

/** A tar stream of `dir`, re-checking every file and link against `root` as it goes. */
function tarOf(root: string, dir: string, top: string): Readable {
  const tar = tarPack();
  const add = async (current: string, prefix: string): Promise<void> => {
    for (const entry of (await readdir(current, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(current, entry.name);
      const name = `${prefix}/${entry.name}`;
      const info = await lstat(path);
      if (entry.isDirectory()) {
        tar.entry({ name, type: 'directory', mode: info.mode & 0o7777, mtime: info.mtime });
        await add(path, name);
      } else if (entry.isSymbolicLink()) {
        const target = await realpath(path).catch(() => '');
        if (target.startsWith(root + sep)) tar.entry({ name, type: 'symlink', linkname: await readlink(path), mode: 0o777, mtime: info.mtime });
      } else if (entry.isFile()) {
        const handle = await openInside(root, path);
        if (!handle) continue;
        const st = await handle.stat();
        await new Promise<void>((resolve, reject) => {
          const sink = tar.entry({ name, size: st.size, mode: st.mode & 0o7777, mtime: st.mtime }, (err) => (err ? reject(err) : resolve()));
          handle.createReadStream().on('error', reject).pipe(sink);
        });
      }
    }
  };
  add(dir, top).then(() => tar.finalize(), (err: Error) => tar.destroy(err));
  // tar-stream packs into a streamx stream; adapt it to a Node stream (with backpressure).
  return Readable.from(tar as AsyncIterable<Buffer>);
}

export function artifactsRoutes({ config, paths, reads }: ArtifactsRoutesDeps) {
  const jobFor = (id: string): JobRow => {
    const job = ID_PATTERNS.job.test(id) ? reads.job(id) : undefined;
    if (!job) throw apiError('job_not_found', `No job ${id}; GET /jobs lists recent jobs.`);
    if (job.artifacts_deleted_at !== null) throw apiError('artifacts_deleted', `The artifacts of ${id} were deleted ${config.ttl.artifactMs / 1000} s after it ended.`);
    if (!isTerminal(job.status)) throw apiError('artifacts_not_available', `Job ${id} is ${job.status}; artifacts are listed once it has finished.`);
    return job;
  };

  return (app: Hono<AppEnv>) => {
    app.get('/jobs/:id/artifacts', (c) => {
      const job = jobFor(c.req.param('id'));
      const rows = reads.artifacts(job.id);
      return c.json({
        artifacts: rows.map((a) => ({ name: a.name, size_bytes: a.size_bytes, created_at: isoTime(a.created_at)! })),
        total_size_bytes: rows.reduce((sum, a) => sum + a.size_bytes, 0),
        expires_at: isoTime(job.completed_at === null ? null : job.completed_at + config.ttl.artifactMs),
        copy_in_progress: job.artifacts_indexed_at === null,
      } satisfies ArtifactListResponse);
    });

    app.get('/jobs/:id/artifacts/:name', async (c) => {
      const name = c.req.param('name');
      const problem = artifactNameProblem(name);
      if (problem) throw apiError('invalid_artifact_name', `${JSON.stringify(name)} is not an artifact name: ${problem}.`);
      const job = jobFor(c.req.param('id'));
      if (job.artifacts_indexed_at === null) throw apiError('copy_in_progress');
      const row: ArtifactRow | undefined = reads.artifact(job.id, name);
      if (!row) throw apiError('artifact_not_found', `Job ${job.id} has no artifact ${JSON.stringify(name)}; GET /jobs/${job.id}/artifacts lists them.`);

      const root = await realpath(paths.artifacts(job.id)).catch(() => undefined);
      if (!root) throw apiError('artifact_not_found', `The files of job ${job.id} are gone.`);
      const path = join(root, row.path);
      const handle = await openInside(root, path);
      if (!handle) throw apiError('artifact_not_found', `${JSON.stringify(name)} is no longer a file inside the job's artifacts.`);
      const st = await handle.stat();

      if (st.isDirectory()) {
        await handle.close();
        c.header('Content-Type', 'application/x-tar');
        c.header('Content-Disposition', disposition(`${name}.tar`));
        return c.body(Readable.toWeb(tarOf(root, path, name)) as ReadableStream);
      }
      if (!st.isFile()) {
        await handle.close();
        throw apiError('artifact_not_found', `${JSON.stringify(name)} is not a regular file.`);
      }
      const range = parseRange(c.req.header('range'), st.size);
      if (range === 'unsatisfiable') {
        await handle.close();
        c.header('Content-Range', `bytes */${st.size}`);
        throw apiError('range_not_satisfiable', `The file is ${st.size} bytes; ask for a range inside it.`);
      }
      c.header('Content-Type', 'application/octet-stream');
      c.header('Content-Disposition', disposition(name));
      c.header('Accept-Ranges', 'bytes');
      const { start, end } = range ?? { start: 0, end: st.size - 1 };
      c.header('Content-Length', String(Math.max(0, end - start + 1)));
      if (range) c.header('Content-Range', `bytes ${start}-${end}/${st.size}`);
      if (st.size === 0) {
        await handle.close();
        return c.body(null, 200);
      }
      const stream = handle.createReadStream({ start, end });
      return c.body(Readable.toWeb(stream) as ReadableStream, range ? 206 : 200);
    });
  };
}
