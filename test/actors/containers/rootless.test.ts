import { describe, it, expect } from 'vitest';
import { chownSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createAndStart, waitForExit } from '../../../actors/containers/podman-client.ts';
import { startLogCapture, type LogCapture } from '../../../actors/containers/log-capture.ts';
import { startRootlessPodmanService } from '../../support/podman.ts';
import { podmanForFile, tempDir, workerSpec } from './helpers.ts';

const pod = podmanForFile(startRootlessPodmanService);
const { cleanup } = pod;

describe('rootless job containers (user flashpods)', () => {
  it('run as the host flashpods uid with keep-id, on slirp4netns, owning what they write to /artifacts', async () => {
    const spec = workerSpec({ rootless: true, command: 'id -u; id -g; echo result > /artifacts/out.txt' });
    chownSync(spec.artifactsDir, pod.service.uid, pod.service.gid);
    const path = join(tempDir('logs'), 'job.log');
    let capture: LogCapture | undefined;
    const id = cleanup.container(await createAndStart(pod.docker, spec, async (created) => {
      capture = await startLogCapture(pod.docker, created, { path });
    }));
    const exit = await waitForExit(pod.docker, id);
    await capture!.done;
    const output = readFileSync(path, 'utf8').replace(/^\[[^\]]+\] /gm, '');

    expect(exit.exitCode).toBe(0);
    expect(output).toContain(`${pod.service.uid}\n`);
    expect(output).toContain(`${pod.service.gid}\n`);
    const artifact = join(spec.artifactsDir, 'out.txt');
    expect(readFileSync(artifact, 'utf8')).toBe('result\n');
    expect(statSync(artifact).uid).toBe(pod.service.uid);
    expect((await pod.docker.getContainer(id).inspect()).HostConfig.NetworkMode).toBe('slirp4netns');
  });
});
