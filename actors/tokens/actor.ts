/**
 * @module tokens
 * The token-minting actor (spec/identity.md): trades a JWT-SVID for API tokens on the unix
 * socket `paths.tokenSocket` — `GET /tokens` (Authorization: Bearer <JWT-SVID>) and
 * `GET /health`. Runs in its own unit (`flashpods serve --actors tokens`), the only one that can
 * read the secrets file.
 *
 * Startup is fatal (a throw from start, which the supervisor logs) when the secrets file is
 * missing, unreadable, not JSON or lacks a key, or when the JWT bundle of flashpods.local cannot
 * be fetched from the SPIRE agent (`paths.spireSocket`) within BUNDLE_TIMEOUT_MS. Afterwards the
 * bundle follows the agent's pushes (rotation), the secrets file is re-read when it changes, and
 * every exchange is logged with the SPIFFE ID and outcome — never a token or a secret.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { defineActor } from '../../runtime/actor.ts';
import type { FlashpodsRegistry } from '../registry.ts';
import type { FlashpodsConfig } from '../contract/config.ts';
import { exchange } from './exchange.ts';
import type { TokensProtocol, TokensStatus } from './messages.ts';
import { TOKEN_SERVICE_AUDIENCE, TRUST_DOMAIN_ID } from './policy.ts';
import { SecretsError, SecretsFile } from './secrets.ts';
import { closeServer, listenOnSocket } from './socket-server.ts';
import { SvidVerifier } from './verify.ts';
import { JwtBundleWatcher } from './workload-api.ts';

/** How long start waits for the first JWT bundle from the SPIRE agent. */
export const BUNDLE_TIMEOUT_MS = 5_000;
/** Clock tolerance on exp/nbf/iat: SVIDs are minted on this host, seconds before use. */
export const LEEWAY_SEC = 5;
/** Re-subscribe to the bundle stream this often (fallback for missed pushes). */
export const BUNDLE_RESUBSCRIBE_MS = 60_000;
/** An unknown kid triggers at most one bundle refresh per this interval, waiting ≤ 2 s for it. */
export const UNKNOWN_KID_REFRESH_MS = 10_000;

let server: Server | undefined;
let watcher: JwtBundleWatcher | undefined;

function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

