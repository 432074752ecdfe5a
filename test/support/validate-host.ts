/**
 * @module test/support/validate-host
 * A throw-away Flashpods host in network namespaces on which every check of `flashpods validate`
 * can pass, every part real:
 *
 * - the namespace topology of test/support/netns.ts narrowed to the laptop link (`wg0`,
 *   10.0.0.1 ↔ 10.0.0.2) and an ordinary link to an "outside" namespace (`eth1`, 10.0.1.1 ↔
 *   10.0.1.2) — without netns.ts's stand-in `podman0` veth, because here a real rootful Podman
 *   service runs INSIDE the host namespace and creates its own `podman0` bridge there: job and
 *   probe containers (network mode `bridge`) reach the host through a real Podman bridge;
 * - the ruleset nix/firewall/flashpods.nft loaded in the host namespace;
 * - a real SPIRE server + agent (test/support/spire.ts) in the host namespace, the docker
 *   attestor reading that Podman;
 * - the token unit (`flashpods serve --actors tokens`) as user `flashpods-tokens`, the only reader
 *   of the secrets file, and the API unit (`flashpods serve`, FLASHPODS_LISTEN=10.0.0.1:8080 plus
 *   its unix socket) as user `flashpods`, like the production units; the rsync daemon (root) on
 *   10.0.0.1:873 from the project's rsyncd template (hosts allow 10.0.0.2);
 * - sockets as the Nix modules make them: podman.sock and api.sock flashpods:flashpods 0660 in a
 *   flashpods 0750 run directory; token.sock flashpods-tokens:flashpods 0660 in a directory of
 *   its own, flashpods-tokens:flashpods 2750 (like /run/flashpods-tokens); the SPIRE agent
 *   socket root:root 0777.
 *
 * Processes enter the host namespace with `nsenter --net` (not `ip netns exec`, which remounts
 * /sys and hides the cgroup mounts runc needs). Everything is torn down by destroy().
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Docker from 'dockerode';
import { CONTAINERS_CONF, ROOTLESS_USER, startPodmanService, TEST_IMAGE, type PodmanService } from './podman.ts';
import { FIREWALL_RULESET, LINKS, runAsync, Topology } from './netns.ts';
import { renderRsyncdConf, TRANSFER_HOOK } from './rsyncd.ts';
import { startSpire, type Spire } from './spire.ts';
import { instanceOf, testEnv } from './stack.ts';

/** The token unit's own user (nix/modules/token-service.nix; scripts/setup-podman.sh makes it here). */
export const TOKEN_USER = 'flashpods-tokens';
const CLI = fileURLToPath(new URL('../../cli/flashpods.mjs', import.meta.url));
const VALIDATE_MODULE = pathToFileURL(fileURLToPath(new URL('../../cli/commands/validate.ts', import.meta.url))).href;
const REPO = fileURLToPath(new URL('../..', import.meta.url));

export const HOST_ADDR = '10.0.0.1';
export const LAPTOP_ADDR = '10.0.0.2';
/** The "outside world" of the test: a namespace behind eth1, never the real internet. */
export const OUTSIDE_ADDR = '10.0.1.2';
export const API_PORT = 8080;
export const RSYNC_PORT = 873;

export interface NsProcess {
  child: ChildProcess;
  output(): string;
  running(): boolean;
  stop(): Promise<void>;
}

