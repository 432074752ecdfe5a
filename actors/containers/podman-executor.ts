/**
 * @module containers/podman-executor
 * The JobExecutor over Podman's Docker-compatible API socket (dockerode), built from the
 * operations of podman-client.ts and the log capture of log-capture.ts.
 */
import type Docker from 'dockerode';
import type { JobContainerSpec } from './container-spec.ts';
import type { WritablePlace } from './disk-watch.ts';
import type { ContainerState, CreateOptions, Exit, JobExecutor, KillOutcome, LabelledContainer, WritableFootprint } from './executor.ts';
import { startLogCapture, type LogCapture, type LogCaptureOptions } from './log-capture.ts';
import { createJobContainer, ensureImage, killWithGrace, listJobContainers, removeContainer, waitForExit } from './podman-client.ts';

export class PodmanExecutor implements JobExecutor {
  private readonly docker: Docker;

  constructor(docker: Docker) {
    this.docker = docker;
  }

  async create(spec: JobContainerSpec, { onProgress, beforeCreate }: CreateOptions): Promise<string> {
    try {
      beforeCreate?.();
      return await createJobContainer(this.docker, spec);
    } catch (err) {
      // Create first and pull only on "no such image": the common case costs no extra call.
      if ((err as { statusCode?: number }).statusCode !== 404) throw err;
      await ensureImage(this.docker, spec.image, onProgress);
      beforeCreate?.();
      return await createJobContainer(this.docker, spec);
    }
  }

  async start(containerId: string): Promise<void> {
    await this.docker.getContainer(containerId).start();
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

  remove(containerId: string): Promise<void> {
    return removeContainer(this.docker, containerId);
  }

  async listByLabel(): Promise<LabelledContainer[]> {
    return (await listJobContainers(this.docker)).map(({ id, name, jobId, instanceId }) => ({ id, name, jobId, instanceId }));
  }

  captureLog(containerId: string, options: LogCaptureOptions): Promise<LogCapture> {
    return startLogCapture(this.docker, containerId, options);
  }

  async waitForExit(containerId: string, signal: AbortSignal): Promise<Exit> {
    // The OOM decision is the lifecycle's: only the facts are passed on.
    const { exitCode, stateOomKilled, cgroupEvidence } = await waitForExit(this.docker, containerId, { signal });
    return { exitCode, stateOomKilled, cgroupEvidence };
  }

  async reachable(): Promise<boolean> {
    return this.docker.ping().then(() => true, () => false);
  }

  lostConnection(err: unknown): boolean {
    const { code, message } = (err ?? {}) as { code?: string; message?: string };
    return ['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE'].includes(code ?? '') || /socket hang up|ended without an exit code/.test(message ?? '');
  }
}
