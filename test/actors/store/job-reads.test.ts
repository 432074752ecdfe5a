import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMigrations, migrate, openDatabase } from '../../../actors/store/database.ts';
import { JobReads } from '../../../actors/store/job-reads.ts';

const tempDb = () => join(mkdtempSync(join(tmpdir(), 'fp-reads-')), 'flashpods.db');

describe('the read model', () => {
  it('counts failed and timed_out jobs as failures, cleaned ones included, and never a cancelled one', () => {
    const path = tempDb();
    // Rows as schema 6 left them: a cleaned job kept its exit code and kill reason, not its status.
    const old = openDatabase(path);
    migrate(old, loadMigrations().slice(0, 6));
    const insert = old.prepare(`INSERT INTO jobs (id, job_type, status, command, image, cpus, memory_gb, timeout_minutes, created_at, completed_at, exit_code, kill_reason)
                                VALUES (?, 'worker', ?, 'x', 'i', 1, 1, 30, 1, 2, ?, ?)`);
    insert.run('job_cleanedcancel1', 'cleaned', 143, 'cancel');
    insert.run('job_cleanedcancel2', 'cleaned', 137, 'cancel');
    insert.run('job_cleanedfailed1', 'cleaned', 3, null);
    insert.run('job_cleanedtimeout', 'cleaned', 137, 'timeout');
    insert.run('job_cleanedcomplet', 'cleaned', 0, null);
    insert.run('job_failednow00000', 'failed', 1, null);
    insert.run('job_cancellednow00', 'cancelled', 143, 'cancel');
    old.close();

    const db = openDatabase(path);
    migrate(db);
    const reads = new JobReads(db);
    expect(reads.failedCount()).toBe(3);
    expect(db.prepare('SELECT id, outcome FROM jobs ORDER BY id').all()).toEqual([
      { id: 'job_cancellednow00', outcome: 'cancelled' },
      { id: 'job_cleanedcancel1', outcome: 'cancelled' },
      { id: 'job_cleanedcancel2', outcome: 'cancelled' },
      { id: 'job_cleanedcomplet', outcome: 'completed' },
      { id: 'job_cleanedfailed1', outcome: 'failed' },
      { id: 'job_cleanedtimeout', outcome: 'timed_out' },
      { id: 'job_failednow00000', outcome: 'failed' },
    ]);
    db.close();
  });
});
