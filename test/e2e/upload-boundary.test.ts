/**
 * The upload trust boundary (issue 10, holes 1 and 2) on real components: a real rsync daemon
 * (test/support/rsyncd.ts, the project's own config with its transfer hook), a real
 * `flashpods serve` and real Podman.
 *
 * 1. An upload directory that is a symbolic link to a host directory is refused by finalize;
 *    a link swapped into the sealed area after finalize is refused when the container is created.
 * 2. A slow rsync that keeps running across finalize: finalize refuses while rsync can still
 *    write, succeeds once it has exited, and the job sees exactly what finalize measured —
 *    even with another transfer into the same id running while the job starts.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRsyncDaemon, type RsyncDaemon } from '../support/rsyncd.ts';
import { createJob, json, startStack, waitForJob, type Stack } from '../support/stack.ts';

let stack: Stack;
let rsyncd: RsyncDaemon;
let scratch: string;
/** A host directory no job may ever see (think: the one holding api.sock and podman.sock). */
let hostDir: string;

beforeAll(async () => {
  stack = await startStack();
  rsyncd = await startRsyncDaemon({
    uploadsDir: join(stack.home, 'uploads'),
    // The dev default of paths.rsyncTransfers (FLASHPODS_RSYNC_TRANSFERS_DIR) under the stack's home.
    transfersDir: join(stack.home, 'rsync-transfers'),
  });
  scratch = mkdtempSync(join(tmpdir(), 'fp-upload-boundary-'));
  hostDir = join(scratch, 'host');
  mkdirSync(hostDir);
  writeFileSync(join(hostDir, 'host-secret.txt'), 'not for jobs\n');
});

afterAll(async () => {
  await rsyncd?.stop();
  await stack?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

const newUploadId = () => `upload_${randomBytes(6).toString('hex')}`;
const LOG_PREFIX = /^\[\d\d:\d\d:\d\d\.\d{3}\] /;

interface RsyncRun {
  /** Resolves when the client exits. */
  done: Promise<{ code: number | null; stderr: string; ms: number }>;
  running: () => boolean;
  kill: () => void;
}

/** A real rsync client pushing `args` to the daemon (the last arg is a path inside the module). */
function rsyncTo(args: string[], modulePath: string): RsyncRun {
  const started = Date.now();
  const child = spawn('rsync', [...args, `rsync://${rsyncd.host}:${rsyncd.port}/uploads/${modulePath}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stderr: string; ms: number }>((resolve) =>
    child.once('exit', (code) => resolve({ code, stderr, ms: Date.now() - started })));
  return { done, running: () => child.exitCode === null && child.signalCode === null, kill: () => child.kill('SIGKILL') };
}

async function finalize(id: string): Promise<{ status: number; body: any; ms: number }> {
  const started = Date.now();
  const res = await stack.server.fetch(`/uploads/${id}/finalize`, { method: 'POST' });
  return { status: res.status, body: await res.json(), ms: Date.now() - started };
}

async function outputLines(jobId: string): Promise<string[]> {
  const { output } = await json(await stack.server.fetch(`/jobs/${jobId}/output`));
  return (output as string).split('\n').filter((l) => l !== '').map((l) => l.replace(LOG_PREFIX, ''));
}

describe('hole 1: a symbolic link never hands a job a host directory', () => {
  it('finalize refuses an upload directory that is a symbolic link to a host directory', async () => {
    const id = newUploadId();
    // rsync stores symlinks as sent: push a link named like an upload into the module root.
    const src = join(scratch, 'link-src');
    mkdirSync(src);
    symlinkSync(hostDir, join(src, id));
    const pushed = await rsyncTo(['-a', `${src}/`], '').done;
    expect(pushed.code, pushed.stderr).toBe(0);
    const uploaded = join(stack.home, 'uploads', id);
    expect(lstatSync(uploaded).isSymbolicLink()).toBe(true);
    expect(readlinkSync(uploaded)).toBe(hostDir);

    const refused = {
      error: 'upload_not_found',
      message: `uploads/${id} is a symbolic link, not a directory. Flashpods never follows links in uploads. Send the directory itself: rsync -a <dir>/ rsync://<host>/uploads/${id}/ (both trailing slashes).`,
      details: { found: 'symlink' },
    };
    const answer = await finalize(id);
    expect([answer.status, answer.body]).toEqual([404, refused]);
    const status = await stack.server.fetch(`/uploads/${id}`);
    expect([status.status, await status.json()]).toEqual([404, refused]);
    const job = await createJob(stack.server, { type: 'worker', command: 'ls /work', files_id: id });
    expect([job.status, job.body.error]).toEqual([404, 'upload_not_found']);

    // Nothing was moved or followed: the link is where rsync put it, the host directory intact.
    expect(lstatSync(uploaded).isSymbolicLink()).toBe(true);
    expect(existsSync(join(stack.home, 'sealed', id))).toBe(false);
    expect(readdirSync(hostDir)).toEqual(['host-secret.txt']);
  });

  it('a link swapped in for a sealed upload after finalize fails the job at container creation', async () => {
    const id = newUploadId();
    const src = join(scratch, 'real-src');
    mkdirSync(src);
    writeFileSync(join(src, 'f'), 'uploaded\n');
    const pushed = await rsyncTo(['-a', `${src}/`], `${id}/`).done;
    expect(pushed.code, pushed.stderr).toBe(0);
    const sealed = await finalize(id);
    expect([sealed.status, sealed.body.size_bytes, sealed.body.file_count]).toEqual([200, 9, 1]);

    const sealedPath = join(stack.home, 'sealed', id);
    rmSync(sealedPath, { recursive: true });
    symlinkSync(hostDir, sealedPath);

    const created = await createJob(stack.server, { type: 'worker', command: 'ls -a /work', files_id: id, cpus: 1, memory_gb: 1 });
    expect(created.status).toBe(201);
    const job = await waitForJob(stack.server, created.body.job_id);
    const error = `upload_mount_refused: upload ${id} was not mounted at /work: ${sealedPath} is a symbolic link; Flashpods never mounts through a link. Upload the files again and create a new job.`;
    expect(job).toMatchObject({ status: 'failed', exit_code: null, error });
    expect(await outputLines(job.id)).toEqual([`Flashpods refused to start the container: ${error}`]);
    expect(stack.server.logLines().filter((l) => l.event === 'upload_mount_refused').map((l) => l.job_id)).toEqual([job.id]);
    // The upload went with its job; removing it removed the link, never what it points to.
    expect((await json(await stack.server.fetch(`/uploads/${id}`))).state).toBe('expired');
    expect(existsSync(sealedPath)).toBe(false);
    expect(readdirSync(hostDir)).toEqual(['host-secret.txt']);
  });
});

