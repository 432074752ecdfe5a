/**
 * @module queue-metrics
 * The job queue's metrics (issue 15), named as in metrics.ts and, like its job counts and
 * durations, read from the database at scrape time so they survive restarts. Draft: not yet
 * rendered; it needs the queue's columns (status `queued`, queued_at, admitted_at, backfilled),
 * and metrics.ts renders each row with its Family the way it renders flashpods_jobs and
 * flashpods_job_duration_seconds.
 */

/** Seconds: from a blink to the longest queue_timeout_minutes (24 h). */
export const QUEUE_WAIT_BUCKETS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400];

export const QUEUE_METRICS = {
  depth: {
    name: 'flashpods_queue_depth',
    type: 'gauge',
    help: 'Jobs waiting in the queue.',
    sql: "SELECT count(*) FROM jobs WHERE status = 'queued'",
  },
  wait: {
    name: 'flashpods_queue_wait_seconds',
    type: 'histogram',
    help: 'Time queued jobs waited before they started, by job type.',
    labels: ['type'],
    buckets: QUEUE_WAIT_BUCKETS,
    sql: 'SELECT job_type AS type, (admitted_at - queued_at) / 1000.0 AS s FROM jobs WHERE queued_at IS NOT NULL AND admitted_at IS NOT NULL',
  },
  backfilled: {
    name: 'flashpods_jobs_backfilled_total',
    type: 'counter',
    help: 'Jobs started ahead of a waiting queue head, by backfill that could not delay it.',
    sql: 'SELECT count(*) FROM jobs WHERE backfilled = 1',
  },
} as const;
