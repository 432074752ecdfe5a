/**
 * @module queue-metrics
 * The job queue's metrics (issue 15), declared with prom-client on the API actor's own registry
 * and, like the job counts and durations in metrics.ts, read from the database at scrape time so
 * they survive restarts.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { JobReads } from '../store/job-reads.ts';
import { histogramFromRows } from './histogram-from-rows.ts';

/** Seconds: from a blink to the longest queue_timeout_minutes (24 h). */
const QUEUE_WAIT_BUCKETS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400];

/** What the read model (store/job-reads.ts) answers for the queue's metrics at each scrape. */
export type QueueReads = Pick<JobReads, 'queueLength' | 'queueWaits' | 'backfilledCount'>;

export function declareQueueMetrics(registry: Registry, reads: QueueReads): void {
  const registers = [registry];
  new Gauge({
    name: 'flashpods_queue_depth', help: 'Jobs waiting in the queue.', registers,
    collect() {
      this.set(reads.queueLength());
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
