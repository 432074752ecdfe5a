/**
 * @module scheduler
 * The scheduling actor: owner of every job's lifecycle and sole writer of the SQLite store. It
 * migrates the database on start (so the API may open it read-only once the scheduler is
 * ready), admits jobs atomically, and turns each fact an executor reports into the job's next
 * state (lifecycle.ts) and the commands that follow, which it sends out: container work to the
 * containers actor, indexing to the artifacts actor, its own deadlines, uploads and deletions.
 *
 * A command that cannot be delivered (its actor is restarting) is not retried here: the
 * containers actor's reconcile pass reports every unsettled job again, and the lifecycle answers
 * each report with whatever is still missing.
 */
import { defineActor, isCallError, type ActorRef } from '../../runtime/actor.ts';
import type { FlashpodsRegistry } from '../registry.ts';
import { createTaskPool, type TaskPool } from '../../runtime/task-pool.ts';
import { indexGiveUpMs, type ArtifactsProtocol } from '../artifacts/messages.ts';
import type { ContainersProtocol } from '../containers/messages.ts';
import type { FlashpodsConfig } from '../contract/config.ts';
import { apiError } from '../contract/errors.ts';
import { jobPaths } from '../contract/job-paths.ts';
import { jobErrorText, type JobError } from '../contract/jobs.ts';
import { migrate, openDatabase, type Db } from '../store/database.ts';
import type { JobRow } from '../store/rows.ts';
import { Cleanup, isFileCommand } from './cleanup.ts';
import { withDatabaseErrors } from './database-errors.ts';
import { Deadlines } from './deadlines.ts';
import { isStoreCommand, JobsStore } from './jobs-store.ts';
import { decideSubmission, planQueue, refusalMessage, type AdmissionSettings, type QueuePlan, type QueueState } from './admission.ts';
import { isSettled, next, onAdmitted, onResume, type Command, type Fact, type LifecycleEnv, type Transition } from './lifecycle.ts';
import type { MeasureInput, MeasureOutput } from './measure-tree.task.ts';
import { SCHEDULER_ERRORS, SCHEDULER_EVENTS, type CleanupReport, type JobChanged, type SchedulerProtocol } from './messages.ts';
import { lstatUploadDir, Uploads } from './uploads.ts';

/** A job still pending this long with Podman unreachable fails instead of waiting forever. */
const PENDING_MAX_MS = 5 * 60_000;
/**
 * Admission's bound on the time from a container's exit to its resources counting as free: the
 * exit is recorded once its log has drained (job-reads.ts heldResources), seconds at most.
 */
const RELEASE_ALLOWANCE_MS = 5_000;

let db: Db | undefined;
let pool: TaskPool<MeasureInput, MeasureOutput> | undefined;
let cleanupTimer: NodeJS.Timeout | undefined;
let deadlines: Deadlines | undefined;
let queueTimer: NodeJS.Timeout | undefined;

