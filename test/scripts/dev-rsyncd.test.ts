/**
 * The dev profile's upload daemon (scripts/rsyncd/start-dev.sh, run by scripts/dev.sh) against a
 * REAL `flashpods serve` on the same FLASHPODS_HOME's dev defaults: the shim's own rsync run
 * lands in the uploads the server finalizes, and the transfer-register hook writes where the
 * server reads it (finalize refuses while a slow real rsync still writes). It listens on
 * loopback only, a second run replaces the first daemon, and a taken port is reported.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRsync } from '../../mcp/uploads.ts';
import { freePort } from '../support/rsyncd.ts';
import { startServer, type RunningServer } from '../support/server.ts';
import { json } from '../support/stack.ts';

const START_DEV = new URL('../../scripts/rsyncd/start-dev.sh', import.meta.url).pathname;
let home: string;
let port: number;
let server: RunningServer;

const startDev = (p = port) => spawnSync('bash', [START_DEV, join(home, 'uploads'), join(home, 'rsync-transfers'), join(home, 'rsyncd'), String(p)], { encoding: 'utf8', timeout: 30_000 });
const daemonPid = () => Number(readFileSync(join(home, 'rsyncd', 'rsyncd.pid'), 'utf8'));
const alive = (pid: number) => spawnSync('kill', ['-0', String(pid)]).status === 0;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'fp-dev-rsyncd-'));
  port = await freePort();
  const started = startDev();
  expect(started.status, started.stderr).toBe(0);
  expect(started.stdout.trim()).toBe(`rsync://127.0.0.1:${port}/uploads/ (pid ${daemonPid()}, log ${join(home, 'rsyncd', 'rsyncd.log')})`);
  server = await startServer({ FLASHPODS_PODMAN_SOCKET: '/nonexistent/podman.sock' }, home);
});
afterAll(async () => {
  await server?.stop();
  if (home && existsSync(join(home, 'rsyncd', 'rsyncd.pid'))) {
    const pid = daemonPid();
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  }
  if (home) rmSync(home, { recursive: true, force: true });
});

function project(bytes: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'fp-dev-project-'));
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'data.bin'), Buffer.alloc(bytes, 7));
  return dir;
}

describe('the dev upload daemon', () => {
  it('takes the shim\'s upload into the uploads the dev server finalizes', async () => {
    const id = 'upload_1b9d6bcd-bbf';
    const outcome = await runRsync({ dir: project(1000), target: `rsync://127.0.0.1:${port}/uploads/${id}/`, excludes: [] });
    expect(outcome, outcome.stderr).toMatchObject({ code: 0 });
    const finalized = await server.fetch(`/uploads/${id}/finalize`, { method: 'POST' });
    expect(finalized.status).toBe(200);
    expect(await json(finalized)).toMatchObject({ upload_id: id, state: 'finalized', size_bytes: 1000, file_count: 1 });
  });

  it('registers transfers where the dev server reads them: finalize waits for a slow rsync', async () => {
    const id = 'upload_0c4e2a71-9d0';
    // 256 KiB at 32 KiB/s: ≈ 8 s of a real transfer in progress.
    const slow = spawn('rsync', ['-r', '--bwlimit=32', `${project(256 * 1024)}/`, `rsync://127.0.0.1:${port}/uploads/${id}/`], { stdio: 'ignore' });
    const ended = once(slow, 'exit');
    const deadline = Date.now() + 5_000;
    while (!existsSync(join(home, 'uploads', id)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const during = await server.fetch(`/uploads/${id}/finalize`, { method: 'POST' });
    expect(during.status).toBe(409);
    expect(await json(during)).toMatchObject({ error: 'upload_in_progress' });
    const [code] = await ended;
    expect(code).toBe(0);
    const after = await server.fetch(`/uploads/${id}/finalize`, { method: 'POST' });
    expect(await json(after)).toMatchObject({ upload_id: id, state: 'finalized', size_bytes: 256 * 1024 });
  }, 60_000);

  it('listens on 127.0.0.1 only', () => {
    const listeners = execFileSync('ss', ['-Htln', `sport = :${port}`], { encoding: 'utf8' }).trim().split('\n').map((l) => l.split(/\s+/)[3]);
    expect(listeners).toEqual([`127.0.0.1:${port}`]);
  });

  it('replaces the daemon an earlier run left', async () => {
    const before = daemonPid();
    const again = startDev();
    expect(again.status, again.stderr).toBe(0);
    expect(daemonPid()).not.toBe(before);
    expect(alive(before)).toBe(false);
    expect(alive(daemonPid())).toBe(true);
  });

  it('says so when its port is taken by something else', async () => {
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    try {
      const other = mkdtempSync(join(tmpdir(), 'fp-dev-rsyncd-other-'));
      const takenPort = (taken.address() as { port: number }).port;
      const r = spawnSync('bash', [START_DEV, join(other, 'uploads'), join(other, 'transfers'), join(other, 'state'), String(takenPort)], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`start-dev.sh: the rsync daemon does not answer on 127.0.0.1:${takenPort} (is the port taken?`);
      expect(r.stderr).toContain('Address already in use');
    } finally {
      taken.close();
    }
  });
});