/** Starts argv inside network namespace `ns` (optionally as uid:gid, no supplementary groups). */
export function nsProcess(ns: string, argv: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; user?: { uid: number; gid: number } } = {}): NsProcess {
  const user = options.user ? [`--setuid=${options.user.uid}`, `--setgid=${options.user.gid}`] : [];
  const child = spawn('nsenter', [`--net=/run/netns/${ns}`, ...user, '--', ...argv], {
    env: options.env ?? process.env,
    cwd: options.cwd ?? '/',
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const running = () => child.exitCode === null && child.signalCode === null;
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch { /* gone */ }
  };
  const onExit = () => killGroup('SIGKILL');
  process.once('exit', onExit);
  return {
    child,
    output: () => out,
    running,
    async stop() {
      process.off('exit', onExit);
      if (!running()) return;
      const gone = once(child, 'exit');
      killGroup('SIGTERM');
      const hard = setTimeout(() => killGroup('SIGKILL'), 10_000);
      await gone;
      clearTimeout(hard);
    },
  };
}

/** Like Promise.all, but waits for every branch (so teardown never races a half-started one). */
async function settled(work: Array<Promise<unknown>>): Promise<void> {
  const failed = (await Promise.allSettled(work)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** `flashpods serve` logs this once every actor it runs is ready (each actor's own `ready` has an `actor` field). */
const unitReady = (out: string) => out.includes('"event":"ready","actors"');

async function waitFor(what: string, check: () => boolean | Promise<boolean>, proc: NsProcess | undefined, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (proc && !proc.running()) throw new Error(`${what}: the process exited:\n${proc.output().slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${proc ? `:\n${proc.output().slice(-3000)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface ValidateRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The parsed --json report, when --json was given and it parsed. */
  report?: { ok: boolean; passed: number; failed: number; skipped: number; checks: Array<{ id: string; status: string; detail: string; hint?: string; ms: number }> };
  ms: number;
}

export class ValidateHost {
  readonly timings: Record<string, number> = {};
  readonly secrets = { anthropic_api_key: `sk-ant-test-${randomBytes(16).toString('hex')}`, github_token: `ghp_test${randomBytes(16).toString('hex')}` };
  topo!: Topology;
  podman!: PodmanService;
  docker!: Docker;
  spire!: Spire;
  api!: NsProcess;
  tokens?: NsProcess;
  rsyncd!: NsProcess;
  /** Job and probe image: localhost/busybox:test with USER flashpods (see test/e2e/validate.test.ts). */
  image!: string;
  uid!: number;
  gid!: number;
  /** User flashpods-tokens (scripts/setup-podman.sh), the token unit's. */
  tokenUser!: { uid: number; gid: number };
  work!: string;
  home!: string;
  runDir!: string;
  /** Like /run/flashpods-tokens. */
  tokenRunDir!: string;
  /** FLASHPODS_* shared by the API unit, the token unit and validate (as the Nix units share them). */
  env!: Record<string, string>;
  private readonly others: NsProcess[] = [];

  get sockets() {
    return {
      podman: join(this.runDir, 'podman.sock'),
      token: join(this.tokenRunDir, 'token.sock'),
      api: join(this.runDir, 'api.sock'),
      spire: this.spire?.agentSocket ?? '',
    };
  }

  private async timed<T>(label: string, fn: () => Promise<T> | T): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.timings[label] = Math.round(performance.now() - t0);
    }
  }

  /** Builds and starts everything; on failure tears down what it made and throws. */
  static async start(): Promise<ValidateHost> {
    const h = new ValidateHost();
    try {
      await h.build();
    } catch (err) {
      await h.destroy().catch(() => undefined);
      throw err;
    }
    return h;
  }

  private async build(): Promise<void> {
    const t0 = performance.now();
    const id = async (flag: string, user: string) => {
      const r = await runAsync('id', [flag, user], 5_000);
      if (r.code !== 0) throw new Error(`user ${user} is missing: run \`bash scripts/setup-podman.sh\` as root first`);
      return Number(r.stdout.trim());
    };
    const [uid, gid, tokenUid, tokenGid] = await Promise.all([id('-u', ROOTLESS_USER), id('-g', ROOTLESS_USER), id('-u', TOKEN_USER), id('-g', TOKEN_USER)]);
    [this.uid, this.gid, this.tokenUser] = [uid, gid, { uid: tokenUid, gid: tokenGid }];
    const owned = (path: string, mode: number, owner = { uid: this.uid, gid: this.gid }) => {
      mkdirSync(path, { recursive: true });
      chownSync(path, owner.uid, owner.gid);
      chmodSync(path, mode);
      return path;
    };
    this.work = mkdtempSync(join(tmpdir(), 'fp-validate-'));
    chmodSync(this.work, 0o755);
    this.runDir = owned(join(this.work, 'run'), 0o750); // like /run/flashpods
    this.tokenRunDir = owned(join(this.work, 'tokens-run'), 0o2750, { uid: tokenUid, gid: this.gid }); // like /run/flashpods-tokens
    this.home = owned(join(this.work, 'home'), 0o755);
    const secretsDir = owned(join(this.work, 'secrets'), 0o700, this.tokenUser);
    const secretsFile = join(secretsDir, 'secrets.json');
    writeFileSync(secretsFile, JSON.stringify(this.secrets), { mode: 0o600 });
    chownSync(secretsFile, tokenUid, tokenGid);

    this.topo = await this.timed('topology', () => Topology.create(LINKS.filter((l) => l.hostIf === 'wg0' || l.hostIf === 'eth1')));
    const ns = this.topo.ns.host;

    await this.timed('podman service + probe image', () => settled([
      (async () => {
        this.podman = await startPodmanService(this.sockets.podman, { netns: ns });
        chownSync(this.sockets.podman, this.uid, this.gid);
        chmodSync(this.sockets.podman, 0o660);
        this.docker = new Docker({ socketPath: this.sockets.podman });
      })(),
      this.buildImage(),
    ]));
    this.spire = await this.timed('spire server + agent', () => startSpire({ podmanSocket: this.sockets.podman, netns: ns }));

    this.env = testEnv(this.home, this.sockets.podman, {
      FLASHPODS_LISTEN: `${HOST_ADDR}:${API_PORT}`,
      FLASHPODS_API_SOCKET: this.sockets.api,
      FLASHPODS_TOKEN_SOCKET: this.sockets.token,
      FLASHPODS_SPIRE_SOCKET: this.sockets.spire,
      FLASHPODS_SECRETS_FILE: secretsFile,
      // Rootful Podman in the host namespace: containers on its default bridge (podman0).
      FLASHPODS_CONTAINER_NETWORK: 'bridge',
      FLASHPODS_DEFAULT_IMAGE: this.image,
      FLASHPODS_LOG_LEVEL: 'info',
      FLASHPODS_RSYNC_TRANSFERS_DIR: join(this.work, 'rsyncd', 'transfers'),
    });

    await this.timed('token unit + API unit + rsyncd', () => settled([this.startTokens(), this.startApi(), this.startRsyncd()]));
    // Loaded last: rule 3 also drops the readiness probes made from inside the host namespace.
    await this.timed('ruleset', () => this.topo.loadRuleset(FIREWALL_RULESET));
    this.timings.total = Math.round(performance.now() - t0);
  }

  /** busybox:test with USER flashpods: job containers run non-root under rootful Podman. */
  private async buildImage(): Promise<void> {
    this.image = `localhost/flashpods-validate-test:${randomBytes(4).toString('hex')}`;
    const ctx = mkdtempSync(join(tmpdir(), 'fp-validate-image-'));
    try {
      writeFileSync(join(ctx, 'Containerfile'), `FROM ${TEST_IMAGE}\nUSER ${this.uid}:${this.gid}\n`);
      const r = await runAsync('env', [`CONTAINERS_CONF=${CONTAINERS_CONF}`, 'podman', 'build', '--pull=never', '-q', '-t', this.image, ctx], 60_000);
      if (r.code !== 0) throw new Error(`podman build of ${this.image} failed (run scripts/setup-podman.sh?): ${r.stderr}`);
    } finally {
      rmSync(ctx, { recursive: true, force: true });
    }
  }

  private unit(args: string[], user = { uid: this.uid, gid: this.gid }): NsProcess {
    return nsProcess(this.topo.ns.host, [process.execPath, CLI, 'serve', ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: this.home, ...this.env },
      cwd: this.home,
      user,
    });
  }

  async startTokens(): Promise<void> {
    const p = this.unit(['--actors', 'tokens'], this.tokenUser);
    this.tokens = p;
    await waitFor('token unit ready', () => unitReady(p.output()), p);
  }

  async stopTokens(): Promise<void> {
    await this.tokens?.stop();
  }

  private async startApi(): Promise<void> {
    this.api = this.unit([]);
    await waitFor('API unit ready', () => unitReady(this.api.output()), this.api);
  }

  private async startRsyncd(): Promise<void> {
    const dir = join(this.work, 'rsyncd');
    mkdirSync(dir);
    const conf = join(dir, 'rsyncd.conf');
    writeFileSync(conf, renderRsyncdConf({
      ADDRESS: HOST_ADDR, PORT: String(RSYNC_PORT), HOSTS_ALLOW: LAPTOP_ADDR, UPLOADS_DIR: join(this.home, 'uploads'),
      UID: String(this.uid), GID: String(this.gid), USE_CHROOT: 'yes', RUN_DIR: dir, LOG_FILE: join(dir, 'rsyncd.log'),
      TRANSFER_HOOK, TRANSFERS_DIR: this.env.FLASHPODS_RSYNC_TRANSFERS_DIR!,
    }));
    mkdirSync(join(this.home, 'uploads'), { recursive: true });
    chownSync(join(this.home, 'uploads'), this.uid, this.gid);
    this.rsyncd = nsProcess(this.topo.ns.host, ['rsync', '--daemon', '--no-detach', `--config=${conf}`]);
    await waitFor('rsync daemon listening', async () => (await this.topo.tcpProbe(this.topo.ns.host, HOST_ADDR, RSYNC_PORT, { timeoutMs: 500 })) === 'connected', this.rsyncd);
  }

  /** A process in the "outside" namespace (e.g. the HTTP server standing in for the internet). */
  outside(argv: string[]): NsProcess {
    const p = nsProcess(this.topo.ns.other, argv);
    this.others.push(p);
    return p;
  }

  /** `flashpods validate <args>` inside the host namespace, as root, with the units' environment. */
  async validate(args: string[], timeoutMs = 120_000): Promise<ValidateRun> {
    const script = `import(${JSON.stringify(VALIDATE_MODULE)}).then((m) => m.runValidate(process.argv.slice(1))).then((c) => process.exit(c), (e) => { console.error(e); process.exit(99); })`;
    const t0 = performance.now();
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile('nsenter', [`--net=/run/netns/${this.topo.ns.host}`, '--', process.execPath, '--import', 'tsx', '-e', script, '--', ...args], {
        cwd: REPO, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root', NO_COLOR: '1', ...this.env }, timeout: timeoutMs, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024,
      }, (err, stdout, stderr) => resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0, stdout, stderr }));
    });
    const run: ValidateRun = { ...r, ms: Math.round(performance.now() - t0) };
    if (args.includes('--json')) {
      try {
        run.report = JSON.parse(r.stdout);
      } catch { /* left undefined: the assertion shows stdout */ }
    }
    return run;
  }

  /** Containers of this run's API instance, and validate's probe containers (none should remain). */
  async leftovers(): Promise<Docker.ContainerInfo[]> {
    const all = await this.docker.listContainers({ all: true });
    return all.filter((c) => c.Names.some((n) => n.replace(/^\//, '').startsWith('flashpods-validate-')));
  }

  async destroy(): Promise<void> {
    const errors: string[] = [];
    const attempt = async (what: string, fn: () => Promise<unknown> | unknown) => {
      try {
        await fn();
      } catch (err) {
        errors.push(`${what}: ${(err as Error).message}`);
      }
    };
    for (const p of [...this.others, this.tokens, this.api, this.rsyncd]) if (p) await attempt('stop process', () => p.stop());
    if (this.docker) {
      await attempt('remove containers', async () => {
        const mine = this.home ? await this.docker.listContainers({ all: true, filters: { label: [`flashpods-instance=${instanceOf(this.home)}`] } }).catch(() => []) : [];
        for (const c of [...mine, ...(await this.leftovers())]) await this.docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      });
    }
    if (this.spire) await attempt('stop SPIRE', () => this.spire.stop());
    if (this.podman) await attempt('stop Podman', () => this.podman.stop());
    if (this.image) await attempt('remove image', () => runAsync('env', [`CONTAINERS_CONF=${CONTAINERS_CONF}`, 'podman', 'rmi', '-f', this.image], 30_000));
    if (this.topo) {
      await attempt('remove namespaces', () => this.topo.destroy());
      const left = this.topo.remaining();
      if (left.length) errors.push(`namespaces left: ${left.join(', ')}`);
    }
    if (this.work) rmSync(this.work, { recursive: true, force: true });
    if (errors.length) throw new Error(`teardown incomplete:\n${errors.join('\n')}`);
  }
}
