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
import type { ArtifactsProtocol, IndexSummary } from '../artifacts/messages.ts';
import type { SchedulerProtocol } from '../scheduler/messages.ts';
import type { JobRow } from '../store/rows.ts';
import type { JobContainerSpec } from './container-spec.ts';
import { formatLogTime, startLogCapture, type LogCapture, type LogCaptureOptions } from './log-capture.ts';
import { createAndStart, ensureImage, killWithGrace, removeContainer, waitForExit } from './podman-client.ts';

export interface RunnerDeps {
  docker: Docker;
  config: FlashpodsConfig;
  scheduler: ActorRef<SchedulerProtocol>;
  artifacts: ActorRef<ArtifactsProtocol>;
  log: ActorLog;
  /** Labels every container this instance creates (see INSTANCE_LABEL). */
  instanceId: string;
}

/** Walking a large /artifacts tree can take a while; it runs off the event loop meanwhile. */
const INDEX_TIMEOUT_MS = 10 * 60_000;

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

/** Indexes the job's artifacts before its final status is written (storage.md). */
export function indexArtifacts(deps: RunnerDeps, jobId: string): Promise<IndexSummary> {
  return deps.artifacts.call('indexJob', { jobId }, { timeoutMs: INDEX_TIMEOUT_MS });
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
      uploadDir: job.files_id ? join(config.paths.sealedUploads, job.files_id) : undefined,
      artifactsDir,
      socketMounts: [
        { host: config.paths.spireSocket, container: '/run/spire/sockets/agent.sock' },
        { host: config.paths.tokenSocket, container: '/run/flashpods/token.sock' },
      ],
      extraEnv: job.job_type === 'worker' && job.need_github_token === 1 ? { FLASHPODS_NEED_GITHUB_TOKEN: 'true' } : undefined,
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
    const create = () => createAndStart(docker, this.spec(job), async (id) => {
      capture = await startLogCapture(docker, id, { ...this.captureOptions(job.id), justCreated: true });
    });
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

  /** Cancel (or timeout): SIGTERM → grace → SIGKILL. Safe to call more than once. */
  kill(): Promise<void> {
    this.cancelRequested = true;
    if (!this.containerId) return Promise.resolve();
    this.killing ??= (async () => {
      this.killSent = true;
      const outcome = await killWithGrace(this.deps.docker, this.containerId!, this.deps.config.timing.killGraceMs);
      this.deps.log.info(`job ${this.jobId} kill: ${outcome}`, { event: 'job_kill', job_id: this.jobId, outcome });
    })();
    return this.killing;
  }

  /** Stops following without touching the container (runtime shutdown); reconcile adopts it later. */
  detach(): void {
    clearTimeout(this.timeoutTimer);
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
    }
    clearTimeout(this.timeoutTimer);
    const captured = await captureEnd;
    if (captured.truncated) await scheduler.call('jobLogTruncated', { jobId: job.id });
    await this.killing;
    const indexed = await indexArtifacts(this.deps, job.id);
    const finish = { exitCode: exit.exitCode, oomKilled: exit.oomKilled, error: indexed.note, failure: indexed.failure };
    await scheduler.call('jobExited', { jobId: job.id, finish });
    await removeContainer(docker, containerId);
    const { job: finished } = await scheduler.call('jobFinished', { jobId: job.id, finish, released: true });
    this.deps.log.info(`job ${job.id} exited with ${exit.exitCode}`, {
      event: 'job_exited', job_id: job.id, exit_code: exit.exitCode, oom_killed: exit.oomKilled, status: finished?.status, resumed,
    });
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
