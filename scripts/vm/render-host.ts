/**
 * @module scripts/vm/render-host
 * Renders the evaluated Flashpods host (the `deployed` config of scripts/nix-check.sh's JSON
 * report) into files for a Debian guest, the way NixOS itself would write them: systemd system
 * and user units (with `script`s as store scripts and `wantedBy` as .wants links), drop-ins for
 * units that only override an upstream unit, path and timer units, tmpfiles rules, environment.etc
 * files, sysctls, the nftables ruleset, the WireGuard interface unit, and the users. Store paths
 * are kept verbatim; stand-ins.json says which guest files back each one (scripts/flashpods-vm
 * installs them). What cannot be rendered is listed in nix/README.md ("The VM").
 *
 *   node --import tsx scripts/vm/render-host.ts REPORT.json OUT
 *   → OUT/root/… (laid over the guest's /), OUT/users.sh, OUT/stand-ins.json, OUT/package-root
 */
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

type Json = any;

/** A systemd unit as NixOS's options describe it (systemd.services.<name> and friends). */
interface NixUnit {
  description?: string;
  wantedBy?: string[];
  requiredBy?: string[];
  requires?: string[];
  wants?: string[];
  after?: string[];
  before?: string[];
  bindsTo?: string[];
  partOf?: string[];
  conflicts?: string[];
  environment?: Record<string, string>;
  path?: string[];
  unitConfig?: Record<string, unknown>;
  serviceConfig?: Record<string, unknown>;
  socketConfig?: Record<string, unknown>;
  pathConfig?: Record<string, unknown>;
  listenStreams?: string[];
  script?: string;
  preStart?: string;
  postStart?: string;
  startAt?: string | string[];
  restartTriggers?: unknown[];
}

