/**
 * Helpers for the token actor tests: the actor under a real in-process Supervisor with a
 * captured log, HTTP over the token socket from the host, job-like containers on the test's
 * rootful Podman with the SPIRE and token sockets mounted, and a static HTTP-over-unix client
 * (unix-get, Go stdlib only) for busybox containers.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { loadConfig, type FlashpodsConfig } from '../../../actors/contract/config.ts';
import { createLogger } from '../../../runtime/log.ts';
import { Supervisor, type ChildSpec } from '../../../runtime/supervisor.ts';
import { TEST_IMAGE } from '../../support/podman.ts';
import { SPIRE_AGENT_BIN } from '../../support/spire.ts';

export const TOKENS_SPEC: ChildSpec = {
  name: 'tokens',
  module: new URL('../../../actors/tokens/actor.ts', import.meta.url).href,
  restart: 'permanent',
  maxRestarts: 0,
  periodMs: 60_000,
  backoff: { initialMs: 10, maxMs: 50 },
};

export interface RunningTokens {
  supervisor: Supervisor;
  config: FlashpodsConfig;
  lines: Array<Record<string, unknown>>;
  /** Every byte the supervisor logged, for "no secret / token in any log" checks. */
  raw: () => string;
  gaveUp: () => string | undefined;
}

export function tokensConfig(home: string, env: Record<string, string>): FlashpodsConfig {
  return loadConfig({ env: { FLASHPODS_HOME: home, ...env }, cwd: home });
}

/** Starts the tokens actor alone; rejects when the supervisor gives up during start. */
export async function startTokens(config: FlashpodsConfig, spec: Partial<ChildSpec> = {}): Promise<RunningTokens> {
  const stream = new PassThrough();
  const lines: Array<Record<string, unknown>> = [];
  let raw = '';
  stream.on('data', (chunk: Buffer) => {
    raw += chunk.toString();
    for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
  });
  let gaveUp: string | undefined;
  const supervisor = new Supervisor([{ ...TOKENS_SPEC, ...spec }], {
    logger: createLogger({ format: 'json', level: 'debug', destination: stream }),
    config,
    stopGraceMs: 2_000,
    onGiveUp: (reason) => (gaveUp = reason),
  });
  const running: RunningTokens = { supervisor, config, lines, raw: () => raw, gaveUp: () => gaveUp };
  try {
    await supervisor.start();
  } catch (err) {
    await supervisor.shutdown('start failed');
    throw Object.assign(err as Error, { running });
  }
  return running;
}

export interface HttpResult {
  status: number;
  body: any;
  headers: Record<string, string | string[] | undefined>;
}

/** GET over the token socket from the host. */
export function socketGet(socketPath: string, path: string, headers: Record<string, string> = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

const UNIX_GET_SRC = fileURLToPath(new URL('./unix-get/main.go', import.meta.url));

/** Builds (once per source version) the static unix-get client; returns its path. */
export function buildUnixGet(): string {
  const hash = createHash('sha256').update(readFileSync(UNIX_GET_SRC)).digest('hex').slice(0, 12);
  const dir = join(tmpdir(), 'fp-test-bin');
  const out = join(dir, `unix-get-${hash}`);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  execFileSync('go', ['build', '-trimpath', '-o', `${out}.tmp`, UNIX_GET_SRC], {
    cwd: dir,
    env: { ...process.env, CGO_ENABLED: '0', GO111MODULE: 'off', GOFLAGS: '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  renameSync(`${out}.tmp`, out);
  return out;
}

export const IN_CONTAINER = {
  agentSocket: '/run/spire/sockets/agent.sock',
  tokenSocket: '/run/flashpods/token.sock',
  spireAgent: '/fp/spire-agent',
  unixGet: '/fp/unix-get',
};

/**
 * Shell snippets for busybox containers. fetch_jwt AUDIENCES → the SVID into /tmp/svid and
 * "ID <spiffe id>" on stdout (or the agent's error on stderr); exchange → unix-get's output.
 * The SVID never goes to stdout unless a test prints it on purpose.
 */
export const SH_FUNCTIONS = `
fetch_jwt() {
  out=$(${IN_CONTAINER.spireAgent} api fetch jwt -audience "$1" -socketPath ${IN_CONTAINER.agentSocket} -output json) || return 1
  echo "$out" | sed -n 's/.*"spiffe_id":"\\([^"]*\\)".*/ID \\1/p'
  echo "$out" | sed -n 's/.*"svid":"\\([^"]*\\)".*/\\1/p' > /tmp/svid
}
exchange() { ${IN_CONTAINER.unixGet} -socket ${IN_CONTAINER.tokenSocket} -bearer-file /tmp/svid /tokens; }
`;

export interface ContainerRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface ContainerMounts {
  agentSocket: string;
  tokenSocket: string;
  unixGet: string;
}

function demux(buf: Buffer): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let pos = 0;
  while (pos + 8 <= buf.length) {
    const kind = buf[pos]!;
    const len = buf.readUInt32BE(pos + 4);
    const chunk = buf.subarray(pos + 8, pos + 8 + len);
    (kind === 2 ? err : out).push(chunk);
    pos += 8 + len;
  }
  return { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

/** Runs `script` in a busybox container with the given flashpods-job-type label (or none). */
export async function runJobContainer(docker: Docker, mounts: ContainerMounts, jobType: string | undefined, script: string): Promise<ContainerRun> {
  const t0 = Date.now();
  const container = await docker.createContainer({
    Image: TEST_IMAGE,
    Cmd: ['/bin/sh', '-c', `${SH_FUNCTIONS}\n${script}`],
    // Not `flashpods-job=true`: other suites' reconcilers on this machine's shared rootful Podman
    // storage remove such containers as orphans. SPIRE only looks at flashpods-job-type.
    Labels: { 'flashpods-test': 'tokens', ...(jobType !== undefined ? { 'flashpods-job-type': jobType } : {}) },
    HostConfig: {
      NetworkMode: 'none',
      Binds: [
        `${mounts.agentSocket}:${IN_CONTAINER.agentSocket}`,
        `${mounts.tokenSocket}:${IN_CONTAINER.tokenSocket}`,
        `${SPIRE_AGENT_BIN}:${IN_CONTAINER.spireAgent}:ro`,
        `${mounts.unixGet}:${IN_CONTAINER.unixGet}:ro`,
      ],
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
    },
  });
  try {
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    const logs = (await container.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
    return { exitCode: StatusCode, ...demux(logs), ms: Date.now() - t0 };
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
  }
}

/** Parses unix-get output: "STATUS <code>\n<json>". */
export function parseExchange(stdout: string): { status: number; body: any } {
  const m = /STATUS (\d+)\n(.*)/.exec(stdout);
  if (!m) throw new Error(`no STATUS line in container output: ${stdout}`);
  return { status: Number(m[1]), body: JSON.parse(m[2]!.trim()) };
}
