import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../actors/store/database.ts';
import { createJob, json, makeUpload, startStack, until, waitForJob, type Stack } from '../support/stack.ts';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({
    FLASHPODS_CLEANUP_INTERVAL_SECONDS: '0.3',
    FLASHPODS_UPLOAD_UNFINALIZED_TTL_SECONDS: '2',
    FLASHPODS_UPLOAD_FINALIZED_TTL_SECONDS: '2',
    FLASHPODS_ARTIFACT_TTL_SECONDS: '3',
    FLASHPODS_LOG_TTL_SECONDS: '6',
  });
});
afterAll(async () => {
  await stack?.stop();
});

describe('TTL cleanup end to end', () => {
  it('expires uploads in both states and removes what no row accounts for', async () => {
    const { server, home } = stack;
    const unfinalized = makeUpload(home, { a: 'never finalized' });
    const finalized = makeUpload(home, { b: 'finalized, never used' });
    await server.fetch(`/uploads/${finalized}/finalize`, { method: 'POST' });
    mkdirSync(join(home, 'uploads', 'not-an-upload-id'));
    mkdirSync(join(home, 'artifacts', 'job_zzzzzzzzzzzzzzzz'));
    writeFileSync(join(home, 'artifacts', 'job_zzzzzzzzzzzzzzzz', 'partial'), 'x');

    expect((await json(await server.fetch(`/uploads/${unfinalized}`))).state).toBe('uploading');
    await until(async () => (await json(await server.fetch(`/uploads/${unfinalized}`))).state === 'expired', 10_000, 'unfinalized upload expired');
    await until(async () => (await json(await server.fetch(`/uploads/${finalized}`))).state === 'expired', 10_000, 'finalized upload expired');
    expect(existsSync(join(home, 'uploads', unfinalized))).toBe(false);
    expect(existsSync(join(home, 'sealed', finalized))).toBe(false);
    const late = await server.fetch(`/uploads/${unfinalized}/finalize`, { method: 'POST' });
    expect([late.status, ((await late.json()) as any).error]).toEqual([410, 'upload_expired']);
    const job = await createJob(server, { type: 'worker', command: 'true', files_id: finalized });
    expect([job.status, job.body.error]).toEqual([410, 'upload_expired']);

    await until(() => !existsSync(join(home, 'uploads', 'not-an-upload-id')) && !existsSync(join(home, 'artifacts', 'job_zzzzzzzzzzzzzzzz')), 5_000, 'orphans removed');
  });

  it('deletes artifacts, then logs, cleans the job, and only then frees its client_job_id', async () => {
    const { server, home } = stack;
    const key = '3a7d1c9e-5b2f-4e8a-9c6d-1f0e2b3a4c5d';
    const first = await createJob(server, { type: 'worker', command: 'echo hello > /artifacts/test.txt; echo logged', client_job_id: key, cpus: 1, memory_gb: 1 });
    const id = first.body.job_id;
    const done = await waitForJob(server, id);
    expect(done.status).toBe('completed');
    expect((await json(await server.fetch(`/jobs/${id}/artifacts`))).artifacts).toHaveLength(1);

    await until(async () => (await server.fetch(`/jobs/${id}/artifacts`)).status === 410, 10_000, 'artifacts deleted');
    expect((await json(await server.fetch(`/jobs/${id}/artifacts/test.txt`))).error).toBe('artifacts_deleted');
    expect(existsSync(join(home, 'artifacts', id))).toBe(false);
    // The log outlives the artifacts, and until cleanup finished the key still names this job.
    expect((await json(await server.fetch(`/jobs/${id}/output`))).output).toMatch(/logged/);
    const beforeClean = await createJob(server, { type: 'worker', command: 'true', client_job_id: key });
    expect(beforeClean).toMatchObject({ status: 200, body: { job_id: id, created: false } });

    await until(async () => (await json(await server.fetch(`/jobs/${id}`))).status === 'cleaned', 15_000, 'job cleaned');
    const output = await server.fetch(`/jobs/${id}/output`);
    expect([output.status, ((await output.json()) as any).error]).toEqual([410, 'logs_deleted']);
    expect(existsSync(join(home, 'logs', `${id}.log`))).toBe(false);
    const record = await json(await server.fetch(`/jobs/${id}`));
    expect(record).toMatchObject({ status: 'cleaned', exit_code: 0, command: 'echo hello > /artifacts/test.txt; echo logged' });

    const second = await createJob(server, { type: 'worker', command: 'true', client_job_id: key, cpus: 1, memory_gb: 1 });
    expect(second).toMatchObject({ status: 201, body: { created: true } });
    expect(second.body.job_id).not.toBe(id);
    await waitForJob(server, second.body.job_id);
  });

  it('finishes a cleanup that a crash interrupted, without deleting anything twice', async () => {
    const { server, home } = stack;
    const id = (await createJob(server, { type: 'worker', command: 'echo x > /artifacts/x', cpus: 1, memory_gb: 1 })).body.job_id;
    await waitForJob(server, id);
    await stack.server.stop('SIGKILL');

    // The state a pass leaves when it dies right after writing its intent: status `cleaning`,
    // files still on disk, the idempotency key still active.
    const db = openDatabase(join(home, 'db', 'flashpods.db'));
    db.prepare("UPDATE jobs SET status = 'cleaning', artifacts_deleted_at = ? WHERE id = ?").run(Date.now(), id);
    db.close();
    expect(existsSync(join(home, 'logs', `${id}.log`))).toBe(true);

    const restarted = await stack.restartServer();
    await until(async () => (await json(await restarted.fetch(`/jobs/${id}`))).status === 'cleaned', 10_000, 'cleaned after restart');
    expect(existsSync(join(home, 'logs', `${id}.log`))).toBe(false);
    expect(existsSync(join(home, 'artifacts', id))).toBe(false);
    const cleanedLines = restarted.logLines().filter((l) => l.action === 'job_cleaned' && l.subject === id);
    expect(cleanedLines).toHaveLength(1);
  });
});
