/**
 * @module test/support/stack
 * A whole Flashpods API unit for end-to-end tests: a real rootful Podman API service and a real
 * `flashpods serve` process pointed at it, with test-sized timings and the local busybox image.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { openDatabase } from '../../actors/store/database.ts';
import { startPodmanService, TEST_IMAGE, type PodmanService } from './podman.ts';
import { startServer, type RunningServer } from './server.ts';

export interface Stack {
  server: RunningServer;
  podman: PodmanService;
  docker: Docker;
  home: string;
  env: Record<string, string>;
  /** Starts a fresh server process on the same home and Podman (after a crash or stop). */
  restartServer(): Promise<RunningServer>;
  stop(): Promise<void>;
}

export const testEnv = (home: string, socketPath: string, extra: Record<string, string> = {}): Record<string, string> => ({
  FLASHPODS_PODMAN_SOCKET: socketPath,
  FLASHPODS_PODMAN_ROOTLESS: 'false',
  FLASHPODS_CONTAINER_NETWORK: 'none',
  FLASHPODS_DEFAULT_IMAGE: TEST_IMAGE,
  FLASHPODS_AGENT_IMAGE: TEST_IMAGE,
  FLASHPODS_CAPACITY_CPUS: '8',
  FLASHPODS_CAPACITY_MEMORY_GB: '16',
  FLASHPODS_KILL_GRACE_SECONDS: '2',
  FLASHPODS_RECONCILE_INTERVAL_SECONDS: '1',
  FLASHPODS_RATE_LIMIT_PER_SECOND: '1000',
  FLASHPODS_RATE_LIMIT_BURST: '1000',
  FLASHPODS_HOME: home,
  ...extra,
});

export async function startStack(extra: Record<string, string> = {}): Promise<Stack> {
  const podman = await startPodmanService();
  const home = mkdtempSync(join(tmpdir(), 'fp-stack-'));
  const env = testEnv(home, podman.socketPath, extra);
  const docker = new Docker({ socketPath: podman.socketPath });
  const stack: Stack = {
    server: await startServer(env, home),
    podman, docker, home, env,
    async restartServer() {
      stack.server = await startServer(env, home);
      return stack.server;
    },
    async stop() {
      await stack.server.stop('SIGKILL');
      const leftovers = await docker.listContainers({ all: true, filters: { label: [`flashpods-instance=${instanceOf(home, env.FLASHPODS_DB)}`] } });
      await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
      await stack.podman.stop();
    },
  };
  return stack;
}

/** The instance id that labels the containers of the server living in `home`. */
export function instanceOf(home: string, dbPath = join(home, 'db', 'flashpods.db')): string {
  const db = openDatabase(dbPath, { readonly: true });
  try {
    return db.prepare("SELECT value FROM meta WHERE key = 'instance_id'").pluck().get() as string;
  } finally {
    db.close();
  }
}

/**
 * Job containers this stack is responsible for: its own, and unlabelled `flashpods-job=true`
 * ones (which it treats as orphans). Other instances sharing the Podman are left out.
 */
export async function stackContainers(stack: Stack, all = true): Promise<Docker.ContainerInfo[]> {
  const mine = instanceOf(stack.home, stack.env.FLASHPODS_DB);
  const found = await stack.docker.listContainers({ all, filters: { label: ['flashpods-job=true'] } });
  return found.filter((c) => c.Labels['flashpods-instance'] === undefined || c.Labels['flashpods-instance'] === mine);
}

/** Writes files into a new rsync-style upload directory; returns its id. */
export function makeUpload(home: string, files: Record<string, string>): string {
  const id = `upload_${Math.random().toString(36).slice(2, 8)}${Date.now().toString(36).slice(-6)}`.slice(0, 19);
  for (const [name, content] of Object.entries(files)) {
    const path = join(home, 'uploads', id, name);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, content);
  }
  return id;
}

export async function json(res: Response): Promise<any> {
  return res.json();
}

/** POST /jobs and return the body (asserting nothing). */
export async function createJob(server: RunningServer, body: Record<string, unknown>): Promise<{ status: number; body: any }> {
  const res = await server.fetch('/jobs', { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  return { status: res.status, body: await res.json() };
}

/**
 * Long-polls until the job is terminal. A cancelled job is terminal at once; with
 * `exitCode: true` this also waits for its container's exit code to be recorded.
 */
export async function waitForJob(server: RunningServer, id: string, options: { exitCode?: boolean; timeoutMs?: number } = {}): Promise<any> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    const job: any = await (await server.fetch(`/jobs/${id}?wait=5`)).json();
    const terminal = ['completed', 'failed', 'timed_out', 'cancelled', 'expired'].includes(job.status);
    if (terminal && (!options.exitCode || job.exit_code !== null)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} did not finish: ${JSON.stringify(job)}`);
    if (terminal) await new Promise((r) => setTimeout(r, 200));
  }
}

/** Polls until `check` holds. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
