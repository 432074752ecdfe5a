import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../actors/store/database.ts';
import { createJob, json, startStack, until, waitForJob, type Stack } from '../support/stack.ts';

// Actor crashes are injected through the test-only fault route (FLASHPODS_FAULT_INJECTION);
// the full disk is a real tmpfs that the test fills.
let stack: Stack;
let dbMount: string;
let logsMount: string;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

beforeAll(async () => {
  dbMount = mkdtempSync(join(tmpdir(), 'fp-dbfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dbMount]);
  logsMount = mkdtempSync(join(tmpdir(), 'fp-logsfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', logsMount]);
  stack = await startStack({
    FLASHPODS_FAULT_INJECTION: 'true',
    FLASHPODS_LISTEN: `127.0.0.1:${await freePort()}`,
    FLASHPODS_DB: join(dbMount, 'flashpods.db'),
    FLASHPODS_LOGS_DIR: logsMount,
  });
});
afterAll(async () => {
  await stack?.stop();
  for (const mount of [dbMount, logsMount]) {
    if (!mount) continue;
    execFileSync('umount', [mount]);
    rmSync(mount, { recursive: true, force: true });
  }
});

async function crash(actor: string, how: 'throw' | 'exit' = 'throw'): Promise<void> {
  const before = stack.server.logLines().filter((l) => l.actor === actor && l.event === 'ready').length;
  const res = await stack.server.fetch(`/_faults/crash/${actor}?how=${how}`, { method: 'POST' });
  expect(res.status).toBe(202);
  await until(() => stack.server.logLines().some((l) => l.actor === actor && l.event === 'crashed'), 10_000, `${actor} crashed`);
  await until(() => stack.server.logLines().filter((l) => l.actor === actor && l.event === 'ready').length > before, 15_000, `${actor} restarted`);
}

const lineTexts = (output: string) => output.split('\n').filter(Boolean).map((l) => l.replace(/^\[[^\]]+\] /, ''));

describe('no state is lost when an actor crashes', () => {
  it('containers: a running job is adopted after the restart and finishes with its whole log', async () => {
    const { server } = stack;
    const id = (await createJob(server, { type: 'worker', command: 'for i in 1 2 3 4 5 6 7 8; do echo n$i; sleep 0.4; done', cpus: 1, memory_gb: 1 })).body.job_id;
    await until(async () => (await json(await server.fetch(`/jobs/${id}`))).status === 'running', 15_000, 'running');
    await new Promise((r) => setTimeout(r, 600));
    await crash('containers');
    const job = await waitForJob(server, id);
    expect(job).toMatchObject({ status: 'completed', exit_code: 0 });
    const lines = lineTexts((await json(await server.fetch(`/jobs/${id}/output?tail=100`))).output);
    // Resumed from the persisted position in conmon's file: nothing dropped, nothing twice.
    expect(lines).toEqual(['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n8']);
  });

  it('scheduler: reads keep working while it restarts, and a job running meanwhile still completes', async () => {
    const { server } = stack;
    const id = (await createJob(server, { type: 'worker', command: 'sleep 2; echo finished', cpus: 1, memory_gb: 1 })).body.job_id;
    await until(async () => (await json(await server.fetch(`/jobs/${id}`))).status === 'running', 15_000, 'running');
    await crash('scheduler', 'exit');
    expect((await server.fetch(`/jobs/${id}`)).status).toBe(200);
    const job = await waitForJob(server, id, { timeoutMs: 60_000 });
    expect(job).toMatchObject({ status: 'completed', exit_code: 0 });
    const listed = await json(await server.fetch('/jobs?limit=100'));
    expect(listed.jobs.map((j: any) => j.id)).toContain(id);
  });

  it('scheduler down: a write answers 503 service_unavailable at once, never hangs', async () => {
    const { server } = stack;
    const crashes = () => server.logLines().filter((l) => l.actor === 'scheduler' && l.event === 'crashed').length;
    const readies = () => server.logLines().filter((l) => l.actor === 'scheduler' && l.event === 'ready').length;
    const [crashedBefore, readyBefore] = [crashes(), readies()];
    await server.fetch('/_faults/crash/scheduler?how=exit', { method: 'POST' });
    await until(() => crashes() > crashedBefore, 5_000, 'scheduler crashed');
    // The restart takes a backoff plus a thread start (a few hundred ms): ask inside that window.
    const started = Date.now();
    const created = await createJob(server, { type: 'worker', command: 'true', cpus: 1, memory_gb: 1 });
    expect(readies()).toBe(readyBefore);
    expect(created.status).toBe(503);
    expect(created.body).toEqual({ error: 'service_unavailable', message: expect.stringMatching(/scheduler component is restarting/) });
    expect(Date.now() - started).toBeLessThan(1_000);
    await until(() => readies() > readyBefore, 15_000, 'scheduler back');
    expect((await createJob(server, { type: 'worker', command: 'true', cpus: 1, memory_gb: 1 })).status).toBe(201);
  });

  it('api: the server comes back on the same address', async () => {
    const { server } = stack;
    await crash('api');
    await until(async () => (await server.fetch('/health', { auth: false }).then((r) => r.status, () => 0)) === 200, 15_000, 'api back');
    expect((await json(await server.fetch('/health', { auth: false }))).actors).toMatchObject({ api: 'running', scheduler: 'running', containers: 'running', artifacts: 'running' });
  });
});

describe('no state is lost when the disk fills', () => {
  it('refuses writes with database_error and a message that says what to do; keeps every row; recovers when space returns', async () => {
    const { server } = stack;
    const kept = await createJob(server, { type: 'worker', command: 'echo kept', cpus: 1, memory_gb: 1 });
    await waitForJob(server, kept.body.job_id);
    const before = (await json(await server.fetch('/jobs?limit=100'))).total;

    // Shrink the WAL so the next write must grow a file, then fill the volume.
    const db = openDatabase(join(dbMount, 'flashpods.db'));
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    const filler = join(dbMount, 'filler');
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k'], { stdio: 'ignore' });
    } catch {
      // dd stops with "No space left on device": that is the point
    }
    const refused = await createJob(server, { type: 'worker', command: 'echo refused', cpus: 1, memory_gb: 1 });
    expect(refused.status).toBe(500);
    expect(refused.body).toEqual({ error: 'database_error', message: expect.stringMatching(/disk is full; nothing was written\. Free space on the volume holding .*flashpods\.db/) });
    expect(JSON.stringify(refused.body)).not.toMatch(/at .*\.ts:\d+/);
    expect((await json(await server.fetch(`/jobs/${kept.body.job_id}`))).status).toBe('completed');
    expect((await json(await server.fetch('/jobs?limit=100'))).total).toBe(before);

    rmSync(filler);
    writeFileSync(join(dbMount, '.keep'), '');
    const accepted = await createJob(server, { type: 'worker', command: 'echo after', cpus: 1, memory_gb: 1 });
    expect(accepted.status).toBe(201);
    expect((await waitForJob(server, accepted.body.job_id)).status).toBe('completed');
    expect((await json(await server.fetch('/jobs?limit=100'))).total).toBe(before + 1);
  });

  it('a full logs volume stops log capture, not the job', async () => {
    const { server } = stack;
    const created = await createJob(server, { type: 'worker', command: 'yes flashpods-fills-the-log | head -c 3000000; echo; echo tail-line', cpus: 1, memory_gb: 1 });
    const job = await waitForJob(server, created.body.job_id);
    expect(job).toMatchObject({ status: 'completed', exit_code: 0 });
    const output = await json(await server.fetch(`/jobs/${job.id}/output?tail=1`));
    expect(output.truncated).toBe(true);
    expect(output.total_bytes).toBeLessThan(1024 * 1024);
    expect(server.logLines().some((l) => l.event === 'log_write_failed' && l.job_id === job.id && /free space/.test(String(l.msg)))).toBe(true);
    // Space comes back once the log is gone; the next job logs normally.
    rmSync(join(logsMount, `${job.id}.log`));
    const next = await createJob(server, { type: 'worker', command: 'echo fine', cpus: 1, memory_gb: 1 });
    const nextJob = await waitForJob(server, next.body.job_id);
    expect((await json(await server.fetch(`/jobs/${nextJob.id}/output`))).output).toMatch(/fine\n$/);
  });
});
