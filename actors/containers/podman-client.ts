/**
 * @module actors/containers/podman-client
 * Thin job-container operations over dockerode against Podman's Docker-compatible socket:
 * create+start, wait for the exit (with OOM detection), the kill sequence (SIGTERM to every
 * process → grace → SIGKILL), removal, listing by label for reconciliation, and making an image
 * present.
 */
import { existsSync } from 'node:fs';
import type Docker from 'dockerode';
import { INSTANCE_LABEL, jobContainerName, jobContainerOptions, JOB_ID_LABEL, JOB_LABEL, JOB_TYPE_LABEL, type JobContainerSpec } from './container-spec.ts';
import { isOomKill, watchOomEvidence } from './oom-watch.ts';
import { termEveryProcess } from './term-every-process.ts';

export interface ExitInfo {
  exitCode: number;
  /** Decided here from the two facts below and `killSent` (see isOomKill). */
  oomKilled: boolean;
  /** Podman's State.OOMKilled. */
  stateOomKilled: boolean;
  /** The memory cgroup showed an OOM kill while the container ran. */
  cgroupEvidence: boolean;
}

export interface WaitOptions {
  /** Asked once the container has exited: did we (cancel/timeout) send it a kill? */
  killSent?: () => boolean;
  /** Memory cgroup sampling period for OOM evidence. */
  oomPollMs?: number;
  /** Gives up waiting (Podman's API went away: its wait request can hang forever otherwise). */
  signal?: AbortSignal;
  /** Resolves with the exit code when Podman's event stream reports the exit (podman-exits.ts). */
  exitEvent?: Promise<number>;
}

export type KillOutcome = 'not-running' | 'exited-on-sigterm' | 'sigkilled';

export interface JobContainer {
  id: string;
  name: string;
  jobId: string;
  jobType: string;
  /** The owning instance's id, or undefined for a container without the label. */
  instanceId: string | undefined;
  /** Podman's state: created, running, exited, … */
  state: string;
}

/**
 * Creates and starts the job's container; returns its id. Identity sockets absent on the host
 * are left out. `beforeStart` runs between the two, e.g. to attach log capture (startLogCapture) so
 * no output is missed. A container that fails to start is removed before the error is rethrown.
 */
export async function createAndStart(
  docker: Docker,
  spec: JobContainerSpec,
  beforeStart?: (containerId: string) => Promise<void>,
): Promise<string> {
  const id = await createJobContainer(docker, spec);
  try {
    await beforeStart?.(id);
    await docker.getContainer(id).start();
  } catch (err) {
    await removeContainer(docker, id).catch(() => {});
    throw err;
  }
  return id;
}

/**
 * Creates the job's container (identity sockets absent on the host left out); returns its id.
 * When a container of that name exists already — the answer to an earlier create was lost, e.g.
 * to a Podman restart — that one is returned instead of a second one made.
 */
export async function createJobContainer(docker: Docker, spec: JobContainerSpec): Promise<string> {
  const present = (path: string | undefined) => (path && existsSync(path) ? path : undefined);
  const { spire, token } = spec.identitySockets ?? {};
  const options = jobContainerOptions({ ...spec, identitySockets: { spire: present(spire), token: present(token) } });
  try {
    return (await docker.createContainer(options)).id;
  } catch (err) {
    if (statusOf(err) !== 409) throw err;
    return (await docker.getContainer(jobContainerName(spec.jobId)).inspect()).Id;
  }
}

/**
 * Resolves when the container has exited. While it runs, its memory cgroup is sampled so an OOM
 * kill is recognised even where Podman's State.OOMKilled stays false.
 */
export async function waitForExit(docker: Docker, id: string, options: WaitOptions = {}): Promise<ExitInfo> {
  const container = docker.getContainer(id);
  // Wait first, inspect alongside: the inspect only feeds the OOM watch and stays off the path.
  const waited = (container.wait(options.signal ? { abortSignal: options.signal } : {}) as Promise<{ StatusCode: number }>).then((r) => r.StatusCode);
  waited.catch(() => undefined);
  // The event, when there is one, is the fast path; the wait answers whatever happens to the stream.
  const exited = options.exitEvent ? Promise.race([waited, options.exitEvent]) : waited;
  let watch: ReturnType<typeof watchOomEvidence> | undefined;
  let ended = false;
  void exited.then(() => (ended = true), () => (ended = true));
  // Raced with the exit: an exit known first needs no OOM watch, and must not wait for one.
  await Promise.race([
    exited.catch(() => undefined),
    container.inspect().then((before) => {
      const limit = before.HostConfig.Memory ?? 0;
      if (!ended && before.State.Running && before.State.Pid > 0 && limit > 0) watch = watchOomEvidence(before.State.Pid, limit, options.oomPollMs, id);
    }, () => undefined), // already gone or exited: the wait below tells how it ended
  ]);
  let exitCode: number;
  let evidence = false;
  try {
    exitCode = await exited;
  } finally {
    evidence = watch?.stop() ?? false;
  }
  // A wait cut short by a Podman restart can end without an answer: that is no exit.
  if (typeof exitCode !== 'number') throw new Error('the wait for the container ended without an exit code (Podman went away)');
  // Only a SIGKILL (137) can be an OOM kill; anything else needs no second look.
  if (exitCode !== 137) return { exitCode, oomKilled: false, stateOomKilled: false, cgroupEvidence: evidence };
  const { State } = await container.inspect();
  return {
    exitCode: State.ExitCode,
    oomKilled: isOomKill({ stateOomKilled: State.OOMKilled, evidence, exitCode: State.ExitCode, killSent: options.killSent?.() ?? false }),
    stateOomKilled: State.OOMKilled,
    cgroupEvidence: evidence,
  };
}

