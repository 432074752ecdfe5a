/**
 * `flashpods serve` as a real process: a start whose prerequisites are missing stops at once —
 * exit 2, one line on stderr naming the file and what creates it, no actor thread started — and
 * FLASHPODS_* variables nothing reads are warned about, naming the nearest setting.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startServer } from '../support/server.ts';

const cli = new URL('../../cli/flashpods.mjs', import.meta.url).pathname;

function serve(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, [cli, 'serve', ...args], { env: { ...process.env, FLASHPODS_LISTEN: '127.0.0.1:0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started })));
}

const events = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l).event as string);

/** `serve --actors <actors>` on an empty home: exit 2 with one stderr line, no actor started. */
async function refusedStart(actors: string): Promise<{ home: string; line: string }> {
  const home = mkdtempSync(join(tmpdir(), 'fp-serve-empty-'));
  const run = await serve(['--actors', actors], { FLASHPODS_HOME: home });
  expect(run.code).toBe(2);
  const lines = run.stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  expect(events(run.stdout)).not.toContain('started');
  expect(events(run.stdout)).not.toContain('crashed');
  expect(run.ms).toBeLessThan(8_000); // the crash loop it replaces took ≈ 10 s: six crashes with backoff
  return { home, line: lines[0]! };
}

describe('a start with a prerequisite missing', () => {
  it('--actors api on an empty home: one line naming the database and the scheduler, exit 2, no actor started', async () => {
    const { home, line } = await refusedStart('api');
    expect(line).toBe(`flashpods: cannot start the api actor: the database ${join(home, 'db', 'flashpods.db')} does not exist; ` +
      'the scheduler actor creates it on its first start: run `flashpods serve` (its default actors include the scheduler) once, or start --actors scheduler,api');
  });

  it('--actors tokens without the secrets file: one line naming it and who writes it', async () => {
    const { home, line } = await refusedStart('tokens');
    expect(line).toMatch(new RegExp(`^flashpods: cannot start the tokens actor: the secrets file ${join(home, 'secrets.json')} does not exist; the operator writes it: .*anthropic_api_key.*github_token`));
  });

  it('the same empty home starts when the scheduler, which makes the database, starts too', async () => {
    const home = mkdtempSync(join(tmpdir(), 'fp-serve-empty-'));
    const server = await startServer({ FLASHPODS_PODMAN_SOCKET: '/nonexistent/podman.sock' }, home);
    expect((await server.fetch('/health', { auth: false })).status).toBe(200);
    expect(await server.stop()).toBe(0);
  });
});

describe('unknown FLASHPODS_* variables', () => {
  it('are warned about at start, each naming the nearest setting; variables read elsewhere are not', async () => {
    const known = { FLASHPODS_PROFILE: 'dev', FLASHPODS_API_TOKEN: 'x', FLASHPODS_URL: 'http://127.0.0.1:1', FLASHPODS_HOST: '127.0.0.1', FLASHPODS_RSYNC_PORT: '1', FLASHPODS_MCP_LOG_LEVEL: 'debug' };
    const server = await startServer({ ...known, FLASHPODS_DB_PATH: '/tmp/x.db', FLASHPODS_LISTN: '127.0.0.1:1', FLASHPODS_PODMAN_SOCKET: '/nonexistent/podman.sock' });
    try {
      const warned = server.logLines().filter((l) => l.event === 'unknown_setting');
      const byVariable = Object.fromEntries(warned.map((l) => [l.variable, l]));
      expect(byVariable.FLASHPODS_DB_PATH).toMatchObject({ level: 40, nearest: 'FLASHPODS_DB', msg: expect.stringMatching(/^FLASHPODS_DB_PATH is not a Flashpods setting and is ignored; did you mean FLASHPODS_DB\?/) });
      expect(byVariable.FLASHPODS_LISTN).toMatchObject({ nearest: 'FLASHPODS_LISTEN' });
      for (const name of [...Object.keys(known), 'FLASHPODS_HOME', 'FLASHPODS_LISTEN', 'FLASHPODS_LOG_LEVEL', 'FLASHPODS_PODMAN_SOCKET']) expect(byVariable[name], name).toBeUndefined();
    } finally {
      await server.stop();
    }
  });
});