const STORE_PATH = /\/nix\/store\/[0-9a-z]{32}-[^/\s"'`;:]+/g;
const FAKE_HASH = '0'.repeat(32);
/** NixOS puts coreutils, findutils, gnugrep, gnused and systemd on every unit's PATH; Debian's own directories stand in for them. */
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** nixpkgs packages whose `bin/` the guest's Debian packages provide under /usr (see GUEST_PACKAGES in scripts/flashpods-vm). */
const DEBIAN_STAND_INS = new Set([
  'bash', 'coreutils', 'curl', 'findutils', 'gnugrep', 'gnused', 'iproute2', 'jq', 'nftables', 'openssl', 'podman', 'rsync',
  'shadow', 'slirp4netns', 'sqlite', 'systemd', 'util-linux', 'wireguard-tools',
]);
const KNOWN_UNIT_KEYS = new Set([
  'description', 'wantedBy', 'requiredBy', 'requires', 'wants', 'after', 'before', 'bindsTo', 'partOf', 'conflicts', 'environment',
  'path', 'unitConfig', 'serviceConfig', 'socketConfig', 'pathConfig', 'listenStreams', 'script', 'preStart', 'postStart', 'startAt',
  'restartTriggers',
]);

class Output {
  readonly files = new Map<string, { text: string; mode: number }>();
  readonly links = new Map<string, string>();

  file(path: string, text: string, mode = 0o644): void {
    if (this.files.has(path)) throw new Error(`rendered twice: ${path}`);
    this.files.set(path, { text, mode });
  }

  link(path: string, target: string): void {
    this.links.set(path, target);
  }

  write(dir: string): void {
    rmSync(dir, { recursive: true, force: true });
    for (const [path, { text, mode }] of this.files) {
      const to = join(dir, path);
      mkdirSync(dirname(to), { recursive: true });
      writeFileSync(to, text, { mode });
    }
    for (const [path, target] of this.links) {
      const at = join(dir, path);
      mkdirSync(dirname(at), { recursive: true });
      symlinkSync(target, at);
    }
  }
}

/** `Key=value` lines as NixOS writes them: a list is one line per item, booleans as true/false. */
function entries(config: Record<string, unknown> | undefined): string[] {
  if (!config) return [];
  return Object.entries(config).flatMap(([key, value]) => (Array.isArray(value) ? value : [value]).map((v) => `${key}=${scalar(v, key)}`));
}

function scalar(v: unknown, key: string): string {
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number' || typeof v === 'string') return String(v);
  throw new Error(`${key}: cannot render ${JSON.stringify(v)} as a unit setting`);
}

function section(name: string, lines: string[]): string {
  return lines.length ? `[${name}]\n${lines.join('\n')}\n` : '';
}

/** systemd's quoting for one Environment= assignment. */
function environmentLine(name: string, value: string): string {
  return `Environment="${`${name}=${value}`.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function unitSection(u: NixUnit): string[] {
  const deps: [string, string[] | undefined][] = [
    ['Requires', u.requires], ['Wants', u.wants], ['After', u.after], ['Before', u.before],
    ['BindsTo', u.bindsTo], ['PartOf', u.partOf], ['Conflicts', u.conflicts],
  ];
  return [
    ...(u.description ? [`Description=${u.description}`] : []),
    ...deps.filter(([, list]) => list?.length).map(([key, list]) => `${key}=${list!.join(' ')}`),
    ...entries(u.unitConfig),
  ];
}

/** A unit that only sets options of an upstream unit (no body of its own): NixOS writes it as overrides.conf. */
function isOverride(kind: string, u: NixUnit): boolean {
  if (kind === 'service') return !u.script && u.serviceConfig?.ExecStart === undefined;
  if (kind === 'socket') return !u.listenStreams?.length;
  if (kind === 'path') return !u.pathConfig;
  return false;
}

function storeScript(out: Output, name: string, text: string): string {
  const path = `/nix/store/${FAKE_HASH}-unit-script-${name}/bin/${name}`;
  out.file(path.slice(1), `#!/bin/bash\nset -e\n${text}`, 0o755);
  return path;
}

/** Writes one unit (or its overrides.conf) into `dir` (etc/systemd/system or etc/systemd/user). */
function renderUnit(out: Output, dir: string, name: string, kind: 'service' | 'socket' | 'path' | 'timer', u: NixUnit, extra: string[] = []): void {
  for (const key of Object.keys(u)) if (!KNOWN_UNIT_KEYS.has(key)) throw new Error(`${name}.${kind}: the renderer does not know option ${key}`);
  const file = `${name}.${kind}`;
  const override = isOverride(kind, u);
  const body: string[] = [];
  if (kind === 'service') {
    // An override leaves the upstream unit's PATH alone.
    const path = override ? {} : { PATH: [...(u.path ?? []).flatMap((p) => [`${p}/bin`, `${p}/sbin`]), DEFAULT_PATH].join(':') };
    body.push(...Object.entries({ ...u.environment, ...path }).map(([k, v]) => environmentLine(k, v)));
    if (u.preStart) body.push(`ExecStartPre=${storeScript(out, `${name}-pre-start`, u.preStart)}`);
    if (u.script) body.push(`ExecStart=${storeScript(out, `${name}-start`, u.script)}`);
    if (u.postStart) body.push(`ExecStartPost=${storeScript(out, `${name}-post-start`, u.postStart)}`);
    body.push(...entries(u.serviceConfig));
  } else if (kind === 'socket') {
    body.push(...(u.listenStreams ?? []).map((s) => `ListenStream=${s}`), ...entries(u.socketConfig));
  } else if (kind === 'path') {
    body.push(...entries(u.pathConfig));
  }
  body.push(...extra);
  const sectionName = { service: 'Service', socket: 'Socket', path: 'Path', timer: 'Timer' }[kind];
  const text = `# Rendered from nix/ by scripts/vm/render-host.ts\n${section('Unit', unitSection(u))}${section(sectionName, body)}`;
  if (override) {
    out.file(`${dir}/${file}.d/overrides.conf`, text);
    return;
  }
  out.file(`${dir}/${file}`, text);
  for (const target of u.wantedBy ?? []) out.link(`${dir}/${target}.wants/${file}`, `../${file}`);
  for (const target of u.requiredBy ?? []) out.link(`${dir}/${target}.requires/${file}`, `../${file}`);
}

function renderUnits(out: Output, systemd: Json): void {
  const system = 'etc/systemd/system';
  for (const [name, u] of Object.entries<NixUnit>(systemd.services ?? {})) {
    renderUnit(out, system, name, 'service', u);
    if (u.startAt) {
      const calendars = Array.isArray(u.startAt) ? u.startAt : [u.startAt];
      renderUnit(out, system, name, 'timer', { wantedBy: ['timers.target'] }, calendars.map((c) => `OnCalendar=${c}`));
    }
  }
  for (const [name, u] of Object.entries<NixUnit>(systemd.paths ?? {})) renderUnit(out, system, name, 'path', u);
  const user = 'etc/systemd/user';
  for (const [name, u] of Object.entries<NixUnit>(systemd.user?.services ?? {})) renderUnit(out, user, name, 'service', u);
  for (const [name, u] of Object.entries<NixUnit>(systemd.user?.sockets ?? {})) renderUnit(out, user, name, 'socket', u);
  out.file('etc/tmpfiles.d/00-nixos.conf', `${(systemd.tmpfiles?.rules ?? []).join('\n')}\n`);
}

/** networking.wireguard.interfaces.<name> → the unit NixOS's wireguard module generates (wireguard-<name>.service). */
function renderWireguard(out: Output, networking: Json): void {
  for (const [name, i] of Object.entries<Json>(networking.wireguard?.interfaces ?? {})) {
    const key = i.privateKeyFile as string;
    const peers = (i.peers as Json[]).map((p) => [
      `wg set ${name} peer ${p.publicKey} allowed-ips ${(p.allowedIPs as string[]).join(',')}`,
      p.endpoint ? ` endpoint ${p.endpoint}` : '',
      p.persistentKeepalive ? ` persistent-keepalive ${p.persistentKeepalive}` : '',
    ].join(''));
    const script = [
      ...(i.generatePrivateKeyFile ? [`mkdir -p --mode 0755 "$(dirname ${key})"`, `[ -f ${key} ] || (umask 077; wg genkey > ${key})`] : []),
      `ip link del dev ${name} 2>/dev/null || true`,
      `ip link add dev ${name} type wireguard`,
      ...(i.ips as string[]).map((ip) => `ip address add ${ip} dev ${name}`),
      `wg set ${name} private-key ${key}${i.listenPort ? ` listen-port ${i.listenPort}` : ''}`,
      ...peers,
      `ip link set up dev ${name}`,
    ].join('\n');
    renderUnit(out, 'etc/systemd/system', `wireguard-${name}`, 'service', {
      description: `WireGuard Tunnel - ${name}`,
      wantedBy: ['multi-user.target'],
      wants: ['network.target'],
      before: ['network.target'],
      after: ['network-pre.target'],
      serviceConfig: { Type: 'oneshot', RemainAfterExit: true, ExecStop: `/usr/sbin/ip link del dev ${name}` },
      script: `${script}\n`,
    });
  }
}

/** networking.nftables.ruleset → /etc/nftables.conf (Debian's nftables.service loads it, as NixOS's does: after a flush). */
function renderNftables(out: Output, networking: Json): void {
  if (!networking.nftables?.enable) return;
  out.file('etc/nftables.conf', `#!/usr/sbin/nft -f\n# Rendered from nix/ by scripts/vm/render-host.ts\nflush ruleset\n\n${networking.nftables.ruleset}`, 0o755);
}

function renderEtc(out: Output, etc: Record<string, Json>): void {
  for (const [name, e] of Object.entries(etc)) {
    if (typeof e.text !== 'string') throw new Error(`environment.etc."${name}": only \`text\` entries can be rendered`);
    out.file(`etc/${name}`, e.text, e.mode ? parseInt(e.mode, 8) : 0o644);
  }
}

function renderSysctl(out: Output, sysctl: Record<string, unknown> | undefined): void {
  const lines = Object.entries(sysctl ?? {}).map(([k, v]) => `${k} = ${scalar(v, k)}`);
  if (lines.length) out.file('etc/sysctl.d/60-nixos.conf', `${lines.join('\n')}\n`);
}

const sh = (s: string | number): string => `'${String(s).replace(/'/g, `'\\''`)}'`;

/** users.users / users.groups → commands for the guest root (run there with chroot at image build). */
function renderUsers(users: Json): string {
  const lines = ['# Rendered from nix/ by scripts/vm/render-host.ts: users.groups, users.users'];
  for (const [name, g] of Object.entries<Json>(users.groups ?? {})) {
    lines.push(`getent group ${sh(name)} >/dev/null || groupadd --system ${g.gid !== undefined ? `--gid ${g.gid} ` : ''}${sh(name)}`);
  }
  for (const [name, u] of Object.entries<Json>(users.users ?? {})) {
    if (name === 'root') continue;
    if (!u.isSystemUser && !u.isNormalUser) throw new Error(`users.users.${name}: neither isSystemUser nor isNormalUser`);
    const home = u.home ?? '/var/empty';
    lines.push(
      `getent passwd ${sh(name)} >/dev/null || useradd ${u.isSystemUser ? '--system ' : ''}${u.uid !== undefined ? `--uid ${u.uid} ` : ''}` +
        `--gid ${sh(u.group ?? 'nogroup')} --home-dir ${sh(home)} --no-create-home --shell /usr/sbin/nologin --comment ${sh(u.description ?? '')} ${sh(name)}`,
    );
    if (u.extraGroups?.length) lines.push(`usermod --append --groups ${sh(u.extraGroups.join(','))} ${sh(name)}`);
    if (u.createHome) lines.push(`install -d -m ${sh(u.homeMode ?? '700')} -o ${sh(name)} -g ${sh(u.group ?? 'nogroup')} ${sh(home)}`);
    for (const r of u.subUidRanges ?? []) lines.push(`echo ${sh(`${name}:${r.startUid}:${r.count}`)} >> /etc/subuid`);
    for (const r of u.subGidRanges ?? []) lines.push(`echo ${sh(`${name}:${r.startGid}:${r.count}`)} >> /etc/subgid`);
    if (u.linger) lines.push('mkdir -p /var/lib/systemd/linger', `touch /var/lib/systemd/linger/${sh(name)}`);
  }
  for (const [name, g] of Object.entries<Json>(users.groups ?? {})) {
    for (const member of g.members ?? []) lines.push(`usermod --append --groups ${sh(name)} ${sh(member)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Every store path the rendered files name, with what backs it in the guest. */
function standIns(out: Output, packagePath: string): Record<string, string> {
  const found = new Set<string>();
  for (const { text } of out.files.values()) for (const m of text.matchAll(STORE_PATH)) found.add(m[0]);
  const kinds: Record<string, string> = {};
  for (const path of [...found].sort()) {
    const name = path.slice(`/nix/store/${FAKE_HASH}-`.length);
    if (name.startsWith('unit-script-')) continue;
    if (path === packagePath) kinds[path] = 'package';
    else if (/^nodejs-\d+$/.test(name)) kinds[path] = 'node';
    else if (name === 'spire' || name === 'spire-server' || name === 'spire-agent') kinds[path] = name;
    else if (DEBIAN_STAND_INS.has(name)) kinds[path] = 'debian';
    else throw new Error(`no guest stand-in for ${path}: add the package to GUEST_PACKAGES in scripts/flashpods-vm and to DEBIAN_STAND_INS here`);
  }
  return kinds;
}

function main(): void {
  const [reportFile, outDir] = process.argv.slice(2);
  if (!reportFile || !outDir) throw new Error('usage: render-host.ts REPORT.json OUT');
  const report = JSON.parse(readFileSync(reportFile, 'utf8'));
  if (!report.ok) throw new Error(`the evaluation reports problems:\n${report.problems.join('\n')}`);
  const host = report.deployed;
  const out = new Output();
  renderUnits(out, host.systemd);
  renderWireguard(out, host.networking);
  renderNftables(out, host.networking);
  renderEtc(out, host.environment?.etc ?? {});
  renderSysctl(out, host.boot?.kernel?.sysctl);
  const packagePath: string = host.services.flashpods.package;
  out.write(join(outDir, 'root'));
  writeFileSync(join(outDir, 'users.sh'), renderUsers(host.users));
  writeFileSync(join(outDir, 'stand-ins.json'), `${JSON.stringify(standIns(out, packagePath), null, 2)}\n`);
  writeFileSync(join(outDir, 'package-root'), `${packagePath}/lib/node_modules/${report.package.pname}`);
}

main();
