/**
 * @module job-runner
 * Drives one job's container from `starting` to gone: image, create+start, live log capture,
 * the timeout clock, the kill sequence, the exit, removal. Every step is reported to the
 * scheduler (the only writer). A runner can also adopt a container that outlived a previous
 * runtime (reconciliation) and carry on where it left off.
 */
import { appendFileSync, chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type Docker from 'dockerode';
import type { ActorLog, ActorRef } from '../../runtime/actor.ts';
import type { FlashpodsConfig } from '../contract/config.ts';
import { indexCallTimeoutMs, notIndexedNote, type ArtifactsProtocol, type IndexSummary } from '../artifacts/messages.ts';
import type { SchedulerProtocol } from '../scheduler/messages.ts';
import type { JobRow } from '../store/rows.ts';
import type { JobContainerSpec } from './container-spec.ts';
import { diskBudget, watchDisk, type DiskWatch, type WritablePlace } from './disk-watch.ts';
import type { MeasureDiskInput, MeasureDiskOutput } from './measure-disk.task.ts';
import { formatLogTime, startLogCapture, type LogCapture, type LogCaptureOptions } from './log-capture.ts';
import { checkMountSource, MountSourceRefused } from './mount-source.ts';
import { createAndStart, ensureImage, killWithGrace, removeContainer, waitForExit } from './podman-client.ts';

export interface RunnerDeps {
  docker: Docker;
  config: FlashpodsConfig;
  scheduler: ActorRef<SchedulerProtocol>;
  artifacts: ActorRef<ArtifactsProtocol>;
  log: ActorLog;
  /** Labels every container this instance creates (see INSTANCE_LABEL). */
  instanceId: string;
  /** The disk a job's writable places take up, measured off the event loop (measure-disk.task.ts). */
  measureDisk: (input: MeasureDiskInput) => Promise<MeasureDiskOutput>;
}

/**
 * The end of a log capture. A log that cannot be written (the logs volume is full) must not
 * keep the job from finishing: it counts as truncated, and the operator is told why.
 */
export async function settleCapture(deps: RunnerDeps, jobId: string, capture: LogCapture): Promise<{ truncated: boolean }> {
  try {
    return await capture.done;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOSPC' && code !== 'EDQUOT' && code !== 'EIO') throw err;
    deps.log.warn(`job ${jobId}: log capture stopped: ${(err as Error).message}; free space on ${deps.config.paths.logs}. The job itself is unaffected.`, {
      event: 'log_write_failed', job_id: jobId, code,
    });
    return { truncated: true };
  }
}

/**
 * Indexes the job's artifacts before its final status is written (storage.md). Never throws
 * for the indexer's sake: an indexer that crashed or does not answer leaves the job with no
 * artifacts listed and a note, rather than running forever with its resources reserved.
 */
export async function indexArtifacts(deps: RunnerDeps, jobId: string): Promise<IndexSummary> {
  try {
    return await deps.artifacts.call('indexJob', { jobId }, { timeoutMs: indexCallTimeoutMs(deps.config.timing.artifactIndexBudgetMs) });
  } catch (err) {
    const why = (err as Error).message;
    deps.log.error(`job ${jobId}: the artifacts actor did not index (${why}); the job finishes with no artifacts listed`, { event: 'artifacts_index_failed', job_id: jobId });
    await deps.scheduler.call('recordArtifacts', { jobId, artifacts: [] });
    return { artifacts: 0, note: notIndexedNote(why), failure: undefined };
  }
}

const TRUNCATION = '[TRUNCATED - log exceeded';

export class JobRunner {
  readonly jobId: string;
  private readonly deps: RunnerDeps;
  private containerId: string | undefined;
  private killSent = false;
  private killing: Promise<void> | undefined;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private cancelRequested = false;
  /** Set when the disk watch killed the job: the `error` it fails with. */
  private diskFailure: string | undefined;
  private diskWatch: DiskWatch | undefined;
  private readonly stopCapture = new AbortController();

  constructor(jobId: string, deps: RunnerDeps) {
    this.jobId = jobId;
    this.deps = deps;
  }

  private get logPath(): string {
    return join(this.deps.config.paths.logs, `${this.jobId}.log`);
  }

  /** A line of Flashpods' own (image pull progress, start errors) in the job's log; best effort. */
  private note(text: string): void {
    try {
      appendFileSync(this.logPath, `[${formatLogTime(new Date())}] ${text}\n`);
    } catch (err) {
      this.deps.log.warn(`job ${this.jobId}: cannot write its log (${(err as Error).message})`, { event: 'log_write_failed', job_id: this.jobId });
    }
  }

  private spec(job: JobRow): JobContainerSpec {
    const { config } = this.deps;
    const artifactsDir = join(config.paths.artifacts, job.id);
    mkdirSync(artifactsDir, { recursive: true, mode: 0o755 });
    chmodSync(artifactsDir, 0o755);
    return {
      jobId: job.id,
      jobType: job.job_type,
      image: job.image,
      command: job.command ?? undefined,
      task: job.task ?? undefined,
      context: job.context ?? undefined,
      gitBranch: job.git_branch ?? undefined,
      cpus: job.cpus,
      memoryGb: job.memory_gb,
      pidsLimit: config.limits.pidsMax,
      uploadDir: job.files_id ? join(config.paths.sealedUploads, job.files_id) : undefined,
      artifactsDir,
      identitySockets: { spire: config.paths.spireSocket, token: config.paths.tokenSocket },
      needGithubToken: job.job_type === 'worker' && job.need_github_token === 1,
      rootless: config.podman.rootless,
      networkMode: config.podman.networkMode,
      instanceId: this.deps.instanceId,
    };
  }

  /** pending → starting → running → … for a job this runtime admitted. */
  async launch(job: JobRow): Promise<void> {
    const { scheduler, docker } = this.deps;
    const { proceed } = await scheduler.call('jobStarting', { jobId: job.id });
    if (!proceed) return;
    mkdirSync(this.deps.config.paths.logs, { recursive: true });
    let containerId: string;
    let capture: LogCapture | undefined;
    // Attach before start: the only way Podman hands over every line (see log-capture.ts).
    const create = () => {
      const spec = this.spec(job);
      // Before every create (a pull may have taken minutes): Podman follows links in a bind source.
      if (spec.uploadDir) checkMountSource(spec.uploadDir, process.geteuid!());
      return createAndStart(docker, spec, async (id) => {
        capture = await startLogCapture(docker, id, { ...this.captureOptions(job.id), justCreated: true });
      });
    };
    try {
      try {
        containerId = await create();
      } catch (err) {
        // Create first and pull only on "no such image": the common case costs no extra call.
        if ((err as { statusCode?: number }).statusCode !== 404) throw err;
        await ensureImage(docker, job.image, (line) => this.note(line));
        if (this.cancelRequested) return await this.endWithoutContainer(undefined);
        containerId = await create();
      }
    } catch (err) {
      if (err instanceof MountSourceRefused) return await this.refuseUploadMount(job, err);
      const message = (err as Error).message;
      this.note(`Flashpods could not start the container: ${message}`);
      return await this.endWithoutContainer(`container_start_failed: ${message}`);
    }
    this.containerId = containerId;
    const startedAt = Date.now();
    const { status } = await scheduler.call('jobRunning', { jobId: job.id, containerId, startedAt });
    this.deps.log.info(`job ${job.id} running`, { event: 'job_running', job_id: job.id, container_id: containerId });
    await this.follow({ ...job, started_at: startedAt, status: status ?? 'running' }, capture!, false);
  }

  /** Resumes a job whose container was found alive or exited after a restart. */
  async adopt(job: JobRow, containerId: string, startedAt: number): Promise<void> {
    this.containerId = containerId;
    if (job.status === 'starting') await this.deps.scheduler.call('jobRunning', { jobId: job.id, containerId, startedAt });
    const capture = await startLogCapture(this.deps.docker, containerId, this.captureOptions(job.id));
    await this.follow({ ...job, started_at: job.started_at ?? startedAt }, capture, true);
  }

  /** Cancel (or timeout): SIGTERM to every process → grace → SIGKILL. Safe to call more than once. */
  kill(): Promise<void> {
    this.cancelRequested = true;
    if (!this.containerId) return Promise.resolve();
    this.killing ??= (async () => {
      this.killSent = true;
      const outcome = await killWithGrace(this.deps.docker, this.containerId!, this.deps.config.timing.killGraceMs, (reason) => {
        this.deps.log.warn(`job ${this.jobId}: SIGTERM reached its main process only, not its other processes (${reason}); whatever is left gets SIGKILL after the grace`, { event: 'job_kill_main_only', job_id: this.jobId });
      });
      this.deps.log.info(`job ${this.jobId} kill: ${outcome}`, { event: 'job_kill', job_id: this.jobId, outcome });
    })();
    return this.killing;
  }

  /** Stops following without touching the container (runtime shutdown); reconcile adopts it later. */
  detach(): void {
    clearTimeout(this.timeoutTimer);
    this.diskWatch?.stop();
    this.stopCapture.abort();
  }

  private captureOptions(jobId: string): LogCaptureOptions {
    let reported = false;
    return {
      path: this.logPath,
      capBytes: this.deps.config.limits.logCapBytes,
      signal: this.stopCapture.signal,
      onLine: (line) => {
        if (reported || !line.includes(TRUNCATION)) return;
        reported = true;
        this.deps.scheduler.call('jobLogTruncated', { jobId }).catch((err: Error) => this.deps.log.warn(`could not mark the log of ${jobId} truncated: ${err.message}`));
      },
    };
  }

  private async follow(job: JobRow, capture: LogCapture, resumed: boolean): Promise<void> {
    const { docker, scheduler } = this.deps;
    const containerId = this.containerId!;
    if (job.status === 'cancelled' || job.kill_reason !== null) void this.kill();
    else this.armTimeout(job);
    // Settled now, awaited after the exit: a capture failure must never go unhandled meanwhile.
    const captureEnd = settleCapture(this.deps, job.id, capture);
    captureEnd.catch(() => undefined);

    this.diskWatch = await this.watchDisk(containerId);
    const lostPodman = new AbortController();
    const watchdog = setInterval(() => {
      docker.ping().catch(() => {
        // A wait request to a Podman API that went away never ends; give up here and let the
        // reconcile pass adopt the container once Podman is back.
        lostPodman.abort();
        this.detach();
      });
    }, this.deps.config.timing.reconcileIntervalMs);
    let exit;
    try {
      exit = await waitForExit(docker, containerId, { killSent: () => this.killSent, signal: lostPodman.signal });
    } finally {
      clearInterval(watchdog);
      this.diskWatch.stop();
    }
    clearTimeout(this.timeoutTimer);
    const captured = await captureEnd;
    if (captured.truncated) await scheduler.call('jobLogTruncated', { jobId: job.id });
    await this.killing;
    const indexed = await indexArtifacts(this.deps, job.id);
    const finish = { exitCode: exit.exitCode, oomKilled: exit.oomKilled, error: indexed.note, failure: this.diskFailure ?? indexed.failure };
    await scheduler.call('jobExited', { jobId: job.id, finish });
    await removeContainer(docker, containerId);
    const { job: finished } = await scheduler.call('jobFinished', { jobId: job.id, finish, released: true });
    this.deps.log.info(`job ${job.id} exited with ${exit.exitCode}`, {
      event: 'job_exited', job_id: job.id, exit_code: exit.exitCode, oom_killed: exit.oomKilled, status: finished?.status, resumed,
    });
  }

  /**
   * Watches what the job writes to the host's disk: its /artifacts, an agent's /work (the mounts
   * the container really has), its container filesystem (overlay's upper directory) and files
   * its processes deleted but keep open.
   */
  private async watchDisk(containerId: string): Promise<DiskWatch> {
    const { config, docker, log } = this.deps;
    const info = await docker.getContainer(containerId).inspect().catch(() => undefined);
    // Gone already: the wait that follows sees the exit, and there is nothing left to measure.
    if (!info) return { stop: () => undefined };
    const places: WritablePlace[] = info.Mounts
      .filter((m) => m.RW && (m.Destination === '/artifacts' || m.Destination === '/work'))
      .map((m) => ({ hostPath: m.Source, name: m.Destination }));
    const upperDir = (info.GraphDriver?.Data as { UpperDir?: string } | undefined)?.UpperDir;
    if (upperDir) places.push({ hostPath: upperDir, name: 'its container filesystem' });
    else log.warn(`job ${this.jobId}: Podman names no upper directory for its container (storage driver ${info.GraphDriver?.Name}); its container filesystem is not measured`, { event: 'disk_watch_partial', job_id: this.jobId });
    return watchDisk({
      places,
      containerPid: info.State.Pid > 0 ? info.State.Pid : undefined,
      budget: diskBudget(config.limits),
      intervalMs: config.timing.diskCheckIntervalMs,
      measure: this.deps.measureDisk,
      onOver: (error, usage) => void this.killOverDisk(containerId, error, usage),
      onUnreadable: ({ count, examples }) => log.warn(`job ${this.jobId}: ${count} of its directories cannot be read to measure its disk use (${examples.join(', ')})`, { event: 'disk_watch_partial', job_id: this.jobId }),
      onPassFailed: (err) => log.warn(`job ${this.jobId}: measuring its disk use failed (${err.message}); the next pass tries again`, { event: 'disk_watch_failed', job_id: this.jobId }),
    });
  }

  /** SIGKILL at once, without the grace of a cancel: a grace would only let the job write more. */
  private async killOverDisk(containerId: string, error: string, usage: MeasureDiskOutput): Promise<void> {
    this.diskFailure = error;
    this.killSent = true;
    this.deps.log.warn(`job ${this.jobId}: ${error}`, { event: 'job_disk_exceeded', job_id: this.jobId, bytes: usage.bytes, entries: usage.entries });
    // It may have exited meanwhile; the exit is what follow() waits for either way.
    await this.deps.docker.getContainer(containerId).kill({ signal: 'SIGKILL' }).catch((err: Error) => this.deps.log.debug(`job ${this.jobId}: disk kill: ${err.message}`, { job_id: this.jobId }));
  }

  private armTimeout(job: JobRow): void {
    const deadline = (job.started_at ?? Date.now()) + job.timeout_minutes * this.deps.config.timing.timeoutMinuteMs;
    const fire = async () => {
      const { kill } = await this.deps.scheduler.call('jobTimedOut', { jobId: job.id });
      this.deps.log.warn(`job ${job.id} exceeded its ${job.timeout_minutes} min timeout`, { event: 'job_timeout', job_id: job.id });
      if (kill) await this.kill();
    };
    // setTimeout's maximum is ~24.8 days; timeouts are at most 120 min.
    this.timeoutTimer = setTimeout(() => void fire().catch((err: Error) => this.deps.log.error('timeout kill failed', { job_id: job.id, err: err.message })), Math.max(0, deadline - Date.now()));
  }

  /** The sealed upload is not what finalize sealed: the job fails without a container. */
  private async refuseUploadMount(job: JobRow, refused: MountSourceRefused): Promise<void> {
    const error = `upload_mount_refused: upload ${job.files_id} was not mounted at /work: ${refused.message}. Upload the files again and create a new job.`;
    this.deps.log.error(`job ${job.id}: ${error} Only user flashpods can write there: find out what changed it.`, {
      event: 'upload_mount_refused', job_id: job.id, upload_id: job.files_id,
    });
    this.note(`Flashpods refused to start the container: ${error}`);
    return this.endWithoutContainer(error);
  }

  private async endWithoutContainer(error: string | undefined): Promise<void> {
    const { scheduler } = this.deps;
    await scheduler.call('recordArtifacts', { jobId: this.jobId, artifacts: [] });
    await scheduler.call('jobFinished', { jobId: this.jobId, finish: { exitCode: null, error }, released: true });
  }

  /** Finishes a job whose container was found exited, or is gone, during reconciliation. */
  static async settleExited(deps: RunnerDeps, job: JobRow, containerId: string): Promise<void> {
    const { docker, scheduler } = deps;
    // Whatever it printed after the last capture (Podman reads an exited container's log file).
    const runner = new JobRunner(job.id, deps);
    const captured = await settleCapture(deps, job.id, await startLogCapture(docker, containerId, runner.captureOptions(job.id)));
    if (captured.truncated) await scheduler.call('jobLogTruncated', { jobId: job.id });
    const { State } = await docker.getContainer(containerId).inspect();
    const indexed = await indexArtifacts(deps, job.id);
    const finish = { exitCode: State.ExitCode, oomKilled: State.OOMKilled, error: indexed.note, failure: indexed.failure };
    await scheduler.call('jobExited', { jobId: job.id, finish });
    await removeContainer(docker, containerId);
    await scheduler.call('jobFinished', { jobId: job.id, finish, released: true });
  }
}
