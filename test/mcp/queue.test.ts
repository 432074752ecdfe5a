/**
 * The MCP shim against a full host (issue 15): spawn_worker queues by default and says where the
 * job stands; wait_for_job covers the queued time and reports the position as progress.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE } from '../support/podman.ts';
import { createJob, startStack, waitForJob, type Stack } from '../support/stack.ts';
import { callTool, startShim, type Shim } from './helpers.ts';

let stack: Stack;
let shim: Shim;

beforeAll(async () => {
  stack = await startStack({ FLASHPODS_CAPACITY_CPUS: '1', FLASHPODS_CAPACITY_MEMORY_GB: '4' });
  const url = new URL(stack.server.url);
  shim = await startShim({ FLASHPODS_API_TOKEN: stack.server.token, FLASHPODS_HOST: url.hostname, FLASHPODS_PORT: url.port, FLASHPODS_MCP_WAIT_TICK_MS: '300' });
});
afterAll(async () => {
  await shim?.close();
  await stack?.stop();
});

describe('spawn_worker on a full host', () => {
  it('queues the job with its position, and wait_for_job waits through the queue to the end', async () => {
    const blocker = (await createJob(stack.server, { type: 'worker', command: 'sleep 3', cpus: 1, memory_gb: 1 })).body.job_id;
    const spawned = await callTool(shim, 'spawn_worker', { command: 'echo after-the-queue', image: TEST_IMAGE, cpus: 1, memory_gb: 1 }, { progress: true });
    expect(spawned.isError, spawned.text).toBe(false);
    expect(spawned.body).toMatchObject({ status: 'queued', queue_position: 1 });
    // The last progress note says the same where the client still listened (under heavy load one
    // run recorded none for a spawn without an upload, whose only note comes with its answer).
    for (const note of spawned.progress) expect(note.message).toMatch(/^job job_\w+ queued at position 1 of the host's queue$/);

    const started = Date.now();
    const waited = await callTool(shim, 'wait_for_job', { job_id: spawned.body.job_id, timeout_seconds: 30 }, { progress: true });
    expect(waited.body).toMatchObject({ status: 'completed', exit_code: 0, terminal: true });
    expect(waited.body.queue_wait_seconds).toBeGreaterThanOrEqual(1);
    expect(waited.body.output_tail).toMatch(/after-the-queue/);
    expect(Date.now() - started).toBeGreaterThan(1000);
    expect(waited.progress.some((p) => /^queued at position 1 of the host's queue, waited \d+ s$/.test(p.message ?? ''))).toBe(true);
    await waitForJob(stack.server, blocker);
  });

  it('with queue: false keeps the old way: the 429 is retried with backoff until the host has room', async () => {
    const blocking = await createJob(stack.server, { type: 'worker', command: 'sleep 2', cpus: 1, memory_gb: 1, queue: true });
    expect(blocking.status).toBe(201);
    const blocker = blocking.body.job_id;
    const started = Date.now();
    const spawned = await callTool(shim, 'spawn_worker', { command: 'true', image: TEST_IMAGE, cpus: 1, memory_gb: 1, queue: false });
    expect(spawned.isError, spawned.text).toBe(false);
    expect(spawned.body.status).not.toBe('queued');
    expect(spawned.body.queue_position).toBeUndefined();
    expect(spawned.body.attempts).toBeGreaterThan(1);
    expect(Date.now() - started).toBeGreaterThan(1000);
    await waitForJob(stack.server, blocker);
    await waitForJob(stack.server, spawned.body.job_id);
  });
});
