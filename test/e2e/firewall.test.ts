/**
 * The host firewall, proven with real packets (shared/spec/host.md, "Network and trust boundary").
 *
 * A throw-away host is built from network namespaces (test/support/netns.ts): the laptop reaches
 * it through a link whose host end is named `wg0`, job containers through `podman0` and
 * `cni-podman0`, another source through an ordinary interface. Inside the host namespace run a
 * real Flashpods API (`flashpods serve`) and a real rsync daemon; the ruleset loaded is the very
 * file nix/modules/firewall.nix deploys (nix/firewall/flashpods.nft). Every probe is sent from
 * inside a namespace this test created to an address inside another one it created.
 *
 * Expected (with the ruleset): laptop → API /health 200 and rsync lists `uploads`; container →
 * API and rsync dropped (time out); any other source, another address on wg0, or the host's own
 * loopback (how rootless slirp4netns containers arrive) → dropped; other ports untouched.
 * Control: without the ruleset, the same container probes succeed — so this test fails if the
 * rule breaks.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCapable, FIREWALL_RULESET, removeStaleNamespaces, runAsync, Topology, type ProbeResult } from '../support/netns.ts';

const CLI = fileURLToPath(new URL('../../cli/flashpods.mjs', import.meta.url));
const CONTAINERS_CONF = fileURLToPath(new URL('../../scripts/containers.conf', import.meta.url));
const TEST_IMAGE = 'localhost/busybox:test';
const API = 8080;
const RSYNC = 873;
const OPEN_PORT = 9999; // an unrelated service: the table's policy is accept
const DROP_TIMEOUT_MS = 1500;

/** Addresses of the host namespace, as each source addresses it. */
const HOST = { wg: '10.0.0.1', other: '10.0.1.1', podman: '10.88.0.1', cni: '10.89.0.1' };

let topo: Topology;
let work: string;
const timings: Record<string, number> = {};

async function timed<T>(label: string, fn: () => Promise<T> | T): Promise<T> {
  const start = performance.now();
  try {
    return await fn();
  } finally {
    timings[label] = Math.round(performance.now() - start);
  }
}

function listRsync(ns: string, host: string, contimeout = 2) {
  return topo.execAsync(ns, 'rsync', [`--contimeout=${contimeout}`, `rsync://${host}/`], (contimeout + 10) * 1000);
}

/** Starts `flashpods serve` in the host namespace and resolves once it logs `listening`. */
async function startApi(home: string): Promise<void> {
  const child = topo.spawn(topo.ns.host, process.execPath, [CLI, 'serve'], {
    cwd: home,
    env: {
      ...process.env,
      FLASHPODS_HOME: home,
      FLASHPODS_LISTEN: `0.0.0.0:${API}`,
      // No Podman needed for /health: the containers actor only warns that it is unreachable.
      FLASHPODS_PODMAN_SOCKET: join(home, 'no-such-dir', 'podman.sock'),
      FLASHPODS_LOG_LEVEL: 'info',
    },
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`flashpods serve did not start:\n${out}`)), 30_000);
    child.stdout!.on('data', () => {
      if (out.split('\n').some((l) => l.startsWith('{') && l.includes('"event":"listening"'))) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`flashpods serve exited (${code}) during start:\n${out}`));
    });
  });
}

function startRsyncd(dir: string): void {
  const uploads = join(dir, 'uploads');
  mkdirSync(uploads, { recursive: true });
  chmodSync(dir, 0o755);
  chmodSync(uploads, 0o755);
  const conf = join(dir, 'rsyncd.conf');
  // Minimal on purpose: no `hosts allow`, so only the firewall decides who gets in.
  writeFileSync(conf, [
    `port = ${RSYNC}`,
    'use chroot = no',
    `log file = ${join(dir, 'rsyncd.log')}`,
    '[uploads]',
    `  path = ${uploads}`,
    '  comment = Flashpods uploads',
    '  read only = yes',
    '  list = yes',
    '',
  ].join('\n'));
  topo.spawn(topo.ns.host, 'rsync', ['--daemon', '--no-detach', `--config=${conf}`]);
}

function startOpenPortServer(): void {
  topo.spawn(topo.ns.host, process.execPath, ['-e', `require('node:net').createServer((s) => { s.on('error', () => {}); s.end('ok\\n'); }).listen(${OPEN_PORT}, '0.0.0.0')`]);
}

