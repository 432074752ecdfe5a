/**
 * @module test/support/spire
 * A real SPIRE server + agent for tests, in a fresh temp dir, configured from the project's
 * templates scripts/spire/{server,agent}.conf: trust domain flashpods.local, the agent attested
 * with a join token as spiffe://flashpods.local/host, the docker workload attestor pointed at
 * the (rootful) Podman API socket the test started. Registration entries are created before the
 * agent starts, so its first sync already has them. Requires scripts/setup-spire.sh.
 * Does what scripts/spire/start.sh does, with process lifetimes tied to the test.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SPIRE_VERSION = 'v1.15.3';
export const SPIRE_BIN_DIR = process.env.FLASHPODS_SPIRE_BIN_DIR ?? `/usr/local/lib/flashpods/spire/${SPIRE_VERSION}`;
export const SPIRE_SERVER_BIN = join(SPIRE_BIN_DIR, 'spire-server');
/** Statically linked: can be bind-mounted into any container as a Workload API client. */
export const SPIRE_AGENT_BIN = join(SPIRE_BIN_DIR, 'spire-agent');
export const TRUST_DOMAIN_ID = 'spiffe://flashpods.local';
export const HOST_ID = `${TRUST_DOMAIN_ID}/host`;
const TEMPLATES = fileURLToPath(new URL('../../scripts/spire/', import.meta.url));
const SETUP_HINT = 'run `bash scripts/setup-spire.sh` as root first';

export interface EntrySpec {
  spiffeId: string;
  /** e.g. docker:label:flashpods-job-type:worker */
  selector: string;
  /** Per-entry JWT-SVID lifetime in seconds (default: the server's 5 min). */
  jwtSvidTtlSec?: number;
}

/** The two entries of spec/identity.md. */
export const FLASHPODS_ENTRIES: EntrySpec[] = [
  { spiffeId: `${TRUST_DOMAIN_ID}/worker`, selector: 'docker:label:flashpods-job-type:worker' },
  { spiffeId: `${TRUST_DOMAIN_ID}/agent`, selector: 'docker:label:flashpods-job-type:agent' },
];

export interface SpireOptions {
  /** Rootful Podman API socket (path) the docker attestor asks for labels. */
  podmanSocket: string;
  entries?: EntrySpec[];
  logLevel?: 'DEBUG' | 'INFO';
  /**
   * Run server and agent inside this network namespace (a name under /run/netns; entered with
   * `nsenter --net`), as on a host whose services all live in one namespace. Their unix sockets
   * are reachable from anywhere on the filesystem either way.
   */
  netns?: string;
  /** HCL added inside the agent's `plugins { }` block, e.g. a k8s WorkloadAttestor. */
  extraAgentPlugins?: string;
}

export interface Spire {
  dir: string;
  serverSocket: string;
  /** The Workload API socket (0777). */
  agentSocket: string;
  serverLog: string;
  agentLog: string;
  timings: { serverReadyMs: number; agentReadyMs: number };
  /** Runs `spire-server <args> -socketPath <serverSocket>`; resolves with stdout. */
  server(...args: string[]): Promise<string>;
  /** Registers an entry and waits until the agent has synced it (≤ ~10 s: server cache + agent sync). */
  createEntry(entry: EntrySpec): Promise<void>;
  /** Waits until the agent holds an SVID for each SPIFFE ID (it logs "Creating X509-SVID"). */
  waitForEntries(spiffeIds: string[], timeoutMs?: number): Promise<void>;
  /** Stops the agent, then starts it again on the same data dir and socket (no new join token needed). */
  restartAgent(options?: { downMs?: number }): Promise<void>;
  /** Everything SPIRE wrote to its logs so far. */
  logs(): string;
  stop(): Promise<void>;
}

