/**
 * @module api
 * The API ingress actor: serves the HTTP API (hono on @hono/node-server) from its own thread.
 * It validates everything that arrives from the network before it becomes a message to another
 * actor. On stop it refuses new connections and lets in-flight requests finish within the grace.
 */
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { defineActor } from '../../runtime/actor.ts';
import type { ActorState, RuntimeEvents } from '../../runtime/actor.ts';
import type { FlashpodsConfig } from '../contract/config.ts';
import { createApp } from './app.ts';
import { TokenFile } from './auth.ts';
import type { ApiProtocol } from './messages.ts';
import { RateLimiter } from './rate-limit.ts';

let server: ServerType | undefined;

export default defineActor<ApiProtocol, FlashpodsConfig>({
  async start(ctx) {
    const { config } = ctx;
    let states: Record<string, ActorState> = {};
    ctx.subscribe<RuntimeEvents['actor-states']>('actor-states', (s) => (states = s));

    const app = createApp(
      {
        tokens: new TokenFile(config.paths.apiTokenFile),
        limiter: new RateLimiter(config.rateLimit.perSecond, config.rateLimit.burst),
        log: ctx.log,
        bodyMaxBytes: config.limits.bodyMaxBytes,
        actorStates: () => states,
        startedAtMs: Date.now(),
      },
      [],
    );

    const address = await new Promise<AddressInfo>((resolve, reject) => {
      const s = serve({ fetch: app.fetch, hostname: config.listen.host, port: config.listen.port }, (info) => resolve(info));
      s.once('error', reject);
      server = s;
    });
    ctx.log.info(`API listening on http://${address.address}:${address.port}`, { event: 'listening', host: address.address, port: address.port });
    return {};
  },

  async stop(graceMs) {
    const s = server;
    if (!s) return;
    await new Promise<void>((resolve) => {
      const deadline = setTimeout(() => {
        (s as { closeAllConnections?: () => void }).closeAllConnections?.();
        resolve();
      }, graceMs);
      s.close(() => {
        clearTimeout(deadline);
        resolve();
      });
      (s as { closeIdleConnections?: () => void }).closeIdleConnections?.();
    });
  },
});
