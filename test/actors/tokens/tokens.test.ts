/**
 * The token actor against a REAL SPIRE server + agent (join-token node attestation, docker
 * workload attestor on a REAL rootful Podman API service) and REAL job-like containers: the
 * containers are attested from their cgroups and Podman labels, fetch JWT-SVIDs with the
 * spire-agent binary (bind-mounted, static) and trade them at the mounted token socket.
 * SPIRE, Podman and the actor are started once for the file.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { base64url, decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TokensProtocol } from '../../../actors/tokens/messages.ts';
import { fetchJWTBundles, fetchJWTSVID, GrpcStatus, JwtBundleWatcher, WorkloadApiError } from '../../../actors/tokens/workload-api.ts';
import { startPodmanService, type PodmanService } from '../../support/podman.ts';
import { FLASHPODS_ENTRIES, startSpire, type Spire } from '../../support/spire.ts';
import { buildUnixGet, parseExchange, runJobContainer, socketGet, startTokens, tokensConfig, type ContainerMounts, type RunningTokens } from './helpers.ts';

const pexec = promisify(execFile);
const TD = 'spiffe://flashpods.local';
const AUD = 'flashpods-token-service';
const SHORT_TTL_SEC = 2;
const LEEWAY_SEC = 5; // actors/tokens/actor.ts LEEWAY_SEC
const SECRETS = { anthropic_api_key: `sk-ant-test-${randomBytes(12).toString('hex')}`, github_token: `ghp_test${randomBytes(12).toString('hex')}` };

let podman: PodmanService;
let spire: Spire;
let docker: Docker;
let tokens: RunningTokens;
let home: string;
let secretsPath: string;
let tokenSocket: string;
let mounts: ContainerMounts;
/** Every token and secret this file handled: none may appear in any log. */
const sensitive = new Set<string>([SECRETS.anthropic_api_key, SECRETS.github_token]);
const figures: Record<string, number | string> = {};
/** A real worker SVID (audience flashpods-token-service) printed by a container, for host-side tests. */
let workerSvid: string;

const status = () => tokens.supervisor.ref<TokensProtocol>('tokens').call('status', {});
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const writeSecrets = (content: string) => {
  const tmp = `${secretsPath}.new`;
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, secretsPath);
};
async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  const unixGet = buildUnixGet();
  podman = await startPodmanService();
  docker = new Docker({ socketPath: podman.socketPath });
  const t0 = Date.now();
  spire = await startSpire({
    podmanSocket: podman.socketPath,
    entries: [
      ...FLASHPODS_ENTRIES,
      // Registered but not in the token policy.
      { spiffeId: `${TD}/other`, selector: 'docker:label:flashpods-job-type:other' },
      // The agent identity with a 2 s JWT-SVID, to see a real SVID expire.
      { spiffeId: `${TD}/agent`, selector: 'docker:label:flashpods-job-type:agent-short-ttl', jwtSvidTtlSec: SHORT_TTL_SEC },
    ],
  });
  figures.spireStartMs = Date.now() - t0;
  figures.spireServerReadyMs = spire.timings.serverReadyMs;
  figures.spireAgentReadyWithEntriesMs = spire.timings.agentReadyMs;

  home = mkdtempSync(join(tmpdir(), 'fp-tokens-'));
  mkdirSync(join(home, 'run'));
  secretsPath = join(home, 'secrets.json');
  writeSecrets(JSON.stringify(SECRETS));
  tokenSocket = join(home, 'run', 'token.sock');
  const config = tokensConfig(home, { FLASHPODS_SECRETS_FILE: secretsPath, FLASHPODS_TOKEN_SOCKET: tokenSocket, FLASHPODS_SPIRE_SOCKET: spire.agentSocket });
  const t1 = Date.now();
  tokens = await startTokens(config, { maxRestarts: 5 });
  figures.tokensActorStartMs = Date.now() - t1;
  mounts = { agentSocket: spire.agentSocket, tokenSocket, unixGet };
}, 180_000);

