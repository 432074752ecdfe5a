/**
 * The retry table of spec/mcp.md, observed from outside: a fault-injecting proxy sits between
 * the shim process and a real Flashpods server, answers the first N matching requests with
 * 429/503/500/507 or drops the connection, and records each attempt and when it arrived. The
 * shim runs with retry delays scaled down through its documented config knobs
 * (FLASHPODS_RETRY_BASE_DELAY_MS / FLASHPODS_RETRY_MAX_DELAY_MS); the schedule asserted is the
 * table's, on that scaled clock.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TEST_IMAGE } from '../support/podman.ts';
import { startRsyncDaemon, type RsyncDaemon } from '../support/rsyncd.ts';
import { createJob, json, startStack, waitForJob, type Stack } from '../support/stack.ts';
import { startFaultProxy, type FaultProxy, type Seen } from './fault-proxy.ts';
import { callTool, startShim, type Shim } from './helpers.ts';

const BASE = 100;
const MAX = 1500;

let stack: Stack;
let rsyncd: RsyncDaemon;
let proxy: FaultProxy;
let shim: Shim;
/** A second shim whose cap is low enough to be reached: base 50 ms, cap 120 ms. */
let capped: Shim;
let downloads: string;

beforeAll(async () => {
  stack = await startStack();
  rsyncd = await startRsyncDaemon({ uploadsDir: join(stack.home, 'uploads') });
  proxy = await startFaultProxy(stack.server.url);
  downloads = mkdtempSync(join(tmpdir(), 'fp-mcp-retry-downloads-'));
  const env = {
    FLASHPODS_DOWNLOAD_DIR: downloads,
    FLASHPODS_API_TOKEN: stack.server.token,
    FLASHPODS_HOST: '127.0.0.1',
    FLASHPODS_PORT: String(proxy.port),
    FLASHPODS_RSYNC_HOST: rsyncd.host,
    FLASHPODS_RSYNC_PORT: String(rsyncd.port),
  };
  shim = await startShim({ ...env, FLASHPODS_RETRY_BASE_DELAY_MS: String(BASE), FLASHPODS_RETRY_MAX_DELAY_MS: String(MAX) });
  capped = await startShim({ ...env, FLASHPODS_RETRY_BASE_DELAY_MS: '50', FLASHPODS_RETRY_MAX_DELAY_MS: '120' });
});

afterAll(async () => {
  await shim?.close();
  await capped?.close();
  await proxy?.close();
  await rsyncd?.stop();
  await stack?.stop();
});

beforeEach(() => proxy.reset());

const JOBS = /^\/jobs$/;
const JOB = /^\/jobs\/job_[a-z0-9]+$/;
const worker = { command: 'true', image: TEST_IMAGE, cpus: 1, memory_gb: 1 };
const jobCount = async () => (await json(await stack.server.fetch('/jobs?limit=1'))).total as number;
const gaps = (seen: Seen[]) => seen.slice(1).map((s, i) => s.at - seen[i]!.at);
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Each gap is the expected wait, plus the round trip, never less. */
function expectSchedule(seen: Seen[], expected: number[]): void {
  const actual = gaps(seen);
  expect(actual.length, `gaps ${actual.map(Math.round)}`).toBe(expected.length);
  actual.forEach((gap, i) => {
    expect(gap, `gap ${i + 1}: ${Math.round(gap)} ms, expected ${expected[i]} ms (all: ${actual.map(Math.round)})`).toBeGreaterThanOrEqual(expected[i]! - 2);
    expect(gap, `gap ${i + 1}: ${Math.round(gap)} ms, expected ${expected[i]} ms (all: ${actual.map(Math.round)})`).toBeLessThan(expected[i]! + 250);
  });
}

function clientJobIds(seen: Seen[]): string[] {
  return seen.map((s) => JSON.parse(s.body).client_job_id as string);
}

