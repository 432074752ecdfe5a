/**
 * The Nix code of the host (nix/), checked offline by scripts/nix-check.sh: every file parses,
 * the flake and all modules evaluate (over test/nix/stubs.nix), and what they produce is held
 * here against the contract — shared/spec/host.md's directories, firewall, rsync, service order
 * and hardening, and actors/contract/config.ts's FLASHPODS_* names and production paths.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SETTINGS } from '../../actors/contract/config.ts';
import { FIREWALL_RULESET } from '../support/netns.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHECK = join(ROOT, 'scripts/nix-check.sh');

interface Unit {
  after?: string[];
  requires?: string[];
  wants?: string[];
  wantedBy?: string[];
  before?: string[];
  environment?: Record<string, string>;
  serviceConfig: Record<string, unknown>;
  script?: string;
  postStart?: string;
}
interface Report {
  ok: boolean;
  problems: string[];
  files: string[];
  flake: { nixosConfigurations: string[]; nixosModules: string[]; nixpkgsUrl: string };
  failedAssertions: { asShipped: string[]; movedLaptop: string[] };
  package: { pname: string; npmRebuildFlags: string[]; dontNpmBuild: boolean; sourceFilter: Record<string, boolean> };
  // The evaluated NixOS config (JSON): navigated freely by the assertions below.
  deployed: any;
  variant: any;
}

let work: string;
let report: Report;
let checkOutput: string;
const units = (): Record<string, Unit> => report.deployed.systemd.services;

function runCheck(root: string, jsonOut?: string) {
  return spawnSync('bash', [join(root, 'scripts/nix-check.sh'), ...(jsonOut ? ['--json', jsonOut] : [])], { encoding: 'utf8', timeout: 300_000 });
}

/** A copy of just what nix-check.sh reads, to break on purpose. */
function scratchRepo(): string {
  const dir = mkdtempSync(join(work, 'repo-'));
  for (const p of ['nix', 'test/nix', 'scripts/nix-check.sh', 'package.json']) cpSync(join(ROOT, p), join(dir, p), { recursive: true });
  return dir;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'fp-nix-'));
  const out = join(work, 'report.json');
  const r = runCheck(ROOT, out);
  checkOutput = r.stdout + r.stderr;
  if (r.status !== 0) throw new Error(`scripts/nix-check.sh failed (${r.status}):\n${checkOutput}`);
  report = JSON.parse(readFileSync(out, 'utf8')) as Report;
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('scripts/nix-check.sh', () => {
  it('parses every .nix file and evaluates the flake with all its modules', () => {
    expect(checkOutput).toMatch(/parsed \d+ files/);
    expect(report.ok, report.problems.join('\n')).toBe(true);
    expect(report.flake.nixosConfigurations).toEqual(['flashpods']);
    expect(report.flake.nixosModules).toEqual(expect.arrayContaining(
      ['default', 'configuration', 'wireguard', 'firewall', 'podman', 'rsyncd', 'spire', 'flashpods-api', 'token-service']));
    for (const m of ['configuration', 'wireguard', 'firewall', 'podman', 'rsyncd', 'spire', 'flashpods-api', 'token-service']) {
      expect(report.files).toContain(`nix/modules/${m}.nix`);
    }
  });

  it('refuses the committed placeholder laptop key and an address changed without the ruleset file', () => {
    expect(report.failedAssertions.asShipped).toHaveLength(1);
    expect(report.failedAssertions.asShipped[0]).toMatch(/laptopPublicKey/);
    expect(report.failedAssertions.movedLaptop.join('\n')).toMatch(/flashpods\.nft/);
  });

  it('fails on a syntax error and on a ruleset that no longer matches the options', () => {
    const broken = scratchRepo();
    writeFileSync(join(broken, 'nix/modules/rsyncd.nix'), `${readFileSync(join(broken, 'nix/modules/rsyncd.nix'), 'utf8')}\n{`);
    const parse = runCheck(broken);
    expect(parse.status).not.toBe(0);
    expect(parse.stderr).toMatch(/PARSE ERROR in nix\/modules\/rsyncd\.nix/);

    const drifted = scratchRepo();
    const nft = join(drifted, 'nix/firewall/flashpods.nft');
    writeFileSync(nft, readFileSync(nft, 'utf8').replaceAll('ip saddr 10.0.0.2', 'ip saddr 10.0.0.0/24'));
    const evalRun = runCheck(drifted);
    expect(evalRun.status).not.toBe(0);
    expect(evalRun.stderr).toMatch(/deployed host: failed assertion: nix\/firewall\/flashpods\.nft does not match/);

    const opened = scratchRepo();
    const openedNft = join(opened, 'nix/firewall/flashpods.nft');
    writeFileSync(openedNft, readFileSync(openedNft, 'utf8').replace('elements = { 10.0.0.0/24, 169.254.0.0/16 }', 'elements = { 169.254.0.0/16 }'));
    const openedRun = runCheck(opened);
    expect(openedRun.status).not.toBe(0);
    expect(openedRun.stderr).toMatch(/deployed host: failed assertion: nix\/firewall\/flashpods\.nft does not close the tunnel subnet 10\.0\.0\.0\/24/);
  });
});

