import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../actors/store/database.ts';
import { startPodmanService, TEST_IMAGE } from '../support/podman.ts';
import { createJob, json, stackContainers, startStack, until, waitForJob, type Stack } from '../support/stack.ts';

let stack: Stack;
const RUN = Date.now().toString(36);
beforeAll(async () => {
  stack = await startStack({ FLASHPODS_TIMEOUT_MINUTE_SECONDS: '3' });
});
afterAll(async () => {
  // The other instance's container is no stack's to remove: this test made it, this test removes it.
  await stack?.docker.getContainer(`other-instance-test-${RUN}`).remove({ force: true }).catch(() => undefined);
  await stack?.stop();
});

async function statusOf(id: string): Promise<string> {
  return (await json(await stack.server.fetch(`/jobs/${id}`))).status;
}

function insertJob(id: string, status: 'starting' | 'running', pendingFinish: string | null = null): void {
  const db = openDatabase(join(stack.home, 'db', 'flashpods.db'));
  db.prepare(`INSERT INTO jobs (id, job_type, status, command, image, cpus, memory_gb, timeout_minutes, created_at, started_at, container_id, pending_finish)
              VALUES (?, 'worker', ?, 'sleep 1', ?, 1, 1, 30, ?, ?, ?, ?)`)
    .run(id, status, TEST_IMAGE, Date.now() - 5_000, status === 'running' ? Date.now() - 4_000 : null, status === 'running' ? 'f'.repeat(64) : null, pendingFinish);
  db.close();
}

describe('crash recovery', () => {
  it('reconciles every case of the table after kill -9 of the whole runtime', async () => {
    const { server, docker } = stack;
    const keepsRunning = (await createJob(server, { type: 'worker', command: 'echo before; sleep 4; echo after', cpus: 1, memory_gb: 1 })).body.job_id;
    const exitsWhileDown = (await createJob(server, { type: 'worker', command: 'sleep 1; exit 5', cpus: 1, memory_gb: 1 })).body.job_id;
    const timesOutAcrossRestart = (await createJob(server, { type: 'worker', command: "trap '' TERM; sleep 300", cpus: 1, memory_gb: 1, timeout_minutes: 1 })).body.job_id;
    await until(async () => (await Promise.all([keepsRunning, exitsWhileDown, timesOutAcrossRestart].map(statusOf))).every((s) => s === 'running'), 15_000, 'all running');

    expect(await server.stop('SIGKILL')).toBe(null);

    // While the runtime is down: a job the DB thinks is starting and one it thinks is running,
    // both without a container, and a labelled container no job owns.
    insertJob('job_startingnocontnr', 'starting');
    insertJob('job_runningnocontain', 'running');
    // Exited and removed, final status not yet written when the runtime died.
    insertJob('job_exitedandremoved', 'running', JSON.stringify({ exitCode: 4, oomKilled: false }));
    const orphan = await docker.createContainer({
      Image: TEST_IMAGE, Cmd: ['sleep', '300'], name: `orphan-test-${RUN}`,
      Labels: { 'flashpods-job': 'true', 'flashpods-job-id': 'job_unknowntothedb00', 'flashpods-job-type': 'worker' },
      HostConfig: { NetworkMode: 'none' },
    });
    await orphan.start();
    const foreign = await docker.createContainer({
      Image: TEST_IMAGE, Cmd: ['sleep', '300'], name: `other-instance-test-${RUN}`,
      Labels: { 'flashpods-job': 'true', 'flashpods-job-id': 'job_otherinstance000', 'flashpods-job-type': 'worker', 'flashpods-instance': 'another-database' },
      HostConfig: { NetworkMode: 'none' },
    });
    await foreign.start();
    await new Promise((r) => setTimeout(r, 1_500)); // exitsWhileDown exits meanwhile

    const restarted = await stack.restartServer();
    const finished = await Promise.all([keepsRunning, exitsWhileDown, timesOutAcrossRestart, 'job_startingnocontnr', 'job_runningnocontain', 'job_exitedandremoved']
      .map((id) => waitForJob(restarted, id, { timeoutMs: 30_000 })));
    // Every failed job carries an error (jobs.md "Exit codes"), those that exited non-zero too.
    expect(finished.map((j) => [j.status, j.exit_code, j.error ?? null])).toEqual([
      ['completed', 0, null],
      ['failed', 5, 'Process exited with code 5'],
      ['timed_out', 137, 'Job exceeded timeout limit'],
      ['failed', null, 'container_not_found_on_recovery'],
      ['failed', null, 'container_lost_on_recovery'],
      ['failed', 4, 'Process exited with code 4'],
    ]);
    // Log capture resumed: the line written after the restart is there, the one before kept.
    const log = (await json(await restarted.fetch(`/jobs/${keepsRunning}/output`))).output as string;
    expect(log).toMatch(/before\n[^]*after\n$/);
    await until(async () => (await stackContainers(stack)).length === 0, 15_000, 'orphan and finished containers removed');
    const orphanLine = restarted.logLines().find((l) => l.event === 'orphan_removed');
    expect(orphanLine).toMatchObject({ job_id: 'job_unknowntothedb00' });
    // A container another Flashpods database owns is not an orphan of this one.
    expect((await foreign.inspect()).State.Running).toBe(true);
    await foreign.remove({ force: true });
  });

  it('stays up while the Podman socket is gone and reconciles jobs when it returns', async () => {
    const { server, docker } = stack;
    const id = (await createJob(server, { type: 'worker', command: 'sleep 3; echo survived', cpus: 1, memory_gb: 1 })).body.job_id;
    await until(async () => (await statusOf(id)) === 'running', 15_000, 'running');

    const socket = stack.podman.socketPath;
    await stack.podman.stop();
    expect((await server.fetch('/health', { auth: false })).status).toBe(200);
    expect(await statusOf(id)).toBe('running');
    await until(() => server.logLines().some((l) => l.event === 'podman_unreachable'), 10_000, 'unreachable warning');
    const duringOutage = await createJob(server, { type: 'worker', command: 'echo queued', cpus: 1, memory_gb: 1 });
    expect(duringOutage.status).toBe(201);
    await new Promise((r) => setTimeout(r, 4_000)); // the job's container exits while Podman's API is away

    mkdirSync(dirname(socket), { recursive: true });
    stack.podman = await startPodmanService(socket);
    const job = await waitForJob(server, id, { timeoutMs: 30_000 });
    expect(job).toMatchObject({ status: 'completed', exit_code: 0 });
    // Printed while Podman's API was away; captured once it returned.
    expect((await json(await server.fetch(`/jobs/${id}/output`))).output).toMatch(/survived\n$/);
    const queued = await waitForJob(server, duringOutage.body.job_id, { timeoutMs: 30_000 });
    expect(queued).toMatchObject({ status: 'completed', exit_code: 0 });
    expect(server.logLines().some((l) => l.event === 'podman_reachable')).toBe(true);
    expect(server.logLines().some((l) => l.event === 'crashed')).toBe(false);
    await until(async () => (await stackContainers(stack)).length === 0, 15_000, 'containers removed');
  });
});