describe('retries per the table of mcp.md', () => {
  it('429 rate_limited: honours retry_after_seconds, then succeeds with one job and one client_job_id', async () => {
    const before = await jobCount();
    proxy.inject('POST', JOBS, { status: 429, body: { error: 'rate_limited', message: 'Too many requests; retry in 1 s.', retry_after_seconds: 1 } }, 2);
    const answer = await callTool(shim, 'spawn_worker', worker, { progress: true });
    expect(answer.isError, answer.text).toBe(false);
    expect(answer.body).toMatchObject({ status: 'starting', attempts: 3 });
    const posts = proxy.matching('POST', JOBS);
    expect(posts.map((s) => s.action)).toEqual(['status 429', 'status 429', 'forwarded']);
    // The backoff would be 100 then 200 ms; the server asked for 1 s: that is the floor.
    expectSchedule(posts, [1000, 1000]);
    const ids = clientJobIds(posts);
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).toMatch(UUID_V4);
    expect(answer.body.client_job_id).toBe(ids[0]);
    expect(await jobCount()).toBe(before + 1);
    // The agent heard about the retries as progress.
    expect(answer.progress.filter((p) => /rate_limited/.test(p.message ?? ''))).toHaveLength(2);
  });

  it('429 insufficient_resources: exponential backoff, 5 attempts, then the contract error; no job', async () => {
    const before = await jobCount();
    const body = {
      error: 'insufficient_resources', message: 'Not enough resources to start job',
      requested: { cpus: 1, memory_gb: 1 }, available: { cpus: 0, memory_gb: 0 }, host_capacity: { cpus: 8, memory_gb: 16 }, running_jobs: 8,
    };
    proxy.inject('POST', JOBS, { status: 429, body }, Infinity);
    const answer = await callTool(shim, 'spawn_worker', worker);
    expect(answer).toMatchObject({ isError: true, body: { error: 'insufficient_resources', details: { attempts: 5, http_status: 429, running_jobs: 8, available: { cpus: 0 } } } });
    expect(answer.body.message).toMatch(/Not enough resources to start job \(gave up after 5 attempts\)/);
    const posts = proxy.matching('POST', JOBS);
    expect(posts).toHaveLength(5);
    expectSchedule(posts, [100, 200, 400, 800]);
    expect(new Set(clientJobIds(posts)).size).toBe(1);
    expect(await jobCount()).toBe(before);
  });

  it('503: exponential, capped at retry_max_delay_ms, 5 attempts', async () => {
    proxy.inject('GET', JOB, { status: 503, body: { error: 'service_unavailable', message: 'The scheduler component is restarting or busy; retry in a few seconds.' } }, Infinity);
    const answer = await callTool(capped, 'get_job_status', { job_id: 'job_0000000000000000' });
    expect(answer).toMatchObject({ isError: true, body: { error: 'service_unavailable', details: { attempts: 5 } } });
    const gets = proxy.matching('GET', JOB);
    expect(gets).toHaveLength(5);
    expectSchedule(gets, [50, 100, 120, 120]);
  });

  it('other 5xx: linear, 2 attempts', async () => {
    proxy.inject('GET', JOBS, { status: 500, body: { error: 'internal_error', message: 'Internal error; the supervisor log on the host has the details.' } }, Infinity);
    const answer = await callTool(shim, 'list_jobs', {});
    expect(answer).toMatchObject({ isError: true, body: { error: 'internal_error', details: { attempts: 2 } } });
    const gets = proxy.matching('GET', JOBS);
    expect(gets).toHaveLength(2);
    expectSchedule(gets, [100]);

    proxy.reset();
    proxy.inject('GET', JOBS, { status: 502, body: 'Bad Gateway' }, 1);
    const recovered = await callTool(shim, 'list_jobs', { limit: 1 });
    expect(recovered.isError, recovered.text).toBe(false);
    expect(proxy.matching('GET', JOBS).map((s) => s.action)).toEqual(['status 502', 'forwarded']);
  });

  it('network errors: exponential, 3 attempts, then server_unreachable', async () => {
    proxy.inject('GET', JOB, 'drop', Infinity);
    const answer = await callTool(shim, 'get_job_status', { job_id: 'job_0000000000000000' });
    expect(answer).toMatchObject({ isError: true, body: { error: 'server_unreachable', details: { attempts: 3 } } });
    const gets = proxy.matching('GET', JOB);
    expect(gets).toHaveLength(3);
    expectSchedule(gets, [100, 200]);
  });

  it('a lost response to POST /jobs: the retry gets the same job back, never a second one', async () => {
    const before = await jobCount();
    proxy.inject('POST', JOBS, 'lose-response', 1);
    const answer = await callTool(shim, 'spawn_worker', worker);
    expect(answer.isError, answer.text).toBe(false);
    const posts = proxy.matching('POST', JOBS);
    expect(posts.map((s) => s.action)).toEqual(['lose-response', 'forwarded']);
    expect(new Set(clientJobIds(posts)).size).toBe(1);
    expect(await jobCount()).toBe(before + 1);
    const newest = (await json(await stack.server.fetch('/jobs?limit=1'))).jobs[0];
    expect(answer.body.job_id).toBe(newest.id);
    expectSchedule(posts, [100]);
  });

  it('dropped connections on POST /jobs then success: one job', async () => {
    const before = await jobCount();
    proxy.inject('POST', JOBS, 'drop', 2);
    const answer = await callTool(shim, 'spawn_worker', worker);
    expect(answer.isError, answer.text).toBe(false);
    expect(answer.body.attempts).toBe(3);
    expect(await jobCount()).toBe(before + 1);
  });

  it('a download cut off mid-body is retried from the start; one that keeps failing leaves no file', async () => {
    const created = await createJob(stack.server, { type: 'worker', command: 'head -c 300000 /dev/urandom > /artifacts/blob.bin', image: TEST_IMAGE, cpus: 1, memory_gb: 1 });
    const job = await waitForJob(stack.server, created.body.job_id);
    expect(job.status).toBe('completed');
    const reference = readFileSync(join(stack.home, 'artifacts', job.id, 'blob.bin'));
    const ARTIFACT = /^\/jobs\/job_[a-z0-9]+\/artifacts\/blob\.bin$/;

    proxy.inject('GET', ARTIFACT, 'cut-body', 1);
    const ok = await callTool(shim, 'download_artifact', { job_id: job.id, artifact_name: 'blob.bin', save_to: 'one.bin' });
    expect(ok.isError, ok.text).toBe(false);
    expect(ok.body).toMatchObject({ size_bytes: 300000, attempts: 2, sha256: createHash('sha256').update(reference).digest('hex') });
    expect(readFileSync(join(downloads, 'one.bin')).equals(reference)).toBe(true);
    expect(proxy.matching('GET', ARTIFACT).map((s) => s.action)).toEqual(['cut-body', 'forwarded']);

    proxy.reset();
    proxy.inject('GET', ARTIFACT, 'cut-body', Infinity);
    const broken = await callTool(shim, 'download_artifact', { job_id: job.id, artifact_name: 'blob.bin', save_to: 'two.bin' });
    expect(broken).toMatchObject({ isError: true, body: { error: 'server_unreachable', details: { attempts: 3 } } });
    expect(readdirSync(downloads).sort()).toEqual(['one.bin']); // no two.bin, no .partial

    proxy.reset();
    proxy.inject('GET', ARTIFACT, { status: 503, body: { error: 'copy_in_progress', message: 'Artifacts are still being indexed; retry in a few seconds.' } }, 1);
    const indexed = await callTool(shim, 'download_artifact', { job_id: job.id, artifact_name: 'blob.bin', save_to: 'three.bin' });
    expect(indexed.body).toMatchObject({ size_bytes: 300000, attempts: 2 });
  });

  it('other 4xx and 507 are reported at once; a refused upload is deleted again', async () => {
    const missing = await callTool(shim, 'get_job_status', { job_id: 'job_0000000000000000' });
    expect(missing.body.error).toBe('job_not_found');
    expect(proxy.matching('GET', JOB)).toHaveLength(1);

    const project = mkdtempSync(join(tmpdir(), 'fp-mcp-507-'));
    mkdirSync(join(project, 'src'));
    writeFileSync(join(project, 'src', 'a.txt'), 'a');
    const before = await jobCount();
    proxy.inject('POST', /^\/uploads\/[^/]+\/finalize$/, { status: 507, body: { error: 'insufficient_storage', message: 'Upload storage quota exceeded; wait for older uploads to expire or upload less.' } }, Infinity);
    const full = await callTool(shim, 'spawn_worker', { ...worker, files: { local_path: project } });
    expect(full).toMatchObject({ isError: true, body: { error: 'insufficient_storage' } });
    const finalizes = proxy.matching('POST', /^\/uploads\/[^/]+\/finalize$/);
    expect(finalizes).toHaveLength(1);
    const uploadId = /\/uploads\/([^/]+)\/finalize/.exec(finalizes[0]!.path)![1];
    expect(proxy.matching('DELETE', /^\/uploads\//).map((s) => s.path)).toEqual([`/uploads/${uploadId}`]);
    expect(proxy.matching('POST', JOBS)).toHaveLength(0);
    expect(await jobCount()).toBe(before);
  });
});
