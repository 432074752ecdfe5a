/**
 * @module app
 * The HTTP surface as a hono app: request ids, rate limiting, bearer auth (all but /health),
 * body limits, JSON parsing, the contract's error shape, and an access log line per request.
 * Routes for each area are mounted by the functions passed in `routes`.
 */
import { randomUUID } from 'node:crypto';
import { getConnInfo } from '@hono/node-server/conninfo';
import { Hono, type Context } from 'hono';
import type { ActorLog, ActorState } from '../../runtime/actor.ts';
import { apiError } from '../contract/errors.ts';
import { checkAuthorization, type TokenFile } from './auth.ts';
import { errorResponse, toErrorBody } from './http-errors.ts';
import type { RateLimiter } from './rate-limit.ts';

export const VERSION = '0.1.0';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface AppDeps {
  tokens: TokenFile;
  limiter: RateLimiter;
  log: ActorLog;
  bodyMaxBytes: number;
  actorStates: () => Record<string, ActorState>;
  startedAtMs: number;
  /** Called with each request's method, route pattern, status and duration (metrics hook). */
  onResponse?: (method: string, route: string, status: number, ms: number) => void;
}

export type AppEnv = { Variables: { requestId: string } };
export type Routes = (app: Hono<AppEnv>) => void;

/** Reads a JSON object body within the size limit; throws the contract errors otherwise. */
export async function readJsonObject(c: Context, maxBytes: number): Promise<Record<string, unknown>> {
  const raw = await readBodyWithin(c, maxBytes);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(raw));
  } catch (err) {
    throw apiError('invalid_json', `The request body is not valid JSON: ${(err as Error).message}.`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw apiError('invalid_json', 'The request body must be a JSON object.');
  return parsed as Record<string, unknown>;
}

/**
 * The request body, read no further than `maxBytes`: a declared length over it is refused
 * unread, and a chunked body is refused as soon as it passes the limit, not after arriving whole.
 * The refusal closes the connection, so the server stops receiving the rest (without it the
 * HTTP layer would drain it for up to 500 ms or 64 MB); a client still sending may then see the
 * connection closed instead of the 413, which is its own doing: legitimate bodies are a few KB.
 */
async function readBodyWithin(c: Context, maxBytes: number): Promise<Uint8Array> {
  const tooLarge = () => {
    c.header('Connection', 'close');
    return apiError('payload_too_large', `The request body is larger than ${maxBytes} bytes.`);
  };
  if (Number(c.req.header('content-length') ?? 0) > maxBytes) throw tooLarge();
  const body = c.req.raw.body;
  if (!body) return new Uint8Array();
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks);
    received += value.byteLength;
    if (received > maxBytes) {
      reader.releaseLock();
      throw tooLarge();
    }
    chunks.push(value);
  }
}

function clientAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function createApp(deps: AppDeps, routes: Routes[]): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.use(async (c, next) => {
    const started = performance.now();
    const given = c.req.header('x-request-id');
    const requestId = given && UUID.test(given) ? given : randomUUID();
    c.set('requestId', requestId);
    c.header('X-Request-Id', requestId);
    const decision = deps.limiter.take(clientAddress(c));
    c.header('X-RateLimit-Limit', String(decision.limit));
    c.header('X-RateLimit-Remaining', String(decision.remaining));
    c.header('X-RateLimit-Reset', String(decision.resetAt));
    if (!decision.allowed) {
      c.header('Retry-After', String(decision.retryAfterSeconds));
      c.res = errorResponse(c, 429, {
        error: 'rate_limited',
        message: `Too many requests; retry in ${decision.retryAfterSeconds} s.`,
        retry_after_seconds: decision.retryAfterSeconds,
      });
    } else {
      await next();
    }
    const ms = performance.now() - started;
    const route = c.req.routePath ?? c.req.path;
    deps.onResponse?.(c.req.method, route, c.res.status, ms);
    const line = { request_id: requestId, method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(ms * 10) / 10 };
    if (c.res.status >= 500) deps.log.warn('request failed', line);
    else if (c.req.method !== 'GET' || c.res.status >= 400) deps.log.info('request', line);
    else deps.log.debug('request', line);
  });

  app.get('/health', (c) => {
    const actors = deps.actorStates();
    const healthy = Object.values(actors).every((s) => s === 'running');
    return c.json(
      { status: healthy ? 'healthy' : 'degraded', version: VERSION, uptime_seconds: Math.floor((Date.now() - deps.startedAtMs) / 1000), actors },
      healthy ? 200 : 503,
    );
  });

  app.use(async (c, next) => {
    checkAuthorization(c.req.header('authorization'), deps.tokens);
    await next();
  });

  for (const mount of routes) mount(app);

  app.notFound((c) => errorResponse(c, 404, { error: 'not_found', message: `No route for ${c.req.method} ${c.req.path}; GET /openapi.json lists every route.` }));
  app.onError((err, c) => {
    const { status, body, unexpected } = toErrorBody(err);
    if (unexpected) {
      deps.log.error('unexpected error while serving a request', {
        request_id: c.get('requestId'), path: c.req.path, err: { name: err.name, message: err.message, stack: err.stack },
      });
    }
    return errorResponse(c, status, body);
  });
  return app;
}
