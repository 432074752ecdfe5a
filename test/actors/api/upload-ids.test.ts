/**
 * Upload ids with hyphens — what spec/mcp.md's own generator `upload_${randomUUID().slice(0, 12)}`
 * makes — go through the real API like any other: status, finalize, a job's files_id, and the
 * OpenAPI document's path pattern. Ids of another shape are still refused. No Podman is needed:
 * the job is only created, never started.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json } from '../../support/stack.ts';
import { startServer, type RunningServer } from '../../support/server.ts';

let server: RunningServer;
beforeAll(async () => {
  server = await startServer({ FLASHPODS_PODMAN_SOCKET: '/nonexistent/podman.sock' });
});
afterAll(async () => {
  await server?.stop();
});

const HYPHENATED = 'upload_1b9d6bcd-bbf';

describe('upload ids with hyphens', () => {
  it('are found, finalized and used as a job\'s files_id', async () => {
    expect(await json(await server.fetch(`/uploads/${HYPHENATED}`))).toMatchObject({ error: 'upload_not_found' });
    mkdirSync(join(server.home, 'uploads', HYPHENATED, 'src'), { recursive: true });
    writeFileSync(join(server.home, 'uploads', HYPHENATED, 'src', 'main.rs'), 'fn main() {}\n');

    const status = await server.fetch(`/uploads/${HYPHENATED}`);
    expect(status.status).toBe(200);
    expect(await json(status)).toMatchObject({ upload_id: HYPHENATED, state: 'uploading' });
    const finalized = await server.fetch(`/uploads/${HYPHENATED}/finalize`, { method: 'POST' });
    expect(finalized.status).toBe(200);
    expect(await json(finalized)).toMatchObject({ upload_id: HYPHENATED, state: 'finalized', size_bytes: 13, file_count: 1 });

    const created = await server.fetch('/jobs', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'worker', command: 'ls /work', files_id: HYPHENATED, cpus: 1, memory_gb: 1 }),
    });
    expect(created.status).toBe(201);
    const job = await json(created);
    expect(job).toMatchObject({ created: true });
    expect(await json(await server.fetch(`/jobs/${job.job_id}`))).toMatchObject({ files_id: HYPHENATED });
  });

  it('still refuses ids of another shape, naming the shape', async () => {
    for (const id of ['upload_1b9d6bcd-bb', 'upload_1b9d6bcd-bbff', 'upload_1b9d6bcd_bbf', 'upload_1b9d6bcd.bbf', 'Upload_1b9d6bcd-bbf']) {
      const res = await server.fetch(`/uploads/${id}`);
      expect([id, res.status]).toEqual([id, 400]);
      expect(await json(res)).toEqual({ error: 'invalid_upload_id', message: expect.stringContaining('12 letters, digits or hyphens') });
    }
    const created = await server.fetch('/jobs', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'worker', command: 'true', files_id: 'upload_1b9d6bcd_bbf' }),
    });
    expect(created.status).toBe(404);
    expect(await json(created)).toMatchObject({ error: 'upload_not_found', message: expect.stringContaining('12 letters, digits or hyphens') });
  });

  it('match the OpenAPI document\'s upload id pattern', async () => {
    const doc = await json(await server.fetch('/openapi.json'));
    const param = doc.paths['/uploads/{id}'].get.parameters.find((p: { name: string }) => p.name === 'id');
    const pattern = new RegExp(param.schema.pattern);
    expect(pattern.test(HYPHENATED)).toBe(true);
    expect(pattern.test('upload_1b9d6bcd_bbf')).toBe(false);
  });
});