/** Probes API, rsync and the unrelated port from one source in parallel. */
async function probeAll(ns: string, host: string, localAddress?: string): Promise<Record<'api' | 'rsync' | 'open', ProbeResult>> {
  const opts = { timeoutMs: DROP_TIMEOUT_MS, ...(localAddress ? { localAddress } : {}) };
  const [api, rsync, open] = await Promise.all([
    topo.tcpProbe(ns, host, API, opts),
    topo.tcpProbe(ns, host, RSYNC, opts),
    topo.tcpProbe(ns, host, OPEN_PORT, opts),
  ]);
  return { api, rsync, open };
}

function podmanImageReady(): boolean {
  try {
    execFileSync('podman', ['image', 'exists', TEST_IMAGE], { stdio: 'ignore', env: { ...process.env, CONTAINERS_CONF } });
    return true;
  } catch {
    return false;
  }
}

describe('host firewall (nix/firewall/flashpods.nft) in network namespaces', () => {
  beforeAll(async () => {
    assertCapable();
    removeStaleNamespaces();
    work = mkdtempSync(join(tmpdir(), 'fp-fw-'));
    topo = await timed('build topology', () => Topology.create());
    await timed('start API + rsyncd', async () => {
      startRsyncd(join(work, 'rsync'));
      startOpenPortServer();
      const home = join(work, 'home');
      mkdirSync(home);
      await startApi(home);
      // Readiness from inside the host namespace, before any ruleset exists.
      await topo.waitForListener(topo.ns.host, '127.0.0.1', RSYNC);
      await topo.waitForListener(topo.ns.host, '127.0.0.1', OPEN_PORT);
    });
  });

  afterAll(async () => {
    try {
      if (topo) {
        await topo.destroy();
        expect(topo.remaining()).toEqual([]);
      }
    } finally {
      if (work) rmSync(work, { recursive: true, force: true });
      console.log(`firewall e2e timings (ms): ${JSON.stringify(timings)}`);
    }
  });

  it('control, before the ruleset: every source reaches the API and rsync (the topology routes)', async () => {
    expect(topo.hasTable()).toBe(false);
    const [laptop, container, cni, other] = await timed('control probes (before)', () => Promise.all([
      probeAll(topo.ns.laptop, HOST.wg),
      probeAll(topo.ns.container, HOST.podman),
      probeAll(topo.ns.cni, HOST.cni),
      probeAll(topo.ns.other, HOST.other),
    ]));
    for (const r of [laptop, container, cni, other]) expect(r).toEqual({ api: 'connected', rsync: 'connected', open: 'connected' });
    const health = await topo.httpGet(topo.ns.container, `http://${HOST.podman}:${API}/health`);
    expect(health.status).toBe(200);
  });

  it('loads the one ruleset file inside the host namespace, idempotently', async () => {
    await timed('load ruleset twice', () => {
      topo.loadRuleset(FIREWALL_RULESET);
      topo.loadRuleset(FIREWALL_RULESET); // a reload must not duplicate rules
    });
    expect(topo.hasTable()).toBe(true);
    expect(topo.ruleCount()).toBe(5);
  });

  it('laptop over wg0 from 10.0.0.2: API /health is 200 and rsync lists the uploads module', async () => {
    const [health, listing] = await timed('laptop allowed', () => Promise.all([
      topo.httpGet(topo.ns.laptop, `http://${HOST.wg}:${API}/health`, 5000),
      listRsync(topo.ns.laptop, HOST.wg),
    ]));
    expect(health.status, JSON.stringify(health)).toBe(200);
    expect(JSON.parse(health.body!)).toMatchObject({ status: 'healthy' });
    expect(listing.code, listing.stderr).toBe(0);
    expect(listing.stdout).toMatch(/^uploads\s/m);
  });

  it('job containers (podman*, cni-*): API and rsync are dropped, other ports stay reachable', async () => {
    const [viaGateway, viaWgAddress, viaCni, health, listing] = await timed('containers dropped', () => Promise.all([
      probeAll(topo.ns.container, HOST.podman),
      probeAll(topo.ns.container, HOST.wg), // the API's real address, routed through podman0
      probeAll(topo.ns.cni, HOST.cni),
      topo.httpGet(topo.ns.container, `http://${HOST.wg}:${API}/health`, DROP_TIMEOUT_MS),
      listRsync(topo.ns.container, HOST.podman, 1),
    ]));
    for (const r of [viaGateway, viaWgAddress, viaCni]) expect(r).toEqual({ api: 'timeout', rsync: 'timeout', open: 'connected' });
    expect(health).toEqual({ error: 'timeout' });
    expect(listing.code).not.toBe(0);
    expect(listing.stdout).not.toMatch(/uploads/);
  });

  it('everyone else is dropped: another interface, another address on wg0, the host itself', async () => {
    const [other, otherToWg, spoofedLaptop, loopback] = await timed('others dropped', () => Promise.all([
      probeAll(topo.ns.other, HOST.other),
      probeAll(topo.ns.other, HOST.wg),
      // Right interface, wrong source: the rule pins 10.0.0.2, not the whole tunnel subnet.
      probeAll(topo.ns.laptop, HOST.wg, '10.0.0.3'),
      // Rootless slirp4netns containers connect from the host's own stack: they arrive on lo.
      probeAll(topo.ns.host, HOST.wg),
    ]));
    for (const r of [other, otherToWg, spoofedLaptop, loopback]) expect(r).toEqual({ api: 'timeout', rsync: 'timeout', open: 'connected' });
  });

  it.skipIf(!podmanImageReady())('a real rootful Podman container on the podman0 side cannot reach the API', async () => {
    // The container joins the "container" namespace, so its packets enter the host via podman0.
    const script = `printf 'GET /health HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${HOST.podman} ${API}`;
    const r = await timed('rootful podman container', () => runPodman(['run', '--rm', '--network', `ns:/run/netns/${topo.ns.container}`, TEST_IMAGE, 'sh', '-c', script]));
    expect(r.stdout).not.toMatch(/200 OK/);
    topo.removeTable();
    try {
      const open = await runPodman(['run', '--rm', '--network', `ns:/run/netns/${topo.ns.container}`, TEST_IMAGE, 'sh', '-c', script]);
      expect(open.stdout, open.stderr).toMatch(/200 OK/); // the control: same container, no ruleset
    } finally {
      topo.loadRuleset(FIREWALL_RULESET);
    }
  });

  it.skipIf(!podmanImageReady())('a real rootless slirp4netns container (as production runs jobs) cannot reach the API', async () => {
    // slirp4netns runs in the caller's namespace: start rootless Podman inside the host namespace.
    const uid = execFileSync('id', ['-u', 'flashpods'], { encoding: 'utf8' }).trim();
    const script = `printf 'GET /health HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${HOST.wg} ${API}`;
    const args = ['-u', 'flashpods', '--', 'env', 'HOME=/home/flashpods', `XDG_RUNTIME_DIR=/run/user/${uid}`, `CONTAINERS_CONF=${CONTAINERS_CONF}`,
      'podman', 'run', '--rm', '--network', 'slirp4netns', TEST_IMAGE, 'sh', '-c', script];
    const blocked = await timed('rootless podman container', () => topo.execAsync(topo.ns.host, 'runuser', args, 60_000));
    expect(blocked.stderr).not.toMatch(/Error:/);
    expect(blocked.stdout).not.toMatch(/200 OK/);
    topo.removeTable();
    try {
      const open = await topo.execAsync(topo.ns.host, 'runuser', args, 60_000);
      expect(open.stdout, open.stderr).toMatch(/200 OK/);
    } finally {
      topo.loadRuleset(FIREWALL_RULESET);
    }
  });

  it('control, ruleset removed: the container reaches the API (200) and rsync again', async () => {
    topo.removeTable();
    expect(topo.hasTable()).toBe(false);
    const [probes, health, listing] = await timed('control probes (after)', () => Promise.all([
      probeAll(topo.ns.container, HOST.podman),
      topo.httpGet(topo.ns.container, `http://${HOST.wg}:${API}/health`, 5000),
      listRsync(topo.ns.container, HOST.podman),
    ]));
    expect(probes).toEqual({ api: 'connected', rsync: 'connected', open: 'connected' });
    expect(health.status).toBe(200);
    expect(listing.code, listing.stderr).toBe(0);
    expect(listing.stdout).toMatch(/^uploads\s/m);
  });
});

function runPodman(args: string[]) {
  return runAsync('env', [`CONTAINERS_CONF=${CONTAINERS_CONF}`, 'podman', ...args], 60_000);
}
