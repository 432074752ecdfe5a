/**
 * @module containers
 * The container executor actor. It carries out the scheduler's commands on job containers
 * through a JobExecutor (Podman) — create, start, kill, remove — and reports what happened as
 * facts. While a container runs it watches it: the live log capture, and the exit.
 *
 * It never decides a job's state and reads no database. Its reconcile pass (on start and every
 * `reconcileIntervalMs`) asks the scheduler which jobs are unsettled and reports what the
 * backend says about each one — created, running, exited, or missing — whatever this actor
 * believes it is watching: a watch can be dead without knowing it (the backend's API restarted
 * under it), and the backend's word is what counts. A job whose container exited is reported
 * only once its log is complete (a capture cut short is resumed to the exit first), so the
 * lifecycle never removes a container whose output is not all on disk.
 *
 * The backend being unreachable is one warning and a retry, never a crash.
 */
import { appendFileSync, chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { defineActor, isCallError, type ActorLog, type ActorRef } from '../../runtime/actor.ts';
import type { FlashpodsRegistry } from '../registry.ts';
import { createTaskPool, type TaskPool } from '../../runtime/task-pool.ts';
import { ACCEPTED } from '../contract/commands.ts';
import type { FlashpodsConfig } from '../contract/config.ts';
import { jobPaths } from '../contract/job-paths.ts';
import { jobErrorText, TIMEOUT_MINUTES, type JobError } from '../contract/jobs.ts';
import type { Fact } from '../scheduler/lifecycle.ts';
import type { SchedulerProtocol, UnsettledJob } from '../scheduler/messages.ts';
import { diskBudget, killedOverBudget, MAX_JOB_ENTRIES, watchDisk, type DiskWatch } from './disk-watch.ts';
import type { Exit, JobExecutor, JobLogOptions, LabelledContainer } from './executor.ts';
import { formatLogTime, type LogCapture } from './log-capture.ts';
import type { MeasureDiskInput, MeasureDiskOutput } from './measure-disk.task.ts';
import type { ContainersProtocol, ReconcileReport } from './messages.ts';
import { checkMountSource, MountSourceRefused } from './mount-source.ts';
import { KubernetesExecutor } from './kubernetes-executor.ts';
import { PodmanExecutor } from './podman-executor.ts';

/** How long a create waits for an unreachable backend to come back before the job fails. */
const CREATE_WAIT_MAX_MS = 5 * 60_000;
/** Reading an exited container's remaining output from Podman takes at most this long (a 50 MB log included). */
const COMPLETE_LOG_MAX_MS = 60_000;
/** A report the scheduler could not take (it is restarting) is tried again this often, this long. */
const REPORT_RETRY_MS = 250;
const REPORT_RETRY_MAX_MS = 15_000;

/** What this actor is doing for one job right now. Nothing here is a decision about the job. */
interface Tracked {
  /** Create/start/remove operations in flight (a container may appear or vanish meanwhile). */
  inFlight: number;
  /** When an operation last began or ended. */
  lastActivity: number;
  creating?: Promise<void>;
  starting?: Promise<void>;
  removing?: Promise<void>;
  killing?: Promise<void>;
  /** Starts tried: only the first may assume the container was never started. */
  startAttempts: number;
  watch?: Watch;
  /** The log file holds the container's whole output up to its exit. */
  logComplete: boolean;
}

/** A running container being followed: its log capture and the wait for its exit. */
interface Watch {
  containerId: string;
  stop: AbortController;
  /** Settles when the watch ends, whether it saw the exit (and reported it) or lost the backend. */
  ended: Promise<void>;
}

let reconcileTimer: NodeJS.Timeout | undefined;
/** One thread: the disk passes of all running jobs take turns, so together they use one core at most. */
let diskPool: TaskPool<MeasureDiskInput, MeasureDiskOutput> | undefined;
const tracked = new Map<string, Tracked>();
let openedExecutor: { close(): void } | undefined;

/**
 * FLASHPODS_EXECUTOR: Podman on this host, or Pods on a Kubernetes cluster (kubernetes-executor.ts).
 * `backend` names it in the outage lines ("<backend> is unreachable").
 */
async function openExecutor(config: FlashpodsConfig, log: ActorLog): Promise<{ executor: JobExecutor; backend: string }> {
  if (config.executor === 'kubernetes') {
    const k = config.kubernetes;
    const kubernetes = KubernetesExecutor.open(k.kubeconfig, k.apiUrl, {
      settings: { namespace: k.namespace, nodeSelector: k.nodeSelector, runAsUser: k.runAsUser, helperImage: k.helperImage, imagePullPolicy: k.imagePullPolicy },
      maxTimeoutSeconds: Math.ceil((TIMEOUT_MINUTES.max * config.timing.timeoutMinuteMs) / 1000),
      killGraceSeconds: Math.ceil(config.timing.killGraceMs / 1000),
      pendingTimeoutMs: k.pendingTimeoutMs,
      nodeLostMs: k.nodeLostMs,
      diskBudgetBytes: diskBudget(config.limits).bytes,
      maxArtifactEntries: MAX_JOB_ENTRIES,
      stateDir: config.paths.containerLogs,
      artifactsDir: jobPaths(config.paths).artifacts,
      warn: (message, fields) => log.warn(message, fields),
    });
    mkdirSync(config.paths.containerLogs, { recursive: true, mode: 0o700 });
    openedExecutor = kubernetes;
    log.info(`jobs run as Pods in namespace ${k.namespace} of the Kubernetes API server at ${kubernetes.apiUrl}`, { event: 'executor', executor: 'kubernetes', namespace: k.namespace });
    // Said at every start: the one thing a job cannot do on this executor (README "Running on a cluster").
    log.warn('on Kubernetes, job Pods get neither the SPIRE agent socket nor the token service (there is no path from a Pod to this host): '
      + 'agent images and need_github_token workers, whose entrypoint asks for tokens, fail with spire_attestation_timeout; run those with FLASHPODS_EXECUTOR=podman', {
      event: 'executor_no_tokens', executor: 'kubernetes',
    });
    return { executor: kubernetes, backend: `the Kubernetes API server (${kubernetes.apiUrl})` };
  }
  const podman = await PodmanExecutor.open(new Docker({ socketPath: config.paths.podmanSocket }), {
    // conmon runs as the Podman user: Flashpods' own uid when rootless, root when rootful.
    conmonPlace: { dir: config.paths.containerLogs, ownerUid: config.podman.rootless ? process.geteuid!() : 0 },
    logCapBytes: config.limits.logCapBytes,
    warn: (message, fields) => log.warn(message, fields),
  });
  openedExecutor = podman;
  log.info(`jobs run in Podman containers at ${config.paths.podmanSocket}`, { event: 'executor', executor: 'podman' });
  log.debug(`job logs come from ${podman.logSource === 'conmon-file' ? `conmon's files in ${config.paths.containerLogs}` : 'an attach per job'}`, { event: 'log_source', source: podman.logSource });
  return { executor: podman, backend: `Podman (${config.paths.podmanSocket})` };
}

export default defineActor<ContainersProtocol, FlashpodsConfig, FlashpodsRegistry>({
  async start(ctx) {
    const { config, log } = ctx;
    const { executor, backend } = await openExecutor(config, log);
    const scheduler = ctx.peer('scheduler');
    const outage = new Outage(log, backend, config.timing.reconcileIntervalMs);
    const reporter = new Reporter(scheduler, log);
    const report = (jobId: string, fact: Fact) => reporter.report(jobId, fact);
    diskPool = createTaskPool<MeasureDiskInput, MeasureDiskOutput>(new URL('./measure-disk.task.ts', import.meta.url), 1);
    const measureDisk = diskPool.run;

    const track = (jobId: string): Tracked => {
      let t = tracked.get(jobId);
      if (!t) tracked.set(jobId, (t = { inFlight: 0, lastActivity: Date.now(), logComplete: false, startAttempts: 0 }));
      return t;
    };

    /** Runs an operation that may make a container appear or vanish; reconcile leaves such jobs alone meanwhile. */
    const operate = (jobId: string, work: () => Promise<void>): Promise<void> => {
      const t = track(jobId);
      t.inFlight++;
      t.lastActivity = Date.now();
      return work()
        .catch((err: Error) => log.error(`job ${jobId}: ${err.message}`, { event: 'executor_failed', job_id: jobId, err: { message: err.message, stack: err.stack } }))
        .finally(() => {
          t.inFlight--;
          t.lastActivity = Date.now();
        });
    };

    /** A line of Flashpods' own (image pull progress, start errors) in the job's log; best effort. */
    const note = (jobId: string, logPath: string, text: string) => {
      try {
        mkdirSync(dirname(logPath), { recursive: true });
        appendFileSync(logPath, `[${formatLogTime(new Date())}] ${text}\n`);
      } catch (err) {
        log.warn(`job ${jobId}: cannot write its log (${(err as Error).message})`, { event: 'log_write_failed', job_id: jobId });
      }
    };

    const captureOptions = (jobId: string, logPath: string, capBytes: number, stop: AbortSignal, extra: Partial<JobLogOptions> = {}): JobLogOptions => ({
      jobId,
      path: logPath,
      capBytes,
      signal: stop,
      onTruncated: () => void report(jobId, { type: 'logTruncated' }),
      onGap: (why) => log.warn(`job ${jobId}: part of its output was lost before it reached the log (${why}); the log ends with the truncation marker`, { event: 'log_gap', job_id: jobId }),
      ...extra,
    });

    /**
     * The end of a capture: whether the log now holds everything. A log that cannot be written
     * (the logs volume is full) must not keep the job from finishing: it counts as complete and
     * truncated, and the operator is told why.
     */
    const settle = async (jobId: string, capture: LogCapture): Promise<boolean> => {
      try {
        await capture.done;
        return true;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EIO') {
          log.warn(`job ${jobId}: log capture stopped: ${(err as Error).message}; free space on ${config.paths.logs}. The job itself is unaffected.`, {
            event: 'log_write_failed', job_id: jobId, code,
          });
          void report(jobId, { type: 'logTruncated' });
          return true;
        }
        log.debug(`job ${jobId}: log capture broke off (${(err as Error).message}); it resumes from the backend's log`, { event: 'log_capture_broken', job_id: jobId });
        return false;
      }
    };

    /** The exit, after the disk budget's breach when the backend killed the job for it (the lifecycle fails it for that). */
    const reportExit = async (jobId: string, containerId: string, exit: Exit): Promise<void> => {
      if (exit.overDiskBudget !== undefined) {
        await report(jobId, { type: 'diskLimitExceeded', reason: killedOverBudget(exit.overDiskBudget, diskBudget(config.limits)).reason });
      }
      await report(jobId, { type: 'containerExited', containerId, exitCode: exit.exitCode, oom: { stateOomKilled: exit.stateOomKilled, cgroupEvidence: exit.cgroupEvidence } });
    };

    /** Follows a started container to its exit: its log, then the exit reported. */
    const follow = (jobId: string, containerId: string, capture: LogCapture, stop: AbortController): void => {
      // A capture can fail while the wait is still on (the backend refused the log): it is
      // looked at after the exit (settle), and must not end the actor as an unhandled rejection.
      capture.done.catch(() => undefined);
      const t = track(jobId);
      const watch: Watch = { containerId, stop, ended: Promise.resolve() };
      watch.ended = (async () => {
        // Beside the wait, not before it: a short job has often exited by the time the disk watch
        // has asked where the container writes.
        const disk: Promise<DiskWatch | undefined> = watchDiskOf(jobId, containerId).catch(() => undefined);
        const stopDisk = (): void => void disk.then((d) => d?.stop());
        try {
          // A call to a backend that went away may never settle: the abort ends the watch anyway.
          const exit = await abortable(executor.waitForExit(containerId, stop.signal), stop.signal);
          stopDisk();
          const complete = await abortable(settle(jobId, capture), stop.signal);
          if (complete && !stop.signal.aborted) t.logComplete = true;
          else if (!(await completeLogFromBackend(jobId, containerId, t))) return;
          await reportExit(jobId, containerId, exit);
        } catch (err) {
          // The backend went away under the wait: the reconcile pass picks the container up again.
          stopDisk();
          stop.abort();
          log.debug(`job ${jobId}: stopped watching its container (${(err as Error).message}); the next reconcile pass takes it up`, { event: 'job_detached', job_id: jobId });
        } finally {
          if (t.watch === watch) t.watch = undefined;
        }
      })();
      t.watch = watch;
    };

    /**
     * Measures what the job writes to the host's disk against its budget; past it, the job is
     * reported (diskLimitExceeded) and the lifecycle has it killed.
     */
    const watchDiskOf = async (jobId: string, containerId: string): Promise<DiskWatch | undefined> => {
      const footprint = await executor.footprint(containerId);
      // Gone already: the wait that follows sees the exit, and there is nothing left to measure.
      if (!footprint) return undefined;
      if (footprint.unmeasured) log.warn(`job ${jobId}: ${footprint.unmeasured}`, { event: 'disk_watch_partial', job_id: jobId });
      return watchDisk({
        places: footprint.places,
        containerPid: footprint.pid,
        budget: diskBudget(config.limits),
        intervalMs: config.timing.diskCheckIntervalMs,
        measure: measureDisk,
        onOver: (_error, usage, failure) => void report(jobId, { type: 'diskLimitExceeded', reason: failure.reason, bytes: usage.bytes, entries: usage.entries }),
        onUnreadable: ({ count, examples }) => log.warn(`job ${jobId}: ${count} of its directories cannot be read to measure its disk use (${examples.join(', ')})`, { event: 'disk_watch_partial', job_id: jobId }),
        onPassFailed: (err) => log.warn(`job ${jobId}: measuring its disk use failed (${err.message}); the next pass tries again`, { event: 'disk_watch_failed', job_id: jobId }),
      });
    };

    // Remembered per job for completeLogFromBackend: the job's record says where its log goes.
    const logTargets = new Map<string, Pick<UnsettledJob, 'logPath' | 'logCapBytes' | 'logTruncated'>>();

    /** Resumes the capture from the backend's log to the container's exit; false when the backend is away. */
    const completeLogFromBackend = async (jobId: string, containerId: string, t: Tracked): Promise<boolean> => {
      const target = logTargets.get(jobId);
      if (!target) return false; // not seen by a reconcile pass yet; the next one brings the paths
      // Bounded, so a backend that stops answering cannot hold the reconcile pass forever.
      const stop = AbortSignal.timeout(COMPLETE_LOG_MAX_MS);
      try {
        const capture = await abortable(executor.captureLog(containerId, captureOptions(jobId, target.logPath, target.logCapBytes, stop, { alreadyTruncated: target.logTruncated })), stop);
        if (!(await abortable(settle(jobId, capture), stop)) || stop.aborted) return false;
        t.logComplete = true;
        return true;
      } catch (err) {
        log.debug(`job ${jobId}: could not read its log from the backend (${(err as Error).message})`, { event: 'log_capture_broken', job_id: jobId });
        return false;
      }
    };

    // ---- Commands ----

    /** The container could not be made (or was refused): why, in the job's log, then the fact. */
    const startFailed = (jobId: string, logPath: string, error: Extract<JobError, { reason: string }>) => {
      const refused = error.code === 'upload_mount_refused';
      note(jobId, logPath, refused ? `Flashpods refused to start the container: ${jobErrorText(error)}` : `Flashpods could not start the container: ${error.reason}`);
      return report(jobId, { type: 'startFailed', error });
    };

    function createContainer({ jobId, spec, logPath, uploadId }: ContainersProtocol['createContainer']['req']): void {
      const t = track(jobId);
      if (t.creating) return;
      t.creating = operate(jobId, async () => {
        const began = Date.now();
        const gaveUp = () => report(jobId, {
          type: 'startFailed',
          error: { code: 'container_runtime_unavailable', reason: `${backend} was unreachable for ${CREATE_WAIT_MAX_MS / 60_000} minutes` },
        });
        // While Podman is known to be away the job stays pending: nothing is being created yet.
        while (outage.active) {
          if (Date.now() - began > CREATE_WAIT_MAX_MS) return await gaveUp();
          await outage.over(CREATE_WAIT_MAX_MS);
        }
        await report(jobId, { type: 'containerCreating' });
        try {
          mkdirSync(spec.artifactsDir, { recursive: true, mode: 0o755 });
          chmodSync(spec.artifactsDir, 0o755);
        } catch (err) {
          return await startFailed(jobId, logPath, { code: 'container_start_failed', reason: `cannot prepare ${spec.artifactsDir}: ${(err as Error).message}` });
        }
        // Before every create (a pull may have taken minutes): Podman follows links in a bind source.
        const checkUpload = () => {
          if (spec.uploadDir) checkMountSource(spec.uploadDir, process.geteuid!());
        };
        for (;;) {
          try {
            const containerId = await executor.create(spec, { onProgress: (line) => note(jobId, logPath, line), beforeCreate: checkUpload });
            return await report(jobId, { type: 'containerCreated', containerId });
          } catch (err) {
            const reason = (err as Error).message;
            if (err instanceof MountSourceRefused) {
              // The sealed upload is not what finalize sealed: the job fails without a container.
              const error = { code: 'upload_mount_refused' as const, reason: `upload ${uploadId} was not mounted at /work: ${reason}. Upload the files again and create a new job.` };
              log.error(`job ${jobId}: ${jobErrorText(error)} Only user flashpods can write there: find out what changed it.`, { event: 'upload_mount_refused', job_id: jobId, upload_id: uploadId });
              return await startFailed(jobId, logPath, error);
            }
            if (!executor.lostConnection(err) && (await executor.reachable())) return await startFailed(jobId, logPath, { code: 'container_start_failed', reason });
            if (Date.now() - began > CREATE_WAIT_MAX_MS) return await gaveUp();
            log.debug(`job ${jobId}: create waits for Podman (${reason})`, { event: 'create_waiting', job_id: jobId });
            await outage.over(CREATE_WAIT_MAX_MS);
          }
        }
      }).finally(() => (t.creating = undefined));
    }

    function startContainer({ jobId, containerId, logPath, logCapBytes }: ContainersProtocol['startContainer']['req']): void {
      const t = track(jobId);
      if (t.starting || t.watch) return;
      logTargets.set(jobId, { logPath, logCapBytes, logTruncated: false });
      t.starting = operate(jobId, async () => {
        const stop = new AbortController();
        let capture: LogCapture;
        try {
          const firstAttempt = t.startAttempts++ === 0;
          capture = await executor.start(containerId, { capture: captureOptions(jobId, logPath, logCapBytes, stop.signal), firstAttempt });
        } catch (err) {
          stop.abort();
          const reason = (err as Error).message;
          // Podman went away between create and start: the container is still `created`, and the
          // reconcile pass reports it so once Podman is back; the lifecycle then starts it again.
          if (executor.lostConnection(err) || !(await executor.reachable())) {
            log.debug(`job ${jobId}: start waits for Podman (${reason})`, { event: 'start_waiting', job_id: jobId });
            return;
          }
          await executor.remove(containerId, jobId).catch(() => undefined);
          return await startFailed(jobId, logPath, { code: 'container_start_failed', reason });
        }
        follow(jobId, containerId, capture, stop);
        await report(jobId, { type: 'containerStarted', containerId, startedAt: Date.now() });
      }).finally(() => (t.starting = undefined));
    }

    function killContainer({ jobId, containerId, graceMs }: ContainersProtocol['killContainer']['req']): void {
      const t = track(jobId);
      // A kill at once (graceMs 0: over the disk budget) does not wait behind a kill with a grace.
      if (t.killing && graceMs > 0) return;
      const onMainOnly = (reason: string) => log.warn(`job ${jobId}: SIGTERM reached its main process only, not its other processes (${reason}); whatever is left gets SIGKILL after the grace`, {
        event: 'job_kill_main_only', job_id: jobId,
      });
      t.killing = executor.kill(containerId, graceMs, onMainOnly)
        .then((outcome) => log.info(`job ${jobId} kill: ${outcome}`, { event: 'job_kill', job_id: jobId, outcome }))
        .catch((err: Error) => log.debug(`job ${jobId}: kill failed (${err.message}); the next reconcile pass reports the container again`, { event: 'job_kill_failed', job_id: jobId }))
        .finally(() => (t.killing = undefined));
    }

    function removeContainer({ jobId, containerId }: ContainersProtocol['removeContainer']['req']): void {
      const t = track(jobId);
      if (t.removing) return;
      t.removing = operate(jobId, async () => {
        // The container's output must be on disk before the container goes.
        if (t.watch?.containerId === containerId) await t.watch.ended;
        try {
          await executor.remove(containerId, jobId);
        } catch (err) {
          log.debug(`job ${jobId}: remove failed (${(err as Error).message}); the next reconcile pass reports the container again`, { event: 'remove_failed', job_id: jobId });
          return;
        }
        t.logComplete = false;
        await report(jobId, { type: 'containerGone' });
      }).finally(() => (t.removing = undefined));
    }

    // ---- Reconciliation ----

    const busy = (jobId: string, since: number) => {
      const t = tracked.get(jobId);
      return t !== undefined && (t.inFlight > 0 || t.lastActivity >= since);
    };

    /** What the backend says about one unsettled job's container, reported as the fact it is. */
    async function observe(job: UnsettledJob, container: LabelledContainer | undefined, passStarted: number): Promise<void> {
      const { jobId } = job;
      const state = container ? await executor.inspect(container.id) : undefined;
      if (!container || !state) {
        // A create or remove in flight explains a missing container; the operation reports itself.
        if (!busy(jobId, passStarted)) await report(jobId, { type: 'containerMissing' });
        return;
      }
      const t = track(jobId);
      switch (state.phase) {
        case 'created':
          if (!busy(jobId, passStarted)) await report(jobId, { type: 'containerCreated', containerId: container.id });
          return;
        case 'running':
          if (!t.watch && !t.starting) await resumeWatch(job, container.id);
          await report(jobId, { type: 'containerStarted', containerId: container.id, startedAt: state.startedAt });
          return;
        case 'exited': {
          if (t.watch) {
            // A live watch reports the exit itself once its capture has drained; one that has not
            // within the grace is taken for dead, and the log is completed from the backend.
            await Promise.race([t.watch.ended, sleep(Math.max(5_000, config.timing.reconcileIntervalMs))]);
            t.watch?.stop.abort();
            await t.watch?.ended;
          }
          if (!t.logComplete && !(await completeLogFromBackend(jobId, container.id, t))) return;
          await reportExit(jobId, container.id, { ...state, cgroupEvidence: false });
          return;
        }
        case 'lost':
          t.watch?.stop.abort();
          log.warn(`job ${jobId}: its container is lost: ${state.reason}`, { event: 'job_container_lost', job_id: jobId, container_id: container.id });
          await report(jobId, { type: 'containerLost', containerId: container.id, reason: state.reason });
          return;
      }
    }

    /** Takes up a container found running without a watch: after a restart, or after the backend came back. */
    async function resumeWatch(job: UnsettledJob, containerId: string): Promise<void> {
      const stop = new AbortController();
      const capture = await executor.captureLog(containerId, captureOptions(job.jobId, job.logPath, job.logCapBytes, stop.signal, { alreadyTruncated: job.logTruncated }));
      follow(job.jobId, containerId, capture, stop);
      log.info(`job ${job.jobId}: following its running container again`, { event: 'job_adopted', job_id: job.jobId, container_id: containerId });
    }

    async function reconcile(): Promise<ReconcileReport> {
      const passStarted = Date.now();
      const result: ReconcileReport = { podmanReachable: false, observed: 0, strays: 0 };
      // Containers first, jobs second: a job admitted in between has no container in the list.
      let containers: LabelledContainer[];
      try {
        containers = await executor.listByLabel();
      } catch (err) {
        lostBackend((err as Error).message);
        const { jobs } = await scheduler.call('unsettledJobs', {});
        const reason = `${backend} was unreachable`;
        await Promise.all(jobs.filter((j) => j.status === 'pending').map((j) => report(j.jobId, { type: 'runtimeUnreachable', reason })));
        return result;
      }
      outage.ended();
      result.podmanReachable = true;
      const { instanceId, jobs } = await scheduler.call('unsettledJobs', {});
      // Another instance's containers (another database on the same Podman) are not ours to judge.
      const ours = containers.filter((c) => c.instanceId === undefined || c.instanceId === instanceId);
      const byJob = new Map(ours.map((c) => [c.jobId, c]));
      for (const job of jobs) logTargets.set(job.jobId, job);
      try {
        await Promise.all(jobs.map((job) => observe(job, byJob.get(job.jobId), passStarted)));
      } catch (err) {
        // Podman went away during the pass (it may be back already: the next pass says so).
        if (!executor.lostConnection(err) && (await executor.reachable())) throw err;
        lostBackend((err as Error).message);
        return result;
      }
      result.observed = jobs.length;
      const unsettled = new Set(jobs.map((j) => j.jobId));
      for (const c of ours.filter((c) => !unsettled.has(c.jobId))) {
        result.strays++;
        await scheduler.call('strayContainer', { containerId: c.id, name: c.name, jobId: c.jobId });
      }
      forgetSettled(unsettled);
      return result;
    }

    /** Every watch is on connections the backend dropped: stop them; the pass after the outage resumes each. */
    function lostBackend(reason: string): void {
      outage.began(reason);
      for (const t of tracked.values()) t.watch?.stop.abort();
    }

    function forgetSettled(unsettled: Set<string>): void {
      for (const [jobId, t] of tracked) {
        if (unsettled.has(jobId) || t.inFlight > 0 || t.watch || t.killing || t.creating || t.starting || t.removing) continue;
        tracked.delete(jobId);
        logTargets.delete(jobId);
      }
    }

    let running: Promise<ReconcileReport> | undefined;
    const reconcileOnce = () => (running ??= reconcile().finally(() => (running = undefined)));
    const tick = () => {
      void reconcileOnce().catch((err: Error) => {
        // The scheduler restarting is not worth an error: the next pass asks again.
        const level = isCallError<SchedulerProtocol>(err) && err.code === 'actor_unavailable' ? 'debug' : 'error';
        log[level](`reconcile pass failed: ${err.message}`, { event: 'reconcile_failed', err: { message: err.message, stack: err.stack } });
      });
      reconcileTimer = setTimeout(tick, config.timing.reconcileIntervalMs);
    };
    tick();

    return {
      createContainer: (command) => (createContainer(command), ACCEPTED),
      startContainer: (command) => (startContainer(command), ACCEPTED),
      killContainer: (command) => (killContainer(command), ACCEPTED),
      removeContainer: (command) => (removeContainer(command), ACCEPTED),
      status: () => ({ podmanReachable: !outage.active, watchedJobs: [...tracked].filter(([, t]) => t.watch).map(([id]) => id) }),
      reconcile: () => reconcileOnce(),
    };
  },

  async stop() {
    clearTimeout(reconcileTimer);
    // Stops following without touching the containers (runtime shutdown); reconcile takes them up later.
    for (const t of tracked.values()) t.watch?.stop.abort();
    tracked.clear();
    openedExecutor?.close();
    openedExecutor = undefined;
    await diskPool?.destroy();
    diskPool = undefined;
  },
});

/** Whether the backend is away: one warning per outage, an info line when it is back, and a way to wait for that. */
class Outage {
  active = false;
  private known = false;
  private waiters: Array<() => void> = [];

  constructor(
    private readonly log: ActorLog,
    /** What is unreachable, as a sentence's subject: "Podman (<socket>)". */
    private readonly backend: string,
    private readonly retryMs: number,
  ) {}

  began(reason: string): void {
    if (!this.active) {
      this.log.warn(`${this.backend} is unreachable (${reason}); retrying every ${this.retryMs / 1000} s`, { event: 'podman_unreachable' });
    }
    this.active = true;
    this.known = true;
  }

  ended(): void {
    if (this.active || !this.known) this.log.info(`${this.backend} is reachable`, { event: 'podman_reachable' });
    this.active = false;
    this.known = true;
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Resolves once a reconcile pass finds the backend reachable, or after `maxMs`. */
  over(maxMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, maxMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** Reports facts to the scheduler, trying again for a while when it is restarting. */
class Reporter {
  constructor(
    private readonly scheduler: ActorRef<SchedulerProtocol>,
    private readonly log: ActorLog,
  ) {}

  async report(jobId: string, fact: Fact): Promise<void> {
    const deadline = Date.now() + REPORT_RETRY_MAX_MS;
    for (;;) {
      try {
        await this.scheduler.call('report', { jobId, fact });
        return;
      } catch (err) {
        const restarting = isCallError<SchedulerProtocol>(err) && (err.code === 'actor_unavailable' || err.code === 'actor_timeout');
        if (!restarting || Date.now() > deadline) {
          // The reconcile pass reports the container's state again; only the moment is lost.
          this.log.debug(`job ${jobId}: could not report ${fact.type} (${(err as Error).message})`, { event: 'report_failed', job_id: jobId, fact: fact.type });
          return;
        }
        await sleep(REPORT_RETRY_MS);
      }
    }
  }
}

/** `work`, unless `signal` aborts first: then it rejects at once, whatever `work` still does. */
function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('stopped'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('stopped'));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