/**
 * SIGTERM to every process of the job (term-every-process.ts), then SIGKILL to the container if it
 * is still running `graceMs` after the start. Where that script cannot be started in the container
 * (no `/bin/sh`, its pids limit reached), the SIGTERM goes to PID 1 instead, which the init
 * forwards to the main process only; `onMainOnly` is told why.
 */
export async function killWithGrace(docker: Docker, id: string, graceMs: number, onMainOnly?: (reason: string) => void): Promise<KillOutcome> {
  const container = docker.getContainer(id);
  const killAt = Date.now() + graceMs;
  try {
    await termEveryProcess(container);
  } catch (err) {
    if (!(await signal(container, 'SIGTERM'))) return 'not-running';
    onMainOnly?.((err as Error).message);
  }
  let timer: NodeJS.Timeout | undefined;
  const exited = await Promise.race([
    container.wait().then(() => true, () => true),
    new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), Math.max(0, killAt - Date.now())); }),
  ]);
  clearTimeout(timer);
  if (exited) return 'exited-on-sigterm';
  return (await signal(container, 'SIGKILL')) ? 'sigkilled' : 'exited-on-sigterm';
}

/** Removes the container (force: a running one is killed first). Already gone is fine. */
export async function removeContainer(docker: Docker, id: string): Promise<void> {
  try {
    await docker.getContainer(id).remove({ force: true, v: true });
  } catch (err) {
    if (statusOf(err) !== 404) throw err;
  }
}

/** Every container carrying `flashpods-job=true`, whatever its state. */
export async function listJobContainers(docker: Docker): Promise<JobContainer[]> {
  const found = await docker.listContainers({ all: true, filters: { label: [`${JOB_LABEL}=true`] } });
  return found.map((c) => ({
    id: c.Id,
    name: (c.Names[0] ?? '').replace(/^\//, ''),
    jobId: c.Labels[JOB_ID_LABEL] ?? '',
    jobType: c.Labels[JOB_TYPE_LABEL] ?? '',
    instanceId: c.Labels[INSTANCE_LABEL],
    state: c.State,
  }));
}

/**
 * Makes `image` present, pulling it when missing; each pull progress event becomes one line for
 * `onProgress` (the job log). Resolves to whether a pull happened; a failed pull throws.
 */
export async function ensureImage(
  docker: Docker,
  image: string,
  onProgress: (line: string) => void,
): Promise<'present' | 'pulled'> {
  try {
    await docker.getImage(image).inspect();
    return 'present';
  } catch (err) {
    if (statusOf(err) !== 404) throw err;
  }
  onProgress(`Pulling image ${image}`);
  let failure: string | undefined;
  try {
    const stream = await docker.pull(image);
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(
        stream,
        (err) => (err ? reject(err) : resolve()),
        (event: PullEvent) => {
          if (event.error) failure ??= event.error;
          else onProgress(progressLine(event));
        },
      );
    });
  } catch (err) {
    failure ??= (err as Error).message;
  }
  if (failure !== undefined) throw new Error(`image pull failed for ${image}: ${failure}`);
  return 'pulled';
}

interface PullEvent {
  id?: string;
  status?: string;
  progress?: string;
  error?: string;
}

function progressLine(event: PullEvent): string {
  return [event.id && `${event.id}:`, event.status, event.progress].filter(Boolean).join(' ');
}

/** Sends a signal; false when the container is no longer running (or gone). */
async function signal(container: Docker.Container, name: 'SIGTERM' | 'SIGKILL'): Promise<boolean> {
  try {
    await container.kill({ signal: name });
    return true;
  } catch (err) {
    // Podman answers a kill of an exited container with a generic 500, so ask for the state.
    const running = await container.inspect().then((i) => i.State.Running, (e) => {
      if (statusOf(e) === 404) return false;
      throw err;
    });
    if (running) throw err;
    return false;
  }
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number } | null)?.statusCode;
}