describe('the firewall the module deploys', () => {
  it('is byte for byte the file the network-namespace test loads', () => {
    const moduleText = readFileSync(join(ROOT, 'nix/modules/firewall.nix'), 'utf8');
    const m = /rulesetFile = (\S+);/.exec(moduleText);
    expect(m, 'firewall.nix names its ruleset file').not.toBeNull();
    expect(resolve(join(ROOT, 'nix/modules'), m![1]!)).toBe(FIREWALL_RULESET);
    expect(moduleText).toMatch(/builtins\.readFile rulesetFile/);
    expect(report.deployed.networking.nftables.ruleset).toBe(readFileSync(FIREWALL_RULESET, 'utf8'));
    expect(report.deployed.networking.nftables.enable).toBe(true);
  });

  it('opens only 51820/udp to the internet; the laptop\'s ports (and SSH) pass NixOS\'s own table on wg0 only', () => {
    const fw = report.deployed.networking.firewall;
    expect(fw.enable).toBe(true);
    expect(fw.allowedUDPPorts).toEqual([51820]);
    expect(fw.allowedTCPPorts ?? []).toEqual([]);
    expect(report.deployed.services.openssh.openFirewall).toBe(false);
    expect(fw.interfaces.wg0.allowedTCPPorts).toEqual(expect.arrayContaining([8080, 873, 22]));
    expect(Object.keys(fw.interfaces)).toEqual(['wg0']);
  });

  it('is the ruleset nft accepts (nft --check), also as NixOS checks it at build time (no user flashpods)', () => {
    try {
      execFileSync('nft', ['--version'], { stdio: 'ignore' });
    } catch {
      throw new Error('nft is missing: run `bash scripts/setup-podman.sh` as root (it installs nftables)');
    }
    // NixOS runs preCheckRuleset on a copy named ruleset.conf, in a sandbox whose only users
    // are root, nixbld and nobody.
    const sandbox = mkdtempSync(join(work, 'nft-check-'));
    const copy = join(sandbox, 'ruleset.conf');
    writeFileSync(copy, readFileSync(FIREWALL_RULESET, 'utf8'));
    execFileSync('bash', ['-euc', report.deployed.networking.nftables.preCheckRuleset], { cwd: sandbox });
    const checked = readFileSync(copy, 'utf8');
    expect(checked).not.toMatch(/skuid "flashpods"/);
    expect(checked).toContain('meta skuid "nobody" ct state new jump job_egress');
    const ns = `fpnixchk${process.pid}`;
    execFileSync('ip', ['netns', 'add', ns]);
    try {
      execFileSync('ip', ['netns', 'exec', ns, 'nft', '--check', '-f', FIREWALL_RULESET]);
      execFileSync('ip', ['netns', 'exec', ns, 'nft', '--check', '-f', copy]);
    } finally {
      execFileSync('ip', ['netns', 'del', ns]);
    }
  });
});

