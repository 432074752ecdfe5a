import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJob, json, stackContainers, startStack, until, waitForJob, type Stack } from '../support/stack.ts';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({
    FLASHPODS_CAPACITY_CPUS: '4',
    FLASHPODS_CAPACITY_MEMORY_GB: '6',
    FLASHPODS_TIMEOUT_MINUTE_SECONDS: '2',
    FLASHPODS_LOG_CAP_BYTES: String(64 * 1024),
  });
});
afterAll(async () => {
  await stack?.stop();
});

async function runningJob(command: string, extra: Record<string, unknown> = {}): Promise<string> {
  const { server } = stack;
  const created = await createJob(server, { type: 'worker', command, cpus: 1, memory_gb: 1, ...extra });
  expect(created.status).toBe(201);
  await until(async () => (await json(await server.fetch(`/jobs/${created.body.job_id}`))).status === 'running', 15_000, 'job running');
  return created.body.job_id;
}

/**
 * A child of the job's main shell that cleans up on SIGTERM: it writes `child-marker` then.
 * `child-ready` says its trap is set.
 */
const TRAPPING_CHILD = `sh -c 'trap "echo cleaned > /artifacts/child-marker; exit 0" TERM; echo > /artifacts/child-ready; while :; do sleep 0.1; done'`;

async function childReady(jobId: string): Promise<void> {
  await until(() => existsSync(join(stack.home, 'artifacts', jobId, 'child-ready')), 10_000, 'child ready');
}

/**
 * The supervisor's `job_kill` line for a job: when the kill sequence ended, and how. The line is
 * written once the kill call returns, which may be a moment after the job's exit was recorded.
 */
async function killLogged(jobId: string): Promise<{ at: number; outcome: unknown }> {
  const find = () => stack.server.logLines().find((l) => l.event === 'job_kill' && l.job_id === jobId);
  await until(() => find() !== undefined, 5_000, `job_kill log line for ${jobId}`);
  const line = find()!;
  return { at: Date.parse(line.time as string), outcome: line.outcome };
}

/** An artifact's content through the API (null when the job has none of that name). */
async function artifact(jobId: string, name: string): Promise<string | null> {
  const res = await stack.server.fetch(`/jobs/${jobId}/artifacts/${name}`);
  return res.status === 200 ? res.text() : null;
}

