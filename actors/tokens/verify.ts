/**
 * @module tokens/verify
 * JWT-SVID verification (jose) against the JWT bundle of `flashpods.local`, in the order of
 * spec/identity.md: signature → audience → expiry; the verified `sub` is the SPIFFE ID.
 *
 * - Algorithms: RS/ES/PS 256–512 only, checked on the header before any key is touched (so
 *   `none` and HS* — e.g. HS256 "signed" with a public key — never reach a verifier).
 * - `typ` absent, `JWT` or `JOSE` (JWT-SVID standard); `kid` required and looked up in the
 *   bundle; a JWK's (absent) `use` is ignored, as SPIRE serves none.
 * - Only our own trust domain's bundle is a verification source, whatever the token's `sub`
 *   says: tokens of other trust domains are either not signed by our keys (invalid_jwt) or, if
 *   they were, their SPIFFE ID is not in the policy (403 unknown_identity, decided by the caller).
 * - Leeway on exp/nbf/iat: a few seconds. SVIDs are minted by the SPIRE server on this same host
 *   and presented within seconds, so there is no clock skew to absorb.
 */
import { decodeProtectedHeader, errors, importJWK, jwtVerify, type CryptoKey, type JWK } from 'jose';
import type { Jwk, Jwks } from './workload-api.ts';

export const ALLOWED_ALGS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512'] as const;
const ALLOWED = new Set<string>(ALLOWED_ALGS);
const ALLOWED_TYP = new Set(['JWT', 'JOSE']);
const SPIFFE_ID = /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*$/;
const MAX_TOKEN_LENGTH = 16 * 1024;

export type VerifyFailure = 'invalid_jwt' | 'invalid_audience' | 'expired_jwt';

export type VerifyResult =
  | { ok: true; spiffeId: string; expiresAt: number }
  /** `spiffeId` is set only when the signature was good (audience or expiry failed). */
  | { ok: false; error: VerifyFailure; message: string; spiffeId?: string };

export interface VerifierOptions {
  audience: string;
  /** Seconds of clock tolerance for exp/nbf/iat. */
  leewaySec: number;
  /** For tests: the current time. */
  now?: () => Date;
  /**
   * Called when a token's kid is not in the bundle, before refusing it: a chance to fetch a
   * fresher bundle (a key SPIRE just activated). The caller rate-limits it.
   */
  refreshBundle?: () => Promise<void>;
}

const fail = (error: VerifyFailure, message: string, spiffeId?: string): VerifyResult => ({ ok: false, error, message, ...(spiffeId ? { spiffeId } : {}) });

/** Verifies JWT-SVIDs against whatever bundle `bundle()` returns at the time of the call. */
export class SvidVerifier {
  private readonly bundle: () => Jwks | undefined;
  private readonly options: VerifierOptions;
  /** Imported keys per JWK object and alg; a new bundle brings new objects, so no stale entries. */
  private readonly keys = new WeakMap<Jwk, Map<string, Promise<CryptoKey | Uint8Array>>>();

  constructor(bundle: () => Jwks | undefined, options: VerifierOptions) {
    this.bundle = bundle;
    this.options = options;
  }

  async verify(token: string): Promise<VerifyResult> {
    if (token.length > MAX_TOKEN_LENGTH) return fail('invalid_jwt', 'the token is too long');
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)) return fail('invalid_jwt', 'the token is not a compact JWS');
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      return fail('invalid_jwt', 'the token header cannot be decoded');
    }
    const alg = typeof header.alg === 'string' ? header.alg : '';
    if (!ALLOWED.has(alg)) return fail('invalid_jwt', `algorithm ${JSON.stringify(alg.slice(0, 20))} is not allowed`);
    if (header.typ !== undefined && !ALLOWED_TYP.has(String(header.typ))) return fail('invalid_jwt', 'typ must be JWT or JOSE');
    if (typeof header.kid !== 'string' || header.kid === '') return fail('invalid_jwt', 'the token has no kid');

    let jwk = this.bundle()?.keys.find((k) => k.kid === header.kid);
    if (!jwk && this.options.refreshBundle) {
      await this.options.refreshBundle();
      jwk = this.bundle()?.keys.find((k) => k.kid === header.kid);
    }
    if (!jwk) return fail('invalid_jwt', 'the signing key (kid) is not in the trust bundle');
    let key: CryptoKey | Uint8Array;
    try {
      key = await this.importKey(jwk, alg);
    } catch {
      return fail('invalid_jwt', `the bundle key ${header.kid} cannot verify ${alg}`);
    }

    try {
      const { payload } = await jwtVerify(token, key, {
        algorithms: [alg],
        audience: this.options.audience,
        requiredClaims: ['sub', 'aud', 'exp'],
        clockTolerance: this.options.leewaySec,
        ...(this.options.now ? { currentDate: this.options.now() } : {}),
      });
      const sub = payload.sub!;
      if (!SPIFFE_ID.test(sub)) return fail('invalid_jwt', 'sub is not a SPIFFE ID');
      return { ok: true, spiffeId: sub, expiresAt: payload.exp! };
    } catch (err) {
      // jose authenticates the token before validating claims, so a claim error's payload is signed.
      const signedSub = (err as { payload?: { sub?: unknown } }).payload?.sub;
      const spiffeId = typeof signedSub === 'string' && SPIFFE_ID.test(signedSub) ? signedSub : undefined;
      if (err instanceof errors.JWTExpired) return fail('expired_jwt', 'the token has expired', spiffeId);
      if (err instanceof errors.JWTClaimValidationFailed) {
        if (err.claim === 'aud') return fail('invalid_audience', `the audience must contain ${this.options.audience}`, spiffeId);
        return fail('invalid_jwt', `claim ${err.claim} is invalid (${err.reason})`, spiffeId);
      }
      if (err instanceof errors.JWSSignatureVerificationFailed) return fail('invalid_jwt', 'bad signature');
      if (err instanceof errors.JOSEError) return fail('invalid_jwt', `malformed token (${err.code})`);
      return fail('invalid_jwt', 'the token cannot be verified');
    }
  }

  private importKey(jwk: Jwk, alg: string): Promise<CryptoKey | Uint8Array> {
    let byAlg = this.keys.get(jwk);
    if (!byAlg) this.keys.set(jwk, (byAlg = new Map()));
    let key = byAlg.get(alg);
    if (!key) {
      if (jwk.kty === 'oct') return Promise.reject(new Error('symmetric keys are never trusted'));
      // Import the public members only: `use`, `key_ops` and `alg` are not set by SPIRE.
      const pub = Object.fromEntries(['kty', 'crv', 'x', 'y', 'n', 'e'].filter((m) => typeof jwk[m] === 'string').map((m) => [m, jwk[m]]));
      key = importJWK(pub as JWK, alg);
      key.catch(() => byAlg!.delete(alg));
      byAlg.set(alg, key);
    }
    return key;
  }
}
