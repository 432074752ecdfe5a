/**
 * @module api
 * The API ingress actor: serves the HTTP API (hono on @hono/node-server) from its own thread.
 * It validates everything that arrives from the network before it becomes a message to another
 * actor. On stop it refuses new connections and lets in-flight requests finish within the grace.
 */
import type { AddressInfo } from 'node:net';
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createAdaptorServer, serve, type ServerType } from '@hono/node-server';
import { defineActor } from '../../runtime/actor.ts';
import type { FlashpodsRegistry } from '../registry.ts';
import type { ActorState } from '../../runtime/actor.ts';
import type { FlashpodsConfig } from '../contract/config.ts';
import { SCHEDULER_EVENTS } from '../scheduler/messages.ts';
import { jobPaths } from '../contract/job-paths.ts';
import { openDatabase, type Db } from '../store/database.ts';
import { JobReads } from '../store/job-reads.ts';
import { createApp } from './app.ts';
import { artifactsRoutes } from './artifacts-routes.ts';
import { TokenFile } from './auth.ts';
import { JobWatch } from './job-watch.ts';
import { Metrics } from './metrics.ts';
import { OPENAPI } from './openapi.ts';
import { faultRoutes } from './fault-routes.ts';
import { jobsRoutes } from './jobs-routes.ts';
import type { ApiProtocol } from './messages.ts';
import { RateLimiter } from './rate-limit.ts';
import { uploadsRoutes } from './uploads-routes.ts';

let servers: ServerType[] = [];
let db: Db | undefined;

export default defineActor<ApiProtocol, FlashpodsConfig, FlashpodsRegistry>({
  async start(ctx) {
    const { config } = ctx;
    let states: Record<string, ActorState> = {};
    ctx.subscribe('actor-states', (s) => (states = s));
    const watch = new JobWatch();
    ctx.subscribe(SCHEDULER_EVENTS.jobChanged, ({ jobId, status }) => watch.notify(jobId, status));
    db = openDatabase(config.paths.db, { readonly: true });
    const reads = new JobReads(db);
    const metrics = new Metrics(reads, config);
    ctx.subscribe('actor-restarts', (r) => metrics.recordRestarts(r));
    ctx.subscribe(SCHEDULER_EVENTS.cleanupDone, (report) => metrics.recordCleanup(report));
    ctx.subscribe(SCHEDULER_EVENTS.admissionRejected, () => metrics.recordAdmissionRejected());
    const paths = jobPaths(config.paths);
    const scheduler = ctx.peer('scheduler');

    const app = createApp(
      {
        tokens: new TokenFile(config.paths.apiTokenFile),
        limiter: new RateLimiter(config.rateLimit.perSecond, config.rateLimit.burst),
        log: ctx.log,
        bodyMaxBytes: config.limits.bodyMaxBytes,
        actorStates: () => states,
        startedAtMs: Date.now(),
        onResponse: (method, route, status, ms) => metrics.recordRequest(method, route, status, ms),
      },
      [uploadsRoutes({ config, paths, reads, scheduler }), jobsRoutes({ config, paths, reads, scheduler, watch }), artifactsRoutes({ config, paths, reads }),
        (app) => app.get('/openapi.json', (c) => c.json(OPENAPI)),
        ...(config.faultInjection ? [faultRoutes(ctx)] : []),
        (app) => app.get('/metrics', async (c) => c.text(await metrics.render(), 200, { 'Content-Type': metrics.contentType }))],
    );

    const address = await new Promise<AddressInfo>((resolve, reject) => {
      const s = serve({ fetch: app.fetch, hostname: config.listen.host, port: config.listen.port }, (info) => resolve(info));
      s.once('error', reject);
      servers.push(s);
    });
    ctx.log.info(`API listening on http://${address.address}:${address.port}`, { event: 'listening', host: address.address, port: address.port });

    // The same API on a unix socket for operators on the host, whose own TCP connections to the
    // API port the firewall drops (rootless containers reach the host through loopback too).
    const socketPath = config.paths.apiSocket;
    removeStaleSocket(socketPath);
    const local = createAdaptorServer({ fetch: app.fetch });
    await new Promise<void>((resolve, reject) => {
      local.once('error', reject);
      local.listen(socketPath, () => resolve());
    });
    chmodSync(socketPath, 0o660);
    servers.push(local);
    ctx.log.info(`API listening on unix:${socketPath}`, { event: 'listening_unix', path: socketPath });
    return {};
  },

  async stop(graceMs) {
    const closing = servers;
    servers = [];
    await Promise.all(closing.map((s) => closeGracefully(s, graceMs)));
    db?.close();
    db = undefined;
  },
});

/** A socket file left by a previous run that died is replaced; anything else there is an error. */
function removeStaleSocket(path: string): void {
  try {
    if (!lstatSync(path).isSocket()) throw new Error(`${path} exists and is not a socket; remove it or set FLASHPODS_API_SOCKET elsewhere`);
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function closeGracefully(s: ServerType, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
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
}