afterAll(async () => {
  await tokens?.supervisor.shutdown('test done');
  await spire?.stop();
  await podman?.stop();
  if (home) rmSync(home, { recursive: true, force: true });
  console.log('token service figures:', JSON.stringify(figures));
});

describe('token actor with real SPIRE and Podman', () => {
  it('listens only on its unix socket (0660), reports health and status', async () => {
    expect(statSync(tokenSocket).isSocket()).toBe(true);
    expect(statSync(tokenSocket).mode & 0o777).toBe(0o660);
    const health = await socketGet(tokenSocket, '/health');
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: 'ok', trust_bundle_keys: 1, bundle_stream: 'ok', secrets: 'ok' });
    expect((await socketGet(tokenSocket, '/nope')).status).toBe(404);
    const s = await status();
    expect(s).toMatchObject({ socket: tokenSocket, bundleKeys: 1, bundleStreamError: null, secrets: 'ok' });
  });

  it('attests a container labelled worker as spiffe://flashpods.local/worker; the exchange gives GITHUB_TOKEN only', async () => {
    const run = await runJobContainer(docker, mounts, 'worker', `
      a=$(cut -d' ' -f1 /proc/uptime); fetch_jwt ${AUD} || exit 3; b=$(cut -d' ' -f1 /proc/uptime)
      echo "FETCHED $a $b"; exchange`);
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain(`ID ${TD}/worker\n`);
    const [, a, b] = /FETCHED (\S+) (\S+)/.exec(run.stdout)!;
    figures.containerAttestAndFetchMs = Math.round((Number(b) - Number(a)) * 1000);
    figures.containerRoundTripMs = run.ms;
    expect(parseExchange(run.stdout)).toEqual({ status: 200, body: { ANTHROPIC_API_KEY: null, GITHUB_TOKEN: SECRETS.github_token } });
  });

  it('attests a container labelled agent as spiffe://flashpods.local/agent; the exchange gives both tokens', async () => {
    const run = await runJobContainer(docker, mounts, 'agent', `fetch_jwt ${AUD} || exit 3; exchange`);
    expect(run.stdout).toContain(`ID ${TD}/agent\n`);
    expect(parseExchange(run.stdout)).toEqual({ status: 200, body: { ANTHROPIC_API_KEY: SECRETS.anthropic_api_key, GITHUB_TOKEN: SECRETS.github_token } });
  });

  it('issues no SVID to a container without the label or with an unregistered value', async () => {
    for (const jobType of [undefined, 'nope', 'Worker', 'worker ']) {
      const run = await runJobContainer(docker, mounts, jobType, `fetch_jwt ${AUD}; echo "RC $?"`);
      expect(run.stdout, `label ${jobType}`).toContain('RC 1');
      expect(run.stdout).not.toContain('ID ');
      expect(run.stderr).toContain('PermissionDenied');
      expect(run.stderr).toContain('no identity issued');
    }
  });

  it('the project Workload API client works inside an attested container (and is refused outside one)', async () => {
    // Host rootfs as an overlay: node and the repo are there; the agent socket is mounted.
    const inContainer = async (jobType: string, audiences: string) => {
      const { stdout } = await pexec('podman', ['--url', `unix://${podman.socketPath}`, 'run', '--rm', '--network', 'none',
        '--label', `flashpods-job-type=${jobType}`, '-v', `${spire.agentSocket}:/run/spire/sockets/agent.sock`, '-w', process.cwd(),
        '--rootfs', '/:O', process.execPath, '--import', 'tsx', 'test/actors/tokens/fixtures/workload-client.ts', '/run/spire/sockets/agent.sock', audiences],
      { timeout: 60_000 });
      return JSON.parse(stdout.trim().split('\n').at(-1)!);
    };
    const worker = await inContainer('worker', `${AUD},second-audience`);
    expect(worker.ok).toBe(true);
    expect(worker.svids).toHaveLength(1);
    const [svid] = worker.svids;
    expect(svid.spiffeId).toBe(`${TD}/worker`);
    expect(svid.header).toMatchObject({ alg: 'ES256', typ: 'JWT' });
    expect(svid.header.kid).toMatch(/^\w{32}$/);
    expect(svid.claims.sub).toBe(`${TD}/worker`);
    expect(svid.claims.aud).toEqual([AUD, 'second-audience']);
    expect(svid.claims.exp - svid.claims.iat).toBe(300); // default_jwt_svid_ttl 5m
    expect(worker.bundles[TD]).toEqual([svid.header.kid]);

    const none = await inContainer('nope', AUD);
    expect(none).toMatchObject({ ok: false, name: 'WorkloadApiError', code: GrpcStatus.PERMISSION_DENIED, detail: 'no identity issued' });

    // On the host the test process has no identity: SVIDs refused, bundles allowed (unauthenticated verifiers).
    const err = await fetchJWTSVID(spire.agentSocket, AUD).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkloadApiError);
    expect(err).toMatchObject({ code: GrpcStatus.PERMISSION_DENIED, detail: 'no identity issued' });
    const bundles = await fetchJWTBundles(spire.agentSocket);
    expect(bundles.get(TD)?.keys.map((k) => k.kid)).toEqual([svid.header.kid]);
    expect(bundles.get(TD)?.keys[0]).not.toHaveProperty('use');
    const gone = await fetchJWTBundles(join(home, 'no-such.sock'), { timeoutMs: 2_000 }).catch((e: unknown) => e);
    expect(gone).toMatchObject({ code: GrpcStatus.UNAVAILABLE });
    expect((gone as Error).message).toContain('ENOENT');
  });

  it('gives a registered identity outside the policy 403 unknown_identity', async () => {
    const run = await runJobContainer(docker, mounts, 'other', `fetch_jwt ${AUD} || exit 3; exchange`);
    expect(run.stdout).toContain(`ID ${TD}/other\n`);
    expect(parseExchange(run.stdout)).toEqual({ status: 403, body: { error: 'unknown_identity', message: expect.any(String) } });
  });

  it('answers 400 missing_authorization and 401 invalid_jwt to bad headers, from a container', async () => {
    const run = await runJobContainer(docker, mounts, 'worker', `
      /fp/unix-get -socket /run/flashpods/token.sock /tokens
      /fp/unix-get -socket /run/flashpods/token.sock -authorization 'Basic dXNlcjpwYXNz' /tokens
      /fp/unix-get -socket /run/flashpods/token.sock -authorization 'Bearer garbage' /tokens
      /fp/unix-get -socket /run/flashpods/token.sock -authorization 'Bearer a.b.c' /tokens`);
    const answers = run.stdout.split('STATUS ').slice(1).map((chunk) => ({ status: Number(chunk.split('\n')[0]), body: JSON.parse(chunk.split('\n')[1]!) }));
    expect(answers.map((a) => [a.status, a.body.error])).toEqual([
      [400, 'missing_authorization'], [400, 'missing_authorization'], [401, 'invalid_jwt'], [401, 'invalid_jwt'],
    ]);
    for (const a of answers) expect(Object.keys(a.body).sort()).toEqual(['error', 'message']);
  });

  it('refuses a real SVID minted for another audience: 401 invalid_audience', async () => {
    const run = await runJobContainer(docker, mounts, 'worker', 'fetch_jwt some-other-service || exit 3; exchange');
    expect(run.stdout).toContain(`ID ${TD}/worker\n`);
    expect(parseExchange(run.stdout)).toEqual({ status: 401, body: { error: 'invalid_audience', message: expect.any(String) } });
  });

  it(`refuses a real SVID after its expiry (+${LEEWAY_SEC} s leeway): 401 expired_jwt`, async () => {
    // A separate audience set keeps this short-lived SVID out of the agent's JWT cache for /agent.
    const run = await runJobContainer(docker, mounts, 'agent-short-ttl', `
      fetch_jwt ${AUD},expiry-test || exit 3; exchange; sleep ${SHORT_TTL_SEC + LEEWAY_SEC + 1}; exchange`);
    expect(run.stdout).toContain(`ID ${TD}/agent\n`);
    const [first, second] = run.stdout.split('STATUS ').slice(1).map((c) => ({ status: Number(c.split('\n')[0]), body: JSON.parse(c.split('\n')[1]!) }));
    expect(first).toEqual({ status: 200, body: { ANTHROPIC_API_KEY: SECRETS.anthropic_api_key, GITHUB_TOKEN: SECRETS.github_token } });
    expect(second).toEqual({ status: 401, body: { error: 'expired_jwt', message: expect.any(String) } });
  }, 60_000);

  it('refuses forged and malformed tokens with 401 invalid_jwt', async () => {
    // A real worker SVID, printed on purpose (it is a test credential) for the host-side checks.
    const run = await runJobContainer(docker, mounts, 'worker', `fetch_jwt ${AUD} >/dev/null || exit 3; cat /tmp/svid`);
    workerSvid = run.stdout.trim();
    sensitive.add(workerSvid);
    expect((await socketGet(tokenSocket, '/tokens', bearer(workerSvid))).body).toEqual({ ANTHROPIC_API_KEY: null, GITHUB_TOKEN: SECRETS.github_token });

    const realKid = decodeProtectedHeader(workerSvid).kid!;
    const bundleJwk = (await fetchJWTBundles(spire.agentSocket)).get(TD)!.keys[0]!;
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: `${TD}/agent`, aud: [AUD], iat: now, exp: now + 300 };
    const own = await generateKeyPair('ES256');
    const ownRsa = await generateKeyPair('RS256');
    const [h, p, s] = workerSvid.split('.') as [string, string, string];
    const b64 = (v: unknown) => base64url.encode(JSON.stringify(v));

    const forged: Record<string, string> = {
      // The worker's signed token with its payload rewritten to claim the agent identity.
      'tampered payload': `${h}.${b64({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: `${TD}/agent` })}.${s}`,
      'alg none': `${b64({ alg: 'none', typ: 'JWT', kid: realKid })}.${b64(claims)}.`,
      'HS256 keyed with the bundle public key': await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: realKid, typ: 'JWT' })
        .sign(new TextEncoder().encode(JSON.stringify(bundleJwk))),
      'signed by a key not in the bundle': await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'not-in-bundle-kid', typ: 'JWT' }).sign(own.privateKey),
      'bundle kid, wrong key': await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: realKid, typ: 'JWT' }).sign(own.privateKey),
      'RS256 under the EC kid': await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: realKid, typ: 'JWT' }).sign(ownRsa.privateKey),
      'another trust domain': await new SignJWT({ ...claims, sub: 'spiffe://evil.example/agent' })
        .setProtectedHeader({ alg: 'ES256', kid: (await exportJWK(own.publicKey)).x!.slice(0, 32), typ: 'JWT' }).sign(own.privateKey),
      'no kid': await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'JWT' }).sign(own.privateKey),
      'bad typ': await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: realKid, typ: 'at+jwt' }).sign(own.privateKey),
      'not base64': `${h}.@@@.${s}`,
      'two parts': `${h}.${p}`,
    };
    for (const [name, token] of Object.entries(forged)) {
      sensitive.add(token);
      const res = await socketGet(tokenSocket, '/tokens', bearer(token));
      expect([name, res.status, res.body.error]).toEqual([name, 401, 'invalid_jwt']);
    }
  });

  it('re-reads the secrets file when it changes; 500 secrets_unavailable while it is broken', async () => {
    const rotated = { ...SECRETS, github_token: `ghp_rotated${randomBytes(8).toString('hex')}` };
    sensitive.add(rotated.github_token);
    writeSecrets(JSON.stringify(rotated));
    expect((await socketGet(tokenSocket, '/tokens', bearer(workerSvid))).body.GITHUB_TOKEN).toBe(rotated.github_token);

    for (const broken of ['{"github_token": "ghp_half-writ', JSON.stringify({ github_token: 'x' })]) {
      writeSecrets(broken);
      const res = await socketGet(tokenSocket, '/tokens', bearer(workerSvid));
      expect(res).toMatchObject({ status: 500, body: { error: 'secrets_unavailable', message: expect.any(String) } });
      expect((await socketGet(tokenSocket, '/health')).status).toBe(503);
    }
    rmSync(secretsPath);
    expect((await socketGet(tokenSocket, '/tokens', bearer(workerSvid))).status).toBe(500);
    // Refusals that come before the secrets are needed do not depend on them.
    expect((await socketGet(tokenSocket, '/tokens')).status).toBe(400);

    writeSecrets(JSON.stringify(SECRETS));
    expect((await socketGet(tokenSocket, '/tokens', bearer(workerSvid))).body).toEqual({ ANTHROPIC_API_KEY: null, GITHUB_TOKEN: SECRETS.github_token });
    expect((await socketGet(tokenSocket, '/health')).status).toBe(200);
  });

  it('follows a JWT signing-key rotation pushed by SPIRE, without a restart', async () => {
    const kidOf = (t: string) => decodeProtectedHeader(t).kid!;
    const oldKid = kidOf(workerSvid);
    const prepared = await spire.server('localauthority', 'jwt', 'prepare');
    const newId = /Authority ID:\s*(\S+)/.exec(prepared)?.[1];
    expect(newId, prepared).toMatch(/^[A-Za-z0-9]{20,}$/);
    const t0 = Date.now();
    await until('the new key in the actor bundle', async () => (await status()).bundleKeys === 2);
    figures.rotationPreparedKeyReachedActorMs = Date.now() - t0;

    await spire.server('localauthority', 'jwt', 'activate', '-authorityID', newId!);
    // A fresh audience set: the agent's JWT cache would hand back an SVID signed before activation.
    const run = await runJobContainer(docker, mounts, 'agent', `fetch_jwt ${AUD},after-rotation >/dev/null || exit 3; exchange; cat /tmp/svid`);
    const newSvid = run.stdout.trim().split('\n').at(-1)!;
    sensitive.add(newSvid);
    expect(kidOf(newSvid)).not.toBe(oldKid);
    expect(parseExchange(run.stdout).status).toBe(200);
    expect((await socketGet(tokenSocket, '/tokens', bearer(workerSvid))).status).toBe(200); // old key still trusted

    const shown = await spire.server('localauthority', 'jwt', 'show');
    const oldId = /Old JWT authority:\s*\n\s*Authority ID:\s*(\S+)/.exec(shown)?.[1];
    expect(oldId, shown).toMatch(/^[A-Za-z0-9]{20,}$/);
    await spire.server('localauthority', 'jwt', 'taint', '-authorityID', oldId!);
    await spire.server('localauthority', 'jwt', 'revoke', '-authorityID', oldId!);
    const t1 = Date.now();
    await until('the old key gone from the actor bundle', async () => (await status()).bundleKeys === 1);
    figures.rotationRevokedKeyLeftActorMs = Date.now() - t1;
    expect((await socketGet(tokenSocket, '/tokens', bearer(workerSvid)))).toMatchObject({ status: 401, body: { error: 'invalid_jwt' } });
    expect((await socketGet(tokenSocket, '/tokens', bearer(newSvid))).status).toBe(200);
    workerSvid = newSvid;
  }, 90_000);

  it('keeps the last bundle while the SPIRE agent is down and reconnects when it is back', async () => {
    const restart = spire.restartAgent({ downMs: 1_500 });
    await until('the actor to notice the agent is gone', async () => (await status()).bundleStreamError !== null, 10_000);
    expect((await socketGet(tokenSocket, '/tokens', bearer(workerSvid))).status).toBe(200);
    await restart;
    await until('the bundle stream back', async () => (await status()).bundleStreamError === null, 15_000);
    const run = await runJobContainer(docker, mounts, 'worker', `fetch_jwt ${AUD} || exit 3; exchange`);
    expect(parseExchange(run.stdout).status).toBe(200);
  }, 60_000);

  it('logged every exchange with SPIFFE ID and outcome, and no token or secret anywhere', async () => {
    const exchanges = tokens.lines.filter((l) => l.event === 'token_exchange');
    const seen = new Set(exchanges.map((l) => `${l.outcome} ${l.spiffeId ?? '-'}`));
    for (const expected of [
      `granted ${TD}/worker`, `granted ${TD}/agent`, `unknown_identity ${TD}/other`, `invalid_audience ${TD}/worker`,
      `expired_jwt ${TD}/agent`, 'invalid_jwt -', 'missing_authorization -', `secrets_unavailable ${TD}/worker`,
    ]) expect(seen, expected).toContain(expected);
    for (const l of exchanges) expect(l.actor).toBe('tokens');

    const logs = { supervisor: tokens.raw(), spire: spire.logs() };
    const jws = /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/;
    for (const [name, text] of Object.entries(logs)) {
      expect(text.length, name).toBeGreaterThan(0);
      for (const secret of sensitive) expect(text.includes(secret), `${name} log holds a token/secret`).toBe(false);
      expect(jws.exec(text)?.[0], `${name} log holds a JWS`).toBeUndefined();
      expect(text).not.toContain('ghp_half-writ');
    }
  });
});

