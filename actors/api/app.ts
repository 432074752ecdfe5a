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
  const declared = Number(c.req.header('content-length') ?? 0);
  if (declared > maxBytes) throw apiError('payload_too_large', `The request body is larger than ${maxBytes} bytes.`);
  const raw = await c.req.arrayBuffer();
  if (raw.byteLength > maxBytes) throw apiError('payload_too_large', `The request body is larger than ${maxBytes} bytes.`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(raw));
  } catch (err) {
    throw apiError('invalid_json', `The request body is not valid JSON: ${(err as Error).message}.`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw apiError('invalid_json', 'The request body must be a JSON object.');
  return parsed as Record<string, unknown>;
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