describe('users, directories, WireGuard, rsync', () => {
  it('creates user and group flashpods with lingering and sub-ids for rootless Podman', () => {
    const u = report.deployed.users.users.flashpods;
    expect(u).toMatchObject({ group: 'flashpods', linger: true, uid: report.deployed.services.flashpods.uid });
    expect(u.subUidRanges[0].count).toBe(65536);
    expect(report.deployed.users.groups.flashpods.gid).toBe(u.uid);
  });

  it('creates the directories of host.md with their exact owners and modes', () => {
    const rules: string[] = report.deployed.systemd.tmpfiles.rules;
    for (const line of [
      'd /tmp/flashpods/uploads 0755 flashpods flashpods -',
      'd /tmp/flashpods/sealed 0750 flashpods flashpods -',
      'd /var/lib/flashpods/artifacts 0755 flashpods flashpods -',
      'd /var/lib/flashpods/db 0755 flashpods flashpods -',
      'd /var/log/flashpods 0755 flashpods flashpods -',
      'd /run/flashpods 0750 flashpods flashpods -',
      'd /etc/flashpods 0700 root root -',
      'z /etc/flashpods/secrets.json 0600 root root -',
      'z /etc/flashpods/api-token 0600 root root -',
      'd /var/lib/spire/server 0700 root root -',
      'd /var/lib/spire/agent 0700 root root -',
      'd /run/spire/sockets 0755 root root -',
    ]) expect(rules).toContain(line);
    // uploads and sealed share a filesystem: finalize is a rename between them
    expect(dirname('/tmp/flashpods/uploads')).toBe(dirname('/tmp/flashpods/sealed'));
  });

  it('configures wg0 with the laptop as the one peer', () => {
    const wg = report.deployed.networking.wireguard.interfaces.wg0;
    expect(wg).toMatchObject({ ips: ['10.0.0.1/24'], listenPort: 51820, privateKeyFile: '/etc/flashpods/wireguard/private.key' });
    expect(wg.peers).toHaveLength(1);
    expect(wg.peers[0].allowedIPs).toEqual(['10.0.0.2/32']);
  });

  it('runs rsyncd as host.md says (its own unit; the file itself is run by test/nix/rsyncd.test.ts)', () => {
    const conf: string = report.deployed.environment.etc['rsyncd.conf'].text;
    for (const line of ['address = 10.0.0.1', 'port = 873', 'hosts allow = 10.0.0.2', 'hosts deny = *', 'max connections = 10',
      'use chroot = yes', 'timeout = 300', '[uploads]', '  path = /tmp/flashpods/uploads', '  read only = no', '  uid = flashpods', '  gid = flashpods']) {
      expect(conf.split('\n')).toContain(line);
    }
    const unit = units()['flashpods-rsyncd']!;
    expect(unit.serviceConfig.ExecStart).toMatch(/\/bin\/rsync --daemon --no-detach --config=\/etc\/rsyncd\.conf$/);
    expect(unit.after).toContain('wireguard-wg0.service');
    expect(unit.serviceConfig).toMatchObject({ NoNewPrivileges: true, ProtectSystem: 'strict', ReadWritePaths: ['/tmp/flashpods/uploads'] });
  });
});

describe('Podman', () => {
  it('serves flashpods\' rootless API on /run/flashpods/podman.sock, linked at the SPIRE template path', () => {
    const sock = report.deployed.systemd.user.sockets['flashpods-podman'];
    expect(sock.listenStreams).toEqual(['/run/flashpods/podman.sock']);
    expect(sock.socketConfig).toMatchObject({ SocketMode: '0660', Symlinks: ['%t/podman/podman.sock'] });
    expect(sock.unitConfig.ConditionUser).toBe('flashpods');
    expect(report.deployed.environment.etc['spire/agent.conf'].text).toContain('podman_socket_path_template = "unix:///run/user/%d/podman/podman.sock"');
    expect(report.deployed.virtualisation.podman).toMatchObject({ enable: true, dockerCompat: true });
  });

  it('pre-pulls the images of containers.md', () => {
    expect(report.deployed.services.flashpods.images).toEqual(['rust:latest', 'node:20', 'python:3.12', 'ubuntu:22.04', 'alpine:latest']);
    expect(units()['flashpods-prepull']!.script).toContain("'rust:latest' 'node:20'");
    expect(report.variant.systemd.services['flashpods-prepull']).toBeUndefined(); // prePullImages = false
  });
});

describe('SPIRE', () => {
  it('renders server and agent configs for flashpods.local as identity.md says', () => {
    const server: string = report.deployed.environment.etc['spire/server.conf'].text;
    for (const line of ['trust_domain = "flashpods.local"', 'bind_address = "127.0.0.1"', 'bind_port = "8081"', 'ca_ttl = "24h"',
      'default_x509_svid_ttl = "1h"', 'default_jwt_svid_ttl = "5m"', 'DataStore "sql"', 'database_type = "sqlite3"',
      'NodeAttestor "join_token"', 'KeyManager "disk"']) expect(server).toContain(line);
    const agent: string = report.deployed.environment.etc['spire/agent.conf'].text;
    for (const line of ['trust_domain = "flashpods.local"', 'socket_path = "/run/spire/sockets/agent.sock"', 'NodeAttestor "join_token"',
      'WorkloadAttestor "docker"']) expect(agent).toContain(line);
    expect(report.variant.environment.etc['spire/agent.conf'].text).toContain('use_new_container_locator = false');
  });

  it('runs the agent as root with group flashpods, and registers both entries idempotently', () => {
    expect(units()['spire-agent']!.serviceConfig).toMatchObject({ User: 'root', SupplementaryGroups: ['flashpods'] });
    const script = units()['spire-register-entries']!.script!;
    expect(script).toContain('register spiffe://flashpods.local/worker docker:label:flashpods-job-type:worker');
    expect(script).toContain('register spiffe://flashpods.local/agent docker:label:flashpods-job-type:agent');
    expect(script).toContain('entry show');
    expect(script).toContain("grep -q 'Entry ID'");
    expect(units()['spire-agent-bootstrap']!.script).toContain('-spiffeID spiffe://flashpods.local/host');
  });
});

