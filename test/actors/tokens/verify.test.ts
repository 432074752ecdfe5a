/**
 * JWT-SVID verification and the exchange policy against bundles made here (keys this test
 * controls), for what a real SPIRE never issues: other key types and algorithms, foreign trust
 * domains signed by a trusted key, claim edge cases, leeway. The real-SPIRE path is in
 * tokens.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, generateSecret, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchange } from '../../../actors/tokens/exchange.ts';
import { grantFor, SPIFFE_IDS } from '../../../actors/tokens/policy.ts';
import { SecretsFile } from '../../../actors/tokens/secrets.ts';
import { SvidVerifier } from '../../../actors/tokens/verify.ts';
import type { Jwk, Jwks } from '../../../actors/tokens/workload-api.ts';

const AUD = 'flashpods-token-service';
const ALGS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const;
const keys: Record<string, { privateKey: CryptoKey; kid: string }> = {};
let bundle: Jwks;
let dir: string;
let secrets: SecretsFile;
const now = () => Math.floor(Date.now() / 1000);

async function sign(alg: string, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  const k = keys[alg]!;
  return new SignJWT(claims).setProtectedHeader({ alg, kid: k.kid, typ: 'JWT', ...header }).sign(k.privateKey);
}
const good = (sub: string = SPIFFE_IDS.agent): JWTPayload => ({ sub, aud: [AUD], iat: now(), exp: now() + 300 });

beforeAll(async () => {
  const jwks: Jwk[] = [];
  for (const alg of ALGS) {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const kid = `kid-${alg}-${Math.random().toString(36).slice(2, 10)}`;
    keys[alg] = { privateKey, kid };
    // As SPIRE serves them: kty/kid/crv/x/y or n/e, no `use`, no `alg`.
    const { kty, crv, x, y, n, e } = await exportJWK(publicKey);
    jwks.push(Object.fromEntries(Object.entries({ kty, kid, crv, x, y, n, e }).filter(([, v]) => v !== undefined)) as Jwk);
  }
  bundle = { keys: jwks };
  dir = mkdtempSync(join(tmpdir(), 'fp-verify-'));
  writeFileSync(join(dir, 'secrets.json'), JSON.stringify({ anthropic_api_key: 'sk-ant-unit', github_token: 'ghp_unit' }));
  secrets = new SecretsFile(join(dir, 'secrets.json'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const verifier = (opts: Partial<ConstructorParameters<typeof SvidVerifier>[1]> = {}, b: () => Jwks | undefined = () => bundle) =>
  new SvidVerifier(b, { audience: AUD, leewaySec: 5, ...opts });

describe('SvidVerifier', () => {
  for (const alg of ALGS) {
    it(`accepts ${alg} from a bundle key`, async () => {
      expect(await verifier().verify(await sign(alg, good()))).toMatchObject({ ok: true, spiffeId: SPIFFE_IDS.agent });
    });
  }

  it('accepts typ JOSE or no typ, aud as a string or among several', async () => {
    const v = verifier();
    expect((await v.verify(await sign('ES256', good(), { typ: 'JOSE' }))).ok).toBe(true);
    expect((await v.verify(await sign('ES256', good(), { typ: undefined }))).ok).toBe(true);
    expect((await v.verify(await sign('ES256', { ...good(), aud: AUD }))).ok).toBe(true);
    expect((await v.verify(await sign('ES256', { ...good(), aud: ['x', AUD, 'y'] }))).ok).toBe(true);
  });

  it('maps claim failures: audience, expiry (with leeway), missing claims, nbf', async () => {
    const v = verifier();
    const r = (claims: JWTPayload) => sign('ES256', claims).then((t) => v.verify(t));
    expect(await r({ ...good(), aud: ['other'] })).toMatchObject({ ok: false, error: 'invalid_audience', spiffeId: SPIFFE_IDS.agent });
    expect(await r({ sub: SPIFFE_IDS.agent, exp: now() + 60 })).toMatchObject({ ok: false, error: 'invalid_audience' });
    expect(await r({ ...good(), exp: now() - 3 })).toMatchObject({ ok: true });
    expect(await r({ ...good(), exp: now() - 7 })).toMatchObject({ ok: false, error: 'expired_jwt', spiffeId: SPIFFE_IDS.agent });
    expect(await r({ sub: SPIFFE_IDS.agent, aud: [AUD] })).toMatchObject({ ok: false, error: 'invalid_jwt' });
    expect(await r({ aud: [AUD], exp: now() + 60 })).toMatchObject({ ok: false, error: 'invalid_jwt' });
    expect(await r({ ...good(), nbf: now() + 60 })).toMatchObject({ ok: false, error: 'invalid_jwt' });
    expect(await r({ ...good(), sub: 'not-a-spiffe-id' })).toMatchObject({ ok: false, error: 'invalid_jwt' });
  });

  it('never lets HS*, none or a symmetric bundle key through', async () => {
    const secret = await generateSecret('HS256');
    const hs = await new SignJWT(good()).setProtectedHeader({ alg: 'HS256', kid: keys.ES256!.kid }).sign(secret);
    expect(await verifier().verify(hs)).toMatchObject({ ok: false, error: 'invalid_jwt', message: expect.stringContaining('not allowed') });
    const withOct: Jwks = { keys: [...bundle.keys, { kty: 'oct', kid: 'sym', k: 'c2VjcmV0' }] };
    const es = await sign('ES256', good(), { kid: 'sym' });
    expect(await verifier({}, () => withOct).verify(es)).toMatchObject({ ok: false, error: 'invalid_jwt' });
    expect(await verifier().verify(`${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(good())).toString('base64url')}.`))
      .toMatchObject({ ok: false, error: 'invalid_jwt' });
    expect(await verifier().verify('x'.repeat(20_000))).toMatchObject({ ok: false, error: 'invalid_jwt' });
  });

  it('asks for a fresher bundle on an unknown kid, then uses it', async () => {
    let current: Jwks = { keys: bundle.keys.filter((k) => k.kid !== keys.ES384!.kid) };
    let refreshes = 0;
    const v = verifier({ refreshBundle: async () => { refreshes++; current = bundle; } }, () => current);
    expect(await v.verify(await sign('ES384', good()))).toMatchObject({ ok: true });
    expect(refreshes).toBe(1);
    const unknown = await new SignJWT(good()).setProtectedHeader({ alg: 'ES256', kid: 'nobody' }).sign(keys.ES256!.privateKey);
    expect(await v.verify(unknown)).toMatchObject({ ok: false, error: 'invalid_jwt' });
    expect(refreshes).toBe(2);
  });
});

describe('exchange policy', () => {
  const call = async (token: string | undefined) => exchange(token === undefined ? undefined : `Bearer ${token}`, verifier(), secrets);

  it('grants per SPIFFE ID, exactly', async () => {
    expect((await call(await sign('ES256', good(SPIFFE_IDS.agent)))).body).toEqual({ ANTHROPIC_API_KEY: 'sk-ant-unit', GITHUB_TOKEN: 'ghp_unit' });
    expect((await call(await sign('ES256', good(SPIFFE_IDS.worker)))).body).toEqual({ ANTHROPIC_API_KEY: null, GITHUB_TOKEN: 'ghp_unit' });
    // Not a SPIFFE ID at all (trailing slash): the signed token itself is invalid.
    expect((await call(await sign('ES256', good(`${SPIFFE_IDS.agent}/`)))).body).toMatchObject({ error: 'invalid_jwt' });
    for (const sub of [`${SPIFFE_IDS.agent}/x`, 'spiffe://flashpods.local/Agent', 'spiffe://flashpods.local', 'spiffe://other.local/agent', 'spiffe://flashpods.local.evil/agent']) {
      const res = await call(await sign('RS256', good(sub)));
      expect([sub, res.status, res.body]).toEqual([sub, 403, { error: 'unknown_identity', message: expect.any(String) }]);
      expect(res.audit).toEqual({ outcome: 'unknown_identity', spiffeId: sub });
    }
    expect(grantFor(SPIFFE_IDS.worker)).toEqual({ anthropicApiKey: false, githubToken: true });
  });

  it('ignores anything the caller says about its job type', async () => {
    const res = await call(await sign('ES256', { ...good(SPIFFE_IDS.worker), job_type: 'agent', 'flashpods-job-type': 'agent' }));
    expect(res.body).toEqual({ ANTHROPIC_API_KEY: null, GITHUB_TOKEN: 'ghp_unit' });
  });

  it('checks the header shape before anything else', async () => {
    expect((await exchange(undefined, verifier(), secrets)).status).toBe(400);
    expect((await exchange('   ', verifier(), secrets)).status).toBe(400);
    expect((await exchange('Bearer', verifier(), secrets)).status).toBe(400);
    expect((await exchange('Token abc', verifier(), secrets)).status).toBe(400);
    expect((await exchange('bearer junk', verifier(), secrets)).status).toBe(401);
  });
});
