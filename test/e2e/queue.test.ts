/**
 * Issue 15: the job queue on real Podman. Capacity is 2 cpus; one "minute" of timeout_minutes
 * lasts a second here (FLASHPODS_TIMEOUT_MINUTE_SECONDS), so the timeouts that bound backfill are
 * seconds long. The containers Podman runs are sampled throughout: never more than the capacity.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJob, json, stackContainers, startStack, until, waitForJob, type Stack } from '../support/stack.ts';

const CAPACITY_CPUS = 2;
const CLI = fileURLToPath(new URL('../../cli/flashpods.mjs', import.meta.url));
let stack: Stack;
beforeAll(async () => {
  stack = await startStack({
    FLASHPODS_CAPACITY_CPUS: String(CAPACITY_CPUS),
    FLASHPODS_CAPACITY_MEMORY_GB: '8',
    FLASHPODS_TIMEOUT_MINUTE_SECONDS: '1',
    FLASHPODS_KILL_GRACE_SECONDS: '1',
    FLASHPODS_QUEUE_STARTUP_ALLOWANCE_SECONDS: '2',
    FLASHPODS_QUEUE_MAX_LENGTH: '4',
  });
});
afterAll(async () => {
  await stack?.stop();
});

/** The cpus of the job containers Podman runs right now, sampled every 50 ms until stopped. */
function sampleRunningCpus(cpusOf: Map<string, number>): { stop: () => Promise<number[]> } {
  const samples: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const containers = await stackContainers(stack, false);
      samples.push(containers.reduce((sum, c) => sum + (cpusOf.get(c.Labels['flashpods-job-id']!) ?? 0), 0));
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return { stop: async () => { running = false; await loop; return samples; } };
}

