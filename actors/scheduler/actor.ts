/**
 * @module scheduler
 * The scheduling actor: sole writer of the SQLite store. It migrates the database on start (so
 * every other actor may open it read-only once the scheduler is ready), validates nothing twice
 * (the API hands it parsed requests), and makes admission and idempotency atomic by doing each
 * in one transaction on one thread.
 */
import { defineActor } from '../../runtime/actor.ts';
import { createTaskPool, type TaskPool } from '../../runtime/task-pool.ts';
import type { FlashpodsConfig } from '../contract/config.ts';
import { ID_PATTERNS } from '../contract/jobs.ts';
import { migrate, openDatabase, type Db } from '../store/database.ts';
import type { JobRow } from '../store/rows.ts';
import { Cleanup, type CleanupCounts, type DiskUsage } from './cleanup.ts';
import { withDatabaseErrors } from './database-errors.ts';
import { JobsStore } from './jobs-store.ts';
import type { MeasureInput, MeasureOutput } from './measure-tree.task.ts';
import { SCHEDULER_EVENTS, type CleanupReport, type JobChanged, type SchedulerProtocol } from './messages.ts';
import { Uploads } from './uploads.ts';

let db: Db | undefined;
let pool: TaskPool<MeasureInput, MeasureOutput> | undefined;
let cleanupTimer: NodeJS.Timeout | undefined;

export default defineActor<SchedulerProtocol, FlashpodsConfig>({
  start(ctx) {
    const { config } = ctx;
    db = openDatabase(config.paths.db);
    const { from, to } = migrate(db);
    if (from !== to) ctx.log.info(`database migrated from schema ${from} to ${to}`, { event: 'migrated', from, to, path: config.paths.db });
    pool = createTaskPool<MeasureInput, MeasureOutput>(new URL('./measure-tree.task.ts', import.meta.url), 1);

    const store = db;
    const jobs = new JobsStore(store);
    const uploads = new Uploads(store, {
      uploadsDir: config.paths.uploads,
      sealedDir: config.paths.sealedUploads,
      transfersDir: config.paths.rsyncTransfers,
      // The rsync module writes as the API's user (shared/spec/host.md), so uploads are ours.
      ownerUid: process.geteuid!(),
      maxBytes: config.limits.uploadMaxBytes,
      totalBytes: config.limits.uploadsTotalBytes,
      unfinalizedTtlMs: config.ttl.uploadUnfinalizedMs,
      finalizedTtlMs: config.ttl.uploadFinalizedMs,
    }, pool);

    const changed = (job: JobRow | undefined) => {
      if (!job) return;
      if (job.files_id) uploads.sweep(job.files_id);
      ctx.publish(SCHEDULER_EVENTS.jobChanged, { jobId: job.id, status: job.status } satisfies JobChanged);
    };

    const cleanup = new Cleanup(store, {
      uploadsDir: config.paths.uploads,
      sealedDir: config.paths.sealedUploads,
      artifactsDir: config.paths.artifacts,
      logsDir: config.paths.logs,
      uploadUnfinalizedTtlMs: config.ttl.uploadUnfinalizedMs,
      logTtlMs: config.ttl.logMs,
      artifactTtlMs: config.ttl.artifactMs,
      logsTotalBytes: config.limits.logsTotalBytes,
    }, (action, subject) => {
      ctx.log.info(`cleanup: ${action.replace(/_/g, ' ')} ${subject}`, { event: 'cleanup', action, subject });
      if (ID_PATTERNS.job.test(subject)) changed(jobs.get(subject));
    }, (uploadId) => uploads.isFinalizing(uploadId));
    let cleaning: Promise<CleanupReport> | undefined;
    const runCleanup = () =>
      (cleaning ??= cleanup.runPass().then((report: { counts: CleanupCounts; usage: DiskUsage }) => {
        ctx.publish(SCHEDULER_EVENTS.cleanupDone, report);
        return report;
      }).finally(() => (cleaning = undefined)));
    const tick = () => {
      runCleanup().catch((err: Error) => ctx.log.error(`cleanup pass failed: ${err.message}`, { event: 'cleanup_failed', err: { message: err.message, stack: err.stack } }));
      cleanupTimer = setTimeout(tick, config.timing.cleanupIntervalMs);
    };
    cleanupTimer = setTimeout(tick, Math.min(config.timing.cleanupIntervalMs, 1_000));

    return withDatabaseErrors<SchedulerProtocol>({

      createJob(req) {
        let result;
        try {
          result = jobs.create(req, config.capacity);
        } catch (err) {
          if ((err as { code?: string }).code === 'insufficient_resources') ctx.publish(SCHEDULER_EVENTS.admissionRejected, { type: req.type });
          throw err;
        }
        if (result.created) {
          ctx.log.info(`job ${result.job.id} admitted`, {
            event: 'job_admitted', job_id: result.job.id, type: req.type, cpus: req.cpus, memory_gb: req.memoryGb, clamped: req.clamped,
          });
          changed(result.job);
        }
        return result;
      },

      cancelJob({ jobId }) {
        const before = jobs.cancel(jobId);
        ctx.log.info(`job ${jobId} cancelled (was ${before.status})`, { event: 'job_cancelled', job_id: jobId, was: before.status });
        const job = jobs.get(jobId)!;
        changed(job);
        return { job };
      },

      finalizeUpload: ({ uploadId }) => uploads.finalize(uploadId),
      deleteUpload({ uploadId }) {
        uploads.remove(uploadId);
        return {};
      },

      jobStarting({ jobId }) {
        const proceed = jobs.markStarting(jobId);
        if (proceed) changed(jobs.get(jobId));
        return { proceed };
      },
      jobRunning({ jobId, containerId, startedAt }) {
        const status = jobs.markRunning(jobId, containerId, startedAt);
        changed(jobs.get(jobId));
        return { status };
      },
      jobTimedOut({ jobId }) {
        return { kill: jobs.requestTimeoutKill(jobId) };
      },
      recordArtifacts({ jobId, artifacts }) {
        jobs.recordArtifacts(jobId, artifacts);
        return {};
      },
      jobLogTruncated({ jobId }) {
        jobs.markLogTruncated(jobId);
        return {};
      },
      jobExited({ jobId, finish }) {
        jobs.recordExit(jobId, finish);
        return {};
      },
      jobFinished({ jobId, finish, released }) {
        const job = jobs.finish(jobId, finish, released);
        if (job) ctx.log.info(`job ${jobId} ${job.status}`, { event: 'job_finished', job_id: jobId, status: job.status, exit_code: job.exit_code, error: job.error });
        changed(job);
        return { job };
      },
      jobReleased({ jobId }) {
        jobs.releaseResources(jobId);
        changed(jobs.get(jobId));
        return {};
      },
    }, config.paths.db, ctx.log);
  },
  async stop() {
    clearTimeout(cleanupTimer);
    await pool?.destroy();
    db?.close();
    db = undefined;
  },
});
