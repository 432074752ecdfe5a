/**
 * The host firewall, proven with real packets (shared/spec/host.md, "Network and trust boundary").
 *
 * A throw-away host is built from network namespaces (test/support/netns.ts): the laptop reaches
 * it through a link whose host end is named `wg0`, job containers through `podman0` and
 * `cni-podman0`, another source through an ordinary interface, and its default route leads to an
 * uplink standing in for the internet and the cloud's metadata service. Inside the host namespace
 * run a real Flashpods API (`flashpods serve`, as user flashpods like production), a real rsync
 * daemon and a real rootless Podman service (user flashpods, slirp4netns: how production runs
 * jobs); the ruleset loaded is the very file nix/modules/firewall.nix deploys
 * (nix/firewall/flashpods.nft). Every probe is sent from inside a namespace this test created to
 * an address inside another one it created.
 *
 * Expected (with the ruleset): laptop → API /health 200 and rsync lists `uploads`; container →
 * API and rsync dropped (time out); any other source, another address on wg0, or the host's own
 * loopback (how rootless slirp4netns containers arrive) → dropped; other ports untouched. Job
 * traffic — a rootless container (its connections are sockets of user flashpods on the host) or a
 * rootful one (forwarded from podman0 / cni-podman0) — to the laptop's tunnel subnet or to
 * link-local / metadata addresses → refused at once (TCP reset; UDP: host unreachable), while the
 * internet and a link-local DNS resolver stay reachable and root's own traffic is untouched.
 * Control: without the ruleset, the same probes succeed — so this test fails if a rule breaks.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCapable, FIREWALL_RULESET, removeStaleNamespaces, runAsync, Topology, type NamespaceNames, type ProbeResult } from '../support/netns.ts';
import { CONTAINERS_CONF, ROOTLESS_USER, startRootlessPodmanService, TEST_IMAGE, type RootlessPodmanService } from '../support/podman.ts';

const CLI = fileURLToPath(new URL('../../cli/flashpods.mjs', import.meta.url));
const API = 8080;
const RSYNC = 873;
const OPEN_PORT = 9999; // an unrelated service: the table's policy is accept
const DROP_TIMEOUT_MS = 1500;
const SETUP_HINT = 'run `bash scripts/setup-podman.sh` as root';

/** Addresses of the host namespace, as each source addresses it. */
const HOST = { wg: '10.0.0.1', other: '10.0.1.1', podman: '10.88.0.1', cni: '10.89.0.1' };

/**
 * Services beyond the host that job traffic tries, each answering (TCP and UDP) with its name.
 * TCP listens on `::` of its namespace, so the IPv6 addresses there answer too.
 */
const TARGETS = {
  laptop: { ns: 'laptop', host: '10.0.0.2', port: 7000 }, // any service on the laptop, over the tunnel
  metadata: { ns: 'uplink', host: '169.254.169.254', port: 80 }, // the cloud's metadata service
  dns: { ns: 'uplink', host: '169.254.169.254', port: 53 }, // a link-local resolver (GCP's): stays open
  internet: { ns: 'uplink', host: '203.0.113.10', port: 443 }, // a package registry, a git host
} as const satisfies Record<string, { ns: keyof NamespaceNames; host: string; port: number }>;
type Target = keyof typeof TARGETS;
const TARGET_NAMES = Object.keys(TARGETS) as Target[];
/** The same services over IPv6: link-local on the laptop's link, AWS's metadata address, the internet. */
const TARGETS_V6 = {
  laptop: { host: 'fe80::2%wg0', port: TARGETS.laptop.port },
  metadata: { host: 'fd00:ec2::254', port: TARGETS.metadata.port },
  internet: { host: '2001:db8::2', port: TARGETS.internet.port },
};

/** What job traffic must get with the ruleset loaded, and everyone gets without it. */
const JOB_EGRESS = { laptop: 'refused', metadata: 'refused', dns: 'connected', internet: 'connected' } as const;
const OPEN_EGRESS = { laptop: 'connected', metadata: 'connected', dns: 'connected', internet: 'connected' } as const;

let topo: Topology;
let work: string;
let rootless: RootlessPodmanService;
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