describe('hole 2: an upload cannot change after finalize', () => {
  it('refuses finalize while a slow rsync still writes, then seals exactly what the job sees', async () => {
    const MIB = 1024 * 1024;
    const id = newUploadId();
    const src = join(scratch, 'slow-src');
    mkdirSync(src);
    writeFileSync(join(src, 'a.bin'), randomBytes(3 * MIB));
    writeFileSync(join(src, 'b.bin'), randomBytes(3 * MIB));
    // 6 MiB at 500 KiB/s: about 12 s.
    const slow = rsyncTo(['-a', '--bwlimit=500', `${src}/`], `${id}/`);
    const uploaded = join(stack.home, 'uploads', id);
    await new Promise((r) => setTimeout(r, 3_000));
    expect(slow.running()).toBe(true);
    expect(statSync(uploaded).isDirectory()).toBe(true);

    const refused = await finalize(id);
    expect([refused.status, refused.body]).toEqual([409, {
      error: 'upload_in_progress',
      message: `rsync is still writing into upload ${id} (1 transfer in progress); finalize once rsync has exited. A transfer whose client went away ends at the rsync daemon's timeout.`,
      details: { active_transfers: 1 },
    }]);
    // It gave the transfer its 2 s to end, no more.
    expect(refused.ms).toBeGreaterThanOrEqual(2_000);
    expect(refused.ms).toBeLessThan(4_000);
    // Handed back to rsync, which carries on undisturbed.
    expect(slow.running()).toBe(true);
    expect(statSync(uploaded).isDirectory()).toBe(true);
    expect(existsSync(join(stack.home, 'sealed', id))).toBe(false);

    const pushed = await slow.done;
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.ms).toBeGreaterThanOrEqual(10_000);
    expect(pushed.ms).toBeLessThan(30_000);

    // Right after rsync returned, as the MCP shim does it.
    const sealed = await finalize(id);
    expect([sealed.status, sealed.body.state, sealed.body.size_bytes, sealed.body.file_count]).toEqual([200, 'finalized', 6 * MIB, 2]);
    // The daemon's side ends ~40 ms after the client's; a cold measuring thread adds ~1.5 s here.
    expect(sealed.ms).toBeLessThan(4_000);

    // A late transfer into the same id lands in a new directory of the module, never in the seal.
    const lateSrc = join(scratch, 'late-src');
    mkdirSync(lateSrc);
    writeFileSync(join(lateSrc, 'c.bin'), randomBytes(3 * MIB));
    const late = rsyncTo(['-a', '--bwlimit=500', `${lateSrc}/`], `${id}/`);
    try {
      const created = await createJob(stack.server, {
        type: 'worker', command: 'cd /work && find . -mindepth 1 | sort && stat -c %s a.bin b.bin', files_id: id, cpus: 1, memory_gb: 1,
      });
      expect(created.status).toBe(201);
      const job = await waitForJob(stack.server, created.body.job_id);
      expect(job).toMatchObject({ status: 'completed', exit_code: 0 });
      expect(await outputLines(job.id)).toEqual(['./a.bin', './b.bin', String(3 * MIB), String(3 * MIB)]);
      expect(late.running()).toBe(true);
    } finally {
      late.kill();
      await late.done;
    }
  }, 90_000);
});