describe('Workload API deadlines', () => {
  it('gives up at the deadline on a socket that accepts but never answers (a fault SPIRE cannot be made to produce)', async () => {
    const held = new Set<Socket>();
    const silent = createServer((socket) => held.add(socket)).listen(join(home, 'silent.sock'));
    await once(silent, 'listening');
    try {
      for (const call of [() => fetchJWTSVID(join(home, 'silent.sock'), AUD, { timeoutMs: 1_000 }), () => fetchJWTBundles(join(home, 'silent.sock'), { timeoutMs: 1_000 })]) {
        const t0 = Date.now();
        const err = await call().catch((e: unknown) => e);
        const ms = Date.now() - t0;
        expect(err).toMatchObject({ name: 'WorkloadApiError', code: GrpcStatus.DEADLINE_EXCEEDED });
        expect(ms).toBeGreaterThanOrEqual(990);
        expect(ms).toBeLessThan(2_500);
      }
    } finally {
      for (const socket of held) socket.destroy();
      silent.close();
    }
  });
});

describe('JwtBundleWatcher', () => {
  it('reports a missing agent socket and keeps retrying', async () => {
    const w = new JwtBundleWatcher(join(tmpdir(), 'fp-no-agent.sock'), { retryMs: 50, maxRetryMs: 100 });
    const errors: Error[] = [];
    w.on('error', (e) => errors.push(e));
    await expect(w.ready(500)).rejects.toThrow(/no JWT bundle from the SPIRE agent at .* within 500 ms: .*ENOENT/);
    expect(errors.length).toBeGreaterThan(2);
    w.close();
  });

  it('re-subscribes on demand and on a timer without reporting errors', async () => {
    const w = new JwtBundleWatcher(spire.agentSocket, { resubscribeMs: 200 });
    const errors: Error[] = [];
    let updates = 0;
    w.on('error', (e) => errors.push(e));
    w.on('update', () => updates++);
    await w.ready(2_000);
    const fresh = await w.refresh(2_000);
    expect(fresh?.get(TD)?.keys.length).toBeGreaterThan(0);
    await until('timer re-subscriptions', () => updates >= 4, 5_000);
    expect(errors).toEqual([]);
    w.close();
  });
});
