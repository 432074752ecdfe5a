/**
 * @module containers/podman-executor
 * The JobExecutor over Podman's Docker-compatible API socket (dockerode), built from the
 * operations of podman-client.ts.
 *
 * Log source: each container is made with conmon writing its output to a file of Flashpods'
 * (conmon-capture.ts), which is followed from the host once the container has started: nothing
 * between the create and the start, and a resume that is exact. Where that file turns out
 * unreadable (another Podman version or storage layout, a rootful Podman under a non-root API),
 * the executor says so once and captures later jobs through an attach made before their start
 * (log-capture.ts); the job that found out is read from Podman's logs API from its beginning.
 * Exits are learnt from conmon's exit file (podman-exits.ts), with a wait beside it.
 */
import { existsSync } from 'node:fs';
import type Docker from 'dockerode';
import { captureFromConmon, conmonFiles, forgetJobFiles, jobLogConfig, openBeforeStart, preparePlace, type ConmonPlace } from './conmon-capture.ts';
import type { JobContainerSpec } from './container-spec.ts';
import type { WritablePlace } from './disk-watch.ts';
import type { ContainerState, CreateOptions, Exit, JobExecutor, JobLogOptions, KillOutcome, LabelledContainer, StartOptions, WritableFootprint } from './executor.ts';
import { startLogCapture, type LogCapture } from './log-capture.ts';
import { createJobContainer, ensureImage, killWithGrace, listJobContainers, removeContainer, waitForExit } from './podman-client.ts';
import { PodmanExits } from './podman-exits.ts';

export interface PodmanExecutorOptions {
  /** Where conmon writes the job files; without it every job is captured through the attach. */
  conmonPlace?: ConmonPlace;
  /** The job log cap, which bounds conmon's file (conmon-log.ts CONMON_SIZE_FACTOR). */
  logCapBytes: number;
  /** The supervisor log's warning, for the one line saying the log source changed. */
  warn: (message: string, fields: Record<string, unknown>) => void;
}

export class PodmanExecutor implements JobExecutor {
  private readonly exits: PodmanExits;
  private conmonPlace: ConmonPlace | undefined;

  private constructor(private readonly docker: Docker, private readonly options: PodmanExecutorOptions) {
    this.exits = new PodmanExits(docker);
    this.conmonPlace = options.conmonPlace;
  }

  /** Makes (or checks) conmon's directory first: one that is not safe means the attach, said once. */
  static async open(docker: Docker, options: PodmanExecutorOptions): Promise<PodmanExecutor> {
    const executor = new PodmanExecutor(docker, options);
    if (options.conmonPlace) await preparePlace(options.conmonPlace).catch((err: Error) => executor.fallBack(err.message));
    return executor;
  }

  /** Which source new jobs' logs come from (for the tests and the supervisor log). */
  get logSource(): 'conmon-file' | 'attach' {
    return this.conmonPlace ? 'conmon-file' : 'attach';
  }

  async create(spec: JobContainerSpec, { onProgress, beforeCreate }: CreateOptions): Promise<string> {
    const place = this.conmonPlace;
    // conmon appends to a file an earlier container of the job left behind.
    if (place) await forgetJobFiles(place, spec.jobId);
    const full: JobContainerSpec = place ? { ...spec, logConfig: jobLogConfig(place, spec.jobId, this.options.logCapBytes) } : spec;
    try {
      beforeCreate?.();
      return await createJobContainer(this.docker, full);
    } catch (err) {
      // Create first and pull only on "no such image": the common case costs no extra call.
      if ((err as { statusCode?: number }).statusCode !== 404) throw err;
      await ensureImage(this.docker, spec.image, onProgress);
      beforeCreate?.();
      return await createJobContainer(this.docker, full);
    }
  }

  async start(containerId: string, { capture, firstAttempt }: StartOptions): Promise<LogCapture> {
    const place = this.conmonPlace;
    if (!place) {
      // The attach must be in place before the start to see every line.
      const attached = await startLogCapture(this.docker, containerId, { ...capture, justCreated: firstAttempt });
      await this.startOnce(containerId);
      return attached;
    }
    const early = await openBeforeStart(place, capture.jobId);
    try {
      await this.startOnce(containerId);
    } catch (err) {
      if (early.readable) await early.log.close();
      throw err;
    }
    const source = early.readable ? { opened: early.log } : { waitForFileMs: 2000 };
    const found = await captureFromConmon(place, capture.jobId, capture, this.exited(containerId, capture.signal), source);
    if ('capture' in found) return found.capture;
    this.fallBack(found.unreadable);
    return startLogCapture(this.docker, containerId, { ...capture, justCreated: false });
  }