describe('the Flashpods units', () => {
  const settingsByEnv = new Map(SETTINGS.map((s) => [s.env, s]));
  const pathSettings = SETTINGS.filter((s) => s.key.startsWith('paths.'));

  it('are built by Nix from this repository', () => {
    expect(report.package).toMatchObject({ pname: 'flashpods', dontNpmBuild: true, npmRebuildFlags: ['better-sqlite3', 'esbuild'] });
    expect(report.package.sourceFilter).toEqual({
      'cli/flashpods.mjs': true, 'actors/contract/config.ts': true, 'package-lock.json': true, 'schema.sql': true,
      'node_modules/hono/package.json': false, 'test/e2e/firewall.test.ts': false, 'nix/flake.nix': false, '.flashpods/api-token': false,
    });
    expect(units()['flashpods-api']!.serviceConfig.ExecStart).toMatch(/\/bin\/node \S+\/lib\/node_modules\/flashpods\/cli\/flashpods\.mjs serve$/);
    expect(units()['flashpods-token-service']!.serviceConfig.ExecStart).toMatch(/cli\/flashpods\.mjs serve --actors tokens$/);
  });

  it('name only FLASHPODS_* settings that config.ts has, and give every path', () => {
    for (const name of ['flashpods-api', 'flashpods-token-service']) {
      const env = units()[name]!.environment!;
      for (const key of Object.keys(env).filter((k) => k.startsWith('FLASHPODS_'))) {
        expect(key === 'FLASHPODS_PROFILE' || settingsByEnv.has(key), `${name}: ${key} is not in actors/contract/config.ts`).toBe(true);
      }
      expect(env.FLASHPODS_PROFILE).toBe('production');
      expect(env.FLASHPODS_LISTEN).toBe('10.0.0.1:8080');
      for (const s of pathSettings) {
        expect(env[s.env], `${name}: ${s.env}`).toBeDefined();
        if (s.env === 'FLASHPODS_API_TOKEN_FILE' || s.env === 'FLASHPODS_SECRETS_FILE') continue;
        expect(env[s.env], `${name}: ${s.env} differs from the production default`).toBe(s.production);
      }
    }
    const variantEnv = report.variant.systemd.services['flashpods-api'].environment;
    expect(variantEnv).toMatchObject({ FLASHPODS_CAPACITY_CPUS: '6', FLASHPODS_CAPACITY_MEMORY_GB: '12', FLASHPODS_UPLOADS_TOTAL_BYTES: '21474836480' });
  });

  it('keep the secrets from the API unit and hand them to the token unit only', () => {
    const api = units()['flashpods-api']!;
    const tok = units()['flashpods-token-service']!;
    expect(api.serviceConfig).toMatchObject({
      User: 'flashpods', Group: 'flashpods', NoNewPrivileges: true, ProtectSystem: 'strict', ProtectHome: true, PrivateTmp: false,
      TemporaryFileSystem: ['/run/credentials:ro'],
    });
    expect(api.serviceConfig.LoadCredential).toBeUndefined();
    expect(api.serviceConfig.InaccessiblePaths).toContain('-/etc/flashpods/secrets.json');
    expect(api.serviceConfig.ExecStartPre).toMatch(/^\+\S+\/install -m 0400 -o flashpods -g flashpods \/etc\/flashpods\/api-token \/run\/flashpods-api\/api-token$/);
    expect(api.environment!.FLASHPODS_API_TOKEN_FILE).toBe('/run/flashpods-api/api-token');
    expect(JSON.stringify(api)).not.toContain('secrets.json:');

    expect(tok.serviceConfig).toMatchObject({
      User: 'flashpods-tokens', Group: 'flashpods-tokens', NoNewPrivileges: true, ProtectSystem: 'strict', ProtectHome: true, PrivateNetwork: true,
      LoadCredential: ['secrets.json:/etc/flashpods/secrets.json'], RestrictAddressFamilies: ['AF_UNIX'],
    });
    expect(tok.environment!.FLASHPODS_SECRETS_FILE).toBe('%d/secrets.json');
    expect(report.deployed.systemd.paths['flashpods-token-secrets'].pathConfig.PathChanged).toBe('/etc/flashpods/secrets.json');
    expect(report.deployed.boot.kernel.sysctl['kernel.yama.ptrace_scope']).toBe(1);
  });

  it('do not restart a unit that stopped on a bad setting or a missing prerequisite (exit 2)', () => {
    for (const name of ['flashpods-api', 'flashpods-token-service']) {
      expect(units()[name]!.serviceConfig).toMatchObject({ Restart: 'on-failure', RestartPreventExitStatus: 2 });
    }
  });

  it('run the token service as its own user, its socket in a directory the API user cannot write', () => {
    const tok = units()['flashpods-token-service']!;
    const api = units()['flashpods-api']!;
    const { users, groups } = report.deployed.users;
    // Its own user and group; not in group flashpods (which would open Podman's socket to it).
    expect(users['flashpods-tokens']).toEqual({ isSystemUser: true, group: 'flashpods-tokens', description: expect.any(String) });
    expect(groups['flashpods-tokens']).toEqual({});
    expect(users.flashpods.extraGroups ?? []).not.toContain('flashpods-tokens');
    // The secrets: root 0600 at the source, a credential copy only flashpods-tokens can read.
    expect(report.deployed.systemd.tmpfiles.rules).toContain('z /etc/flashpods/secrets.json 0600 root root -');
    expect(tok.serviceConfig.LoadCredential).toEqual(['secrets.json:/etc/flashpods/secrets.json']);
    // The socket: both units agree on it, in /run/flashpods-tokens, flashpods-tokens:flashpods 2750.
    for (const unit of [tok, api]) expect(unit.environment!.FLASHPODS_TOKEN_SOCKET).toBe('/run/flashpods-tokens/token.sock');
    const rules: string[] = report.deployed.systemd.tmpfiles.rules;
    expect(rules.filter((r) => r.includes('/run/flashpods-tokens'))).toEqual(['d /run/flashpods-tokens 2750 flashpods-tokens flashpods -']);
    // No compatibility link at the old path: in the API user's directory it could be swapped.
    expect(rules.filter((r) => r.includes('token.sock'))).toEqual([]);
    expect(tok.serviceConfig.ReadWritePaths).toEqual(['/run/flashpods-tokens']);
    expect(tok.serviceConfig.InaccessiblePaths).toEqual(expect.arrayContaining(['-/run/flashpods', '-/tmp/flashpods', '-/var/lib/flashpods']));
    expect(api.serviceConfig.ReadWritePaths as string[]).not.toContain('/run/flashpods-tokens');
    expect(api.serviceConfig.User).toBe('flashpods');
  });

  it('share /tmp/flashpods as ONE writable tree (finalize renames uploads → sealed)', () => {
    const rw = units()['flashpods-api']!.serviceConfig.ReadWritePaths as string[];
    expect(rw).toEqual(expect.arrayContaining(['/tmp/flashpods', '/var/lib/flashpods', '/var/log/flashpods', '/run/flashpods']));
    expect(rw.filter((p) => p.startsWith('/tmp/flashpods/'))).toEqual([]);
  });

  it('start in the order network → podman socket → spire-server → spire-agent → flashpods', () => {
    const u = units();
    const before = (a: string, b: string) => expect(u[b]!.after ?? [], `${b} after ${a}`).toContain(a);
    before('network.target', 'flashpods-podman-socket');
    before('flashpods-podman-socket.service', 'spire-server');
    before('spire-server.service', 'spire-agent');
    before('flashpods-podman-socket.service', 'spire-agent');
    expect(u['spire-agent']!.requires).toContain('flashpods-podman-socket.service');
    for (const unit of ['flashpods-api', 'flashpods-token-service']) {
      for (const dep of ['flashpods-podman-socket.service', 'spire-server.service', 'spire-agent.service']) before(dep, unit);
    }
    before('wireguard-wg0.service', 'flashpods-api');
    before('network-online.target', 'flashpods-api');
    expect(u['flashpods-api']!.requires).toEqual(expect.arrayContaining(['wireguard-wg0.service', 'flashpods-podman-socket.service']));
    expect(u['flashpods-token-service']!.requires).toContain('spire-agent.service');
  });
});
