/**
 * @module containers/executor
 * What the containers actor needs from a container backend, and nothing more: the `JobExecutor`
 * interface. Podman (podman-executor.ts) and Kubernetes (kubernetes-executor.ts, Pods through an
 * API server) implement it; FLASHPODS_EXECUTOR picks one, and the lifecycle only ever sees the
 * facts the actor reports.
 * No method decides anything about a job: each does one thing to one container and says what
 * happened, or what the backend says is there.
 */
import type { JobContainerSpec } from './container-spec.ts';
import type { WritablePlace } from './disk-watch.ts';
import type { LogCapture, LogCaptureOptions } from './log-capture.ts';

/** What the backend says about a container. */
export type ContainerState =
  | { phase: 'created' }
  | { phase: 'running'; startedAt: number }
  | { phase: 'exited'; exitCode: number; stateOomKilled: boolean; overDiskBudget?: string }
  /**
   * The backend still lists it but can no longer know what it does, and has not for longer
   * than the operator allows (a Kubernetes node that stopped reporting): `reason` says why.
   */
  | { phase: 'lost'; reason: string };

/** A job container the backend has, found by its labels. */
export interface LabelledContainer {
  id: string;
  name: string;
  jobId: string;
  /** The owning instance's id; undefined for a container without that label (treated as ours). */
  instanceId: string | undefined;
}

export interface Exit {
  exitCode: number;
  /** The backend's own OOM flag (State.OOMKilled). */
  stateOomKilled: boolean;
  /** The memory cgroup showed an OOM kill while the container ran (oom-watch.ts). */
  cgroupEvidence: boolean;
  /**
   * The backend itself killed it for holding more disk than its budget (a Kubernetes eviction
   * for ephemeral storage), in the backend's words. Podman cannot: its disk watch reports instead.
   */
  overDiskBudget?: string;
}

export type KillOutcome = 'not-running' | 'exited-on-sigterm' | 'sigkilled';

/** Where a running container writes on the host, for the disk watch. */
export interface WritableFootprint {
  places: WritablePlace[];
  /** Host pid of its init, to count files its processes deleted but keep open. */
  pid: number | undefined;
  /** Why part of it cannot be measured, when that is so. */
  unmeasured?: string;
}

export interface CreateOptions {
  /** Each line of image pull progress. */
  onProgress: (line: string) => void;
  /** Runs right before each create call (after a pull that may have taken minutes); a throw stops the create. */
  beforeCreate?: () => void;
}

/** The capture of one job's log. */
export type JobLogOptions = LogCaptureOptions & { jobId: string };

export interface StartOptions {
  /** Where and how the job's log is written; the capture runs from the container's first line. */
  capture: JobLogOptions;
  /** No start was tried for this container before (one tried may have happened after all). */
  firstAttempt: boolean;
}

export interface JobExecutor {
  /**
   * Creates the job's container from its full spec, pulling the image if it is missing (each
   * progress line goes to `onProgress`); resolves to its id. A container of the job's name that
   * already exists (a create whose answer was lost) is returned as it is.
   */
  create(spec: JobContainerSpec, options: CreateOptions): Promise<string>;
  /** Starts the container with its log captured from its first line; resolves to the capture. */
  start(containerId: string, options: StartOptions): Promise<LogCapture>;
  /**
   * SIGTERM to every process → `graceMs` → SIGKILL (`onMainOnly` is told when the SIGTERM could
   * reach the main process only); `graceMs` 0 is a SIGKILL at once.
   */
  kill(containerId: string, graceMs: number, onMainOnly?: (reason: string) => void): Promise<KillOutcome>;
  /** undefined: no such container. */
  inspect(containerId: string): Promise<ContainerState | undefined>;
  /** Removes it whatever its state (one already gone is fine), and whatever the backend kept for the job's log. */
  remove(containerId: string, jobId: string): Promise<void>;
  /** Every job container (label `flashpods-job=true`), whatever its state or instance. */
  listByLabel(): Promise<LabelledContainer[]>;
  /**
   * Resumes the capture of a started container's output into the job's log file (after a restart
   * of the server or of this actor, or once the backend is back), without losing or repeating a
   * line where the backend allows it.
   */
  captureLog(containerId: string, options: JobLogOptions): Promise<LogCapture>;
  /** The host directories a running container writes to; undefined when it is gone. */
  footprint(containerId: string): Promise<WritableFootprint | undefined>;
  /** Resolves at the container's exit; rejects when the backend cannot be asked any more. */
  waitForExit(containerId: string, signal: AbortSignal): Promise<Exit>;
  /** Whether the backend answers at all. */
  reachable(): Promise<boolean>;
  /** Whether an error of one of these calls means the backend could not be reached (rather than that it refused). */
  lostConnection(err: unknown): boolean;
}