/**
 * Starts `flashpods serve` in the host namespace as user flashpods — the uid whose new
 * connections the ruleset refuses, so the laptop's 200 also proves the API's replies pass — and
 * resolves once it logs `listening`.
 */
async function startApi(home: string): Promise<void> {
  const child = topo.spawn(topo.ns.host, process.execPath, [CLI, 'serve'], {
    cwd: home,
    user: ROOTLESS_USER,
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

/**
 * Every target's servers, in its namespace: TCP on `::`, UDP on the target's own address (an
 * answer from any other address of a namespace with several would not reach a connected socket).
 */
function startTargets(): void {
  for (const name of TARGET_NAMES) {
    const { ns, host, port } = TARGETS[name];
    topo.spawn(topo.ns[ns], process.execPath, ['-e', `
      const [name, host, port] = process.argv.slice(1);
      require('node:net').createServer((s) => { s.on('error', () => {}); s.end(name + '\\n'); }).listen(Number(port), '::');
      const u = require('node:dgram').createSocket('udp4');
      u.on('message', (_m, from) => u.send(name, from.port, from.address));
      u.bind(Number(port), host);`, name, host, String(port)]);
  }
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

/** A TCP connect to every target from one source (a namespace, optionally as a user), in parallel. */
async function probeTargets(ns: string, user?: string): Promise<Record<Target, ProbeResult>> {
  const results = await Promise.all(TARGET_NAMES.map((name) => topo.tcpProbe(ns, TARGETS[name].host, TARGETS[name].port, { timeoutMs: DROP_TIMEOUT_MS, user })));
  return Object.fromEntries(TARGET_NAMES.map((name, i) => [name, results[i]])) as Record<Target, ProbeResult>;
}

/** What a job runs to try every target: one line `<target> <what nc printed>` each. */
const EGRESS_SCRIPT = TARGET_NAMES.map((name) => `echo "${name} $(nc -w 3 ${TARGETS[name].host} ${TARGETS[name].port} </dev/null 2>&1)"`).join('; ');

/** Reads EGRESS_SCRIPT's lines: `connected` only if the target itself answered (its name). */
function egressOutcomes(stdout: string): Record<string, string> {
  return Object.fromEntries(stdout.trim().split('\n').map((line) => {
    const [name, ...rest] = line.split(' ');
    const said = rest.join(' ');
    if (said === name) return [name, 'connected'];
    if (said.endsWith('Connection refused')) return [name, 'refused'];
    if (said.endsWith('timed out')) return [name, 'timeout'];
    return [name, `unexpected: ${said}`];
  }));
}

/** What a job runs to call GET /health on the API: the first line of the answer, or nc's error. */
function healthScript(host: string): string {
  return `printf 'GET /health HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${host} ${API} 2>&1 | head -n 1`;
}

/** `podman run --rm` of a job in the rootless service (user flashpods, slirp4netns, host namespace). */
function runRootless(script: string) {
  return runAsync('podman', ['--remote', '--url', `unix://${rootless.socketPath}`, 'run', '--rm', '--network', 'slirp4netns', TEST_IMAGE, 'sh', '-c', script], 60_000);
}

/** `podman run --rm` of a rootful container joined to the namespace behind the stand-in podman0. */
function runRootful(script: string) {
  return runAsync('env', [`CONTAINERS_CONF=${CONTAINERS_CONF}`, 'podman', 'run', '--rm', '--network', `ns:/run/netns/${topo.ns.container}`, TEST_IMAGE, 'sh', '-c', script], 60_000);
}

/** A missing image fails the suite here, with what to run — never a skipped test. */
function assertImages(): void {
  const check = (what: string, args: string[]) => {
    try {
      execFileSync('podman', [...args, 'image', 'exists', TEST_IMAGE], { stdio: 'ignore', env: { ...process.env, CONTAINERS_CONF } });
    } catch {
      throw new Error(`${TEST_IMAGE} is missing in ${what}: ${SETUP_HINT}`);
    }
  };
  check('root\'s Podman storage', []);
  check(`the rootless Podman storage of user ${ROOTLESS_USER}`, ['--remote', '--url', `unix://${rootless.socketPath}`]);
}

describe('host firewall (nix/firewall/flashpods.nft) in network namespaces', () => {
  beforeAll(async () => {
    assertCapable();
    removeStaleNamespaces();
    work = mkdtempSync(join(tmpdir(), 'fp-fw-'));
    chmodSync(work, 0o711); // the API's home below is user flashpods'
    topo = await timed('build topology', () => Topology.create());
    // Rootful containers on the stand-in bridges reach the laptop and the uplink by forwarding.
    topo.exec(topo.ns.host, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await timed('start API + rsyncd + rootless Podman', async () => {
      startRsyncd(join(work, 'rsync'));
      startOpenPortServer();
      startTargets();
      const home = join(work, 'home');
      mkdirSync(home);
      const uid = Number(execFileSync('id', ['-u', ROOTLESS_USER], { encoding: 'utf8' }));
      chownSync(home, uid, Number(execFileSync('id', ['-g', ROOTLESS_USER], { encoding: 'utf8' })));
      [rootless] = await Promise.all([startRootlessPodmanService({ netns: topo.ns.host }), startApi(home)]);
      assertImages();
      // Readiness from inside the host namespace, before any ruleset exists.
      await topo.waitForListener(topo.ns.host, '127.0.0.1', RSYNC);
      await topo.waitForListener(topo.ns.host, '127.0.0.1', OPEN_PORT);
      for (const name of TARGET_NAMES) await topo.waitForListener(topo.ns.host, TARGETS[name].host, TARGETS[name].port);
    });
  }, 90_000);

  afterAll(async () => {
    try {
      await rootless?.stop();
      if (topo) {
        await topo.destroy();
        expect(topo.remaining()).toEqual([]);
      }
    } finally {
      if (work) rmSync(work, { recursive: true, force: true });
      console.log(`firewall e2e timings (ms): ${JSON.stringify(timings)}`);
    }
  });

  it('control, before the ruleset: every source reaches the API and rsync, jobs reach the laptop and metadata (the topology routes)', async () => {
    expect(topo.hasTable()).toBe(false);
    const [laptop, container, cni, other, forwarded, jobUid, rootlessJob] = await timed('control probes (before)', () => Promise.all([
      probeAll(topo.ns.laptop, HOST.wg),
      probeAll(topo.ns.container, HOST.podman),
      probeAll(topo.ns.cni, HOST.cni),
      probeAll(topo.ns.other, HOST.other),
      probeTargets(topo.ns.container),
      probeTargets(topo.ns.host, ROOTLESS_USER),
      runRootless(EGRESS_SCRIPT),
    ]));
    for (const r of [laptop, container, cni, other]) expect(r).toEqual({ api: 'connected', rsync: 'connected', open: 'connected' });
    for (const r of [forwarded, jobUid]) expect(r).toEqual(OPEN_EGRESS);
    expect(egressOutcomes(rootlessJob.stdout), rootlessJob.stderr).toEqual(OPEN_EGRESS);
    const health = await topo.httpGet(topo.ns.container, `http://${HOST.podman}:${API}/health`);
    expect(health.status).toBe(200);
  });

  it('loads the one ruleset file inside the host namespace, idempotently', async () => {
    await timed('load ruleset twice', () => {
      topo.loadRuleset(FIREWALL_RULESET);
      topo.loadRuleset(FIREWALL_RULESET); // a reload must not duplicate rules
    });
    expect(topo.hasTable()).toBe(true);
    expect([topo.ruleCount(), topo.ruleCount(undefined, 'output'), topo.ruleCount(undefined, 'forward'), topo.ruleCount(undefined, 'job_egress')]).toEqual([5, 1, 2, 5]);
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

  it('forwarded from podman0 / cni-podman0: the laptop and metadata are refused, the internet and link-local DNS are not; other interfaces are untouched', async () => {
    const [container, cni, other] = await timed('forwarded egress', () => Promise.all([
      probeTargets(topo.ns.container),
      probeTargets(topo.ns.cni),
      probeTargets(topo.ns.other),
    ]));
    expect(container).toEqual(JOB_EGRESS);
    expect(cni).toEqual(JOB_EGRESS);
    expect(other).toEqual(OPEN_EGRESS);
  });

  it('new connections of user flashpods on the host (what slirp4netns makes for a rootless job): refused to the tunnel and link-local/metadata over TCP, UDP and IPv6; root untouched', async () => {
    const probeAs = (user?: string) => Promise.all([
      probeTargets(topo.ns.host, user),
      topo.udpProbe(topo.ns.host, TARGETS.laptop.host, TARGETS.laptop.port, { user }),
      topo.udpProbe(topo.ns.host, TARGETS.dns.host, TARGETS.dns.port, { user }),
      topo.tcpProbe(topo.ns.host, TARGETS_V6.laptop.host, TARGETS_V6.laptop.port, { user }),
      topo.tcpProbe(topo.ns.host, TARGETS_V6.metadata.host, TARGETS_V6.metadata.port, { user }),
      topo.tcpProbe(topo.ns.host, TARGETS_V6.internet.host, TARGETS_V6.internet.port, { user }),
    ]);
    const [job, root] = await timed('job uid egress', () => Promise.all([probeAs(ROOTLESS_USER), probeAs()]));
    expect(job).toEqual([JOB_EGRESS, 'error:EHOSTUNREACH', 'reply:dns', 'refused', 'refused', 'connected']);
    expect(root).toEqual([OPEN_EGRESS, 'reply:laptop', 'reply:dns', 'connected', 'connected', 'connected']);
  });

  it('a real rootful Podman container on the podman0 side cannot reach the API', async () => {
    // The container joins the "container" namespace, so its packets enter the host via podman0.
    const script = healthScript(HOST.podman);
    const blocked = await timed('rootful podman container', () => runRootful(script));
    expect(blocked.stdout.trim(), blocked.stderr).toBe('nc: timed out');
    topo.removeTable();
    try {
      const open = await runRootful(script);
      expect(open.stdout.trim(), open.stderr).toBe('HTTP/1.1 200 OK'); // the control: same container, no ruleset
    } finally {
      topo.loadRuleset(FIREWALL_RULESET);
    }
  });

  it('a real rootless slirp4netns container (as production runs jobs) cannot reach the API', async () => {
    // Its connections leave from the host's own stack as user flashpods: to the API's tunnel
    // address they are refused on the way out (10.0.0.1 is in the tunnel subnet, chain output);
    // to any other host address, dropped on the way in over loopback (chain input, rule 3).
    const script = `${healthScript(HOST.wg)}; ${healthScript(HOST.other)}`;
    const blocked = await timed('rootless podman container', () => runRootless(script));
    expect(blocked.stdout.trim().split('\n'), blocked.stderr).toEqual([`nc: can't connect to remote host (${HOST.wg}): Connection refused`, 'nc: timed out']);
    topo.removeTable();
    try {
      const open = await runRootless(script);
      expect(open.stdout.trim().split(/\r?\n/), open.stderr).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK']);
    } finally {
      topo.loadRuleset(FIREWALL_RULESET);
    }
  });

  it('a real rootless slirp4netns container: the laptop (10.0.0.2) and 169.254.169.254 are refused, the internet and link-local DNS are reached; without the ruleset it reaches both', async () => {
    topo.loadRuleset(FIREWALL_RULESET); // fresh counters
    const start = performance.now();
    const blocked = await timed('rootless egress (ruleset)', () => runRootless(EGRESS_SCRIPT));
    const blockedMs = performance.now() - start;
    expect(blocked.code, blocked.stderr).toBe(0);
    expect(egressOutcomes(blocked.stdout)).toEqual(JOB_EGRESS);
    // Refused by the rule itself (TCP reset, one SYN each for the laptop and metadata), not by a
    // missing listener; and at once, not after nc's 3 s connect timeout.
    expect(topo.counterPackets('job_egress')).toEqual([2, 0, 0, 0]);
    expect(blockedMs).toBeLessThan(6000); // two drops would cost nc's 3 s connect timeout twice
    topo.removeTable();
    try {
      const open = await timed('rootless egress (no ruleset)', () => runRootless(EGRESS_SCRIPT));
      expect(egressOutcomes(open.stdout), open.stderr).toEqual(OPEN_EGRESS);
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
