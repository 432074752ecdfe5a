/**
 * The token socket's place as nix/modules/ make it, on real components: the evaluated config's
 * tmpfiles rule for the socket's directory is applied by the real `systemd-tmpfiles` (the path
 * moved under a temp root), the project's socket server (actors/tokens/socket-server.ts) listens
 * there as the token unit's User/Group, and then:
 *
 * - the socket is `<token user>:<API group> 0660`;
 * - the API unit's user cannot remove, rename or replace it, nor plant anything beside it (hole 5:
 *   a compromised API swapping token.sock), yet can connect — as can a real rootless Podman job
 *   container (user flashpods, keep-id) that gets it mounted by the production create options;
 * - any other uid cannot even reach it (the directory is the gate).
 *
 * Only what systemd itself does (LoadCredential, User= of the real unit) is not run here:
 * test/nix/parse.test.ts holds the evaluated unit to it.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTAINER_SOCKETS, jobContainerOptions } from '../../actors/containers/container-spec.ts';
import { removeContainer, waitForExit } from '../../actors/containers/podman-client.ts';
import { workerSpec } from '../actors/containers/helpers.ts';
import { buildUnixGet } from '../actors/tokens/helpers.ts';
import { startRootlessPodmanService, type RootlessPodmanService } from '../support/podman.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SOCKET_SERVER = fileURLToPath(new URL('../../actors/tokens/socket-server.ts', import.meta.url));
const NOBODY = 65534;

interface Account { name: string; uid: number; gid: number }

let work: string;
let socket: string;
let tokenUser: Account;
let apiUser: Account;
let server: ChildProcess | undefined;
let serverOut = '';
let artifacts: string | undefined;

function account(user: string, group: string): Account {
  const id = (flag: string, name: string) => {
    try {
      return Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
    } catch {
      throw new Error(`user ${name} is missing: run \`bash scripts/setup-podman.sh\` as root first`);
    }
  };
  const gid = Number(execFileSync('getent', ['group', group], { encoding: 'utf8' }).split(':')[2]);
  return { name: user, uid: id('-u', user), gid };
}

/** argv as uid:gid with no supplementary groups, like a systemd unit with User=/Group=. */
function asUser(who: { uid: number; gid: number }, argv: string[]): { code: number | null; out: string } {
  const r = spawnSync('setpriv', [`--reuid=${who.uid}`, `--regid=${who.gid}`, '--clear-groups', '--', ...argv], { encoding: 'utf8', timeout: 20_000, cwd: '/' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Connects to the socket as `who` with node; prints "connected" or the error code. */
function connectAs(who: { uid: number; gid: number }): string {
  const script = `require('node:net').connect(process.argv[1]).on('connect', function () { console.log('connected'); this.destroy(); }).on('error', (e) => console.log(e.code))`;
  return asUser(who, [process.execPath, '-e', script, socket]).out.trim();
}

describe('the token socket in the directory nix/modules/token-service.nix makes', () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'fp-token-socket-'));
    chmodSync(work, 0o755);
    const reportFile = join(work, 'report.json');
    const check = spawnSync('bash', [join(ROOT, 'scripts/nix-check.sh'), '--json', reportFile], { encoding: 'utf8', timeout: 300_000 });
    if (check.status !== 0) throw new Error(`scripts/nix-check.sh failed:\n${check.stdout}${check.stderr}`);
    const deployed = JSON.parse(readFileSync(reportFile, 'utf8')).deployed;
    const tokenUnit = deployed.systemd.services['flashpods-token-service'];
    const apiUnit = deployed.systemd.services['flashpods-api'];
    tokenUser = account(tokenUnit.serviceConfig.User, tokenUnit.serviceConfig.Group);
    apiUser = account(apiUnit.serviceConfig.User, apiUnit.serviceConfig.Group);

    // The socket path both units are given, and the tmpfiles rule that makes its directory.
    const production: string = tokenUnit.environment.FLASHPODS_TOKEN_SOCKET;
    expect(apiUnit.environment.FLASHPODS_TOKEN_SOCKET).toBe(production);
    const rules = (deployed.systemd.tmpfiles.rules as string[]).filter((r) => r.split(/\s+/)[1] === dirname(production));
    expect(rules, `a tmpfiles rule creating ${dirname(production)}`).toHaveLength(1);
    socket = join(work, production);
    mkdirSync(dirname(dirname(socket)), { recursive: true, mode: 0o755 });
    const conf = join(work, 'flashpods-tokens.conf');
    writeFileSync(conf, `${rules[0]!.replace(dirname(production), dirname(socket))}\n`);
    execFileSync('systemd-tmpfiles', ['--create', conf], { encoding: 'utf8' });

    // The project's socket server, as the token unit's user.
    const script = `const { listenOnSocket } = await import(${JSON.stringify(SOCKET_SERVER)});
      await listenOnSocket(process.argv[1], (req, res) => res.end(JSON.stringify({ ok: true })));
      console.log('listening');`;
    server = spawn('setpriv', [`--reuid=${tokenUser.uid}`, `--regid=${tokenUser.gid}`, '--clear-groups', '--',
      process.execPath, '--import', 'tsx', '--input-type=module', '-e', script, socket], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout!.on('data', (d: Buffer) => (serverOut += d.toString()));
    server.stderr!.on('data', (d: Buffer) => (serverOut += d.toString()));
    const deadline = Date.now() + 30_000;
    while (!serverOut.includes('listening')) {
      if (server.exitCode !== null) throw new Error(`the socket server exited:\n${serverOut}`);
      if (Date.now() > deadline) throw new Error(`the socket server did not listen:\n${serverOut}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }, 360_000);

  afterAll(() => {
    server?.kill('SIGTERM');
    for (const dir of [work, artifacts]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is <token user>:<API group> 0660, in a <token user>:<API group> 2750 directory', () => {
    const dir = statSync(dirname(socket));
    expect({ uid: dir.uid, gid: dir.gid, mode: (dir.mode & 0o7777).toString(8) }).toEqual({ uid: tokenUser.uid, gid: apiUser.gid, mode: '2750' });
    const st = statSync(socket);
    expect(st.isSocket()).toBe(true);
    expect({ uid: st.uid, gid: st.gid, mode: (st.mode & 0o7777).toString(8) }).toEqual({ uid: tokenUser.uid, gid: apiUser.gid, mode: '660' });
    expect(tokenUser.uid).not.toBe(apiUser.uid);
  });

  it('cannot be removed, renamed or replaced by the API user, nor anything planted beside it', () => {
    const before = statSync(socket).ino;
    const dir = dirname(socket);
    const attempts = {
      rm: ['rm', '-f', socket],
      mv: ['mv', '-f', socket, `${socket}.old`],
      'ln -sf': ['ln', '-sfn', '/tmp/decoy.sock', socket],
      plant: ['sh', '-c', `: > ${dir}/decoy.sock`],
    };
    for (const [what, argv] of Object.entries(attempts)) {
      const r = asUser(apiUser, argv);
      expect(r.code, `${what} as ${apiUser.name}: ${r.out}`).not.toBe(0);
      expect(r.out, what).toMatch(/Permission denied/);
    }
    expect(statSync(socket).ino).toBe(before);
    expect(connectAs(tokenUser)).toBe('connected');
  });

  it('lets the API user (Podman, job containers) connect, and no other uid reach it', () => {
    expect(connectAs(apiUser)).toBe('connected');
    expect(connectAs({ uid: NOBODY, gid: NOBODY })).toBe('EACCES');
  });

  it('is reachable from a rootless job container (user flashpods, keep-id) that gets it mounted', async () => {
    let podman: RootlessPodmanService | undefined;
    let id: string | undefined;
    try {
      podman = await startRootlessPodmanService();
      const docker = new Docker({ socketPath: podman.socketPath });
      const unixGet = buildUnixGet();
      const spec = workerSpec({
        rootless: true, networkMode: 'none', needGithubToken: true, identitySockets: { token: socket },
        command: `id -u; /fp/unix-get -socket ${CONTAINER_SOCKETS.token} /health`,
      });
      artifacts = spec.artifactsDir;
      chownSync(artifacts, podman.uid, podman.gid);
      // The production create options, plus the test's HTTP client.
      const options = jobContainerOptions(spec);
      options.HostConfig!.Binds!.push(`${unixGet}:/fp/unix-get:ro`);
      const container = await docker.createContainer(options);
      id = container.id;
      await container.start();
      const exit = await waitForExit(docker, id);
      const out = (await container.logs({ stdout: true, stderr: true, follow: false })).toString('latin1');
      expect(exit.exitCode, out).toBe(0);
      // Multiplexed log frames: each line carries its own 8-byte header.
      expect(out).toContain(`${apiUser.uid}\n`);
      expect(out).toContain('STATUS 200\n');
      expect(out).toContain('{"ok":true}');
      await removeContainer(docker, id);
      id = undefined;
    } finally {
      if (id && podman) await removeContainer(new Docker({ socketPath: podman.socketPath }), id).catch(() => undefined);
      await podman?.stop();
    }
  }, 120_000);
});
