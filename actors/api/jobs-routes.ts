/**
 * @module jobs-routes
 * POST/GET/DELETE /jobs, the log tail, the live log stream (SSE) and the long-poll
 * `GET /jobs/:id?wait=<seconds>`. Writes go to the scheduler as messages; reads come from the
 * API's own read-only connection.
 */
import { open, stat } from 'node:fs/promises';
import type { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { ActorRef } from '../../runtime/actor.ts';
import { readLogTail } from '../containers/log-capture.ts';
import type { JobCreatedResponse, JobListResponse, OutputResponse } from '../contract/api-schemas.ts';
import type { FlashpodsConfig } from '../contract/config.ts';
import type { JobPaths } from '../contract/job-paths.ts';
import { apiError } from '../contract/errors.ts';
import { ID_PATTERNS, isTerminal, LIST_LIMIT, OUTPUT_TAIL, STATUS_FILTERS, type JobState } from '../contract/jobs.ts';
import { parseJobRequest } from '../scheduler/job-request.ts';
import { isFinished, isSettled } from '../scheduler/lifecycle.ts';
import type { SchedulerProtocol } from '../scheduler/messages.ts';
import type { JobReads } from '../store/job-reads.ts';
import type { JobRow } from '../store/rows.ts';
import { readJsonObject, type AppEnv } from './app.ts';
import { FileWake, type JobWatch } from './job-watch.ts';
import { jobListItem, jobView } from './views.ts';

export interface JobsRoutesDeps {
  config: FlashpodsConfig;
  paths: JobPaths;
  reads: JobReads;
  scheduler: ActorRef<SchedulerProtocol>;
  watch: JobWatch;
}

/** A non-negative whole number query parameter, clamped to `max`; junk is a 400 naming the parameter. */
export function intQuery(raw: string | undefined, name: string, fallback: number, max: number, min = 1): number {
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min) throw apiError('invalid_query', `${name} must be a whole number of at least ${min} (got ${JSON.stringify(raw)}).`);
  return Math.min(Number(raw), max);
}

function findJob(reads: JobReads, id: string): JobRow {
  const job = ID_PATTERNS.job.test(id) ? reads.job(id) : undefined;
  if (!job) throw apiError('job_not_found', `No job ${id}; GET /jobs lists recent jobs.`);
  return job;
}

/**
 * A log stream wakes on each write to the job's log (inotify) and on each change of the job; this
 * period only covers a log file that does not exist yet or a watch the kernel refused.
 */
const SSE_FALLBACK_MS = 250;