describe('the queue', () => {
  it('runs six queued jobs of mixed sizes to completion, FIFO with safe backfill, never over capacity, in order across a restart', async () => {
    const spec = [
      // name, cpus, timeout (s here), how long it runs
      // A runs long enough for the checks, the restart and the CLI listing below to see all four
      // waiting (they take 2-4 s on a loaded machine); D backfills when A ends.
      ['A', 1, 20, 'sleep 8'],
      ['B', 1, 20, 'sleep 14'],
      ['C', 2, 5, 'sleep 1'], // the head once A and B run: needs the whole host
      ['D', 1, 2, 'sleep 1'], // certain to end (≤ 2 s + grace) long before B's bound: backfills
      ['E', 1, 60, 'sleep 1'], // could outlive B's bound and hold a cpu the head needs: waits
      ['F', 1, 2, 'sleep 1'], // backfills like D, after it
    ] as const;
    const ids = new Map<string, string>();
    const cpusOf = new Map<string, number>();
    const sampler = sampleRunningCpus(cpusOf);
    for (const [name, cpus, timeout, command] of spec) {
      const res = await createJob(stack.server, { type: 'worker', command, cpus, memory_gb: 1, timeout_minutes: timeout, queue: true });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      ids.set(name, res.body.job_id);
      cpusOf.set(res.body.job_id, cpus);
    }
    const id = (name: string) => ids.get(name)!;
    const view = async (name: string) => json(await stack.server.fetch(`/jobs/${id(name)}`));

    // A and B started; C, D, E, F wait in submission order.
    const queue = async () => (await json(await stack.server.fetch('/jobs?status=queued'))).jobs.map((j: any) => [j.id, j.queue_position]);
    const expectedQueue = ['C', 'D', 'E', 'F'].map((n, i) => [id(n), i + 1]);
    expect(await queue()).toEqual(expectedQueue);
    expect(await view('C')).toMatchObject({ status: 'queued', queue_position: 1, queue_timeout_minutes: 60 });
    // A seventh beyond the queue's length of 4 is refused with the figures.
    const refused = await createJob(stack.server, { type: 'worker', command: 'true', cpus: 1, memory_gb: 1, queue: true });
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ error: 'queue_full', queued_jobs: 4, max_queue_length: 4, host_capacity: { cpus: 2, memory_gb: 8 } });

    // A restart while they wait keeps the queue and its order.
    expect(await stack.server.stop('SIGKILL')).toBe(null);
    await stack.restartServer();
    expect(await queue()).toEqual(expectedQueue);
    // The CLI shows the queue in order, each with its place.
    const listed = spawnSync(process.execPath, [CLI, 'jobs', '--status', 'queued'], {
      env: { PATH: process.env.PATH, FLASHPODS_URL: stack.server.url, FLASHPODS_API_TOKEN_FILE: join(stack.home, 'api-token') }, encoding: 'utf8',
    });
    expect(listed.status, listed.stderr).toBe(0);
    expect(listed.stdout.split('\n').slice(1, 5).map((line) => /^(job_\w+)\s+worker\s+queued #(\d)/.exec(line)?.slice(1))).toEqual(expectedQueue.map(([j, p]) => [j, String(p)]));

    const jobs = Object.fromEntries(await Promise.all(spec.map(async ([name]) => [name, await waitForJob(stack.server, id(name), { timeoutMs: 90_000 })] as const)));
    const samples = await sampler.stop();
    for (const [name] of spec) expect(jobs[name], name).toMatchObject({ status: 'completed', exit_code: 0 });

    const startOrder = spec.map(([name]) => name).sort((a, b) => Date.parse(jobs[a].started_at) - Date.parse(jobs[b].started_at));
    expect(startOrder).toEqual(['A', 'B', 'D', 'F', 'C', 'E']);
    expect(spec.map(([name]) => [name, jobs[name].backfilled === true])).toEqual([['A', false], ['B', false], ['C', false], ['D', true], ['E', false], ['F', true]]);
    // The head started once B was done, not later than it had to: within 3 s of B's end.
    const bEnd = Date.parse(jobs.B.completed_at);
    expect(Date.parse(jobs.C.started_at)).toBeGreaterThanOrEqual(bEnd - 1000);
    expect(Date.parse(jobs.C.started_at)).toBeLessThan(bEnd + 3000);
    for (const name of ['C', 'D', 'E', 'F']) expect(jobs[name].queue_wait_seconds, name).toBeGreaterThan(0);

    expect(samples.length).toBeGreaterThan(100);
    expect(Math.max(...samples)).toBe(CAPACITY_CPUS);
    const lines = stack.server.logLines();
    expect(lines.filter((l) => l.event === 'job_backfilled').map((l) => l.job_id).sort()).toEqual([id('D'), id('F')].sort());
    expect(lines.filter((l) => l.event === 'job_dequeued').map((l) => l.job_id).sort()).toEqual([id('C'), id('E')].sort());
    // The metrics read the queue from the database: empty now, two backfills, four waits.
    const metrics = await (await stack.server.fetch('/metrics')).text();
    expect(metrics).toContain('\nflashpods_queue_depth 0\n');
    expect(metrics).toContain('\nflashpods_jobs_backfilled_total 2\n');
    expect(metrics).toContain('\nflashpods_queue_wait_seconds_count{type="worker"} 4\n');
  });

  it('expires a job that waits past its queue_timeout_minutes, and cancels a queued job without a container', async () => {
    const blocker = (await createJob(stack.server, { type: 'worker', command: 'sleep 8', cpus: 2, memory_gb: 1, timeout_minutes: 20 })).body.job_id;
    const expiring = await createJob(stack.server, { type: 'worker', command: 'true', cpus: 1, memory_gb: 1, queue: true, queue_timeout_minutes: 2 });
    const cancelled = await createJob(stack.server, { type: 'worker', command: 'true', cpus: 1, memory_gb: 1, queue: true });
    expect([expiring.status, cancelled.status]).toEqual([201, 201]);
    expect(expiring.body).toMatchObject({ status: 'queued', queue_position: 1 });

    const del = await stack.server.fetch(`/jobs/${cancelled.body.job_id}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(await waitForJob(stack.server, cancelled.body.job_id)).toMatchObject({ status: 'cancelled', exit_code: null });

    const started = Date.now();
    const expired = await waitForJob(stack.server, expiring.body.job_id, { timeoutMs: 20_000 });
    const waitedMs = Date.now() - started;
    expect(expired).toMatchObject({ status: 'expired', exit_code: null });
    expect(expired.error).toMatch(/^queue_timeout: waited 2 s in the queue without room to start \(queue_timeout_minutes 2\)/);
    expect(waitedMs).toBeGreaterThan(1000);
    expect(waitedMs).toBeLessThan(4000);
    // Neither ever had a container.
    const names = (await stackContainers(stack)).map((c) => c.Labels['flashpods-job-id']);
    expect(names).not.toContain(expiring.body.job_id);
    expect(names).not.toContain(cancelled.body.job_id);
    expect(stack.server.logLines().some((l) => l.event === 'job_expired' && l.job_id === expiring.body.job_id)).toBe(true);
    await until(async () => (await waitForJob(stack.server, blocker)).status === 'completed', 30_000, 'the blocker completed');
  });

  it('without "queue": true a full host still answers 429, and a job larger than the host is refused even with it', async () => {
    const blocker = (await createJob(stack.server, { type: 'worker', command: 'sleep 3', cpus: 2, memory_gb: 1 })).body.job_id;
    const full = await createJob(stack.server, { type: 'worker', command: 'true', cpus: 1, memory_gb: 1 });
    expect(full.status).toBe(429);
    expect(full.body).toMatchObject({ error: 'insufficient_resources', message: 'Not enough resources to start job', available: { cpus: 0 } });
    const huge = await createJob(stack.server, { type: 'worker', command: 'true', cpus: 3, memory_gb: 1, queue: true });
    expect(huge.status).toBe(429);
    expect(huge.body.error).toBe('insufficient_resources');
    expect(huge.body.message).toMatch(/more than the whole host \(2 cpus, 8 GB\); it can never run here/);
    await waitForJob(stack.server, blocker);
  });
});