describe('kill paths', () => {
  it('cancels a running job at once; it stays cancelled with exit 143 when it exits on SIGTERM', async () => {
    const { server } = stack;
    const id = await runningJob('sleep 300');
    const res = await server.fetch(`/jobs/${id}`, { method: 'DELETE' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ job_id: id, status: 'cancelled', message: 'Job termination initiated' });
    expect((await json(await server.fetch(`/jobs/${id}`))).status).toBe('cancelled');
    const job = await waitForJob(server, id, { exitCode: true });
    expect(job).toMatchObject({ status: 'cancelled', exit_code: 143 });
    const again = await server.fetch(`/jobs/${id}`, { method: 'DELETE' });
    expect([again.status, ((await again.json()) as any).error]).toEqual([409, 'job_already_terminal']);
  });

  it('SIGKILLs a job that ignores SIGTERM after the grace, holding its resources until then', async () => {
    const { server, docker } = stack;
    const id = await runningJob("trap '' TERM; while true; do sleep 0.2; done", { cpus: 4, memory_gb: 1 });
    const killedAt = Date.now();
    await server.fetch(`/jobs/${id}`, { method: 'DELETE' });
    // During the 2 s grace the container is alive and its 4 cpus are still counted.
    const blocked = await createJob(server, { type: 'worker', command: 'true', cpus: 1, memory_gb: 1 });
    expect(blocked.status).toBe(429);
    expect(blocked.body.available.cpus).toBe(0);
    expect((await docker.listContainers({ filters: { label: [`flashpods-job-id=${id}`] } })).length).toBe(1);
    const job = await waitForJob(server, id, { exitCode: true });
    expect(job).toMatchObject({ status: 'cancelled', exit_code: 137 });
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(2_000);
  });

  it('times a job out: SIGTERM, grace, SIGKILL → timed_out 137 with its runtime', async () => {
    const { server } = stack;
    // One timeout minute lasts 2 s in this stack.
    const created = await createJob(server, { type: 'worker', command: "trap '' TERM; sleep 300", cpus: 1, memory_gb: 1, timeout_minutes: 1 });
    const job = await waitForJob(server, created.body.job_id, { timeoutMs: 30_000 });
    expect(job).toMatchObject({ status: 'timed_out', exit_code: 137, error: 'Job exceeded timeout limit', timeout_minutes: 1 });
    expect(job.actual_runtime_seconds).toBeGreaterThanOrEqual(4); // 2 s clock + 2 s grace
  });

  it('gives every process SIGTERM on cancel: a child that traps it cleans up, and the job ends 143', async () => {
    const { server } = stack;
    const id = await runningJob(`${TRAPPING_CHILD} & wait`);
    await childReady(id);
    expect((await server.fetch(`/jobs/${id}`, { method: 'DELETE' })).status).toBe(200);
    const job = await waitForJob(server, id, { exitCode: true });
    // The main shell is held until its child has cleaned up, then ends on its own SIGTERM (a
    // SIGKILL at the end of the grace would make it 137).
    expect(job).toMatchObject({ status: 'cancelled', exit_code: 143 });
    expect(await artifact(id, 'child-marker')).toBe('cleaned\n');
  });

  it('SIGKILLs a child that ignores SIGTERM at the end of the grace, after its sibling cleaned up', async () => {
    const { server } = stack;
    const id = await runningJob(`${TRAPPING_CHILD} & sh -c 'trap "" TERM; while :; do sleep 0.1; done' & wait`);
    await childReady(id);
    const cancelledAt = Date.now();
    expect((await server.fetch(`/jobs/${id}`, { method: 'DELETE' })).status).toBe(200);
    const job = await waitForJob(server, id, { exitCode: true });
    expect(job).toMatchObject({ status: 'cancelled', exit_code: 137 });
    // The supervisor logs the kill once its SIGKILL went out: at the end of the 2 s grace, plus
    // the DELETE's way to the runner and Podman's kill call (0.9 s at most seen, load average 14
    // on 2 cores); twice the grace would be 4 s.
    const kill = await killLogged(id);
    expect(kill.outcome).toBe('sigkilled');
    expect(kill.at - cancelledAt).toBeGreaterThanOrEqual(2_000);
    expect(kill.at - cancelledAt).toBeLessThan(4_000);
    expect(await artifact(id, 'child-marker')).toBe('cleaned\n');
  });

  it('gives every process SIGTERM on a timeout too: timed_out 143 with the child\'s marker', async () => {
    const { server } = stack;
    // One timeout minute lasts 2 s in this stack.
    const created = await createJob(server, { type: 'worker', command: `${TRAPPING_CHILD} & wait`, cpus: 1, memory_gb: 1, timeout_minutes: 1 });
    expect(created.status).toBe(201);
    const job = await waitForJob(server, created.body.job_id, { exitCode: true, timeoutMs: 30_000 });
    expect(job).toMatchObject({ status: 'timed_out', exit_code: 143, error: 'Job exceeded timeout limit', timeout_minutes: 1 });
    // The 2 s clock, then the exit on SIGTERM before the 2 s grace was over, plus Podman's
    // latency in reporting it (4.1 s in all seen at most, load average 14 on 2 cores).
    const kill = await killLogged(job.id);
    expect(kill.outcome).toBe('exited-on-sigterm');
    expect(kill.at - Date.parse(job.started_at)).toBeGreaterThanOrEqual(2_000);
    expect(kill.at - Date.parse(job.started_at)).toBeLessThan(5_500);
    expect(await artifact(job.id, 'child-marker')).toBe('cleaned\n');
  });

  it('still sends SIGTERM to the main process when it cannot reach the others (the job deleted /bin/sh)', async () => {
    const { server } = stack;
    const id = await runningJob('/bin/busybox rm /bin/sh && echo > /artifacts/child-ready && exec /bin/busybox sleep 300');
    await childReady(id);
    expect((await server.fetch(`/jobs/${id}`, { method: 'DELETE' })).status).toBe(200);
    const job = await waitForJob(server, id, { exitCode: true });
    // 143, not 137: the init forwarded the SIGTERM to the main process before the grace ran out.
    expect(job).toMatchObject({ status: 'cancelled', exit_code: 143 });
    expect(server.logLines().filter((l) => l.event === 'job_kill_main_only' && l.job_id === id)).toHaveLength(1);
  });

  it('cancels a pending or starting job without ever completing it', async () => {
    const { server } = stack;
    const created = await createJob(server, { type: 'worker', command: 'echo should-not-matter', cpus: 1, memory_gb: 1 });
    const res = await server.fetch(`/jobs/${created.body.job_id}`, { method: 'DELETE' });
    expect(res.status).toBe(200);
    const job = await waitForJob(server, created.body.job_id);
    expect(job.status).toBe('cancelled');
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await json(await server.fetch(`/jobs/${created.body.job_id}`))).status).toBe('cancelled');
  });
});

