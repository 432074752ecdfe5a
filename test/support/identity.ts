/**
 * @module test/support/identity
 * The whole identity path for end-to-end tests, every part real: a rootful Podman API service;
 * a SPIRE server + agent whose docker attestor reads that Podman (test/support/spire.ts); the
 * token unit as its own process (`flashpods serve --actors tokens`, the only one with the
 * secrets file); and a Flashpods API unit (`flashpods serve`) whose job containers get the SPIRE
 * and token sockets mounted (FLASHPODS_SPIRE_SOCKET, FLASHPODS_TOKEN_SOCKET) and run the agent
 * test image built by scripts/build-test-images.sh. Plus git uploads whose remote is a bare
 * repository inside the upload, so a job container can push to it.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { startPodmanService, type PodmanService } from './podman.ts';
import { startServer, type RunningServer } from './server.ts';
import { startSpire, type Spire } from './spire.ts';
import { instanceOf, makeUpload, testEnv } from './stack.ts';

/**
 * Built by scripts/build-test-images.sh. A machine that can build the production images
 * (images/{agent,worker}/Containerfile) may point these at them instead — the agent one with
 * FLASHPODS_AGENT_CMD set to a stand-in that runs $FLASHPODS_TASK as a shell script.
 */
export const AGENT_TEST_IMAGE = process.env.FLASHPODS_IDENTITY_AGENT_IMAGE ?? 'localhost/flashpods-agent:test';
export const WORKER_TEST_IMAGE = process.env.FLASHPODS_IDENTITY_WORKER_IMAGE ?? 'localhost/flashpods-worker:test';
const BUILD_HINT = 'run `bash scripts/build-test-images.sh` as root first';
const cli = new URL('../../cli/flashpods.mjs', import.meta.url).pathname;

export interface Secrets {
  anthropic_api_key: string;
  github_token: string;
}

export function testSecrets(): Secrets {
  return { anthropic_api_key: `sk-ant-test-${randomBytes(16).toString('hex')}`, github_token: `ghp_test${randomBytes(16).toString('hex')}` };
}

/** Throws with the build hint unless both identity test images are in the Podman storage. */
export async function requireTestImages(docker: Docker): Promise<void> {
  for (const image of [AGENT_TEST_IMAGE, WORKER_TEST_IMAGE]) {
    try {
      await docker.getImage(image).inspect();
    } catch {
      throw new Error(`${image} is missing: ${BUILD_HINT}`);
    }
  }
}

