import { statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../support/server.ts';

let server: RunningServer;
beforeAll(async () => {
  server = await startServer({ FLASHPODS_RATE_LIMIT_PER_SECOND: '5', FLASHPODS_RATE_LIMIT_BURST: '10' });
});
afterAll(async () => {
  await server.stop();
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the API edge over real HTTP', () => {
  it('serves /health without auth, with each actor state', async () => {
    const res = await server.fetch('/health', { auth: false });
    expect(res.status).toBe(200);
    const body: any = await res.json();
    expect(body).toMatchObject({ status: 'healthy', version: '0.1.0', actors: { api: 'running', scheduler: 'running' } });
    expect(Number.isInteger(body.uptime_seconds)).toBe(true);
    expect(res.headers.get('x-request-id')).toMatch(UUID);
  });

  it('answers the three 401 codes and accepts the right token', async () => {
    await pause(2_100); // a full bucket
    const cases: Array<[Record<string, string>, string]> = [
      [{}, 'missing_authorization'],
      [{ authorization: 'Basic abc' }, 'malformed_authorization'],
      [{ authorization: 'Bearer' }, 'malformed_authorization'],
      [{ authorization: `Bearer ${'0'.repeat(64)}` }, 'invalid_token'],
      [{ authorization: `Bearer ${server.token}x` }, 'invalid_token'],
      [{ authorization: `Bearer ${server.token.slice(0, 10)}` }, 'invalid_token'],
    ];
    for (const [headers, code] of cases) {
      const res = await server.fetch('/no-such-route', { headers, auth: false });
      expect(res.status).toBe(401);
      const body: any = await res.json();
      expect(body.error).toBe(code);
      expect(body.message).toEqual(expect.any(String));
      expect(JSON.stringify(body)).not.toContain(server.token);
    }
    const ok = await server.fetch('/no-such-route');
    expect(ok.status).toBe(404);
    expect(await ok.json()).toMatchObject({ error: 'not_found' });
  });

  it('rate limits with a token bucket and reports it in headers and a 429 body', async () => {
    await pause(2_100);
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 12; i++) {
      const res = await server.fetch('/health', { auth: false });
      statuses.push(res.status);
      expect(res.headers.get('x-ratelimit-limit')).toBe('5');
      expect(Number(res.headers.get('x-ratelimit-reset'))).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000));
      if (res.status === 429) limited ??= res;
    }
    // Burst of 10 (plus at most one token refilled while the loop ran), then refusals.
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(10);
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(11);
    expect(limited).toBeDefined();
    const body: any = await limited!.json();
    expect(body).toMatchObject({ error: 'rate_limited', retry_after_seconds: 1 });
    expect(limited!.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(limited!.headers.get('retry-after')).toBe('1');
    await pause(1_100);
    expect((await server.fetch('/health', { auth: false })).status).toBe(200);
  });

  it('echoes a valid client X-Request-Id and replaces an invalid one', async () => {
    await pause(400);
    const mine = '6f1c3c6e-2f4b-4e8e-9a55-0c7a3f7d2a10';
    const a = await server.fetch('/health', { auth: false, headers: { 'x-request-id': mine } });
    expect(a.headers.get('x-request-id')).toBe(mine);
    const b = await server.fetch('/health', { auth: false, headers: { 'x-request-id': 'not-a-uuid' } });
    expect(b.headers.get('x-request-id')).toMatch(UUID);
  });

  it('serves the same API on a unix socket for operators on the host, mode 0660', async () => {
    const socketPath = join(server.home, 'run', 'api.sock');
    expect(statSync(socketPath).mode & 0o777).toBe(0o660);
    const get = (headers: Record<string, string>) => new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ socketPath, path: '/jobs', headers }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
    await pause(300);
    expect((await get({})).status).toBe(401);
    const ok = await get({ authorization: `Bearer ${server.token}` });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ jobs: [], total: 0 });
  });

  it('writes the supervisor log as one JSON object per line with the token nowhere in it', () => {
    const lines = server.logLines();
    expect(lines.some((l) => l.actor === 'api' && l.event === 'ready')).toBe(true);
    expect(server.rawOutput()).not.toContain(server.token);
  });
});