  async kill(containerId: string, graceMs: number, onMainOnly?: (reason: string) => void): Promise<KillOutcome> {
    if (graceMs > 0) return killWithGrace(this.docker, containerId, graceMs, onMainOnly);
    await this.docker.getContainer(containerId).kill({ signal: 'SIGKILL' });
    return 'sigkilled';
  }

  /** /artifacts and an agent's /work (the mounts it really has), and overlay's upper directory. */
  async footprint(containerId: string): Promise<WritableFootprint | undefined> {
    const info = await this.docker.getContainer(containerId).inspect().catch(() => undefined);
    if (!info) return undefined;
    const places: WritablePlace[] = info.Mounts
      .filter((m) => m.RW && (m.Destination === '/artifacts' || m.Destination === '/work'))
      .map((m) => ({ hostPath: m.Source, name: m.Destination }));
    const upperDir = (info.GraphDriver?.Data as { UpperDir?: string } | undefined)?.UpperDir;
    if (upperDir) places.push({ hostPath: upperDir, name: 'its container filesystem' });
    return {
      places,
      pid: info.State.Pid > 0 ? info.State.Pid : undefined,
      ...(upperDir ? {} : { unmeasured: `Podman names no upper directory for its container (storage driver ${info.GraphDriver?.Name}); its container filesystem is not measured` }),
    };
  }

  /**
   * From inspect rather than the list's status word: Podman can report a running container as
   * "created" while an attach session of a dead client unwinds.
   */
  async inspect(containerId: string): Promise<ContainerState | undefined> {
    let state: Docker.ContainerInspectInfo['State'];
    try {
      state = (await this.docker.getContainer(containerId).inspect()).State;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw err;
    }
    const startedAt = Date.parse(state.StartedAt);
    const everStarted = Number.isFinite(startedAt) && startedAt > 0;
    if (state.Running || state.Paused || state.Restarting) return { phase: 'running', startedAt: everStarted ? startedAt : Date.now() };
    if (!everStarted) return { phase: 'created' };
    return { phase: 'exited', exitCode: state.ExitCode, stateOomKilled: state.OOMKilled };
  }

  async remove(containerId: string, jobId: string): Promise<void> {
    await removeContainer(this.docker, containerId);
    if (this.options.conmonPlace) await forgetJobFiles(this.options.conmonPlace, jobId);
  }

  async listByLabel(): Promise<LabelledContainer[]> {
    return (await listJobContainers(this.docker)).map(({ id, name, jobId, instanceId }) => ({ id, name, jobId, instanceId }));
  }

  /** A job's conmon file, where it has one (made while the file was the source), else the logs API. */
  async captureLog(containerId: string, options: JobLogOptions): Promise<LogCapture> {
    const place = this.options.conmonPlace;
    if (place && existsSync(conmonFiles(place, options.jobId).conmon)) {
      const found = await captureFromConmon(place, options.jobId, options, this.exited(containerId, options.signal), { waitForFileMs: 0 });
      if ('capture' in found) return found.capture;
      this.fallBack(found.unreadable);
    }
    return startLogCapture(this.docker, containerId, options);
  }

  async waitForExit(containerId: string, signal: AbortSignal): Promise<Exit> {
    // The OOM decision is the lifecycle's: only the facts are passed on.
    const { exit: exitEvent } = await this.exits.next(containerId, signal);
    const { exitCode, stateOomKilled, cgroupEvidence } = await waitForExit(this.docker, containerId, { signal, exitEvent });
    return { exitCode, stateOomKilled, cgroupEvidence };
  }

  async reachable(): Promise<boolean> {
    return this.docker.ping().then(() => true, () => false);
  }

  lostConnection(err: unknown): boolean {
    const { code, message } = (err ?? {}) as { code?: string; message?: string };
    return ['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE'].includes(code ?? '') || /socket hang up|ended without an exit code/.test(message ?? '');
  }

  close(): void {
    this.exits.close();
  }

  /** A start tried again may have happened after all: "already started" (304) is that. */
  private async startOnce(containerId: string): Promise<void> {
    try {
      await this.docker.getContainer(containerId).start();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 304) throw err;
    }
  }

  /** Settles once the container no longer runs (exit file or wait); rejects when Podman cannot say. */
  private exited(containerId: string, signal: AbortSignal | undefined): Promise<unknown> {
    const stop = signal ?? new AbortController().signal;
    const waited = this.docker.getContainer(containerId).wait({ abortSignal: stop }) as Promise<unknown>;
    waited.catch(() => undefined);
    return this.exits.next(containerId, stop).then(({ exit }) => Promise.race([waited, exit]));
  }

  private fallBack(why: string): void {
    if (!this.conmonPlace) return;
    this.conmonPlace = undefined;
    this.options.warn(`job logs: conmon's file cannot be the source (${why}); from now on each job's log is captured through an attach made before its start, which costs one attach per job`, {
      event: 'log_source_fallback', reason: why,
    });
  }
}