export function jobsRoutes(deps: JobsRoutesDeps) {
  const { config, paths, reads, scheduler, watch } = deps;
  const logPath = paths.log;

  return (app: Hono<AppEnv>) => {
    app.post('/jobs', async (c) => {
      const body = await readJsonObject(c, config.limits.bodyMaxBytes);
      const request = parseJobRequest(body, config.podman.agentImage, config.podman.defaultImage);
      const { job, created } = await scheduler.call('createJob', request);
      const position = reads.queuePosition(job);
      const queued = position === undefined ? {} : { queue_position: position };
      if (!created) return c.json({ job_id: job.id, status: job.status, created: false, ...queued, message: 'Existing job returned (idempotent)' }, 200);
      const status: JobState = job.status === 'pending' ? 'starting' : job.status;
      const response: JobCreatedResponse = { job_id: job.id, status, created: true, ...queued };
      if (request.clamped.length > 0) response.clamped = Object.fromEntries(request.clamped.map((f) => [f, f === 'cpus' ? job.cpus : job.memory_gb]));
      return c.json(response, 201);
    });

    app.get('/jobs', (c) => {
      const status = c.req.query('status') ?? 'all';
      if (!Object.hasOwn(STATUS_FILTERS, status)) throw apiError('invalid_query', `status must be one of ${Object.keys(STATUS_FILTERS).join(', ')} (got ${JSON.stringify(status)}).`);
      const limit = intQuery(c.req.query('limit'), 'limit', LIST_LIMIT.default, LIST_LIMIT.max);
      const { jobs, total } = reads.jobs(STATUS_FILTERS[status as keyof typeof STATUS_FILTERS], limit);
      return c.json({ jobs: jobs.map((job) => jobListItem(job, reads.queuePosition(job))), total } satisfies JobListResponse);
    });

    app.get('/jobs/:id', async (c) => {
      const id = c.req.param('id');
      let job = findJob(reads, id);
      const waitMs = intQuery(c.req.query('wait'), 'wait', 0, config.timing.longPollMaxMs / 1000, 0) * 1000;
      const deadline = Date.now() + waitMs;
      while (!isTerminal(job.status) && Date.now() < deadline) {
        await watch.nextChange(id, deadline - Date.now(), c.req.raw.signal);
        if (c.req.raw.signal.aborted) break;
        job = findJob(reads, id);
      }
      return c.json(jobView(job, Date.now(), reads.queuePosition(job)));
    });

    app.delete('/jobs/:id', async (c) => {
      const id = c.req.param('id');
      findJob(reads, id);
      const { job } = await scheduler.call('cancelJob', { jobId: id });
      return c.json({ job_id: job.id, status: 'cancelled', message: 'Job termination initiated' });
    });

    app.get('/jobs/:id/output', async (c) => {
      const job = findJob(reads, c.req.param('id'));
      const tail = intQuery(c.req.query('tail'), 'tail', OUTPUT_TAIL.default, OUTPUT_TAIL.max);
      if (job.logs_deleted_at !== null || job.status === 'cleaned' || job.status === 'cleaning') throw apiError('logs_deleted', `The log of ${job.id} was deleted by cleanup.`);
      if (job.status === 'pending') throw apiError('logs_not_available');
      const log = await readLogTail(logPath(job.id), tail);
      return c.json({ output: log.output, lines: log.lines, truncated: job.log_truncated === 1, total_bytes: log.totalBytes } satisfies OutputResponse);
    });

    app.get('/jobs/:id/output/stream', (c) => {
      const job = findJob(reads, c.req.param('id'));
      if (job.logs_deleted_at !== null || job.status === 'cleaned' || job.status === 'cleaning') throw apiError('logs_deleted', `The log of ${job.id} was deleted by cleanup.`);
      const tail = intQuery(c.req.query('tail'), 'tail', OUTPUT_TAIL.default, OUTPUT_TAIL.max, 0);
      const signal = c.req.raw.signal;
      return streamSSE(c, async (sse) => {
        let position = 0;
        let partial = '';
        if (tail > 0) {
          const start = await readLogTail(logPath(job.id), tail);
          for (const line of start.output.split('\n').filter(Boolean)) await sse.writeSSE({ event: 'line', data: line });
          position = start.totalBytes;
        } else {
          position = await stat(logPath(job.id)).then((s) => s.size, () => 0);
        }
        const readNew = async () => {
          const size = await stat(logPath(job.id)).then((s) => s.size, () => 0);
          if (size <= position) return;
          const file = await open(logPath(job.id), 'r');
          try {
            const buffer = Buffer.alloc(Math.min(size - position, 1024 * 1024));
            const { bytesRead } = await file.read(buffer, 0, buffer.length, position);
            position += bytesRead;
            const text = partial + buffer.subarray(0, bytesRead).toString('utf8');
            const lines = text.split('\n');
            partial = lines.pop() ?? '';
            for (const line of lines) await sse.writeSSE({ event: 'line', data: line });
          } finally {
            await file.close();
          }
        };
        const written = new FileWake(logPath(job.id));
        try {
          for (;;) {
            if (signal.aborted || sse.aborted) return;
            const now = reads.job(job.id)!;
            await readNew();
            // The log is complete once the job is finished (its container exited): a cancelled job
            // is terminal before that.
            if (isFinished(now) || isSettled(now)) {
              await readNew();
              if (partial) await sse.writeSSE({ event: 'line', data: partial });
              await sse.writeSSE({ event: 'end', data: JSON.stringify({ status: now.status, exit_code: now.exit_code }) });
              return;
            }
            const changed = new AbortController();
            const stop = () => changed.abort();
            signal.addEventListener('abort', stop, { once: true });
            await Promise.race([
              watch.nextChange(job.id, written.rearm() ? config.timing.longPollMaxMs : SSE_FALLBACK_MS, changed.signal),
              written.next(),
            ]);
            changed.abort();
            signal.removeEventListener('abort', stop);
          }
        } finally {
          written.close();
        }
      });
    });
  };
}
