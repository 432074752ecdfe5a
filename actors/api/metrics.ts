/**
 * @module metrics
 * GET /metrics in the Prometheus text format (0.0.4), written by prom-client. Each API actor owns a
 * Registry of its own, never prom-client's global one, so a restarted actor thread or two APIs in
 * one test process never meet over a metric name.
 *
 * Request counters and the latency histogram live in the API actor; disk usage comes from the
 * scheduler's cleanup passes. Job counts and durations are read from the database at scrape time
 * (each metric's collect()), so they survive restarts and the database stays their one source.
 * The job-duration histogram is therefore emptied and refilled from the finished jobs' run times
 * on every scrape instead of observed when a job ends: the API never sees a job end (the
 * scheduler does, in its own thread), and an in-memory histogram would restart from zero with the
 * API. It stays a histogram, not gauges per bucket, so histogram_quantile() applies to it as to
 * the request latency.
 */
import { statfs } from 'node:fs/promises';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { FlashpodsConfig } from '../contract/config.ts';
import { JOB_STATES } from '../contract/jobs.ts';
import type { CleanupReport } from '../scheduler/messages.ts';
import type { JobReads } from '../store/job-reads.ts';
import { histogramFromRows } from './histogram-from-rows.ts';
import { declareQueueMetrics } from './queue-metrics.ts';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DURATION_BUCKETS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200];

export class Metrics {
  private readonly registry = new Registry();
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly latency: Histogram<'route'>;
  private readonly admissionsRejected: Counter;
  private readonly restarts: Counter<'actor'>;
  private readonly cleanupActions: Counter<'action'>;
  private readonly diskUsage: Gauge<'area'>;

  /** Families are written in the order they are declared here. */
  constructor(reads: JobReads, config: FlashpodsConfig) {
    const registers = [this.registry];
    declareQueueMetrics(this.registry, reads);
    new Gauge({
      name: 'flashpods_jobs', help: 'Jobs by state.', labelNames: ['state'], registers,
      collect() {
        const byState = reads.countsByState();
        for (const state of JOB_STATES) this.set({ state }, byState.get(state) ?? 0);
      },
    });
    new Counter({
      name: 'flashpods_jobs_failed_total', help: 'Jobs that ended failed or timed_out (cancelled ones are not failures), cleaned ones included.', registers,
      collect() {
        this.reset();
        this.inc(reads.failedCount());
      },
    });
    new Gauge({
      name: 'flashpods_allocated', help: 'Resources held by admitted jobs, and the capacity admission enforces.', labelNames: ['resource'], registers,
      collect() {
        const held = reads.heldResources();
        this.set({ resource: 'cpus' }, held.cpus);
        this.set({ resource: 'memory_gb' }, held.memoryGb);
        this.set({ resource: 'cpus_capacity' }, config.capacity.cpus);
        this.set({ resource: 'memory_gb_capacity' }, config.capacity.memoryGb);
      },
    });
    histogramFromRows({
      name: 'flashpods_job_duration_seconds', help: 'Run time of finished jobs (started to ended).', buckets: DURATION_BUCKETS, registry: this.registry,
      rows: () => reads.runTimes(),
    });
    this.admissionsRejected = new Counter({ name: 'flashpods_admissions_rejected_total', help: 'POST /jobs refused with insufficient_resources since the API started.', registers });
    this.requests = new Counter({ name: 'flashpods_http_requests_total', help: 'HTTP requests by method, route and status.', labelNames: ['method', 'route', 'status'], registers });
    this.latency = new Histogram({ name: 'flashpods_http_request_duration_seconds', help: 'API latency by route.', labelNames: ['route'], buckets: LATENCY_BUCKETS, registers });
    this.restarts = new Counter({ name: 'flashpods_actor_restarts_total', help: 'Actor restarts since the supervisor started.', labelNames: ['actor'], registers });
    this.cleanupActions = new Counter({ name: 'flashpods_cleanup_actions_total', help: 'Cleanup actions since the API started.', labelNames: ['action'], registers });
    this.diskUsage = new Gauge({ name: 'flashpods_disk_usage_bytes', help: 'Bytes held per area, as of the last cleanup pass.', labelNames: ['area'], registers });
    new Gauge({
      name: 'flashpods_filesystem_used_ratio', help: 'Used fraction of the filesystem holding each area (warn at 0.70, critical at 0.85).', labelNames: ['area'], registers,
      async collect() {
        this.reset();
        for (const [area, path] of [['uploads', config.paths.uploads], ['artifacts', config.paths.artifacts], ['logs', config.paths.logs], ['db', config.paths.db]] as const) {
          const st = await statfs(path).catch(() => undefined);
          if (st && st.blocks > 0) this.set({ area }, Math.round((1 - st.bavail / st.blocks) * 10_000) / 10_000);
        }
      },
    });
  }

  /** The Content-Type of what render() returns. */
  get contentType(): string {
    return this.registry.contentType;
  }

  recordRequest(method: string, route: string, status: number, ms: number): void {
    this.requests.inc({ method, route, status: String(status) });
    this.latency.observe({ route }, ms / 1000);
  }

  recordAdmissionRejected(): void {
    this.admissionsRejected.inc();
  }

  recordCleanup(report: CleanupReport): void {
    for (const [action, n] of Object.entries(report.counts)) this.cleanupActions.inc({ action }, n ?? 0);
    for (const [area, bytes] of Object.entries(report.usage)) this.diskUsage.set({ area }, bytes);
  }

  /** The supervisor sends the whole tally each time, so it replaces the last one. */
  recordRestarts(restarts: Record<string, number>): void {
    this.restarts.reset();
    for (const [actor, n] of Object.entries(restarts)) this.restarts.inc({ actor }, n);
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