export interface TokenUnit {
  socket: string;
  /** Everything every run of the unit printed (JSON log lines). */
  output(): string;
  lines(): Array<Record<string, unknown>>;
  running(): boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `flashpods serve --actors tokens` in `home` (secrets file home/secrets.json, socket
 * home/run/token.sock), asking the SPIRE agent at `spireSocket` for the JWT bundle.
 */
export function tokenUnit(home: string, spireSocket: string, secrets: Secrets): TokenUnit {
  mkdirSync(join(home, 'run'), { recursive: true });
  const secretsFile = join(home, 'secrets.json');
  writeFileSync(secretsFile, JSON.stringify(secrets), { mode: 0o600 });
  const socket = join(home, 'run', 'token.sock');
  let out = '';
  let child: ChildProcess | undefined;
  const alive = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  const unit: TokenUnit = {
    socket,
    output: () => out,
    lines: () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>),
    running: alive,
    async start() {
      const from = out.length;
      const c = spawn(process.execPath, [cli, 'serve', '--actors', 'tokens'], {
        cwd: home,
        env: {
          ...process.env, FLASHPODS_HOME: home, FLASHPODS_SECRETS_FILE: secretsFile, FLASHPODS_TOKEN_SOCKET: socket,
          FLASHPODS_SPIRE_SOCKET: spireSocket, FLASHPODS_LOG_LEVEL: 'debug',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child = c;
      c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const deadline = Date.now() + 30_000;
      while (!out.slice(from).includes('"event":"ready"')) {
        if (!alive()) throw new Error(`the token unit exited during start:\n${out.slice(from)}`);
        if (Date.now() > deadline) throw new Error(`the token unit did not start:\n${out.slice(from)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      if (!alive()) return;
      const gone = once(child!, 'exit');
      child!.kill('SIGTERM');
      await gone;
    },
  };
  return unit;
}

export interface IdentityStack {
  podman: PodmanService;
  docker: Docker;
  spire: Spire;
  tokens: TokenUnit;
  secrets: Secrets;
  server: RunningServer;
  /** FLASHPODS_HOME of the API unit (uploads, artifacts, logs); holds no secret. */
  home: string;
  tokensHome: string;
  timings: Record<string, number>;
  stop(): Promise<void>;
}

export async function startIdentityStack(): Promise<IdentityStack> {
  const timings: Record<string, number> = {};
  const t0 = Date.now();
  const podman = await startPodmanService();
  const docker = new Docker({ socketPath: podman.socketPath });
  const cleanups: Array<() => Promise<void>> = [() => podman.stop()];
  const undo = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  try {
    await requireTestImages(docker);
    const t1 = Date.now();
    const spire = await startSpire({ podmanSocket: podman.socketPath });
    cleanups.push(() => spire.stop());
    timings.spireReadyMs = Date.now() - t1;

    const secrets = testSecrets();
    const tokensHome = mkdtempSync(join(tmpdir(), 'fp-tokens-unit-'));
    cleanups.push(async () => rmSync(tokensHome, { recursive: true, force: true }));
    const tokens = tokenUnit(tokensHome, spire.agentSocket, secrets);
    const t2 = Date.now();
    await tokens.start();
    cleanups.push(() => tokens.stop());
    timings.tokenUnitReadyMs = Date.now() - t2;

    const home = mkdtempSync(join(tmpdir(), 'fp-identity-'));
    // `serve` creates dirname(FLASHPODS_TOKEN_SOCKET) but not that of the API's own unix socket
    // (dev default home/run/api.sock); the token socket lives in the token unit's home here.
    mkdirSync(join(home, 'run'));
    cleanups.push(async () => rmSync(home, { recursive: true, force: true }));
    const env = testEnv(home, podman.socketPath, {
      FLASHPODS_SPIRE_SOCKET: spire.agentSocket,
      FLASHPODS_TOKEN_SOCKET: tokens.socket,
      FLASHPODS_AGENT_IMAGE: AGENT_TEST_IMAGE,
    });
    const t3 = Date.now();
    const server = await startServer(env, home);
    timings.serverReadyMs = Date.now() - t3;
    cleanups.push(async () => {
      await server.stop();
      const leftovers = await docker.listContainers({ all: true, filters: { label: [`flashpods-instance=${instanceOf(home)}`] } });
      await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
    });
    timings.stackReadyMs = Date.now() - t0;
    return { podman, docker, spire, tokens, secrets, server, home, tokensHome, timings, stop: undo };
  } catch (err) {
    await undo();
    throw err;
  }
}

export interface GitUpload {
  id: string;
  dir: string;
  /** The commit the upload's `main` is at (also the remote's main). */
  baseSha: string;
}

/** Where the bare "remote" lives inside the upload, as the job container sees it. */
export const REMOTE_IN_CONTAINER = '/work/.git/flashpods-remote.git';

/**
 * An rsync-style upload that is a git clone of a bare repository kept inside its own .git
 * (git ignores it there; /work is the only host directory a job container gets, so the remote
 * must travel with it): `main` committed and pushed, `origin` = REMOTE_IN_CONTAINER tracking it.
 * The bare repository's post-receive hook appends what each push delivered (ref, commit, author,
 * subject) to /artifacts/remote-received.txt — the remote's own account of the push, readable
 * after the job (the sealed upload is deleted once the container is gone).
 */
export function makeGitUpload(home: string, files: Record<string, string>): GitUpload {
  const id = makeUpload(home, files);
  const dir = join(home, 'uploads', id);
  const git = (...args: string[]) => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8' }).trim();
  git('init', '-q', '-b', 'main');
  git('add', '-A');
  git('-c', 'user.name=Laptop User', '-c', 'user.email=laptop@example.test', 'commit', '-q', '-m', 'initial');
  const bare = join(dir, '.git', 'flashpods-remote.git');
  execFileSync('git', ['init', '-q', '--bare', bare]);
  git('push', '-q', bare, 'main');
  git('remote', 'add', 'origin', REMOTE_IN_CONTAINER);
  git('update-ref', 'refs/remotes/origin/main', 'HEAD');
  git('config', 'branch.main.remote', 'origin');
  git('config', 'branch.main.merge', 'refs/heads/main');
  const hook = join(bare, 'hooks', 'post-receive');
  writeFileSync(hook, `#!/bin/sh
# Test remote: record what each push delivered where the test can read it after the job.
while read -r old new ref; do
  printf '%s %s %s|%s\\n' "$ref" "$new" "$(git log -1 --format='%an <%ae>' "$new")" "$(git log -1 --format=%s "$new")"
done >>/artifacts/remote-received.txt
`);
  chmodSync(hook, 0o755);
  return { id, dir, baseSha: git('rev-parse', 'HEAD') };
}
