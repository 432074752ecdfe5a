/**
 * @module metrics
 * GET /metrics in the Prometheus text format (0.0.4). Counters and the request-latency histogram
 * live in the API actor; job counts and durations are read from the database at scrape time, so
 * they survive restarts; disk usage comes from the scheduler's cleanup passes.
 */
import { statfs } from 'node:fs/promises';
import type { FlashpodsConfig } from '../contract/config.ts';
import { JOB_STATES, JOB_TYPES } from '../contract/jobs.ts';
import type { CleanupReport } from '../scheduler/messages.ts';
import type { JobReads } from '../store/job-reads.ts';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DURATION_BUCKETS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200];

type Labels = Record<string, string>;

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

class Family {
  readonly lines: string[] = [];
  constructor(name: string, type: 'counter' | 'gauge' | 'histogram', help: string) {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  }
  sample(name: string, labels: Labels, value: number): void {
    this.lines.push(`${name}${labelText(labels)} ${Number.isFinite(value) ? value : 0}`);
  }
}

interface Histogram {
  buckets: number[];
  counts: number[];
  sum: number;
  count: number;
}

export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly latency = new Map<string, Histogram>();
  private readonly cleanupActions = new Map<string, number>();
  private admissionsRejected = 0;
  private restarts: Record<string, number> = {};
  private usage: CleanupReport['usage'] | undefined;

  recordRequest(method: string, route: string, status: number, ms: number): void {
    const key = `${method} ${route} ${status}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    const h = this.latency.get(route) ?? { buckets: LATENCY_BUCKETS, counts: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 };
    const seconds = ms / 1000;
    h.buckets.forEach((b, i) => {
      if (seconds <= b) h.counts[i]!++;
    });
    h.sum += seconds;
    h.count++;
    this.latency.set(route, h);
  }

  recordAdmissionRejected(): void {
    this.admissionsRejected++;
  }

  recordCleanup(report: CleanupReport): void {
    for (const [action, n] of Object.entries(report.counts)) this.cleanupActions.set(action, (this.cleanupActions.get(action) ?? 0) + (n ?? 0));
    this.usage = report.usage;
  }

  recordRestarts(restarts: Record<string, number>): void {
    this.restarts = restarts;
  }

  async render(reads: JobReads, config: FlashpodsConfig): Promise<string> {
    const out: Family[] = [];

    const jobs = new Family('flashpods_jobs', 'gauge', 'Jobs by state.');
    const byState = reads.countsByState();
    for (const state of JOB_STATES) jobs.sample('flashpods_jobs', { state }, byState.get(state) ?? 0);
    out.push(jobs);

    const failed = new Family('flashpods_jobs_failed_total', 'counter', 'Jobs that ended failed or timed_out (cancelled ones are not failures), cleaned ones included.');
    failed.sample('flashpods_jobs_failed_total', {}, reads.failedCount());
    out.push(failed);

    const held = reads.heldResources();
    const alloc = new Family('flashpods_allocated', 'gauge', 'Resources held by admitted jobs, and the capacity admission enforces.');
    alloc.sample('flashpods_allocated', { resource: 'cpus' }, held.cpus);
    alloc.sample('flashpods_allocated', { resource: 'memory_gb' }, held.memoryGb);
    alloc.sample('flashpods_allocated', { resource: 'cpus_capacity' }, config.capacity.cpus);
    alloc.sample('flashpods_allocated', { resource: 'memory_gb_capacity' }, config.capacity.memoryGb);
    out.push(alloc);

    const durations = new Family('flashpods_job_duration_seconds', 'histogram', 'Run time of finished jobs (started to ended).');
    const rows = reads.runTimes();
    for (const type of JOB_TYPES) {
      const values = rows.filter((r) => r.type === type).map((r) => r.seconds);
      for (const b of DURATION_BUCKETS) durations.sample('flashpods_job_duration_seconds_bucket', { type, le: String(b) }, values.filter((v) => v <= b).length);
      durations.sample('flashpods_job_duration_seconds_bucket', { type, le: '+Inf' }, values.length);
      durations.sample('flashpods_job_duration_seconds_sum', { type }, values.reduce((a, b) => a + b, 0));
      durations.sample('flashpods_job_duration_seconds_count', { type }, values.length);
    }
    out.push(durations);

    const rejected = new Family('flashpods_admissions_rejected_total', 'counter', 'POST /jobs refused with insufficient_resources since the API started.');
    rejected.sample('flashpods_admissions_rejected_total', {}, this.admissionsRejected);
    out.push(rejected);

    const requests = new Family('flashpods_http_requests_total', 'counter', 'HTTP requests by method, route and status.');
    for (const [key, n] of this.requests) {
      const [method, route, status] = key.split(' ');
      requests.sample('flashpods_http_requests_total', { method: method!, route: route!, status: status! }, n);
    }
    out.push(requests);

    const latency = new Family('flashpods_http_request_duration_seconds', 'histogram', 'API latency by route.');
    for (const [route, h] of this.latency) {
      h.buckets.forEach((b, i) => latency.sample('flashpods_http_request_duration_seconds_bucket', { route, le: String(b) }, h.counts[i]!));
      latency.sample('flashpods_http_request_duration_seconds_bucket', { route, le: '+Inf' }, h.count);
      latency.sample('flashpods_http_request_duration_seconds_sum', { route }, h.sum);
      latency.sample('flashpods_http_request_duration_seconds_count', { route }, h.count);
    }
    out.push(latency);

    const restarts = new Family('flashpods_actor_restarts_total', 'counter', 'Actor restarts since the supervisor started.');
    for (const [actor, n] of Object.entries(this.restarts)) restarts.sample('flashpods_actor_restarts_total', { actor }, n);
    out.push(restarts);

    const cleanup = new Family('flashpods_cleanup_actions_total', 'counter', 'Cleanup actions since the API started.');
    for (const [action, n] of this.cleanupActions) cleanup.sample('flashpods_cleanup_actions_total', { action }, n);
    out.push(cleanup);

    const disk = new Family('flashpods_disk_usage_bytes', 'gauge', 'Bytes held per area, as of the last cleanup pass.');
    if (this.usage) for (const [area, bytes] of Object.entries(this.usage)) disk.sample('flashpods_disk_usage_bytes', { area }, bytes);
    out.push(disk);

    const fs = new Family('flashpods_filesystem_used_ratio', 'gauge', 'Used fraction of the filesystem holding each area (warn at 0.70, critical at 0.85).');
    for (const [area, path] of [['uploads', config.paths.uploads], ['artifacts', config.paths.artifacts], ['logs', config.paths.logs], ['db', config.paths.db]] as const) {
      const st = await statfs(path).catch(() => undefined);
      if (st && st.blocks > 0) fs.sample('flashpods_filesystem_used_ratio', { area }, Math.round((1 - st.bavail / st.blocks) * 10_000) / 10_000);
    }
    out.push(fs);

    return `${out.flatMap((f) => f.lines).join('\n')}\n`;
  }
}
