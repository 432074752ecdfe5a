import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../actors/store/database.ts';
import { startServer, type RunningServer } from '../support/server.ts';

const cli = new URL('../../cli/flashpods.mjs', import.meta.url).pathname;
let server: RunningServer;

beforeAll(async () => {
  server = await startServer({ FLASHPODS_PODMAN_SOCKET: '/nonexistent/podman.sock' });
});
afterAll(async () => {
  await server?.stop();
});

function flashpods(...args: string[]) {
  const run = spawnSync(process.execPath, [cli, ...args], { env: { ...process.env, FLASHPODS_HOME: server.home }, encoding: 'utf8' });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('flashpods db', () => {
  it('backs up the live database online, checks the copy, and never overwrites', async () => {
    const created = await server.fetch('/jobs', { method: 'POST', body: JSON.stringify({ type: 'worker', command: 'echo kept in the backup', cpus: 1, memory_gb: 1 }) });
    const { job_id: id } = (await created.json()) as { job_id: string };
    const dest = join(mkdtempSync(join(tmpdir(), 'fp-backup-')), 'flashpods.db');

    const backup = flashpods('db', 'backup', dest, '--json');
    expect(backup.code, backup.stderr).toBe(0);
    expect(JSON.parse(backup.stdout)).toMatchObject({ backup: dest, integrity: 'ok' });
    const copy = openDatabase(dest, { readonly: true });
    expect(copy.prepare('SELECT command FROM jobs WHERE id = ?').pluck().get(id)).toBe('echo kept in the backup');
    copy.close();

    const again = flashpods('db', 'backup', dest);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/exists; choose a new file name/);
  });

  it('checks the live database', () => {
    const check = flashpods('db', 'check');
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toMatch(/integrity ok; schema (\d+) of \1/);
  });

  it('says what to do when there is no database', () => {
    const none = spawnSync(process.execPath, [cli, 'db', 'check'], { env: { ...process.env, FLASHPODS_HOME: mkdtempSync(join(tmpdir(), 'fp-empty-')) }, encoding: 'utf8' });
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/no database at .*flashpods\.db; set FLASHPODS_DB/);
    expect(existsSync(join(tmpdir(), 'flashpods.db'))).toBe(false);
  });
});

describe('the CLI on the host, through the API unix socket', () => {
  it('lists jobs and reads health over FLASHPODS_URL=unix:…', () => {
    const env = { ...process.env, FLASHPODS_URL: `unix:${join(server.home, 'run', 'api.sock')}`, FLASHPODS_API_TOKEN_FILE: join(server.home, 'api-token') };
    const jobs = spawnSync(process.execPath, [cli, 'jobs', '--json'], { env, encoding: 'utf8' });
    expect(jobs.status, jobs.stderr).toBe(0);
    expect(JSON.parse(jobs.stdout).total).toBeGreaterThanOrEqual(1);
    const health = spawnSync(process.execPath, [cli, 'health'], { env, encoding: 'utf8' });
    expect(health.stdout + health.stderr).toMatch(/unix:.*api\.sock/);
  });
});