function run(bin: string, args: string[], timeoutMs = 20_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${bin.split('/').pop()} ${args.join(' ')} failed: ${stderr.trim() || stdout.trim() || err.message}`));
      else resolve({ stdout, stderr });
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export function renderTemplate(name: 'server.conf' | 'agent.conf', values: Record<string, string>): string {
  let text = readFileSync(join(TEMPLATES, name), 'utf8');
  for (const [key, value] of Object.entries(values)) text = text.replaceAll(`@${key}@`, value);
  const left = /@[A-Z_]+@/.exec(text.replace(/^\s*#.*$/gm, ''));
  if (left) throw new Error(`${name}: placeholder ${left[0]} has no value`);
  return text;
}

interface Daemon {
  child: ChildProcess;
  stop(): Promise<void>;
}

function daemon(bin: string, args: string[], logPath: string, netns?: string): Daemon {
  const fd = openSync(logPath, 'a');
  // nsenter execs the daemon: the pid (and process group) stays the daemon's own.
  const [cmd, argv] = netns ? ['nsenter', [`--net=/run/netns/${netns}`, '--', bin, ...args]] : [bin, args];
  const child = spawn(cmd, argv, { stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  const kill = (): void => {
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch { /* gone */ }
  };
  process.once('exit', kill);
  return {
    child,
    async stop() {
      process.off('exit', kill);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      kill();
      const hard = setTimeout(() => {
        try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ }
      }, 5_000);
      await gone;
      clearTimeout(hard);
    },
  };
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number, died: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dead = died();
    if (dead) throw new Error(`${what}: ${dead}`);
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const tail = (path: string): string => {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
};

export async function startSpire(options: SpireOptions): Promise<Spire> {
  for (const bin of [SPIRE_SERVER_BIN, SPIRE_AGENT_BIN]) if (!existsSync(bin)) throw new Error(`${bin} is missing: ${SETUP_HINT}`);
  const dir = mkdtempSync(join(tmpdir(), 'fp-spire-'));
  chmodSync(dir, 0o755); // containers bind-mount the agent socket from here
  for (const d of ['server', 'agent', 'sockets']) mkdirSync(join(dir, d), { mode: d === 'sockets' ? 0o755 : 0o700 });
  const serverSocket = join(dir, 'server', 'api.sock');
  const agentSocket = join(dir, 'sockets', 'agent.sock');
  const serverLog = join(dir, 'server.log');
  const agentLog = join(dir, 'agent.log');
  const logLevel = options.logLevel ?? 'DEBUG';
  const port = await freePort();
  const daemons: Daemon[] = [];
  const server = (...args: string[]) => run(SPIRE_SERVER_BIN, [...args, '-socketPath', serverSocket]).then((r) => r.stdout);
  const exited = (d: Daemon, log: string) => () =>
    d.child.exitCode !== null || d.child.signalCode !== null ? `exited (${d.child.exitCode ?? d.child.signalCode}):\n${tail(log)}` : undefined;

  const stop = async (): Promise<void> => {
    for (const d of daemons.reverse()) await d.stop();
    if (!process.env.FLASHPODS_KEEP_SPIRE) rmSync(dir, { recursive: true, force: true });
  };

  try {
    const t0 = Date.now();
    writeFileSync(join(dir, 'server.conf'), renderTemplate('server.conf', {
      DATA_DIR: join(dir, 'server'), SOCKET_PATH: serverSocket, BIND_PORT: String(port), LOG_LEVEL: logLevel,
    }));
    const srv = daemon(SPIRE_SERVER_BIN, ['run', '-config', join(dir, 'server.conf')], serverLog, options.netns);
    daemons.push(srv);
    await until('spire-server', () => run(SPIRE_SERVER_BIN, ['healthcheck', '-socketPath', serverSocket], 5_000).then(() => true, () => false), 30_000, exited(srv, serverLog));
    const serverReadyMs = Date.now() - t0;

    const bundlePath = join(dir, 'bootstrap.pem');
    writeFileSync(bundlePath, await server('bundle', 'show', '-format', 'pem'));
    const tokenOut = await server('token', 'generate', '-spiffeID', HOST_ID, '-ttl', '600');
    const joinToken = /Token:\s*(\S+)/.exec(tokenOut)?.[1];
    if (!joinToken) throw new Error(`spire-server token generate printed no token: ${tokenOut}`);
    const register = async (e: EntrySpec): Promise<void> => {
      await server('entry', 'create', '-parentID', HOST_ID, '-spiffeID', e.spiffeId, '-selector', e.selector,
        ...(e.jwtSvidTtlSec ? ['-jwtSVIDTTL', String(e.jwtSvidTtlSec)] : []));
    };
    const entries = options.entries ?? FLASHPODS_ENTRIES;
    for (const e of entries) await register(e);

    const t1 = Date.now();
    const agentConf = renderTemplate('agent.conf', {
      DATA_DIR: join(dir, 'agent'), SERVER_PORT: String(port), SOCKET_PATH: agentSocket, TRUST_BUNDLE: bundlePath,
      PODMAN_SOCKET: `unix://${options.podmanSocket}`,
      // Unused in these rootful tests, but must hold exactly one %d.
      PODMAN_SOCKET_TEMPLATE: 'unix:///run/user/%d/podman/podman.sock',
      LOG_LEVEL: logLevel,
    });
    // The template ends with the closing brace of its `plugins` block.
    writeFileSync(join(dir, 'agent.conf'), options.extraAgentPlugins ? agentConf.replace(/}\s*$/, `${options.extraAgentPlugins}\n}\n`) : agentConf);
    // The join token is single use: a restarted agent re-uses the SVID in its data dir.
    const startAgent = async (): Promise<Daemon> => {
      const d = daemon(SPIRE_AGENT_BIN, ['run', '-config', join(dir, 'agent.conf'), '-joinToken', joinToken], agentLog, options.netns);
      daemons.push(d);
      await until('spire-agent', () => run(SPIRE_AGENT_BIN, ['healthcheck', '-socketPath', agentSocket], 5_000).then(() => true, () => false), 30_000, exited(d, agentLog));
      return d;
    };
    let agent = await startAgent();
    // The server refreshes its entry cache every 5 s and the agent syncs every 5 s: entries
    // registered just now reach the agent within ~10 s. "Ready" means the agent holds them.
    const synced = (ids: string[]) => {
      const lines = readFileSync(agentLog, 'utf8').split('\n').filter((l) => l.includes('msg="Creating X509-SVID"'));
      return ids.every((id) => lines.some((l) => l.includes(`spiffe_id="${id}"`)));
    };
    const waitForEntries = (ids: string[], timeoutMs = 20_000) =>
      until(`spire-agent sync of ${ids.join(', ')}`, async () => synced(ids), timeoutMs, () => exited(agent, agentLog)());
    await waitForEntries([...new Set(entries.map((e) => e.spiffeId))]);
    const agentReadyMs = Date.now() - t1;

    return {
      dir, serverSocket, agentSocket, serverLog, agentLog,
      timings: { serverReadyMs, agentReadyMs },
      server, waitForEntries,
      async createEntry(e) {
        await register(e);
        await waitForEntries([e.spiffeId]);
      },
      async restartAgent({ downMs = 0 } = {}) {
        await agent.stop();
        daemons.splice(daemons.indexOf(agent), 1);
        await new Promise((r) => setTimeout(r, downMs));
        agent = await startAgent();
      },
      logs: () => [serverLog, agentLog].map((p) => (existsSync(p) ? readFileSync(p, 'utf8') : '')).join('\n'),
      stop,
    };
  } catch (err) {
    await stop();
    throw new Error(`SPIRE did not start (${SETUP_HINT}?): ${(err as Error).message}`);
  }
}