export default defineActor<TokensProtocol, FlashpodsConfig, FlashpodsRegistry>({
  async start(ctx) {
    const { config, log } = ctx;
    const socketPath = config.paths.tokenSocket;
    const counts = { granted: 0, refused: 0 };

    let secrets: SecretsFile;
    try {
      secrets = new SecretsFile(config.paths.secretsFile, (state) => {
        if (state.ok) log.info('secrets file (re)loaded', { event: 'secrets_loaded', path: config.paths.secretsFile });
        else log.error(`secrets unavailable: ${state.problem}`, { event: 'secrets_unavailable', path: config.paths.secretsFile });
      });
    } catch (err) {
      if (err instanceof SecretsError) throw new Error(`token service cannot start: ${err.message}`);
      throw err;
    }

    const w = new JwtBundleWatcher(config.paths.spireSocket, { resubscribeMs: BUNDLE_RESUBSCRIBE_MS });
    watcher = w;
    let streamError: string | null = null;
    let lastKids = '';
    w.on('error', (err) => {
      if (streamError !== err.message) log.warn(`JWT bundle stream from the SPIRE agent failed (keeping the last bundle): ${err.message}`, { event: 'bundle_stream_error' });
      streamError = err.message;
    });
    w.on('update', (bundles) => {
      streamError = null;
      const ours = bundles.get(TRUST_DOMAIN_ID);
      const kids = (ours?.keys ?? []).map((k) => k.kid ?? '?').sort().join(',');
      if (kids === lastKids) return;
      lastKids = kids;
      if (!ours) log.error(`the SPIRE agent sent no JWT bundle for ${TRUST_DOMAIN_ID}`, { event: 'bundle_missing' });
      else log.info(`JWT bundle of ${TRUST_DOMAIN_ID}: ${ours.keys.length} key(s)`, { event: 'bundle_updated', kids: kids.split(',') });
    });
    try {
      await w.ready(BUNDLE_TIMEOUT_MS, (b) => (b.get(TRUST_DOMAIN_ID)?.keys.length ?? 0) > 0);
    } catch (err) {
      w.close();
      throw new Error(`token service cannot start: ${(err as Error).message} (is the SPIRE agent running, and does it allow unauthenticated verifiers?)`);
    }

    let lastRefresh = 0;
    let refreshing: Promise<void> | undefined;
    const refreshBundle = (): Promise<void> => {
      if (refreshing) return refreshing;
      if (Date.now() - lastRefresh < UNKNOWN_KID_REFRESH_MS) return Promise.resolve();
      lastRefresh = Date.now();
      refreshing = w.refresh(2_000).then(() => {
        refreshing = undefined;
      });
      return refreshing;
    };
    const verifier = new SvidVerifier(() => w.bundle(TRUST_DOMAIN_ID), { audience: TOKEN_SERVICE_AUDIENCE, leewaySec: LEEWAY_SEC, refreshBundle });

    const health = (): { status: number; body: unknown } => {
      const bundle = w.bundle(TRUST_DOMAIN_ID);
      const secretsOk = secrets.current().ok;
      const ok = secretsOk && (bundle?.keys.length ?? 0) > 0;
      return { status: ok ? 200 : 503, body: { status: ok ? 'ok' : 'degraded', trust_bundle_keys: bundle?.keys.length ?? 0, bundle_stream: streamError ? 'reconnecting' : 'ok', secrets: secretsOk ? 'ok' : 'unavailable' } };
    };

    const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      const path = (req.url ?? '/').split('?')[0];
      if (path !== '/tokens' && path !== '/health') return send(res, 404, { error: 'not_found', message: 'GET /tokens or GET /health' });
      if (req.method !== 'GET') return send(res, 405, { error: 'method_not_allowed', message: `use GET ${path}` }, { allow: 'GET' });
      if (path === '/health') {
        const h = health();
        return send(res, h.status, h.body);
      }
      const result = await exchange(req.headers.authorization, verifier, secrets);
      const { outcome, spiffeId, reason, granted } = result.audit;
      if (outcome === 'granted') {
        counts.granted++;
        log.info(`token exchange granted to ${spiffeId}`, { event: 'token_exchange', outcome, spiffeId, granted });
      } else {
        counts.refused++;
        const fields = { event: 'token_exchange', outcome, status: result.status, spiffeId: spiffeId ?? null, reason: reason ?? null };
        if (outcome === 'secrets_unavailable') log.error(`token exchange failed: ${outcome}`, fields);
        else log.warn(`token exchange refused: ${outcome}`, fields);
      }
      send(res, result.status, result.body);
    };

    server = await listenOnSocket(socketPath, (req, res) => {
      handle(req, res).catch((err: unknown) => {
        log.error('token request failed', { event: 'token_request_failed', err: (err as Error).message });
        if (!res.headersSent) send(res, 500, { error: 'internal_error', message: 'internal error' });
        else res.destroy();
      });
    });
    log.info(`token service listening on ${socketPath}`, { event: 'listening', socket: socketPath });

    return {
      status(): TokensStatus {
        const bundle = w.bundle(TRUST_DOMAIN_ID);
        return {
          socket: socketPath,
          bundleKeys: bundle?.keys.length ?? 0,
          bundleUpdatedAt: w.lastUpdate ? new Date(w.lastUpdate).toISOString() : null,
          bundleStreamError: streamError,
          secrets: secrets.current().ok ? 'ok' : 'unavailable',
          exchanges: { ...counts },
        };
      },
    };
  },

  async stop(graceMs) {
    const s = server;
    server = undefined;
    if (s) await closeServer(s, graceMs);
    watcher?.close();
    watcher = undefined;
  },
});
