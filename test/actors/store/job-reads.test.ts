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

  it('holds the resources of every job whose container may be alive, a killed one still running included, and frees them at the exit', () => {
    const db = openDatabase(tempDb());
    migrate(db);
    const insert = db.prepare(`INSERT INTO jobs (id, job_type, status, command, image, cpus, memory_gb, timeout_minutes, created_at, kill_reason, pending_finish, outcome, resources_released_at)
                               VALUES (?, 'worker', ?, 'x', 'i', ?, 1, 30, 1, ?, ?, ?, ?)`);
    insert.run('job_pending0000000', 'pending', 1, null, null, null, null);
    insert.run('job_running0000000', 'running', 2, null, null, null, null);
    insert.run('job_cancelledalive', 'cancelled', 4, 'cancel', null, null, null);
    // Exited, index outstanding; finished at its exit, removal outstanding; gone.
    insert.run('job_exited00000000', 'running', 8, null, '{"exitCode":0,"oomKilled":false}', null, null);
    insert.run('job_finishednotgone', 'completed', 16, null, null, 'completed', null);
    insert.run('job_gone0000000000', 'completed', 32, null, null, 'completed', 5);
    expect(new JobReads(db).heldResources()).toEqual({ jobs: 3, cpus: 7, memoryGb: 3 });
    db.close();
  });
});
