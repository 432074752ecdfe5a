import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { startPodmanService, type PodmanService } from '../support/podman.ts';
import { startPodmanProxy, type PodmanProxy } from '../support/podman-proxy.ts';
import { startServer, type RunningServer } from '../support/server.ts';
import { createJob, instanceOf, json, testEnv, until, waitForJob } from '../support/stack.ts';

// The Podman API service is a process of its own (`podman system service`); its containers live
// on without it (conmon). These tests restart that process — the real one — under a job.

const OUTAGE_MS = 4_000;
const lineTexts = (output: string) => output.split('\n').filter(Boolean).map((l) => l.replace(/^\[[^\]]+\] /, ''));
const warnings = (server: RunningServer) => server.logLines().filter((l) => Number(l.level) >= 40);

interface Setup {
  podman: PodmanService;
  proxy?: PodmanProxy;
  server: RunningServer;
}
const setups: Setup[] = [];

afterAll(async () => {
  for (const { podman, proxy, server } of setups) {
    await server.stop('SIGKILL');
    const docker = new Docker({ socketPath: podman.socketPath });
    const left = await docker.listContainers({ all: true, filters: { label: [`flashpods-instance=${instanceOf(server.home)}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
    await proxy?.close();
    await podman.stop();
  }
});

/** Kills the Podman API service and starts it again on the same socket `OUTAGE_MS` later. */
async function restartPodman(setup: Setup): Promise<void> {
  const socket = setup.podman.socketPath;
  await setup.podman.stop();
  await new Promise((r) => setTimeout(r, OUTAGE_MS));
  mkdirSync(dirname(socket), { recursive: true }); // stop() removed its temp dir
  setup.podman = await startPodmanService(socket);
}

describe('the Podman API service restarts under a job', () => {
  it('mid-job: the job ends with its real exit code and its whole log; the outage is one warning', async () => {
    const podman = await startPodmanService();
    const home = mkdtempSync(join(tmpdir(), 'fp-restart-'));
    const setup: Setup = { podman, server: await startServer(testEnv(home, podman.socketPath, { FLASHPODS_RECONCILE_INTERVAL_SECONDS: '2' }), home) };
    setups.push(setup);
    const { server } = setup;
    await until(() => server.logLines().some((l) => l.event === 'podman_reachable'), 15_000, 'first reconcile pass');
    const warningsBefore = warnings(server).length;

    // 20 lines over 10 s, then exit 3: a failure only the job itself can produce.
    const created = await createJob(server, { type: 'worker', command: 'for i in $(seq 1 20); do echo tick $i; sleep 0.5; done; exit 3', cpus: 1, memory_gb: 1 });
    const id = created.body.job_id;
    await until(async () => (await json(await server.fetch(`/jobs/${id}`))).status === 'running', 15_000, 'running');
    const startedAt = Date.now();
    await new Promise((r) => setTimeout(r, 2_000));
    await restartPodman(setup);

    const job = await waitForJob(server, id, { timeoutMs: 30_000 });
    const endedAfterMs = Date.now() - startedAt;
    expect(job).toMatchObject({ status: 'failed', exit_code: 3, error: 'Process exited with code 3' });
    // The job runs 10 s; it is seen ending within two reconcile passes (2 s each) of its exit.
    expect(endedAfterMs).toBeGreaterThanOrEqual(10_000);
    expect(endedAfterMs).toBeLessThan(10_000 + 3 * 2_000 + 2_000);
    const lines = lineTexts((await json(await server.fetch(`/jobs/${id}/output?tail=1000`))).output);
    // A capture resumed after the outage may repeat the second before it, never drop a line.
    expect([...new Set(lines)]).toEqual(Array.from({ length: 20 }, (_, i) => `tick ${i + 1}`));
    const outage = warnings(server).slice(warningsBefore);
    expect(outage.map((l) => l.event)).toEqual(['podman_unreachable']);
    expect((await json(await server.fetch('/jobs?status=running'))).total).toBe(0);
  });

  it('between create and start: the job still runs, to its real exit code and its whole log; the outage is one warning', async () => {
    const podman = await startPodmanService();
    const proxy = await startPodmanProxy(podman.socketPath);
    const home = mkdtempSync(join(tmpdir(), 'fp-restart-'));
    const setup: Setup = { podman, proxy, server: await startServer(testEnv(home, proxy.socketPath, { FLASHPODS_RECONCILE_INTERVAL_SECONDS: '1' }), home) };
    setups.push(setup);
    const { server } = setup;
    await until(() => server.logLines().some((l) => l.event === 'podman_reachable'), 15_000, 'first reconcile pass');
    const warningsBefore = warnings(server).length;

    // The container exists (created) when its start reaches Podman: the service goes away right then.
    let outage: Promise<void> | undefined;
    proxy.before('POST', /\/containers\/[^/]+\/start/, async () => {
      outage = restartPodman(setup);
      await new Promise((r) => setTimeout(r, 200)); // the service is gone by now; the start meets no one
    });
    const created = await createJob(server, { type: 'worker', command: 'echo one; sleep 1; echo two; exit 4', cpus: 1, memory_gb: 1 });
    const id = created.body.job_id;
    await until(() => outage !== undefined, 15_000, 'start request seen');
    const outageBegan = Date.now();
    await outage;

    const job = await waitForJob(server, id, { timeoutMs: 30_000 });
    const endedAfterMs = Date.now() - outageBegan;
    expect(job).toMatchObject({ status: 'failed', exit_code: 4, error: 'Process exited with code 4' });
    // It started only once Podman was back (started_at has whole seconds), ran its 1 s, and was
    // taken up by one of the first reconcile passes (1 s each) after the outage.
    expect(Date.parse(job.started_at)).toBeGreaterThanOrEqual(outageBegan + OUTAGE_MS - 1_000);
    expect(endedAfterMs).toBeGreaterThanOrEqual(OUTAGE_MS + 1_000);
    expect(endedAfterMs).toBeLessThan(OUTAGE_MS + 1_000 + 3 * 1_000 + 2_000);
    expect(lineTexts((await json(await server.fetch(`/jobs/${id}/output`))).output)).toEqual(['one', 'two']);
    expect(warnings(server).slice(warningsBefore).map((l) => l.event)).toEqual(['podman_unreachable']);
  });
});
