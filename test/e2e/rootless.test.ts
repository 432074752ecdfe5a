import { chownSync, existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRootlessPodmanService, type RootlessPodmanService } from '../support/podman.ts';
import { startServer, type RunningServer } from '../support/server.ts';
import { createJob, json, makeUpload, testEnv, until, waitForJob } from '../support/stack.ts';

// Production runs Flashpods and Podman rootless as user flashpods: this file does the same.
let podman: RootlessPodmanService;
let server: RunningServer;
let home: string;

beforeAll(async () => {
  podman = await startRootlessPodmanService();
  home = mkdtempSync(join(tmpdir(), 'fp-rootless-'));
  chownSync(home, podman.uid, podman.gid);
  server = await startServer(testEnv(home, podman.socketPath, { FLASHPODS_PODMAN_ROOTLESS: 'true', FLASHPODS_CONTAINER_NETWORK: 'slirp4netns' }), home, { uid: podman.uid, gid: podman.gid });
});
afterAll(async () => {
  await server?.stop();
  await podman?.stop();
});

describe('rootless Podman with keep-id', () => {
  it('runs the job as the flashpods uid, not root, and its artifacts belong to flashpods', async () => {
    const upload = makeUpload(home, { 'in.txt': 'rootless input\n' });
    chownSync(join(home, 'uploads', upload), podman.uid, podman.gid);
    chownSync(join(home, 'uploads', upload, 'in.txt'), podman.uid, podman.gid);
    expect((await server.fetch(`/uploads/${upload}/finalize`, { method: 'POST' })).status).toBe(200);
    const created = await createJob(server, { type: 'worker', command: 'id -u; cat /work/in.txt; echo made > /artifacts/out.txt', files_id: upload, cpus: 1, memory_gb: 1 });
    const job = await waitForJob(server, created.body.job_id);
    expect(job).toMatchObject({ status: 'completed', exit_code: 0 });
    const lines = ((await json(await server.fetch(`/jobs/${job.id}/output`))).output as string).split('\n').map((l) => l.replace(/^\[[^\]]+\] /, ''));
    expect(lines[0]).toBe(String(podman.uid));
    expect(lines[0]).not.toBe('0');
    expect(lines[1]).toBe('rootless input');
    const artifact = statSync(join(home, 'artifacts', job.id, 'out.txt'));
    expect(artifact.uid).toBe(podman.uid);
    expect(await (await server.fetch(`/jobs/${job.id}/artifacts/out.txt`)).text()).toBe('made\n');
  });

  it('indexes and serves what a job locked with chmod 000, by giving the owner its access back', async () => {
    const created = await createJob(server, { type: 'worker', command: 'mkdir -p /artifacts/locked/inner && echo secret > /artifacts/locked/inner/f && chmod 000 /artifacts/locked/inner/f /artifacts/locked/inner /artifacts/locked', cpus: 1, memory_gb: 1 });
    const job = await waitForJob(server, created.body.job_id);
    expect(job).toMatchObject({ status: 'completed', exit_code: 0 });
    expect(job.error).toBeUndefined();
    const listing = await json(await server.fetch(`/jobs/${job.id}/artifacts`));
    expect(listing.artifacts.map((a: any) => [a.name, a.size_bytes])).toEqual([['locked', 7]]);
    const tar = Buffer.from(await (await server.fetch(`/jobs/${job.id}/artifacts/locked`)).arrayBuffer());
    expect(tar.toString('latin1')).toContain('secret');
  });

  it('gives every process SIGTERM on cancel, as the keep-id user: a child that traps it cleans up (143)', async () => {
    const child = `sh -c 'trap "echo cleaned > /artifacts/child-marker; exit 0" TERM; echo > /artifacts/child-ready; while :; do sleep 0.1; done'`;
    const created = await createJob(server, { type: 'worker', command: `${child} & wait`, cpus: 1, memory_gb: 1 });
    expect(created.status).toBe(201);
    const id = created.body.job_id as string;
    await until(() => existsSync(join(home, 'artifacts', id, 'child-ready')), 20_000, 'child ready');
    expect((await server.fetch(`/jobs/${id}`, { method: 'DELETE' })).status).toBe(200);
    const job = await waitForJob(server, id, { exitCode: true });
    // 143: it ended on SIGTERM once the child had cleaned up, before the SIGKILL of the grace's end.
    expect(job).toMatchObject({ status: 'cancelled', exit_code: 143 });
    expect(await (await server.fetch(`/jobs/${id}/artifacts/child-marker`)).text()).toBe('cleaned\n');
  });
});
