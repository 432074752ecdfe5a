/**
 * @module reads
 * Read-only queries the API answers itself from its own read-only SQLite connection (WAL lets
 * it read while the scheduler writes), so reads keep working while the scheduler restarts.
 */
import type { JobState } from '../contract/jobs.ts';
import type { Db } from '../store/database.ts';
import type { ArtifactRow, JobRow, UploadRow } from '../store/rows.ts';

export class Reads {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  job(id: string): JobRow | undefined {
    return this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
  }

  jobs(states: readonly JobState[] | undefined, limit: number): { jobs: JobRow[]; total: number } {
    const where = states ? `WHERE status IN (${states.map(() => '?').join(', ')})` : '';
    const args = states ?? [];
    const jobs = this.db.prepare(`SELECT * FROM jobs ${where} ORDER BY created_at DESC, id DESC LIMIT ?`).all(...args, limit) as JobRow[];
    const total = this.db.prepare(`SELECT count(*) FROM jobs ${where}`).pluck().get(...args) as number;
    return { jobs, total };
  }

  artifacts(jobId: string): ArtifactRow[] {
    return this.db.prepare('SELECT * FROM artifacts WHERE job_id = ? ORDER BY name').all(jobId) as ArtifactRow[];
  }

  artifact(jobId: string, name: string): ArtifactRow | undefined {
    return this.db.prepare('SELECT * FROM artifacts WHERE job_id = ? AND name = ?').get(jobId, name) as ArtifactRow | undefined;
  }

  upload(id: string): UploadRow | undefined {
    return this.db.prepare('SELECT * FROM uploads WHERE id = ?').get(id) as UploadRow | undefined;
  }
}