describe('admission control', () => {
  it('never admits more than capacity under 20 concurrent requests; the rest get the 429 body', async () => {
    const { server, docker, home } = stack;
    await until(async () => (await json(await server.fetch('/jobs?status=running'))).total === 0, 20_000, 'idle stack');
    const results = await Promise.all(
      Array.from({ length: 20 }, () => createJob(server, { type: 'worker', command: 'sleep 3', cpus: 1, memory_gb: 1 })),
    );
    const admitted = results.filter((r) => r.status === 201);
    const refused = results.filter((r) => r.status === 429);
    expect(admitted.length + refused.length).toBe(20);
    // 4 cpus, 6 GiB: the cpus bind at 4 jobs.
    expect(admitted).toHaveLength(4);
    for (const r of refused) {
      expect(r.body).toMatchObject({
        error: 'insufficient_resources', message: 'Not enough resources to start job',
        requested: { cpus: 1, memory_gb: 1 }, host_capacity: { cpus: 4, memory_gb: 6 },
      });
      expect(r.body.available.cpus).toBeLessThan(1);
      expect(r.body.running_jobs).toBe(4);
    }

    // While they run, at no sample may Podman or the database hold more than capacity.
    const { openDatabase } = await import('../../actors/store/database.ts');
    const db = openDatabase(join(home, 'db', 'flashpods.db'), { readonly: true });
    const ids = admitted.map((r) => r.body.job_id as string);
    let samples = 0;
    while (true) {
      const containers = await stackContainers(stack, false);
      const inspected = await Promise.all(containers.map((c) => docker.getContainer(c.Id).inspect().catch(() => undefined)));
      const nanoCpus = inspected.reduce((sum, c) => sum + (c?.HostConfig.NanoCpus ?? 0), 0);
      expect(nanoCpus).toBeLessThanOrEqual(4e9);
      const held = db.prepare('SELECT coalesce(sum(cpus),0) AS cpus, coalesce(sum(memory_gb),0) AS mem FROM jobs WHERE resources_released_at IS NULL').get() as { cpus: number; mem: number };
      expect(held.cpus).toBeLessThanOrEqual(4);
      expect(held.mem).toBeLessThanOrEqual(6);
      samples++;
      const states = await Promise.all(ids.map(async (id) => (await json(await server.fetch(`/jobs/${id}`))).status));
      if (states.every((s) => s === 'completed')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    db.close();
    // Several samples while they ran: each is a Podman list and inspect plus 100 ms, so under the
    // whole suite's load three seconds hold only a few.
    expect(samples).toBeGreaterThanOrEqual(3);
  });

  it('creates exactly one job and one container for 10 concurrent POSTs with one client_job_id', async () => {
    const { server, docker } = stack;
    const key = '0b9c6a3e-7d1f-4c2a-8e5b-3f6d9a1c2e4f';
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => createJob(server, { type: 'worker', command: 'sleep 2', cpus: 1, memory_gb: 1, client_job_id: i % 2 ? key : key.toUpperCase() })),
    );
    const ids = new Set(results.map((r) => r.body.job_id));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    for (const r of results.filter((x) => x.status === 200)) {
      expect(r.body).toMatchObject({ created: false, message: 'Existing job returned (idempotent)' });
    }
    const [id] = [...ids];
    await until(async () => (await json(await server.fetch(`/jobs/${id}`))).status === 'running', 15_000, 'running');
    const containers = await docker.listContainers({ all: true, filters: { label: [`flashpods-job-id=${id}`] } });
    expect(containers).toHaveLength(1);
    await waitForJob(server, id!);
  });
});

describe('log capture', () => {
  it('caps the log, marks it truncated, and lets the job run to completion', async () => {
    const { server, home } = stack;
    const created = await createJob(server, { type: 'worker', command: 'yes flashpods-log-line | head -n 20000; sleep 0.5; echo done-at-end', cpus: 1, memory_gb: 1 });
    const job = await waitForJob(server, created.body.job_id);
    expect(job).toMatchObject({ status: 'completed', exit_code: 0 });
    const size = statSync(join(home, 'logs', `${job.id}.log`)).size;
    const output = await json(await server.fetch(`/jobs/${job.id}/output?tail=2`));
    expect(output.truncated).toBe(true);
    expect(output.output).toMatch(/\[\d\d:\d\d:\d\d\.\d{3}\] \[TRUNCATED - log exceeded 0\.06 MB limit\]\n$/);
    expect(output.output).not.toContain('done-at-end');
    expect(size).toBeLessThanOrEqual(64 * 1024 + 80);
    expect(output.total_bytes).toBe(size);
  });
});
