import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import {
  createAndStart,
  ensureImage,
  killWithGrace,
  listJobContainers,
  removeContainer,
  waitForExit,
} from '../../../actors/containers/podman-client.ts';
import { isOomKill } from '../../../actors/containers/oom-watch.ts';
import { startLogCapture } from '../../../actors/containers/log-capture.ts';
import { startPodmanService, TEST_IMAGE } from '../../support/podman.ts';
import { podmanForFile, tempDir, waitForOutput, workerSpec } from './helpers.ts';
import type { JobContainerSpec } from '../../../actors/containers/container-spec.ts';

const pod = podmanForFile(startPodmanService);
const { cleanup } = pod;

async function run(spec: JobContainerSpec): Promise<{ id: string; exitCode: number; oomKilled: boolean; output: string }> {
  const id = cleanup.container(await createAndStart(pod.docker, spec));
  const exit = await waitForExit(pod.docker, id);
  const output = (await pod.docker.getContainer(id).logs({ stdout: true, stderr: true, follow: false })).toString('latin1');
  return { id, ...exit, output };
}

describe('createAndStart', () => {
  let socketServer: Server;
  let socketPath: string;

  beforeAll(async () => {
    socketPath = join(tempDir('sock'), 'token.sock');
    socketServer = createServer();
    await new Promise<void>((r) => socketServer.listen(socketPath, r));
  });
  afterAll(() => { socketServer?.close(); });

  it('creates the container exactly as containers.md says', async () => {
    const upload = tempDir('upload');
    const spec = workerSpec({
      cpus: 1,
      memoryGb: 0.5,
      uploadDir: upload,
      // The SPIRE socket is absent on the host: left out rather than failing the create.
      identitySockets: { token: socketPath, spire: '/run/flashpods-test-missing/agent.sock' },
      needGithubToken: true,
      command: 'grep -E "^(CapEff|NoNewPrivs)" /proc/self/status; cat /proc/1/cmdline | tr "\\0" " "; echo; test -S /run/flashpods/token.sock && echo socket-ok',
    });
    const { id, exitCode, output } = await run(spec);
    expect(exitCode).toBe(0);
    const info = await pod.docker.getContainer(id).inspect();
    expect(info.Name.replace(/^\//, '')).toBe(`job_${spec.jobId}`);
    expect(info.Config.Labels).toMatchObject({
      'flashpods-job': 'true',
      'flashpods-job-id': spec.jobId,
      'flashpods-job-type': 'worker',
    });
    expect(info.Config.Cmd).toEqual(['/bin/sh', '-c', spec.command]);
    expect(info.Config.Env).toContain('FLASHPODS_NEED_GITHUB_TOKEN=true');
    expect(info.HostConfig.NanoCpus).toBe(1e9);
    expect(info.HostConfig.Memory).toBe(512 * 1024 ** 2);
    expect(info.HostConfig.MemorySwap).toBe(512 * 1024 ** 2);
    expect(info.HostConfig.SecurityOpt).toContain('no-new-privileges');
    expect(info.HostConfig.Init).toBe(true);
    expect(info.HostConfig.NetworkMode).toBe('slirp4netns');
    // What the process really gets: no capabilities, no new privileges, the init as PID 1.
    expect(output).toMatch(/CapEff:\s+0000000000000000/);
    expect(output).toMatch(/NoNewPrivs:\s+1/);
    expect(output).toMatch(/\/run\/podman-init -- \/bin\/sh -c/);
    expect(output).toContain('socket-ok');
    const mounts = Object.fromEntries(info.Mounts.map((m) => [m.Destination, m]));
    expect(mounts['/work']).toMatchObject({ Source: upload, RW: false });
    expect(mounts['/artifacts']).toMatchObject({ Source: spec.artifactsDir, RW: true });
    expect(mounts['/run/flashpods/token.sock']).toMatchObject({ Source: socketPath, RW: false });
    expect(mounts['/run/spire/sockets/agent.sock']).toBeUndefined();
  });

  it('gives a worker without need_github_token neither identity socket, though both exist on the host', async () => {
    const spire = join(tempDir('spire'), 'agent.sock');
    const spireServer = createServer();
    await new Promise<void>((r) => spireServer.listen(spire, r));
    try {
      const probe = 'for s in /run/flashpods/token.sock /run/spire/sockets/agent.sock; do if [ -e $s ]; then echo "$s PRESENT"; else echo "$s absent"; fi; done; echo "flag=${FLASHPODS_NEED_GITHUB_TOKEN:-none}"';
      // An instance label of its own: Flashpods servers of other suites on this Podman leave it alone.
      const instanceId = 'podman-client-test';
      const without = await run(workerSpec({ identitySockets: { token: socketPath, spire }, command: probe, instanceId }));
      expect(without.exitCode, without.output).toBe(0);
      expect(without.output).toContain('/run/flashpods/token.sock absent');
      expect(without.output).toContain('/run/spire/sockets/agent.sock absent');
      expect(without.output).toContain('flag=none');
      const mounts = (await pod.docker.getContainer(without.id).inspect()).Mounts.map((m) => m.Destination).sort();
      expect(mounts).toEqual(['/artifacts']);

      const asked = await run(workerSpec({ identitySockets: { token: socketPath, spire }, needGithubToken: true, command: probe, instanceId }));
      expect(asked.output).toContain('/run/flashpods/token.sock PRESENT');
      expect(asked.output).toContain('/run/spire/sockets/agent.sock PRESENT');
      expect(asked.output).toContain('flag=true');
    } finally {
      spireServer.close();
    }
  });

  it('gives a worker a read-only /work and a writable /artifacts', async () => {
    const upload = tempDir('upload');
    writeFileSync(join(upload, 'input.txt'), 'hello');
    const spec = workerSpec({
      uploadDir: upload,
      command: 'cat /work/input.txt; echo; touch /work/new 2>&1; echo rc=$?; echo out > /artifacts/result.txt',
    });
    const { exitCode, output } = await run(spec);
    expect(exitCode).toBe(0);
    expect(output).toContain('hello');
    expect(output).toMatch(/Read-only file system/);
    expect(output).toContain('rc=1');
    expect(existsSync(join(upload, 'new'))).toBe(false);
    expect(readFileSync(join(spec.artifactsDir, 'result.txt'), 'utf8')).toBe('out\n');
  });

  it('gives an agent its environment and a writable /work', async () => {
    const upload = tempDir('upload');
    const spec = workerSpec({
      jobType: 'agent',
      command: undefined,
      uploadDir: upload,
      // The test image's /entrypoint.sh runs FLASHPODS_TASK as a shell command.
      task: 'env | grep ^FLASHPODS_ | sort; echo draft > /work/agent.txt',
      context: 'ctx',
      gitBranch: 'flashpods/b',
    });
    const { exitCode, output } = await run(spec);
    expect(exitCode).toBe(0);
    expect(output).toContain(`FLASHPODS_JOB_ID=${spec.jobId}`);
    expect(output).toContain('FLASHPODS_CONTEXT=ctx');
    expect(output).toContain('FLASHPODS_GIT_BRANCH=flashpods/b');
    expect(readFileSync(join(upload, 'agent.txt'), 'utf8')).toBe('draft\n');
  });

  it('removes a container that cannot start and rethrows', async () => {
    // runc cannot set a 1 MiB limit below the container's own startup usage.
    const spec = workerSpec({ memoryGb: 1 / 1024 });
    await expect(createAndStart(pod.docker, spec)).rejects.toThrow();
    // Attaching (log capture) before start surfaces the same failure; the container goes too.
    const attached = { ...spec, jobId: `${spec.jobId}-b` };
    await expect(createAndStart(pod.docker, attached, async (id) => {
      await startLogCapture(pod.docker, id, { path: join(tempDir('logs'), 'job.log') });
    })).rejects.toThrow();
    const left = (await listJobContainers(pod.docker)).filter((c) => [spec.jobId, attached.jobId].includes(c.jobId));
    expect(left).toEqual([]);
  });
});

describe('waitForExit', () => {
  it.each([
    ['true', 0],
    ['exit 3', 3],
    ['no-such-command-here', 127],
  ])('reports the exit code of `%s`', async (command, code) => {
    const { exitCode, oomKilled } = await run(workerSpec({ command }));
    expect(exitCode).toBe(code);
    expect(oomKilled).toBe(false);
  });

  it('detects an OOM kill from cgroup evidence (exit 137, oomKilled)', async () => {
    // 256 MiB limit; dd's 400 MiB buffer cannot fit.
    const spec = workerSpec({ memoryGb: 0.25, command: 'exec dd if=/dev/zero of=/dev/null bs=400M count=1' });
    const id = cleanup.container(await createAndStart(pod.docker, spec));
    const exit = await waitForExit(pod.docker, id);
    expect(exit.exitCode).toBe(137);
    expect(exit.oomKilled).toBe(true);
    // Podman 4.3 on cgroup v1 does not say so itself; the cgroup evidence did.
    expect((await pod.docker.getContainer(id).inspect()).State.OOMKilled).toBe(false);
  });

  it('does not call a SIGKILL we sent an OOM kill', async () => {
    const spec = workerSpec({ command: 'exec sleep 30' });
    const id = cleanup.container(await createAndStart(pod.docker, spec));
    let killed = false;
    const exited = waitForExit(pod.docker, id, { killSent: () => killed });
    killed = true;
    await pod.docker.getContainer(id).kill({ signal: 'SIGKILL' });
    expect(await exited).toMatchObject({ exitCode: 137, oomKilled: false });
  });

  it('trusts the container state when it reports OOM (cgroup v2 hosts)', () => {
    expect(isOomKill({ stateOomKilled: true, evidence: false, exitCode: 137, killSent: false })).toBe(true);
    expect(isOomKill({ stateOomKilled: false, evidence: true, exitCode: 137, killSent: true })).toBe(false);
    expect(isOomKill({ stateOomKilled: false, evidence: true, exitCode: 0, killSent: false })).toBe(false);
    expect(isOomKill({ stateOomKilled: false, evidence: false, exitCode: 137, killSent: false })).toBe(false);
  });
});

describe('killWithGrace', () => {
  it('SIGKILLs a job that ignores SIGTERM once the grace is over (137)', async () => {
    const spec = workerSpec({ command: 'trap "echo got-term" TERM; echo ready; while true; do sleep 0.1; done' });
    const id = cleanup.container(await createAndStart(pod.docker, spec));
    await waitForOutput(pod.docker, id, 'ready');
    const started = Date.now();
    expect(await killWithGrace(pod.docker, id, 1000)).toBe('sigkilled');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect((await waitForExit(pod.docker, id, { killSent: () => true })).exitCode).toBe(137);
    await waitForOutput(pod.docker, id, 'got-term');
  });

  it('lets a job that exits on SIGTERM end with 143', async () => {
    const spec = workerSpec({ command: 'echo ready; exec sleep 30' });
    const id = cleanup.container(await createAndStart(pod.docker, spec));
    await waitForOutput(pod.docker, id, 'ready');
    expect(await killWithGrace(pod.docker, id, 5000)).toBe('exited-on-sigterm');
    expect((await waitForExit(pod.docker, id, { killSent: () => true })).exitCode).toBe(143);
  });

  it('reports a container that is no longer running', async () => {
    const { id } = await run(workerSpec());
    expect(await killWithGrace(pod.docker, id, 1000)).toBe('not-running');
  });
});

describe('listJobContainers and removeContainer', () => {
  it('lists job containers by label, whatever their state, and removes them', async () => {
    const running = workerSpec({ jobType: 'agent', command: undefined, task: 'exec sleep 30' });
    const exited = workerSpec();
    const runningId = cleanup.container(await createAndStart(pod.docker, running));
    const exitedId = (await run(exited)).id;
    const unlabelled = await pod.docker.createContainer({ Image: TEST_IMAGE, Cmd: ['true'] });
    cleanup.container(unlabelled.id);

    const ours = (await listJobContainers(pod.docker)).filter((c) => [running.jobId, exited.jobId].includes(c.jobId));
    expect(ours).toHaveLength(2);
    expect(ours.find((c) => c.jobId === running.jobId)).toMatchObject({
      id: runningId, name: `job_${running.jobId}`, jobType: 'agent', state: 'running',
    });
    expect(ours.find((c) => c.jobId === exited.jobId)).toMatchObject({ id: exitedId, jobType: 'worker', state: 'exited' });
    expect((await listJobContainers(pod.docker)).some((c) => c.id === unlabelled.id)).toBe(false);

    await removeContainer(pod.docker, runningId);
    await removeContainer(pod.docker, exitedId);
    await removeContainer(pod.docker, exitedId);
    expect((await listJobContainers(pod.docker)).filter((c) => [runningId, exitedId].includes(c.id))).toEqual([]);
  });
});

describe('ensureImage', () => {
  it('does nothing for a present image', async () => {
    const progress: string[] = [];
    expect(await ensureImage(pod.docker, TEST_IMAGE, (l) => progress.push(l))).toBe('present');
    expect(progress).toEqual([]);
  });

  it('throws a clear error when the pull fails', async () => {
    const progress: string[] = [];
    await expect(ensureImage(pod.docker, 'localhost/flashpods-missing:test', (l) => progress.push(l)))
      .rejects.toThrow(/^image pull failed for localhost\/flashpods-missing:test: .+/);
    expect(progress[0]).toBe('Pulling image localhost/flashpods-missing:test');
  });
});
