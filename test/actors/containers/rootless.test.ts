import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { chownSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import { createAndStart, waitForExit } from '../../../actors/containers/podman-client.ts';
import { startLogCapture, type LogCapture } from '../../../actors/containers/log-capture.ts';
import { startRootlessPodmanService, type RootlessPodmanService } from '../../support/podman.ts';
import { Cleanup, tempDir, workerSpec } from './helpers.ts';

let podman: RootlessPodmanService;
let docker: Docker;
const cleanup = new Cleanup();

beforeAll(async () => {
  podman = await startRootlessPodmanService();
  docker = new Docker({ socketPath: podman.socketPath });
});

afterAll(async () => {
  if (docker) await cleanup.run(docker);
  await podman?.stop();
});

describe('rootless job containers (user flashpods)', () => {
  it('run as the host flashpods uid with keep-id, on slirp4netns, owning what they write to /artifacts', async () => {
    const spec = workerSpec({ rootless: true, command: 'id -u; id -g; echo result > /artifacts/out.txt' });
    chownSync(spec.artifactsDir, podman.uid, podman.gid);
    const path = join(tempDir('logs'), 'job.log');
    let capture: LogCapture | undefined;
    const id = cleanup.container(await createAndStart(docker, spec, async (created) => {
      capture = await startLogCapture(docker, created, { path });
    }));
    const exit = await waitForExit(docker, id);
    await capture!.done;
    const output = readFileSync(path, 'utf8').replace(/^\[[^\]]+\] /gm, '');

    expect(exit.exitCode).toBe(0);
    expect(output).toContain(`${podman.uid}\n`);
    expect(output).toContain(`${podman.gid}\n`);
    const artifact = join(spec.artifactsDir, 'out.txt');
    expect(readFileSync(artifact, 'utf8')).toBe('result\n');
    expect(statSync(artifact).uid).toBe(podman.uid);
    expect((await docker.getContainer(id).inspect()).HostConfig.NetworkMode).toBe('slirp4netns');
  });
});
