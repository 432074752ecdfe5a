/**
 * @module queue-metrics
 * The job queue's metrics (issue 15), declared with prom-client on the API actor's own registry
 * and, like the job counts and durations in metrics.ts, read from the database at scrape time so
 * they survive restarts. Not yet registered: the reads need the queue's columns (status `queued`,
 * queued_at, admitted_at, backfilled). Issue 15 gives JobReads the three QueueReads methods and
 * calls `declareQueueMetrics(this.registry, reads)` in the Metrics constructor; nothing else.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { JobType } from '../contract/jobs.ts';
import { histogramFromRows } from './histogram-from-rows.ts';

/** Seconds: from a blink to the longest queue_timeout_minutes (24 h). */
const QUEUE_WAIT_BUCKETS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400];

/** What the read model answers for the queue's metrics at each scrape. */
export interface QueueReads {
  /** `SELECT count(*) FROM jobs WHERE status = 'queued'` */
  queueDepth(): number;
  /** `SELECT job_type AS type, (admitted_at - queued_at) / 1000.0 AS seconds FROM jobs WHERE queued_at IS NOT NULL AND admitted_at IS NOT NULL` */
  queueWaits(): Array<{ type: JobType; seconds: number }>;
  /** `SELECT count(*) FROM jobs WHERE backfilled = 1` */
  backfilledCount(): number;
}

export function declareQueueMetrics(registry: Registry, reads: QueueReads): void {
  const registers = [registry];
  new Gauge({
    name: 'flashpods_queue_depth', help: 'Jobs waiting in the queue.', registers,
    collect() {
      this.set(reads.queueDepth());
    },
  });
  histogramFromRows({
    name: 'flashpods_queue_wait_seconds', help: 'Time queued jobs waited before they started, by job type.', buckets: QUEUE_WAIT_BUCKETS, registry,
    rows: () => reads.queueWaits(),
  });
  new Counter({
    name: 'flashpods_jobs_backfilled_total', help: 'Jobs started ahead of a waiting queue head, by backfill that could not delay it.', registers,
    collect() {
      this.reset();
      this.inc(reads.backfilledCount());
    },
  });
}
