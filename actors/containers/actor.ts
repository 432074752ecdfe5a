/**
 * @module containers
 * The container lifecycle actor (dockerode → Podman's Docker-compatible socket). It starts each
 * new job, kills cancelled ones, and reconciles the database with what Podman really has — on
 * start and periodically — per the recovery table of jobs.md. Podman being unreachable is a
 * warning and a retry, never a crash.
 */
import Docker from 'dockerode';
import { defineActor } from '../../runtime/actor.ts';
import { createTaskPool, type TaskPool } from '../../runtime/task-pool.ts';
import type { FlashpodsConfig } from '../contract/config.ts';
import { JOB_ERRORS } from '../contract/jobs.ts';
import type { Finish } from '../scheduler/jobs-store.ts';
import type { JobChanged, SchedulerProtocol } from '../scheduler/messages.ts';
import { SCHEDULER_EVENTS } from '../scheduler/messages.ts';
import { openDatabase, type Db } from '../store/database.ts';
import type { JobRow } from '../store/rows.ts';
import type { ArtifactsProtocol } from '../artifacts/messages.ts';
import { indexArtifacts, JobRunner, type RunnerDeps } from './job-runner.ts';
import type { MeasureDiskInput, MeasureDiskOutput } from './measure-disk.task.ts';
import type { ContainersProtocol, ReconcileReport } from './messages.ts';
import { listJobContainers, removeContainer, type JobContainer } from './podman-client.ts';

/** A job still pending this long with Podman unreachable fails instead of waiting forever. */
const PENDING_MAX_MS = 5 * 60_000;

let db: Db | undefined;
/** One thread: the disk passes of all running jobs take turns, so together they use one core at most. */
let diskPool: TaskPool<MeasureDiskInput, MeasureDiskOutput> | undefined;
let reconcileTimer: NodeJS.Timeout | undefined;
const runners = new Map<string, JobRunner>();

