/**
 * @module test/actors/containers/helpers
 * Job specs, temp dirs and cleanup shared by the container tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { afterAll, beforeAll } from 'vitest';
import type { JobContainerSpec } from '../../../actors/containers/container-spec.ts';
import { loadConfig } from '../../../actors/contract/config.ts';
import { removeContainer } from '../../../actors/containers/podman-client.ts';
import { TEST_IMAGE, type PodmanService } from '../../support/podman.ts';

/** Unique per call, so concurrent test runs on the same Podman never collide. */
export function newJobId(): string {
  return `test-${randomBytes(6).toString('hex')}`;
}

const tempDirs = new Set<string>();

/** A fresh directory, removed by Cleanup.run(). */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `fp-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

export function workerSpec(overrides: Partial<JobContainerSpec> = {}): JobContainerSpec {
  return {
    jobId: newJobId(),
    jobType: 'worker',
    image: TEST_IMAGE,
    command: 'true',
    cpus: 1,
    memoryGb: 0.25,
    pidsLimit: loadConfig({ env: {} }).limits.pidsMax,
    artifactsDir: tempDir('artifacts'),
    rootless: false,
    networkMode: 'slirp4netns',
    // Another Flashpods instance sharing this Podman (a dev server, a concurrent test run) must not
    // remove these containers as its orphans.
    instanceId: 'container-tests',
    ...overrides,
  };
}

/** Tracks the containers a test file creates; run() removes them and every tempDir(). */
export class Cleanup {
  private readonly containers = new Set<string>();

  container(id: string): string {
    this.containers.add(id);
    return id;
  }

  async run(docker: Docker): Promise<void> {
    await Promise.all([...this.containers].map((id) => removeContainer(docker, id)));
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
    tempDirs.clear();
  }
}

export interface PodmanForFile<S extends PodmanService> {
  readonly service: S;
  readonly docker: Docker;
  readonly cleanup: Cleanup;
}

/**
 * A Podman API service for the whole test file (started before its tests), and the removal of
 * the containers and temp dirs they registered with `cleanup` (after them).
 */
export function podmanForFile<S extends PodmanService>(start: () => Promise<S>): PodmanForFile<S> {
  let service: S | undefined;
  let docker: Docker | undefined;
  const cleanup = new Cleanup();
  beforeAll(async () => {
    const started = await start();
    service = started;
    docker = new Docker({ socketPath: started.socketPath });
  });
  afterAll(async () => {
    if (docker) await cleanup.run(docker);
    await service?.stop();
  });
  return {
    get service() {
      return service!;
    },
    get docker() {
      return docker!;
    },
    cleanup,
  };
}

/** Resolves once the container's output contains `text` (polling its logs). */
export async function waitForOutput(docker: Docker, id: string, text: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const logs = await docker.getContainer(id).logs({ stdout: true, stderr: true, follow: false });
    if (logs.toString('latin1').includes(text)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`container ${id} never printed ${text}`);
}
