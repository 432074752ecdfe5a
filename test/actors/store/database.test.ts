import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMigrations, migrate, openDatabase, schemaVersion } from '../../../actors/store/database.ts';

const tempDb = () => join(mkdtempSync(join(tmpdir(), 'fp-db-')), 'flashpods.db');

describe('store', () => {
  it('creates a fresh database at the latest version in WAL mode with synchronous=NORMAL', () => {
    const db = openDatabase(tempDb());
    const { from, to } = migrate(db);
    expect(from).toBe(0);
    expect(to).toBe(loadMigrations().at(-1)!.version);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(1);
    const tables = db.prepare("select name from sqlite_master where type = 'table' order by name").pluck().all();
    expect(tables).toEqual(['artifacts', 'idempotency_keys', 'jobs', 'meta', 'uploads']);
    expect(db.prepare("select value from meta where key = 'instance_id'").pluck().get()).toMatch(/^[0-9a-f]{16}$/);
  });

  it('migrates a database created by schema version 1 with its rows intact', () => {
    const path = tempDb();
    const old = openDatabase(path);
    migrate(old, loadMigrations().slice(0, 1));
    expect(schemaVersion(old)).toBe(1);
    old.prepare(`insert into jobs (id, job_type, status, command, image, cpus, memory_gb, timeout_minutes, created_at, completed_at, exit_code)
                 values ('job_old1', 'worker', 'completed', 'echo hi', 'ubuntu:22.04', 2, 4, 30, 1000, 2000, 0),
                        ('job_old2', 'worker', 'running', 'sleep 9', 'ubuntu:22.04', 1, 1, 30, 3000, null, null)`).run();
    old.prepare("insert into idempotency_keys (client_job_id, job_id, created_at) values ('6f1c3c6e-2f4b-4e8e-9a55-0c7a3f7d2a10', 'job_old1', 1000)").run();
    old.close();

    const db = openDatabase(path);
    expect(migrate(db)).toEqual({ from: 1, to: loadMigrations().at(-1)!.version });
    const rows = db.prepare('select id, status, command, exit_code, log_truncated, resources_released_at from jobs order by id').all();
    expect(rows).toEqual([
      { id: 'job_old1', status: 'completed', command: 'echo hi', exit_code: 0, log_truncated: 0, resources_released_at: 2000 },
      { id: 'job_old2', status: 'running', command: 'sleep 9', exit_code: null, log_truncated: 0, resources_released_at: null },
    ]);
    expect(db.prepare('select count(*) from idempotency_keys').pluck().get()).toBe(1);
    expect(migrate(db)).toEqual({ from: loadMigrations().at(-1)!.version, to: loadMigrations().at(-1)!.version });
  });

  it('refuses a database newer than the build', () => {
    const db = openDatabase(tempDb());
    db.pragma('user_version = 999');
    expect(() => migrate(db)).toThrow(/newer than this build/);
  });

  it('enforces the enum CHECK constraints and one active job per idempotency key', () => {
    const db = openDatabase(tempDb());
    migrate(db);
    const insertJob = db.prepare(`insert into jobs (id, job_type, status, command, image, cpus, memory_gb, timeout_minutes, created_at)
                                  values (?, ?, ?, 'true', 'img', 1, 1, 1, 0)`);
    expect(() => insertJob.run('job_x', 'sub-agent', 'pending')).toThrow(/CHECK/);
    expect(() => insertJob.run('job_x', 'worker', 'exploded')).toThrow(/CHECK/);
    insertJob.run('job_a', 'worker', 'pending');
    insertJob.run('job_b', 'worker', 'pending');
    const key = db.prepare("insert into idempotency_keys (client_job_id, job_id, active, created_at) values ('k', ?, ?, 0)");
    key.run('job_a', 1);
    expect(() => key.run('job_b', 1)).toThrow(/UNIQUE/);
    db.prepare('update idempotency_keys set active = 0').run();
    expect(() => key.run('job_b', 1)).not.toThrow();
  });
});
