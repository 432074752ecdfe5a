/**
 * @module tokens/exchange
 * One token exchange, independent of HTTP: Authorization header in → status, body and an audit
 * record out. The audit record holds the SPIFFE ID (only once a signature proved it) and the
 * outcome — never the token, never a secret.
 */
import { grantFor } from './policy.ts';
import type { SecretsFile } from './secrets.ts';
import type { SvidVerifier } from './verify.ts';

export type ExchangeError = 'missing_authorization' | 'invalid_jwt' | 'invalid_audience' | 'expired_jwt' | 'unknown_identity' | 'secrets_unavailable';

export interface TokensBody {
  ANTHROPIC_API_KEY: string | null;
  GITHUB_TOKEN: string | null;
}

export interface ExchangeResult {
  status: number;
  body: TokensBody | { error: ExchangeError; message: string };
  audit: { outcome: 'granted' | ExchangeError; spiffeId?: string; reason?: string; granted?: string[] };
}

const STATUS: Record<ExchangeError, number> = {
  missing_authorization: 400,
  invalid_jwt: 401,
  invalid_audience: 401,
  expired_jwt: 401,
  unknown_identity: 403,
  secrets_unavailable: 500,
};

function refuse(error: ExchangeError, message: string, spiffeId?: string, reason?: string): ExchangeResult {
  return { status: STATUS[error], body: { error, message }, audit: { outcome: error, ...(spiffeId ? { spiffeId } : {}), ...(reason ? { reason } : {}) } };
}

export async function exchange(authorization: string | undefined, verifier: SvidVerifier, secrets: SecretsFile): Promise<ExchangeResult> {
  if (authorization === undefined || authorization.trim() === '') {
    return refuse('missing_authorization', 'send Authorization: Bearer <JWT-SVID>');
  }
  const match = authorization.trim().match(/^Bearer[ \t]+(\S+)\s*$/i);
  if (!match) return refuse('missing_authorization', 'the Authorization header must be "Bearer <JWT-SVID>"');

  const verified = await verifier.verify(match[1]!);
  if (!verified.ok) {
    const message = {
      invalid_jwt: 'the JWT-SVID is not valid',
      invalid_audience: 'the JWT-SVID audience must contain flashpods-token-service',
      expired_jwt: 'the JWT-SVID has expired',
    }[verified.error];
    return refuse(verified.error, message, verified.spiffeId, verified.message);
  }

  const grant = grantFor(verified.spiffeId);
  if (!grant) return refuse('unknown_identity', 'this SPIFFE ID gets no tokens', verified.spiffeId);

  const state = secrets.current();
  if (!state.ok) return refuse('secrets_unavailable', 'the token service cannot read its secrets', verified.spiffeId, state.problem);

  const body: TokensBody = {
    ANTHROPIC_API_KEY: grant.anthropicApiKey ? state.secrets.anthropicApiKey : null,
    GITHUB_TOKEN: grant.githubToken ? state.secrets.githubToken : null,
  };
  const granted = Object.entries(body).filter(([, v]) => v !== null).map(([k]) => k);
  return { status: 200, body, audit: { outcome: 'granted', spiffeId: verified.spiffeId, granted } };
}
