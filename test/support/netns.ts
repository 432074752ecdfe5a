/**
 * @module test/support/netns
 * Throw-away test hosts built from Linux network namespaces and veth pairs, for proving the
 * host firewall (nix/firewall/flashpods.nft) with real packets. Every namespace and link is
 * created by this module under a per-run prefix, every address lives inside those namespaces,
 * and `destroy()` removes all of it (processes first, then namespaces) — call it from afterAll.
 * Needs root, iproute2 and nftables.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The one ruleset file: nix/modules/firewall.nix includes it, the e2e test loads it. */
export const FIREWALL_RULESET = fileURLToPath(new URL('../../nix/firewall/flashpods.nft', import.meta.url));
/** The table that file defines (`table inet flashpods`). */
export const FIREWALL_TABLE = ['inet', 'flashpods'] as const;

const PREFIX = 'fpfw';

/** A namespace's role in the topology → its short name suffix. */
export interface NamespaceNames {
  host: string;
  laptop: string;
  other: string;
  container: string;
  cni: string;
  uplink: string;
}

export interface LinkSpec {
  /** Interface name on the host side (in the host namespace). */
  hostIf: string;
  hostAddr: string;
  /** The peer namespace's role and its interface address. */
  peer: Exclude<keyof NamespaceNames, 'host'>;
  peerAddrs: string[];
  prefixLen: number;
  /** IPv6 addresses (/64, no duplicate-address detection) of the host end and of the peer. */
  v6?: { hostAddr: string; peerAddrs: string[] };
  /**
   * Prefixes the host routes through this link's first peer address (v4 or v6). Never a default
   * route: the host's DNS queries (and rsyncd's reverse lookups) must keep failing at once.
   */
  hostRoutes?: string[];
}

/**
 * The topology: a "host" namespace playing the Flashpods server, reached by
 * - the laptop through a link whose host end is NAMED `wg0` (standing in for WireGuard),
 * - another source on an ordinary interface,
 * - a job container through a link named like Podman's bridge (`podman0`),
 * - a job container through a CNI-style bridge name (`cni-podman0`),
 * - its uplink: the "internet" (documentation addresses 203.0.113.10, 2001:db8::2) and the
 *   cloud's metadata service (169.254.169.254, fd00:ec2::254) behind it.
 * The laptop's link also carries link-local IPv6 (fe80::1 ↔ fe80::2).
 */
export const LINKS: LinkSpec[] = [
  { hostIf: 'wg0', hostAddr: '10.0.0.1', peer: 'laptop', peerAddrs: ['10.0.0.2', '10.0.0.3'], prefixLen: 24, v6: { hostAddr: 'fe80::1', peerAddrs: ['fe80::2'] } },
  { hostIf: 'eth1', hostAddr: '10.0.1.1', peer: 'other', peerAddrs: ['10.0.1.2'], prefixLen: 24 },
  { hostIf: 'podman0', hostAddr: '10.88.0.1', peer: 'container', peerAddrs: ['10.88.0.2'], prefixLen: 16 },
  { hostIf: 'cni-podman0', hostAddr: '10.89.0.1', peer: 'cni', peerAddrs: ['10.89.0.2'], prefixLen: 24 },
  {
    hostIf: 'eth2', hostAddr: '198.51.100.1', peer: 'uplink', peerAddrs: ['198.51.100.2', '203.0.113.10', '169.254.169.254'], prefixLen: 24,
    v6: { hostAddr: '2001:db8::1', peerAddrs: ['2001:db8::2', 'fd00:ec2::254'] }, hostRoutes: ['203.0.113.0/24', '169.254.169.254/32', 'fd00:ec2::254/128'],
  },
];

export type ProbeResult = 'connected' | 'refused' | 'timeout' | `error:${string}`;
export type UdpProbeResult = `reply:${string}` | 'timeout' | `error:${string}`;

export interface HttpResult {
  status?: number;
  body?: string;
  error?: string;
}

