/**
 * @module tokens/policy
 * Who gets which secret (spec/identity.md). The SPIFFE ID is the verified `sub` of a JWT-SVID;
 * nothing the caller says about its job type counts. Exact matches only: another path, another
 * trust domain, a trailing slash — all unknown.
 */
export const TRUST_DOMAIN = 'flashpods.local';
/** The key of our bundle in the Workload API's JWT bundle map. */
export const TRUST_DOMAIN_ID = `spiffe://${TRUST_DOMAIN}`;
export const TOKEN_SERVICE_AUDIENCE = 'flashpods-token-service';

export const SPIFFE_IDS = {
  agent: `${TRUST_DOMAIN_ID}/agent`,
  worker: `${TRUST_DOMAIN_ID}/worker`,
} as const;

export interface Grant {
  anthropicApiKey: boolean;
  githubToken: boolean;
}

const POLICY: ReadonlyMap<string, Grant> = new Map([
  [SPIFFE_IDS.agent, { anthropicApiKey: true, githubToken: true }],
  [SPIFFE_IDS.worker, { anthropicApiKey: false, githubToken: true }],
]);

/** The grant of a SPIFFE ID, or undefined when it is not in the policy. */
export function grantFor(spiffeId: string): Grant | undefined {
  return POLICY.get(spiffeId);
}
