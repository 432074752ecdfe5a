/**
 * @module test/support/podman
 * Real Podman API services for tests: a rootful one and a rootless one running as user
 * `flashpods`, each on its own socket in a fresh temp dir, configured by the project's
 * scripts/containers.conf. Requires scripts/setup-podman.sh to have run.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, chownSync, mkdirSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const TEST_IMAGE = 'localhost/busybox:test';
export const ROOTLESS_USER = 'flashpods';
export const CONTAINERS_CONF = fileURLToPath(new URL('../../scripts/containers.conf', import.meta.url));

export interface PodmanService {
  socketPath: string;
  stop(): Promise<void>;
}

export interface RootlessPodmanService extends PodmanService {
  uid: number;
  gid: number;
}

const SETUP_HINT = 'run `bash scripts/setup-podman.sh` as root first';

export interface PodmanServiceOptions {
  /**
   * Run the service inside this network namespace (a name under /run/netns): its bridge
   * networks (rootful) or its slirp4netns processes (rootless), and so its containers' traffic,
   * then live there. Entered with
   * `nsenter --net` only — `ip netns exec` would remount /sys and hide the cgroup mounts runc needs.
   */
  netns?: string;
}

/**
 * Rootful `podman system service` on a temp socket (or on `socketPath`, to bring a stopped
 * service back where its clients expect it); resolves once `/_ping` answers.
 */
export async function startPodmanService(socketPath?: string, options: PodmanServiceOptions = {}): Promise<PodmanService> {
  const dir = socketPath ? undefined : mkdtempSync(join(tmpdir(), 'fp-podman-'));
  socketPath ??= join(dir!, 'podman.sock');
  const argv = ['podman', 'system', 'service', '--time=0', `unix://${socketPath}`];
  const [cmd, ...args] = options.netns ? ['nsenter', `--net=/run/netns/${options.netns}`, '--', ...argv] : argv;
  const child = spawn(cmd!, args, {
    env: { ...process.env, CONTAINERS_CONF },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  return await running(child, socketPath, dir);
}

/**
 * The same, as user `flashpods` with an XDG_RUNTIME_DIR it owns (rootless, user namespaces). With
 * `netns`, slirp4netns runs there too: its containers' connections leave from that namespace.
 */
export async function startRootlessPodmanService(options: PodmanServiceOptions = {}): Promise<RootlessPodmanService> {
  const uid = Number(idOf('-u'));
  const gid = Number(idOf('-g'));
  const runtimeDir = `/run/user/${uid}`;
  if (!existsSync(runtimeDir)) {
    mkdirSync(runtimeDir, { recursive: true, mode: 0o700 });
    chownSync(runtimeDir, uid, gid);
  }
  const dir = mkdtempSync(join(tmpdir(), 'fp-podman-rootless-'));
  chownSync(dir, uid, gid);
  const socketPath = join(dir, 'podman.sock');
  const argv = ['runuser', '-u', ROOTLESS_USER, '--', 'env', `HOME=/home/${ROOTLESS_USER}`, `XDG_RUNTIME_DIR=${runtimeDir}`,
    `CONTAINERS_CONF=${CONTAINERS_CONF}`, 'podman', 'system', 'service', '--time=0', `unix://${socketPath}`];
  const [cmd, ...args] = options.netns ? ['nsenter', `--net=/run/netns/${options.netns}`, '--', ...argv] : argv;
  const child = spawn(cmd!, args, { cwd: '/', stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  return { ...(await running(child, socketPath, dir)), uid, gid };
}

function idOf(flag: '-u' | '-g'): string {
  try {
    return execFileSync('id', [flag, ROOTLESS_USER], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`user ${ROOTLESS_USER} is missing: ${SETUP_HINT}`);
  }
}

async function running(child: ChildProcess, socketPath: string, dir: string | undefined): Promise<PodmanService> {
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4096); });
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code) => reject(new Error(`podman system service exited (${code}): ${stderr.trim()}`)));
    child.once('error', reject);
  });
  exited.catch(() => {});
  // The service runs as its own process group (runuser + podman): end that group, also when the
  // test process exits without stopping it.
  const endGroup = (): void => {
    try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* already gone */ }
  };
  process.once('exit', endGroup);
  const stop = async (): Promise<void> => {
    process.off('exit', endGroup);
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      endGroup();
      await gone;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.race([waitForPing(socketPath, 15_000), exited]);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message} (${SETUP_HINT}?)`);
  }
  return { socketPath, stop };
}

async function waitForPing(socketPath: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ping(socketPath)) return;
    if (Date.now() > deadline) throw new Error(`podman API on ${socketPath} did not answer /_ping`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', method: 'GET' }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}