/** Runs a command synchronously; a failure throws with the command line and its stderr. */
export function run(cmd: string, args: string[], timeoutMs = 15_000): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

/** Runs a command asynchronously; resolves with exit code and output, never rejects. */
export function runAsync(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Fails fast with a clear message when the machine cannot build namespaces. */
export function assertCapable(): void {
  if (process.getuid?.() !== 0) throw new Error('network-namespace tests need root (they create namespaces, veths and nftables tables)');
  for (const [bin, pkg] of [['ip', 'iproute2'], ['nft', 'nftables'], ['rsync', 'rsync']] as const) {
    try {
      execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`${bin} is missing: apt-get install ${pkg}`);
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Deletes namespaces left behind by earlier runs of this module whose test process is gone
 * (names carry the creating pid). Only names with this module's prefix are touched.
 */
export function removeStaleNamespaces(): string[] {
  if (!existsSync('/run/netns')) return [];
  const removed: string[] = [];
  for (const name of readdirSync('/run/netns')) {
    const m = new RegExp(`^${PREFIX}(\\d+)x[0-9a-z]+-`).exec(name);
    if (!m || alive(Number(m[1]))) continue;
    try {
      run('ip', ['netns', 'del', name]);
      removed.push(name);
    } catch {
      /* someone else removed it */
    }
  }
  return removed;
}

export class Topology {
  readonly id: string;
  readonly ns: NamespaceNames;
  private readonly created: string[] = [];
  private readonly children = new Set<ChildProcess>();

  private constructor() {
    this.id = `${PREFIX}${process.pid}x${Math.random().toString(36).slice(2, 6)}`;
    this.ns = {
      host: `${this.id}-host`,
      laptop: `${this.id}-laptop`,
      other: `${this.id}-other`,
      container: `${this.id}-ctr`,
      cni: `${this.id}-cni`,
      uplink: `${this.id}-up`,
    };
  }

  /**
   * Builds every namespace and link; on a failure half-way, removes what it made and throws.
   * `links` narrows the topology (e.g. without the stand-in `podman0` when a real Podman creates
   * its own bridge in the host namespace); every role's namespace is created either way.
   */
  static create(links: LinkSpec[] = LINKS): Topology {
    const t = new Topology();
    try {
      t.build(links);
    } catch (err) {
      t.removeNamespaces();
      throw err;
    }
    return t;
  }

  private build(links: LinkSpec[]): void {
    for (const name of Object.values(this.ns)) {
      run('ip', ['netns', 'add', name]);
      this.created.push(name);
      run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    }
    const host = this.ns.host;
    for (const link of links) {
      const peer = this.ns[link.peer];
      // Created inside the namespaces directly: no interface ever exists in the root namespace.
      run('ip', ['-n', host, 'link', 'add', link.hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', peer]);
      run('ip', ['-n', host, 'addr', 'add', `${link.hostAddr}/${link.prefixLen}`, 'dev', link.hostIf]);
      run('ip', ['-n', host, 'link', 'set', link.hostIf, 'up']);
      for (const addr of link.peerAddrs) run('ip', ['-n', peer, 'addr', 'add', `${addr}/${link.prefixLen}`, 'dev', 'eth0']);
      run('ip', ['-n', peer, 'link', 'set', 'eth0', 'up']);
      // Every source can address any of the host's addresses (the host is their gateway).
      run('ip', ['-n', peer, 'route', 'add', 'default', 'via', link.hostAddr]);
      if (link.v6) {
        run('ip', ['-n', host, 'addr', 'add', `${link.v6.hostAddr}/64`, 'dev', link.hostIf, 'nodad']);
        for (const addr of link.v6.peerAddrs) run('ip', ['-n', peer, 'addr', 'add', `${addr}/64`, 'dev', 'eth0', 'nodad']);
      }
      for (const prefix of link.hostRoutes ?? []) {
        const via = prefix.includes(':') ? link.v6!.peerAddrs[0]! : link.peerAddrs[0]!;
        run('ip', ['-n', host, 'route', 'add', prefix, 'via', via]);
      }
    }
  }

  /** `ip netns exec NS cmd args…` argv; with `user`, cmd runs as that user (and its group, no others). */
  argv(ns: string, cmd: string, args: string[], user?: string): [string, string[]] {
    const asUser = user ? ['setpriv', `--reuid=${user}`, `--regid=${user}`, '--clear-groups'] : [];
    return ['ip', ['netns', 'exec', ns, ...asUser, cmd, ...args]];
  }

  exec(ns: string, cmd: string, args: string[], timeoutMs = 15_000): string {
    const [c, a] = this.argv(ns, cmd, args);
    return run(c, a, timeoutMs);
  }

  execAsync(ns: string, cmd: string, args: string[], timeoutMs: number, user?: string) {
    const [c, a] = this.argv(ns, cmd, args, user);
    return runAsync(c, a, timeoutMs);
  }

  /** Starts a long-running process inside a namespace (optionally as `user`); destroy() ends it. */
  spawn(ns: string, cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; user?: string } = {}): ChildProcess {
    const { user, ...spawnOptions } = options;
    const [c, a] = this.argv(ns, cmd, args, user);
    const child = spawn(c, a, { ...spawnOptions, stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /**
   * A TCP connect from inside `fromNs` (optionally from a given local address, or as `user`):
   * `connected`, `refused` (RST: nothing listens, or a firewall's reject), or `timeout` (no
   * answer at all: a firewall drop).
   */
  async tcpProbe(fromNs: string, host: string, port: number, { timeoutMs = 1500, localAddress, user }: { timeoutMs?: number; localAddress?: string; user?: string } = {}): Promise<ProbeResult> {
    const script = `
      const net = require('node:net');
      const [host, port, timeout, localAddress] = process.argv.slice(1);
      const s = net.connect({ host, port: Number(port), ...(localAddress ? { localAddress } : {}) });
      const done = (r) => { process.stdout.write(r); s.destroy(); process.exit(0); };
      s.setTimeout(Number(timeout), () => done('timeout'));
      s.once('connect', () => done('connected'));
      s.once('error', (e) => done(e.code === 'ECONNREFUSED' ? 'refused' : 'error:' + e.code));`;
    const r = await this.execAsync(fromNs, process.execPath, ['-e', script, host, String(port), String(timeoutMs), localAddress ?? ''], timeoutMs + 10_000, user);
    return (r.stdout.trim() || `error:exit ${r.code} ${r.stderr.trim()}`) as ProbeResult;
  }

  /**
   * One UDP datagram from inside `fromNs` (optionally as `user`) on a connected socket:
   * `reply:<text>` (the first answer), `timeout` (none), or `error:<code>` (an ICMP error came
   * back, e.g. EHOSTUNREACH for a firewall's admin-prohibited reject).
   */
  async udpProbe(fromNs: string, host: string, port: number, { timeoutMs = 1500, user }: { timeoutMs?: number; user?: string } = {}): Promise<UdpProbeResult> {
    const script = `
      const [host, port, timeout] = process.argv.slice(1);
      const s = require('node:dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4');
      const done = (r) => { process.stdout.write(r); process.exit(0); };
      setTimeout(() => done('timeout'), Number(timeout));
      s.once('message', (m) => done('reply:' + m.toString()));
      s.once('error', (e) => done('error:' + e.code));
      s.connect(Number(port), host, () => s.send('probe'));`;
    const r = await this.execAsync(fromNs, process.execPath, ['-e', script, host, String(port), String(timeoutMs)], timeoutMs + 10_000, user);
    return (r.stdout.trim() || `error:exit ${r.code} ${r.stderr.trim()}`) as UdpProbeResult;
  }

  /** An HTTP GET from inside `fromNs`, with a deadline. */
  async httpGet(fromNs: string, url: string, timeoutMs = 1500): Promise<HttpResult> {
    const script = `
      const [url, timeout] = process.argv.slice(1);
      fetch(url, { signal: AbortSignal.timeout(Number(timeout)) })
        .then(async (r) => JSON.stringify({ status: r.status, body: await r.text() }))
        .catch((e) => JSON.stringify({ error: e.name === 'TimeoutError' ? 'timeout' : String(e.cause?.code ?? e.message) }))
        // Exit at once: a dropped connect would otherwise keep the process alive until undici gives up.
        .then((out) => process.stdout.write(out, () => process.exit(0)));`;
    const r = await this.execAsync(fromNs, process.execPath, ['-e', script, url, String(timeoutMs)], timeoutMs + 10_000);
    try {
      return JSON.parse(r.stdout) as HttpResult;
    } catch {
      return { error: `probe failed (exit ${r.code}): ${r.stderr.trim()}` };
    }
  }

  /** Waits until something accepts TCP connections on host:port as seen from `fromNs`. */
  async waitForListener(fromNs: string, host: string, port: number, deadlineMs = 30_000): Promise<void> {
    const end = Date.now() + deadlineMs;
    let last: ProbeResult = 'timeout';
    while (Date.now() < end) {
      last = await this.tcpProbe(fromNs, host, port, { timeoutMs: 500 });
      if (last === 'connected') return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`nothing listens on ${host}:${port} in ${fromNs} (last probe: ${last})`);
  }

  /** Loads an nftables file inside the host namespace. */
  loadRuleset(file: string): void {
    this.exec(this.ns.host, 'nft', ['-f', file]);
  }

  /** Removes the firewall table from the host namespace (no-op if absent). */
  removeTable([family, name]: readonly [string, string] = FIREWALL_TABLE): void {
    if (this.hasTable([family, name])) this.exec(this.ns.host, 'nft', ['delete', 'table', family, name]);
  }

  hasTable([family, name]: readonly [string, string] = FIREWALL_TABLE): boolean {
    return this.exec(this.ns.host, 'nft', ['list', 'tables']).split('\n').some((l) => l.trim() === `table ${family} ${name}`);
  }

  /** Number of rules in a chain of the host namespace's ruleset. */
  ruleCount(table: readonly [string, string] = FIREWALL_TABLE, chain = 'input'): number {
    return this.rules(table, chain).length;
  }

  /** Packets counted by each rule of a chain that has a counter, in rule order. */
  counterPackets(chain: string, table: readonly [string, string] = FIREWALL_TABLE): number[] {
    return this.rules(table, chain).flatMap((r) => r.expr.flatMap((e) => (e.counter ? [e.counter.packets] : [])));
  }

  private rules(table: readonly [string, string], chain: string): Array<{ expr: Array<{ counter?: { packets: number } }> }> {
    type Rule = { chain: string; expr: Array<{ counter?: { packets: number } }> };
    const json = JSON.parse(this.exec(this.ns.host, 'nft', ['-j', 'list', 'table', ...table])) as { nftables: Array<{ rule?: Rule }> };
    return json.nftables.flatMap((o) => (o.rule && o.rule.chain === chain ? [o.rule] : []));
  }

  /** Ends every process started with spawn() (SIGTERM, then SIGKILL), then deletes the namespaces. */
  async destroy(): Promise<void> {
    await Promise.all([...this.children].map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }));
    this.removeNamespaces();
  }

  private removeNamespaces(): void {
    const failures: string[] = [];
    for (const name of this.created.splice(0).reverse()) {
      try {
        run('ip', ['netns', 'del', name]);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
    if (failures.length > 0) throw new Error(`teardown incomplete:\n${failures.join('\n')}`);
  }

  /** Names of this run's namespaces that still exist (for the teardown check). */
  remaining(): string[] {
    const all = existsSync('/run/netns') ? readdirSync('/run/netns') : [];
    return all.filter((n) => n.startsWith(`${this.id}-`));
  }
}