export default defineActor<SchedulerProtocol, FlashpodsConfig, FlashpodsRegistry>({
  errors: SCHEDULER_ERRORS,
  start(ctx) {
    const { config, log } = ctx;
    db = openDatabase(config.paths.db);
    const { from, to } = migrate(db);
    if (from !== to) log.info(`database migrated from schema ${from} to ${to}`, { event: 'migrated', from, to, path: config.paths.db });
    pool = createTaskPool<MeasureInput, MeasureOutput>(new URL('./measure-tree.task.ts', import.meta.url), 1);

    const paths = jobPaths(config.paths);
    // The same judgement as finalize's: a link or a foreign directory is no upload; one being finalized is.
    const store = new JobsStore(db, (uploadId) => {
      if (!uploads.isFinalizing(uploadId)) lstatUploadDir(paths.rsyncUpload(uploadId), uploadId, process.geteuid!());
    });
    const { reads } = store;
    const instanceId = reads.instanceId();
    const containers: ActorRef<ContainersProtocol> = ctx.peer('containers');
    const artifacts: ActorRef<ArtifactsProtocol> = ctx.peer('artifacts');
    const uploads = new Uploads(db, {
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

    const env = (): LifecycleEnv => ({
      now: Date.now(),
      paths,
      killGraceMs: config.timing.killGraceMs,
      timeoutMinuteMs: config.timing.timeoutMinuteMs,
      pendingMaxMs: PENDING_MAX_MS,
      indexGiveUpMs: indexGiveUpMs(config.timing.artifactIndexBudgetMs),
      logCapBytes: config.limits.logCapBytes,
      artifactTtlMs: config.ttl.artifactMs,
      logTtlMs: config.ttl.logMs,
      container: {
        pidsLimit: config.limits.pidsMax,
        rootless: config.podman.rootless,
        networkMode: config.podman.networkMode,
        instanceId,
        spireSocket: config.paths.spireSocket,
        tokenSocket: config.paths.tokenSocket,
      },
    });

    const cleanup = new Cleanup(db, reads, paths, {
      uploadsDir: config.paths.uploads,
      sealedDir: config.paths.sealedUploads,
      artifactsDir: config.paths.artifacts,
      logsDir: config.paths.logs,
      uploadUnfinalizedTtlMs: config.ttl.uploadUnfinalizedMs,
      logsTotalBytes: config.limits.logsTotalBytes,
    }, (action, subject) => log.info(`cleanup: ${action.replace(/_/g, ' ')} ${subject}`, { event: 'cleanup', action, subject }), (uploadId) => uploads.isFinalizing(uploadId));

    /** Sends a command to an executor; one that is down gets it again from the next reconcile pass. */
    const deliver = <P extends ContainersProtocol | ArtifactsProtocol>(to: ActorRef<P>, command: Command & { type: keyof P & string }) => {
      (to.call as (type: string, payload: unknown) => Promise<unknown>)(command.type, command).catch((err: Error) => {
        const restarting = isCallError<P>(err) && (err.code === 'actor_unavailable' || err.code === 'actor_timeout');
        log[restarting ? 'debug' : 'warn'](`could not send ${command.type} for ${'jobId' in command ? command.jobId : 'a job'} to ${to.name} (${err.message}); its next reconcile pass catches up`, {
          event: 'command_undelivered', command: command.type,
        });
      });
    };

    /** Carries out what the lifecycle commanded; resolves once the file deletions among them are done. */
    const carryOut = async (jobId: string, commands: Command[]): Promise<void> => {
      const deletions: Promise<void>[] = [];
      for (const command of commands) {
        if (isStoreCommand(command)) continue; // done inside the transition's transaction
        if (isFileCommand(command)) {
          deletions.push(cleanup.carryOut(command).then((fact) => apply(jobId, fact)));
          continue;
        }
        switch (command.type) {
          case 'createContainer':
          case 'startContainer':
          case 'killContainer':
          case 'removeContainer':
            deliver(containers, command);
            break;
          case 'indexArtifacts':
            deliver(artifacts, command);
            break;
          case 'armDeadline':
            deadlines!.arm(command.jobId, command.at);
            break;
          case 'releaseUpload':
            uploads.sweep(command.uploadId);
            break;
        }
      }
      await Promise.all(deletions);
    };

    /** The log lines operators follow a job by (docs/operations.md), then the event long-polls wait on. */
    const announce = (before: JobRow, after: JobRow, fact: Fact) => {
      const fields = { job_id: after.id, fact: fact.type };
      if (fact.type === 'admitted') {
        const waitedMs = (after.admitted_at ?? 0) - (after.queued_at ?? 0);
        log.info(`job ${after.id} left the queue after ${Math.round(waitedMs / 1000)} s${fact.backfilled ? ', ahead of its head (backfill)' : ''}`, {
          ...fields, event: fact.backfilled ? 'job_backfilled' : 'job_dequeued', waited_ms: waitedMs,
        });
      }
      if (after.status === 'expired' && before.status !== 'expired') log.info(`job ${after.id} expired in the queue: ${after.error}`, { ...fields, event: 'job_expired' });
      if (before.status !== after.status && after.status === 'running') log.info(`job ${after.id} running`, { ...fields, event: 'job_running', container_id: after.container_id });
      if (before.status !== after.status && after.status === 'cancelled') log.info(`job ${after.id} cancelled (was ${before.status})`, { ...fields, event: 'job_cancelled', was: before.status });
      if (after.failure !== null && before.failure === null && fact.type === 'diskLimitExceeded') {
        log.warn(`job ${after.id}: ${jobErrorText(JSON.parse(after.failure) as JobError)}`, { ...fields, event: 'job_disk_exceeded', bytes: fact.bytes, entries: fact.entries });
      }
      if (after.kill_reason === 'timeout' && before.kill_reason === null) log.info(`job ${after.id} exceeded its ${after.timeout_minutes} min timeout; killing it`, { ...fields, event: 'job_timeout' });
      if (after.pending_finish !== null && before.pending_finish === null && fact.type === 'containerExited') {
        log.info(`job ${after.id} exited with ${fact.exitCode}`, { ...fields, event: 'job_exited', exit_code: fact.exitCode });
      }
      if (after.outcome !== null && before.outcome === null) {
        log.info(`job ${after.id} ${after.status}`, { ...fields, event: 'job_finished', status: after.status, exit_code: after.exit_code, error: after.error, error_code: after.error_code });
      } else if (before.status !== after.status) log.debug(`job ${after.id} ${before.status} → ${after.status}`, { ...fields, event: 'job_state' });
      ctx.publish(SCHEDULER_EVENTS.jobChanged, { jobId: after.id, status: after.status } satisfies JobChanged);
    };

    /** One fact: decided and stored in one transaction, then announced and carried out. */
    async function apply(jobId: string, fact: Fact): Promise<void> {
      const result = store.transition(jobId, (job) => next(job, fact, env()));
      if (!result) {
        log.debug(`fact ${fact.type} for unknown job ${jobId} ignored`, { event: 'fact_ignored', job_id: jobId, fact: fact.type });
        return;
      }
      const { before, after } = result;
      if (after.ignored !== undefined) {
        log.debug(`job ${jobId}: ${fact.type} ignored: ${after.ignored}`, { event: 'fact_ignored', job_id: jobId, fact: fact.type, reason: after.ignored });
        return;
      }
      if (after.job !== before) {
        announce(before, after.job, fact);
        schedulePass();
      }
      await carryOut(jobId, after.commands);
    }

    const failed = (what: string) => (err: Error) => log.error(`${what} failed: ${err.message}`, { event: `${what}_failed`, err: { message: err.message, stack: err.stack } });

    // ---- The queue (admission.ts decides; the lifecycle moves each job) ----

    const admissionSettings: AdmissionSettings = {
      capacity: config.capacity,
      timeoutMinuteMs: config.timing.timeoutMinuteMs,
      killGraceMs: config.timing.killGraceMs,
      startupAllowanceMs: config.queue.startupAllowanceMs,
      releaseAllowanceMs: RELEASE_ALLOWANCE_MS,
      maxQueueLength: config.queue.maxLength,
    };
    const queueState = (now: number): QueueState => ({
      now,
      held: reads.holdingJobs().map((j) => ({
        id: j.id, cpus: j.cpus, memoryGb: j.memory_gb, timeoutMinutes: j.timeout_minutes,
        admittedAt: j.admitted_at ?? j.created_at, startedAt: j.started_at, killRequestedAt: j.kill_requested_at,
      })),
      queue: reads.queue().map((j) => ({
        id: j.id, cpus: j.cpus, memoryGb: j.memory_gb, timeoutMinutes: j.timeout_minutes, queuedAt: j.queued_at!, queueTimeoutMinutes: j.queue_timeout_minutes!,
      })),
    });

    type Moved = { jobId: string; fact: Fact; before: JobRow; after: Transition };
    /** The plan's moves, each a lifecycle transition, inside the caller's transaction. */
    const movesOf = (plan: QueuePlan): Moved[] => {
      const facts: Array<[string, Fact]> = [
        ...plan.start.map(({ jobId, backfilled }): [string, Fact] => [jobId, { type: 'admitted', backfilled }]),
        ...plan.expire.map(({ jobId, error }): [string, Fact] => [jobId, { type: 'queueGaveUp', error }]),
        ...plan.refuse.map(({ jobId, error }): [string, Fact] => [jobId, { type: 'queueGaveUp', error }]),
      ];
      const moved: Moved[] = [];
      for (const [jobId, fact] of facts) {
        const result = store.transition(jobId, (job) => next(job, fact, env()));
        if (result && result.after.ignored === undefined) moved.push({ jobId, fact, ...result });
      }
      return moved;
    };
    /** After the transaction: the log lines, the events, and the commands of each move. */
    const carryOutMoves = (moved: Moved[]): void => {
      for (const { jobId, fact, before, after } of moved) {
        announce(before, after.job, fact);
        void carryOut(jobId, after.commands).catch(failed('queue'));
      }
    };
    const armQueueTimer = (plan: QueuePlan): void => {
      clearTimeout(queueTimer);
      if (plan.wakeAt !== undefined) queueTimer = setTimeout(() => queuePass(), Math.max(0, plan.wakeAt - Date.now()));
    };
    /**
     * One pass: expiries, then FIFO starts and safe backfill (admission.ts planQueue), written in
     * one transaction, so two passes can never both start the same head.
     */
    const queuePass = (): void => {
      let plan: QueuePlan | undefined;
      const moved = db!.transaction(() => {
        plan = planQueue(queueState(Date.now()), admissionSettings);
        return movesOf(plan);
      })();
      carryOutMoves(moved);
      if (plan) armQueueTimer(plan);
    };
    let passDue = false;
    /** A pass soon, once: after anything that may free resources or change the queue. */
    const schedulePass = (): void => {
      if (passDue) return;
      passDue = true;
      setImmediate(() => {
        passDue = false;
        try {
          if (reads.queueLength() > 0) queuePass();
        } catch (err) {
          failed('queue_pass')(err as Error);
        }
      });
    };

    deadlines = new Deadlines((jobId) => void apply(jobId, { type: 'deadlinePassed' }).catch(failed('deadline')));
    // After a restart of this actor: the clocks of running jobs start again.
    const resumeEnv = env();
    for (const job of reads.unsettledJobs()) void carryOut(job.id, onResume(job, resumeEnv));
    // Queued jobs survive a restart in their order: the first pass may start some, and arms expiries.
    schedulePass();

    let cleaning: Promise<CleanupReport> | undefined;
    const runCleanup = () =>
      (cleaning ??= cleanup.runPass(apply).then((report) => {
        ctx.publish(SCHEDULER_EVENTS.cleanupDone, report);
        return report;
      }).finally(() => (cleaning = undefined)));
    const tick = () => {
      runCleanup().catch(failed('cleanup'));
      cleanupTimer = setTimeout(tick, config.timing.cleanupIntervalMs);
    };
    cleanupTimer = setTimeout(tick, Math.min(config.timing.cleanupIntervalMs, 1_000));

    return withDatabaseErrors<SchedulerProtocol>({
      createJob(req) {
        let result;
        let moved: Moved[] = [];
        try {
          result = store.create(req, (r, id, now) => {
            // The queue first, so a new job is weighed against a queue that is up to date.
            moved = movesOf(planQueue(queueState(now), admissionSettings));
            const submission = { id, cpus: r.cpus, memoryGb: r.memoryGb, timeoutMinutes: r.timeoutMinutes, queueTimeoutMinutes: r.queueTimeoutMinutes, queue: r.queue };
            const decision = decideSubmission(queueState(now), submission, admissionSettings);
            if (decision.outcome === 'refuse') {
              const { refusal } = decision;
              throw apiError(refusal.code, refusalMessage(refusal), { flatten: true, ...refusal.figures });
            }
            return decision.outcome === 'start' ? { status: 'pending', backfilled: decision.backfilled } : { status: 'queued', queueTimeoutMinutes: r.queueTimeoutMinutes };
          });
        } catch (err) {
          const refused = isCallError<SchedulerProtocol>(err) && (err.code === 'insufficient_resources' || err.code === 'queue_full');
          if (refused) {
            ctx.publish(SCHEDULER_EVENTS.admissionRejected, { type: req.type });
            // The refusal rolled back the pass made with it: run it on its own.
            schedulePass();
          }
          throw err;
        }
        carryOutMoves(moved);
        if (result.created) {
          const { job } = result;
          const fields = { job_id: job.id, type: req.type, cpus: req.cpus, memory_gb: req.memoryGb, clamped: req.clamped };
          if (job.status === 'queued') {
            const position = reads.queuePosition(job);
            log.info(`job ${job.id} queued at position ${position}`, { ...fields, event: 'job_queued', position, queue_timeout_minutes: job.queue_timeout_minutes });
            schedulePass(); // arms the expiry clock
          } else {
            log.info(`job ${job.id} admitted${job.backfilled ? ' ahead of the queue (backfill)' : ''}`, { ...fields, event: 'job_admitted', backfilled: job.backfilled === 1 });
            void carryOut(job.id, onAdmitted(job, env()));
          }
          ctx.publish(SCHEDULER_EVENTS.jobChanged, { jobId: job.id, status: job.status } satisfies JobChanged);
        }
        return result;
      },

      async cancelJob({ jobId }) {
        const result = store.transition(jobId, (job) => next(job, { type: 'killRequested' }, env()));
        if (!result) throw apiError('job_not_found', `No job ${jobId}.`);
        const { before, after } = result;
        if (after.ignored !== undefined) throw apiError('job_already_terminal', `Job ${jobId} is already ${before.status}.`);
        announce(before, after.job, { type: 'killRequested' });
        schedulePass();
        void carryOut(jobId, after.commands).catch(failed('cancel'));
        return { job: after.job };
      },

      finalizeUpload: ({ uploadId }) => uploads.finalize(uploadId),
      deleteUpload({ uploadId }) {
        uploads.remove(uploadId);
        return {};
      },

      async report({ jobId, fact }) {
        await apply(jobId, fact);
        return {};
      },

      unsettledJobs() {
        return {
          instanceId,
          jobs: reads.unsettledJobs().map((job) => ({
            jobId: job.id, status: job.status, containerId: job.container_id, logPath: paths.log(job.id), logCapBytes: config.limits.logCapBytes, logTruncated: job.log_truncated === 1,
          })),
        };
      },

      strayContainer({ containerId, name, jobId }) {
        const job = reads.job(jobId);
        if (job && !isSettled(job)) return {}; // admitted since the pass listed its jobs
        // A settled job's container is one the pass listed before its removal finished: no orphan.
        if (job) log.debug(`removing container ${name} of settled job ${jobId}`, { event: 'stray_removed', container_id: containerId, job_id: jobId });
        else log.warn(`removing orphan container ${name} (job ${jobId || 'unknown'} is not running here)`, { event: 'orphan_removed', container_id: containerId, job_id: jobId });
        deliver(containers, { type: 'removeContainer', jobId, containerId });
        return {};
      },
    }, config.paths.db, log);
  },

  async stop() {
    clearTimeout(cleanupTimer);
    clearTimeout(queueTimer);
    deadlines?.clear();
    await pool?.destroy();
    db?.close();
    db = undefined;
  },
});
