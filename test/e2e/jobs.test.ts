import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJob, json, makeUpload, startStack, until, waitForJob, type Stack } from '../support/stack.ts';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.stop();
});

const LOG_LINE = /^\[\d\d:\d\d:\d\d\.\d{3}\] /;
const lineTexts = (output: string) => output.split('\n').filter(Boolean).map((l) => l.replace(LOG_LINE, ''));

describe('jobs end to end on real Podman', () => {
  it('runs an uploaded directory through a worker to completed, then deletes the upload', async () => {
    const { server, home } = stack;
    const uploadId = makeUpload(home, { x: 'from the laptop\n', 'nested/y': 'deep\n' });
    const finalized = await json(await server.fetch(`/uploads/${uploadId}/finalize`, { method: 'POST' }));
    expect(finalized).toMatchObject({ upload_id: uploadId, state: 'finalized', size_bytes: 21, file_count: 2 });
    expect(existsSync(join(home, 'uploads', uploadId))).toBe(false); // sealed: rsync can no longer touch it

    const created = await createJob(server, { type: 'worker', command: 'echo hello > /artifacts/test.txt; cat /work/x', files_id: uploadId, cpus: 1, memory_gb: 1 });
    expect(created).toMatchObject({ status: 201, body: { status: 'starting', created: true } });
    const job = await waitForJob(server, created.body.job_id);
    expect(job).toMatchObject({ status: 'completed', exit_code: 0, type: 'worker', cpus: 1, memory_gb: 1 });
    expect(job.error).toBeUndefined();
    expect(job.duration_seconds).toBeGreaterThanOrEqual(0);

    const output = await json(await server.fetch(`/jobs/${job.id}/output`));
    expect(output).toMatchObject({ lines: 1, truncated: false });
    expect(output.output).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] from the laptop\n$/);
    expect(readFileSync(join(home, 'artifacts', job.id, 'test.txt'), 'utf8')).toBe('hello\n');

    const upload = await json(await server.fetch(`/uploads/${uploadId}`));
    expect(upload.state).toBe('consumed');
    // The snapshot goes once the container is removed, just after the final status is written.
    await until(() => !existsSync(join(home, 'sealed', uploadId)), 5_000, 'sealed upload deleted');
    const again = await createJob(server, { type: 'worker', command: 'true', files_id: uploadId });
    expect(again).toMatchObject({ status: 409, body: { error: 'upload_already_consumed' } });
  });

  it('mounts /work read-only for workers and read-write for agents', async () => {
    const { server, home } = stack;
    const workerUpload = makeUpload(home, { f: 'w' });
    await server.fetch(`/uploads/${workerUpload}/finalize`, { method: 'POST' });
    const worker = await createJob(server, { type: 'worker', command: 'echo changed > /work/f', files_id: workerUpload, cpus: 1, memory_gb: 1 });
    const workerJob = await waitForJob(server, worker.body.job_id);
    expect(workerJob.status).toBe('failed');
    expect(workerJob.exit_code).not.toBe(0);
    expect((await json(await server.fetch(`/jobs/${workerJob.id}/output`))).output).toMatch(/Read-only file system/);

    const agentUpload = makeUpload(home, { f: 'a' });
    await server.fetch(`/uploads/${agentUpload}/finalize`, { method: 'POST' });
    // The test agent image's /entrypoint.sh runs FLASHPODS_TASK as a shell command.
    const agent = await createJob(server, { type: 'agent', task: 'echo changed > /work/f && cat /work/f', git_branch: 'feature/x', files_id: agentUpload, cpus: 1, memory_gb: 1 });
    const agentJob = await waitForJob(server, agent.body.job_id);
    expect(agentJob).toMatchObject({ status: 'completed', exit_code: 0, task: 'echo changed > /work/f && cat /work/f', git_branch: 'feature/x' });
    expect((await json(await server.fetch(`/jobs/${agentJob.id}/output`))).output).toMatch(/changed/);
  });

  it('records exit codes 0, 3 and 127 with the right states', async () => {
    const { server } = stack;
    const ids = await Promise.all(
      ['exit 0', 'exit 3', 'no-such-command-here'].map(async (command) => (await createJob(server, { type: 'worker', command, cpus: 1, memory_gb: 1 })).body.job_id),
    );
    const jobs = await Promise.all(ids.map((id) => waitForJob(server, id)));
    expect(jobs.map((j) => [j.status, j.exit_code])).toEqual([['completed', 0], ['failed', 3], ['failed', 127]]);
  });

  it('gives every job that exits non-zero the error jobs.md names', async () => {
    const { server } = stack;
    const ids = await Promise.all(['exit 3', 'no-such-command-here'].map(async (command) => (await createJob(server, { type: 'worker', command, cpus: 1, memory_gb: 1 })).body.job_id));
    const jobs = await Promise.all(ids.map((id) => waitForJob(server, id)));
    expect(jobs.map((j) => [j.status, j.exit_code, j.error])).toEqual([['failed', 3, 'Process exited with code 3'], ['failed', 127, 'Process exited with code 127']]);
  });

  it('answers 409 upload_not_finalized for an upload rsync wrote but nobody finalized', async () => {
    const { server, home } = stack;
    const uploading = makeUpload(home, { f: 'still being written' });
    expect((await json(await server.fetch(`/uploads/${uploading}`))).state).toBe('uploading');
    const res = await createJob(server, { type: 'worker', command: 'cat /work/f', files_id: uploading, cpus: 1, memory_gb: 1 });
    expect([res.status, res.body.error]).toEqual([409, 'upload_not_finalized']);
    expect(res.body.message).toContain(`POST /uploads/${uploading}/finalize`);
    // Finalized, the same upload feeds the job.
    await server.fetch(`/uploads/${uploading}/finalize`, { method: 'POST' });
    const job = await waitForJob(server, (await createJob(server, { type: 'worker', command: 'cat /work/f', files_id: uploading, cpus: 1, memory_gb: 1 })).body.job_id);
    expect(job).toMatchObject({ status: 'completed', exit_code: 0 });
  });

  it('does not mark a log truncated because the job printed the truncation marker', async () => {
    const { server } = stack;
    const created = await createJob(server, { type: 'worker', command: 'echo "[TRUNCATED - log exceeded 50 MB limit]"; echo after', cpus: 1, memory_gb: 1 });
    const job = await waitForJob(server, created.body.job_id);
    expect(job.status).toBe('completed');
    const output = await json(await server.fetch(`/jobs/${job.id}/output`));
    expect(output.truncated).toBe(false);
    expect(lineTexts(output.output)).toEqual(['[TRUNCATED - log exceeded 50 MB limit]', 'after']);
  });

  it('fails a job that breaches its memory limit with oom_killed', async () => {
    const { server } = stack;
    // dd fills one 1.5 GiB block buffer, against a 1 GiB limit.
    const created = await createJob(server, { type: 'worker', command: 'dd if=/dev/zero of=/dev/null bs=1500M count=1', cpus: 1, memory_gb: 1 });
    const job = await waitForJob(server, created.body.job_id, { timeoutMs: 120_000 });
    expect(job).toMatchObject({ status: 'failed', exit_code: 137, error: 'oom_killed' });
  });

  it('fails a job whose image cannot be pulled, with the reason in its error and log', async () => {
    const { server } = stack;
    const created = await createJob(server, { type: 'worker', command: 'true', image: 'localhost/flashpods-missing:1', cpus: 1, memory_gb: 1 });
    const job = await waitForJob(server, created.body.job_id);
    expect(job.status).toBe('failed');
    expect(job.error).toMatch(/^container_start_failed: image pull failed for localhost\/flashpods-missing:1/);
    const log = (await json(await server.fetch(`/jobs/${job.id}/output`))).output as string;
    expect(log.split('\n').filter(Boolean).every((l) => LOG_LINE.test(l))).toBe(true);
    expect(log).toMatch(/Pulling image localhost\/flashpods-missing:1/);
  });

  it('validates POST /jobs with the contract codes and clamps only cpus and memory', async () => {
    const { server } = stack;
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [{ type: 'sub-agent', command: 'x' }, 400, 'invalid_job_type'],
      [{ type: 'worker' }, 400, 'missing_command'],
      [{ type: 'worker', command: '   ' }, 400, 'missing_command'],
      [{ type: 'worker', command: 'x'.repeat(10_001) }, 400, 'missing_command'],
      [{ type: 'agent', git_branch: 'main' }, 400, 'missing_task'],
      [{ type: 'agent', task: 't' }, 400, 'missing_git_branch'],
      [{ type: 'agent', task: 't', git_branch: 'bad..ref' }, 400, 'missing_git_branch'],
      [{ type: 'worker', command: 'x', image: 'UPPER/Case' }, 400, 'invalid_image'],
      [{ type: 'worker', command: 'x', cpus: 0 }, 400, 'invalid_cpus'],
      [{ type: 'worker', command: 'x', cpus: 1.5 }, 400, 'invalid_cpus'],
      [{ type: 'worker', command: 'x', cpus: '2' }, 400, 'invalid_cpus'],
      [{ type: 'worker', command: 'x', memory_gb: -1 }, 400, 'invalid_memory'],
      [{ type: 'worker', command: 'x', timeout_minutes: 121 }, 400, 'invalid_timeout'],
      [{ type: 'worker', command: 'x', timeout_minutes: 0 }, 400, 'invalid_timeout'],
      [{ type: 'worker', command: 'x', client_job_id: 'not-a-uuid' }, 400, 'invalid_client_job_id'],
      [{ type: 'worker', command: 'x', client_job_id: '6f1c3c6e-2f4b-1e8e-9a55-0c7a3f7d2a10' }, 400, 'invalid_client_job_id'],
      [{ type: 'worker', command: 'x', files_id: 'upload_nothinghere1' }, 404, 'upload_not_found'],
    ];
    for (const [body, status, code] of cases) {
      const res = await createJob(server, body);
      expect([res.status, res.body.error], JSON.stringify(body).slice(0, 80)).toEqual([status, code]);
      expect(res.body.message).toEqual(expect.any(String));
    }
    const bad = await server.fetch('/jobs', { method: 'POST', body: '{"type":' });
    expect([bad.status, ((await bad.json()) as any).error]).toEqual([400, 'invalid_json']);
    const big = await server.fetch('/jobs', { method: 'POST', body: JSON.stringify({ type: 'worker', command: 'x', pad: 'y'.repeat(1_100_000) }) });
    expect([big.status, ((await big.json()) as any).error]).toEqual([413, 'payload_too_large']);

    const clamped = await createJob(server, { type: 'agent', task: 'true', git_branch: 'main', cpus: 6, memory_gb: 12, unknown_field: 1 });
    expect(clamped).toMatchObject({ status: 201, body: { clamped: { cpus: 4, memory_gb: 8 } } });
    const job = await waitForJob(server, clamped.body.job_id);
    expect(job).toMatchObject({ cpus: 4, memory_gb: 8, timeout_minutes: 60 });
  });

  it('lists jobs newest first with status filters and a limit', async () => {
    const { server } = stack;
    const all = await json(await server.fetch('/jobs?limit=100'));
    expect(all.total).toBeGreaterThanOrEqual(8);
    const created = all.jobs.map((j: any) => j.created_at);
    expect([...created].sort().reverse()).toEqual(created);
    const failed = await json(await server.fetch('/jobs?status=failed&limit=2'));
    expect(failed.jobs).toHaveLength(2);
    expect(failed.jobs.every((j: any) => ['failed', 'timed_out', 'cancelled'].includes(j.status))).toBe(true);
    expect(failed.total).toBeGreaterThan(2);
    expect((await server.fetch('/jobs?status=weird')).status).toBe(400);
    expect((await server.fetch('/jobs/job_doesnotexist0000')).status).toBe(404);
    expect((await json(await server.fetch('/jobs/job_doesnotexist0000/output'))).error).toBe('job_not_found');
  });

  it('streams a running job log as server-sent events that end with the job', async () => {
    const { server } = stack;
    const created = await createJob(server, { type: 'worker', command: 'for i in 1 2 3; do echo line $i; sleep 0.3; done', cpus: 1, memory_gb: 1 });
    const res = await server.fetch(`/jobs/${created.body.job_id}/output/stream?tail=0`);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const text = await res.text();
    const lines = [...text.matchAll(/^event: line\ndata: (.*)$/gm)].map((m) => m[1]);
    expect(lines.map((l) => l!.replace(LOG_LINE, ''))).toEqual(['line 1', 'line 2', 'line 3']);
    expect(text).toMatch(/event: end\ndata: {"status":"completed","exit_code":0}/);
  });
});