export default defineActor<ContainersProtocol, FlashpodsConfig>({
  async start(ctx) {
    const { config, log } = ctx;
    const docker = new Docker({ socketPath: config.paths.podmanSocket });
    const scheduler = ctx.peer<SchedulerProtocol>('scheduler');
    db = openDatabase(config.paths.db, { readonly: true });
    const reads = db;
    const instanceId = reads.prepare("SELECT value FROM meta WHERE key = 'instance_id'").pluck().get() as string;
    diskPool = createTaskPool<MeasureDiskInput, MeasureDiskOutput>(new URL('./measure-disk.task.ts', import.meta.url), 1);
    const measureDisk = diskPool.run;
    const deps: RunnerDeps = { docker, config, scheduler, artifacts: ctx.peer<ArtifactsProtocol>('artifacts'), log, instanceId, measureDisk };
    let podmanReachable = false;
    let warnedUnreachable = false;

    const job = (id: string) => reads.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;

    /** Runs `work` for a job at most once at a time; a failure is logged and left to reconcile. */
    const supervise = (jobId: string, work: (runner: JobRunner) => Promise<void>) => {
      if (runners.has(jobId)) return;
      const runner = new JobRunner(jobId, deps);
      runners.set(jobId, runner);
      void work(runner)
        .catch((err: Error) => log.warn(`job ${jobId}: lost track of its container (${err.message}); the next reconcile pass picks it up`, {
          event: 'job_detached', job_id: jobId,
        }))
        .finally(() => runners.delete(jobId));
    };

    const launch = (row: JobRow) => supervise(row.id, (runner) => runner.launch(row));

    ctx.subscribe<JobChanged>(SCHEDULER_EVENTS.jobChanged, ({ jobId, status }) => {
      if (status === 'pending' && podmanReachable) {
        const row = job(jobId);
        if (row?.status === 'pending') launch(row);
      } else if (status === 'cancelled') {
        void runners.get(jobId)?.kill().catch((err: Error) => log.error(`killing job ${jobId} failed: ${err.message}`, { job_id: jobId }));
      }
    });

    async function reconcile(): Promise<ReconcileReport> {
      const report: ReconcileReport = { podmanReachable: false, adopted: [], finished: [], lost: [], orphansRemoved: [], started: [] };
      let containers: JobContainer[];
      try {
        containers = await listJobContainers(docker);
      } catch (err) {
        if (podmanReachable || !warnedUnreachable) {
          warnedUnreachable = true;
          log.warn(`Podman is unreachable at ${config.paths.podmanSocket} (${(err as Error).message}); retrying every ${config.timing.reconcileIntervalMs / 1000} s`, {
            event: 'podman_unreachable',
          });
        }
        podmanReachable = false;
        failStalePending();
        return report;
      }
      if (!podmanReachable) log.info(`Podman is reachable at ${config.paths.podmanSocket}`, { event: 'podman_reachable' });
      podmanReachable = true;
      warnedUnreachable = false;
      report.podmanReachable = true;

      // Another instance's containers (another database on the same Podman) are not ours to judge.
      containers = containers.filter((c) => c.instanceId === undefined || c.instanceId === instanceId);
      const byJob = new Map(containers.map((c) => [c.jobId, c]));
      const unsettled = reads
        .prepare("SELECT * FROM jobs WHERE status IN ('pending', 'starting', 'running') OR resources_released_at IS NULL ORDER BY created_at")
        .all() as JobRow[];

      for (const row of unsettled) {
        if (runners.has(row.id)) continue;
        const container = byJob.get(row.id);
        if (row.status === 'pending') {
          launch(row);
          report.started.push(row.id);
        } else if (container && (await containerPhase(container.id)) === 'running') {
          const inspected = await docker.getContainer(container.id).inspect();
          const startedAt = Date.parse(inspected.State.StartedAt) || Date.now();
          supervise(row.id, (runner) => runner.adopt(row, container.id, startedAt));
          report.adopted.push(row.id);
        } else if (container && (await containerPhase(container.id)) === 'exited') {
          supervise(row.id, () => JobRunner.settleExited(deps, row, container.id));
          report.finished.push(row.id);
        } else {
          if (container) await removeContainer(docker, container.id);
          const error = row.status === 'running' ? JOB_ERRORS.lostOnRecovery : JOB_ERRORS.notFoundOnRecovery;
          supervise(row.id, async () => {
            if (row.status === 'starting' || row.status === 'running') {
              // Exited and removed, but the runtime died before the final status: finish it as it ended.
              if (row.pending_finish !== null) {
                await scheduler.call('jobFinished', { jobId: row.id, finish: JSON.parse(row.pending_finish) as Finish, released: true });
                return;
              }
              // Whatever the lost container wrote to /artifacts is still indexed and served.
              if (row.artifacts_indexed_at === null) await indexArtifacts(deps, row.id);
              await scheduler.call('jobFinished', { jobId: row.id, finish: { exitCode: null, error }, released: true });
            } else {
              await scheduler.call('jobReleased', { jobId: row.id });
            }
          });
          if (row.status === 'starting' || row.status === 'running') report.lost.push(row.id);
        }
      }

      const unsettledIds = new Set(unsettled.map((r) => r.id));
      for (const container of containers) {
        if (unsettledIds.has(container.jobId) || runners.has(container.jobId)) continue;
        log.warn(`removing orphan container ${container.name} (job ${container.jobId || 'unknown'} is not running here)`, {
          event: 'orphan_removed', container_id: container.id, job_id: container.jobId,
        });
        await removeContainer(docker, container.id);
        report.orphansRemoved.push(container.id);
      }
      return report;
    }

    /**
     * Where a container really is, from inspect rather than the list's status word: Podman can
     * report a running container as "created" while an attach session of a dead client unwinds.
     */
    async function containerPhase(id: string): Promise<'running' | 'exited' | 'never-started' | 'gone'> {
      try {
        const { State } = await docker.getContainer(id).inspect();
        if (State.Running || State.Paused || State.Restarting) return 'running';
        const started = Date.parse(State.StartedAt);
        return Number.isFinite(started) && started > 0 ? 'exited' : 'never-started';
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) return 'gone';
        throw err;
      }
    }

    function failStalePending(): void {
      const stale = reads.prepare("SELECT id FROM jobs WHERE status = 'pending' AND created_at < ?").pluck().all(Date.now() - PENDING_MAX_MS) as string[];
      for (const id of stale) {
        supervise(id, async () => {
          await scheduler.call('recordArtifacts', { jobId: id, artifacts: [] });
          await scheduler.call('jobFinished', {
            jobId: id,
            finish: { exitCode: null, error: `container_runtime_unavailable: Podman was unreachable at ${config.paths.podmanSocket} for ${PENDING_MAX_MS / 60_000} minutes` },
            released: true,
          });
        });
      }
    }

    let running: Promise<ReconcileReport> | undefined;
    const reconcileOnce = () => (running ??= reconcile().finally(() => (running = undefined)));
    const tick = () => {
      void reconcileOnce().catch((err: Error) => log.error(`reconcile pass failed: ${err.message}`, { event: 'reconcile_failed', err: { message: err.message, stack: err.stack } }));
      reconcileTimer = setTimeout(tick, config.timing.reconcileIntervalMs);
    };
    tick();

    return {
      status: () => ({ podmanReachable, monitoredJobs: [...runners.keys()] }),
      reconcile: () => reconcileOnce(),
    };
  },

  async stop() {
    clearTimeout(reconcileTimer);
    for (const runner of runners.values()) runner.detach();
    runners.clear();
    db?.close();
    db = undefined;
    await diskPool?.destroy();
    diskPool = undefined;
  },
});
