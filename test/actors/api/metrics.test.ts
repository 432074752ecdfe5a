import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../../actors/api/metrics.ts';
import { declareQueueMetrics } from '../../../actors/api/queue-metrics.ts';
import { loadConfig } from '../../../actors/contract/config.ts';
import { migrate, openDatabase, type Db } from '../../../actors/store/database.ts';
import { JobReads } from '../../../actors/store/job-reads.ts';
import { startServer, type RunningServer } from '../../support/server.ts';

/** Sample lines of one family (`name`, `name_bucket`, `name_sum`, `name_count`), as written. */
const samplesOf = (text: string, family: string) => text.split('\n').filter((l) => new RegExp(`^${family}(_bucket|_sum|_count)?[{ ]`).test(l));

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Every histogram series in the text: its bucket values in order, and its _count. */
function histogramSeries(text: string): Array<{ series: string; buckets: number[]; infBucket: number; count: number }> {
  const families = [...text.matchAll(/^# TYPE (\S+) histogram$/gm)].map((m) => m[1]!);
  return families.flatMap((family) => {
    const counts = [...text.matchAll(new RegExp(`^${family}_count(\\{[^}]*\\})? (\\S+)$`, 'gm'))];
    return counts.map(([, labels = '', count]) => {
      const others = labels ? `,${escapeRegExp(labels.slice(1, -1))}` : '';
      const buckets = [...text.matchAll(new RegExp(`^${family}_bucket\\{le="([^"]+)"${others}\\} (\\S+)$`, 'gm'))];
      const inf = buckets.find(([, le]) => le === '+Inf');
      return { series: `${family}${labels}`, buckets: buckets.map(([, , v]) => Number(v)), infBucket: Number(inf?.[2]), count: Number(count) };
    });
  });
}

describe('GET /metrics of a real server', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ FLASHPODS_RATE_LIMIT_PER_SECOND: '1000', FLASHPODS_RATE_LIMIT_BURST: '1000' });
  });
  afterAll(async () => {
    await server.stop();
  });

  it('names every family, HELP text and type as before the move to prom-client, the queue\'s first', async () => {
    const res = await server.fetch('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const headers = (await res.text()).split('\n').filter((l) => l.startsWith('# '));
    expect(headers).toEqual([
      '# HELP flashpods_queue_depth Jobs waiting in the queue.',
      '# TYPE flashpods_queue_depth gauge',
      '# HELP flashpods_queue_wait_seconds Time queued jobs waited before they started, by job type.',
      '# TYPE flashpods_queue_wait_seconds histogram',
      '# HELP flashpods_jobs_backfilled_total Jobs started ahead of a waiting queue head, by backfill that could not delay it.',
      '# TYPE flashpods_jobs_backfilled_total counter',
      '# HELP flashpods_jobs Jobs by state.',
      '# TYPE flashpods_jobs gauge',
      '# HELP flashpods_jobs_failed_total Jobs that ended failed or timed_out (cancelled ones are not failures), cleaned ones included.',
      '# TYPE flashpods_jobs_failed_total counter',
      '# HELP flashpods_allocated Resources held by admitted jobs, and the capacity admission enforces.',
      '# TYPE flashpods_allocated gauge',
      '# HELP flashpods_job_duration_seconds Run time of finished jobs (started to ended).',
      '# TYPE flashpods_job_duration_seconds histogram',
      '# HELP flashpods_admissions_rejected_total POST /jobs refused with insufficient_resources since the API started.',
      '# TYPE flashpods_admissions_rejected_total counter',
      '# HELP flashpods_http_requests_total HTTP requests by method, route and status.',
      '# TYPE flashpods_http_requests_total counter',
      '# HELP flashpods_http_request_duration_seconds API latency by route.',
      '# TYPE flashpods_http_request_duration_seconds histogram',
      '# HELP flashpods_actor_restarts_total Actor restarts since the supervisor started.',
      '# TYPE flashpods_actor_restarts_total counter',
      '# HELP flashpods_cleanup_actions_total Cleanup actions since the API started.',
      '# TYPE flashpods_cleanup_actions_total counter',
      '# HELP flashpods_disk_usage_bytes Bytes held per area, as of the last cleanup pass.',
      '# TYPE flashpods_disk_usage_bytes gauge',
      '# HELP flashpods_filesystem_used_ratio Used fraction of the filesystem holding each area (warn at 0.70, critical at 0.85).',
      '# TYPE flashpods_filesystem_used_ratio gauge',
    ]);
  });

  it('counts N requests exactly, and every histogram +Inf bucket equals its _count', async () => {
    const n = 7;
    for (let i = 0; i < n; i++) expect((await server.fetch('/health', { auth: false })).status).toBe(200);
    const text = await (await server.fetch('/metrics')).text();

    expect(samplesOf(text, 'flashpods_http_requests_total').filter((l) => l.includes('route="/health"'))).toEqual([
      `flashpods_http_requests_total{method="GET",route="/health",status="200"} ${n}`,
    ]);
    expect(text).toContain(`\nflashpods_http_request_duration_seconds_bucket{le="+Inf",route="/health"} ${n}\n`);
    expect(text).toContain(`\nflashpods_http_request_duration_seconds_count{route="/health"} ${n}\n`);
    const latencyBuckets = samplesOf(text, 'flashpods_http_request_duration_seconds_bucket').filter((l) => l.includes('route="/health"'));
    expect(latencyBuckets.map((l) => l.match(/le="([^"]+)"/)![1])).toEqual(['0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf']);

    const series = histogramSeries(text);
    // Latency for /health and the first /metrics, job durations and queue waits for both types.
    expect(series.map((s) => s.series).sort()).toEqual([
      'flashpods_http_request_duration_seconds{route="/health"}',
      'flashpods_http_request_duration_seconds{route="/metrics"}',
      'flashpods_job_duration_seconds{type="agent"}',
      'flashpods_job_duration_seconds{type="worker"}',
      'flashpods_queue_wait_seconds{type="agent"}',
      'flashpods_queue_wait_seconds{type="worker"}',
    ]);
    for (const s of series) {
      expect(s.infBucket, s.series).toBe(s.count);
      expect(s.buckets, s.series).toEqual([...s.buckets].sort((a, b) => a - b));
    }
    const durationBounds = ['1', '5', '15', '30', '60', '300', '900', '1800', '3600', '7200', '+Inf'];
    expect(samplesOf(text, 'flashpods_job_duration_seconds_bucket').map((l) => l.match(/le="([^"]+)"/)![1])).toEqual([...durationBounds, ...durationBounds]);
  });
});

describe('Metrics on a real database', () => {
  const home = mkdtempSync(join(tmpdir(), 'fp-metrics-'));
  const config = loadConfig({ env: { FLASHPODS_HOME: home, FLASHPODS_CAPACITY_CPUS: '6', FLASHPODS_CAPACITY_MEMORY_GB: '12' } });
  mkdirSync(dirname(config.paths.db), { recursive: true });
  let db: Db;
  let reads: JobReads;
  beforeAll(() => {
    db = openDatabase(config.paths.db);
    migrate(db);
    reads = new JobReads(db);
  });
  afterAll(() => db.close());

  let jobNo = 0;
  const finishedJob = (type: 'worker' | 'agent', seconds: number, outcome: 'completed' | 'failed') =>
    db.prepare(`INSERT INTO jobs (id, job_type, status, command, task, git_branch, image, cpus, memory_gb, timeout_minutes, created_at, started_at, completed_at, outcome, resources_released_at)
                VALUES (?, ?, ?, 'x', 't', 'b', 'i', 1, 1, 30, 0, 1000, ?, ?, ?)`)
      .run(`job_${String(++jobNo).padStart(16, '0')}`, type, outcome, 1000 + seconds * 1000, outcome, 1000 + seconds * 1000);

  it('reads job counts and durations from the database at each scrape, never adding scrapes up', async () => {
    finishedJob('worker', 0.5, 'completed');
    finishedJob('worker', 20, 'failed');
    finishedJob('worker', 400, 'completed');
    const metrics = new Metrics(reads, config);
    const workerDurations = (text: string) => samplesOf(text, 'flashpods_job_duration_seconds').filter((l) => l.includes('type="worker"'));

    const first = await metrics.render();
    expect(workerDurations(first)).toEqual([
      'flashpods_job_duration_seconds_bucket{le="1",type="worker"} 1',
      'flashpods_job_duration_seconds_bucket{le="5",type="worker"} 1',
      'flashpods_job_duration_seconds_bucket{le="15",type="worker"} 1',
      'flashpods_job_duration_seconds_bucket{le="30",type="worker"} 2',
      'flashpods_job_duration_seconds_bucket{le="60",type="worker"} 2',
      'flashpods_job_duration_seconds_bucket{le="300",type="worker"} 2',
      'flashpods_job_duration_seconds_bucket{le="900",type="worker"} 3',
      'flashpods_job_duration_seconds_bucket{le="1800",type="worker"} 3',
      'flashpods_job_duration_seconds_bucket{le="3600",type="worker"} 3',
      'flashpods_job_duration_seconds_bucket{le="7200",type="worker"} 3',
      'flashpods_job_duration_seconds_bucket{le="+Inf",type="worker"} 3',
      'flashpods_job_duration_seconds_sum{type="worker"} 420.5',
      'flashpods_job_duration_seconds_count{type="worker"} 3',
    ]);
    expect(samplesOf(first, 'flashpods_jobs_failed_total')).toEqual(['flashpods_jobs_failed_total 1']);
    expect(samplesOf(first, 'flashpods_allocated')).toEqual([
      'flashpods_allocated{resource="cpus"} 0',
      'flashpods_allocated{resource="memory_gb"} 0',
      'flashpods_allocated{resource="cpus_capacity"} 6',
      'flashpods_allocated{resource="memory_gb_capacity"} 12',
    ]);

    finishedJob('worker', 3, 'failed');
    const second = await metrics.render();
    expect(workerDurations(second)).toContain('flashpods_job_duration_seconds_bucket{le="5",type="worker"} 2');
    expect(workerDurations(second)).toContain('flashpods_job_duration_seconds_count{type="worker"} 4');
    expect(workerDurations(second)).toContain('flashpods_job_duration_seconds_sum{type="worker"} 423.5');
    expect(samplesOf(second, 'flashpods_jobs_failed_total')).toEqual(['flashpods_jobs_failed_total 2']);
    expect(samplesOf(second, 'flashpods_jobs').filter((l) => /state="(completed|failed)"/.test(l))).toEqual([
      'flashpods_jobs{state="completed"} 2',
      'flashpods_jobs{state="failed"} 2',
    ]);
  });

  it('keeps a registry per Metrics, so two in one process never share or clash over a name', async () => {
    const a = new Metrics(reads, config);
    const b = new Metrics(reads, config);
    a.recordRequest('GET', '/jobs', 200, 30);
    a.recordAdmissionRejected();
    b.recordRestarts({ scheduler: 2 });
    b.recordRestarts({ scheduler: 3, api: 0 });
    const [textA, textB] = await Promise.all([a.render(), b.render()]);
    expect(samplesOf(textA, 'flashpods_http_requests_total')).toEqual(['flashpods_http_requests_total{method="GET",route="/jobs",status="200"} 1']);
    expect(samplesOf(textB, 'flashpods_http_requests_total')).toEqual([]);
    expect(samplesOf(textA, 'flashpods_admissions_rejected_total')).toEqual(['flashpods_admissions_rejected_total 1']);
    expect(samplesOf(textB, 'flashpods_admissions_rejected_total')).toEqual(['flashpods_admissions_rejected_total 0']);
    expect(samplesOf(textA, 'flashpods_actor_restarts_total')).toEqual([]);
    expect(samplesOf(textB, 'flashpods_actor_restarts_total')).toEqual(['flashpods_actor_restarts_total{actor="scheduler"} 3', 'flashpods_actor_restarts_total{actor="api"} 0']);
  });

  it('adds up cleanup actions and keeps the last pass\'s disk usage', async () => {
    const metrics = new Metrics(reads, config);
    metrics.recordCleanup({ counts: { upload_expired: 2, log_evicted: 0 }, usage: { uploads: 10, artifacts: 20, logs: 30 } });
    metrics.recordCleanup({ counts: { upload_expired: 1 }, usage: { uploads: 11, artifacts: 21, logs: 31 } });
    const text = await metrics.render();
    expect(samplesOf(text, 'flashpods_cleanup_actions_total')).toEqual(['flashpods_cleanup_actions_total{action="upload_expired"} 3', 'flashpods_cleanup_actions_total{action="log_evicted"} 0']);
    expect(samplesOf(text, 'flashpods_disk_usage_bytes')).toEqual(['flashpods_disk_usage_bytes{area="uploads"} 11', 'flashpods_disk_usage_bytes{area="artifacts"} 21', 'flashpods_disk_usage_bytes{area="logs"} 31']);
  });
});

describe('the queue metrics', () => {
  it('are declared on the registry given, and read the queue from the database at each scrape', async () => {
    const db = openDatabase(join(mkdtempSync(join(tmpdir(), 'fp-queue-metrics-')), 'flashpods.db'));
    migrate(db);
    const insert = db.prepare(`INSERT INTO jobs (id, job_type, status, command, task, git_branch, image, cpus, memory_gb, timeout_minutes, created_at, queued_at, queue_seq, queue_timeout_minutes, admitted_at, backfilled)
                               VALUES (?, ?, ?, 'x', 't', 'b', 'i', 1, 1, 30, 0, ?, ?, 60, ?, ?)`);
    insert.run('job_waited4seconds', 'worker', 'running', 1_000, 1, 5_000, 0);
    insert.run('job_waitedalongday', 'worker', 'completed', 1_000, 2, 90_001_000, 1);
    insert.run('job_stillqueued001', 'agent', 'queued', 2_000, 3, null, 0);
    const registry = new Registry();
    declareQueueMetrics(registry, new JobReads(db));
    insert.run('job_stillqueued002', 'worker', 'queued', 3_000, 4, null, 0);
    const text = await registry.metrics();
    expect(samplesOf(text, 'flashpods_queue_depth')).toEqual(['flashpods_queue_depth 2']);
    expect(samplesOf(text, 'flashpods_jobs_backfilled_total')).toEqual(['flashpods_jobs_backfilled_total 1']);
    expect(text).toContain('\nflashpods_queue_wait_seconds_bucket{le="1",type="worker"} 0\n');
    expect(text).toContain('\nflashpods_queue_wait_seconds_bucket{le="5",type="worker"} 1\n');
    expect(text).toContain('\nflashpods_queue_wait_seconds_bucket{le="86400",type="worker"} 1\n');
    expect(text).toContain('\nflashpods_queue_wait_seconds_bucket{le="+Inf",type="worker"} 2\n');
    expect(text).toContain('\nflashpods_queue_wait_seconds_count{type="agent"} 0\n');
    expect(await registry.metrics()).toBe(text);
    db.close();
  });
});
