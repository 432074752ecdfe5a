/**
 * The shim's rsync failure hints, each from a REAL rsync run: against a closed port, real rsync
 * daemons (rendered from scripts/rsyncd/rsyncd.conf.template) that lack the module or refuse
 * loopback through `hosts allow`, and a name that cannot resolve. The two timeouts need a peer
 * that misbehaves, which the real daemon never does — both are faults named as such: a listener
 * whose backlog is full (SYNs dropped: connect timeout) and one that accepts and stays silent
 * (I/O timeout).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ToolFailure } from '../../mcp/errors.ts';
import { rsyncFailure, runRsync } from '../../mcp/uploads.ts';
import { freePort, startRsyncDaemon, type RsyncDaemon } from '../support/rsyncd.ts';

let open: RsyncDaemon;
let denying: RsyncDaemon;
let src: string;

beforeAll(async () => {
  src = mkdtempSync(join(tmpdir(), 'fp-rsync-src-'));
  writeFileSync(join(src, 'a.txt'), 'a\n');
  open = await startRsyncDaemon({ uploadsDir: mkdtempSync(join(tmpdir(), 'fp-rsync-up-')) });
  denying = await startRsyncDaemon({ uploadsDir: mkdtempSync(join(tmpdir(), 'fp-rsync-up-')), hostsAllow: '10.9.9.9' });
});
afterAll(async () => {
  await open?.stop();
  await denying?.stop();
});

/** One real rsync run to `target` and the ToolFailure the shim makes of it. */
async function upload(target: string, timeoutsSec = { connect: 15, io: 120 }): Promise<{ failure: ToolFailure; ms: number }> {
  const started = Date.now();
  const outcome = await runRsync({ dir: src, target, excludes: [], timeoutsSec });
  const ms = Date.now() - started;
  expect(outcome.code, outcome.stderr).not.toBe(0);
  return { failure: rsyncFailure(outcome, target), ms };
}

describe('rsync failure hints match what rsync saw', () => {
  it('a closed port: connection refused, not "hosts allow"', async () => {
    const port = await freePort();
    const { failure } = await upload(`rsync://127.0.0.1:${port}/uploads/upload_1b9d6bcd-bbf/`);
    expect(failure).toMatchObject({ code: 'upload_failed', details: { rsync_exit_code: 10, reason: 'connection_refused' } });
    expect(failure.message).toContain(`Connection refused`);
    expect(failure.message).toContain(`Nothing accepts connections at 127.0.0.1:${port}: start the rsync daemon there`);
    expect(failure.message).not.toMatch(/hosts allow/);
  });

  it('a daemon without the module: unknown module', async () => {
    const { failure } = await upload(`rsync://127.0.0.1:${open.port}/upload/upload_1b9d6bcd-bbf/`);
    expect(failure).toMatchObject({ details: { rsync_exit_code: 5, reason: 'unknown_module' } });
    expect(failure.message).toContain(`The rsync daemon at 127.0.0.1:${open.port} has no module "uploads"`);
  });

  it('a daemon whose hosts allow leaves this machine out: access denied, naming the address it saw', async () => {
    const { failure } = await upload(`rsync://127.0.0.1:${denying.port}/uploads/upload_1b9d6bcd-bbf/`);
    expect(failure).toMatchObject({ details: { rsync_exit_code: 5, reason: 'access_denied' } });
    expect(failure.message).toContain(`The rsync daemon at 127.0.0.1:${denying.port} refused this machine (it sees it as 127.0.0.1): that address must be in the uploads module's "hosts allow".`);
  });

  it('a host name that does not resolve', async () => {
    const { failure } = await upload('rsync://flashpods.invalid:873/uploads/upload_1b9d6bcd-bbf/');
    expect(failure).toMatchObject({ details: { rsync_exit_code: 10, reason: 'host_not_found' } });
    expect(failure.message).toContain('The host name of flashpods.invalid:873 does not resolve; fix FLASHPODS_RSYNC_HOST');
  });

  it('a listener that cannot accept (backlog full; a fault): connect timeout after --contimeout', async () => {
    // Python, because a Node server always accepts. listen(0) and unaccepted connections fill the queue.
    const full: ChildProcess = spawn('python3', ['-c', [
      'import socket, time',
      's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
      'held = [socket.socket() for _ in range(3)]',
      'for c in held: c.setblocking(False); c.connect_ex(s.getsockname())',
      'print(s.getsockname()[1], flush=True); time.sleep(60)',
    ].join('\n')], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const [line] = (await once(full.stdout!, 'data')) as [Buffer];
      const port = Number(line.toString().trim());
      const { failure, ms } = await upload(`rsync://127.0.0.1:${port}/uploads/upload_1b9d6bcd-bbf/`, { connect: 1, io: 30 });
      expect(failure).toMatchObject({ details: { rsync_exit_code: 35, reason: 'connect_timeout' } });
      expect(failure.message).toContain(`127.0.0.1:${port} did not accept the connection in time`);
      expect(ms).toBeGreaterThanOrEqual(950);
      expect(ms).toBeLessThan(5_000);
    } finally {
      full.kill('SIGKILL');
    }
  });

  it('a peer that accepts and never speaks (a fault): I/O timeout after --timeout', async () => {
    const held = new Set<Socket>();
    const silent = createServer((socket) => held.add(socket)).listen(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const { port } = silent.address() as { port: number };
      const { failure, ms } = await upload(`rsync://127.0.0.1:${port}/uploads/upload_1b9d6bcd-bbf/`, { connect: 5, io: 1 });
      expect(failure).toMatchObject({ details: { rsync_exit_code: 30, reason: 'io_timeout' } });
      expect(failure.message).toContain(`The connection to 127.0.0.1:${port} stalled`);
      expect(ms).toBeGreaterThanOrEqual(950);
      expect(ms).toBeLessThan(6_000);
    } finally {
      for (const socket of held) socket.destroy();
      silent.close();
    }
  });

  it('the same daemon with the module and hosts allow takes the upload', async () => {
    const outcome = await runRsync({ dir: src, target: `rsync://127.0.0.1:${open.port}/uploads/upload_1b9d6bcd-bbf/`, excludes: [] });
    expect(outcome, outcome.stderr).toMatchObject({ code: 0 });
  });
});
