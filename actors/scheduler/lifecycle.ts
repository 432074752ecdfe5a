/**
 * @module scheduler/lifecycle
 * The one owner of a job's life (jobs.md): `next(job, fact, env) → { job, commands }`. Facts are
 * what happened — reported by the container executor, the artifact indexer, the API, the
 * scheduler's own clocks and the reconcile pass —; commands are what must be done about it. The
 * function is pure: the scheduler persists the job it returns and carries out the commands, and
 * nothing else anywhere decides a job's status.
 *
 * Facts are level-triggered: the reconcile pass reports what Podman says about every unsettled
 * job on every pass, so the same fact arrives many times and a fact may arrive late (a watcher
 * reporting an exit the reconcile pass already reported). Every handler is idempotent, and a fact
 * that cannot apply to the job's state is ignored with a reason, never thrown.
 *
 * Inside the spec's coarse states the row carries the progress of the end of a job:
 * `pending_finish` (the Ending: how its container ended, before the final status may be
 * written), `artifacts_indexed_at` and `resources_released_at` (the container is gone). The
 * final status is written only once all three are known, so a client that sees a job finish
 * sees its resources free, its log complete and its artifacts listed.
 */
import { notIndexedNote, type IndexedArtifact } from '../artifacts/messages.ts';
import type { JobContainerSpec } from '../containers/container-spec.ts';
import type { JobPaths } from '../contract/job-paths.ts';
import { ACTIVE_STATES, entrypointExitError, jobErrorText, TERMINAL_STATES, type JobError, type JobState, type LargerThanHost, type QueueTimeout } from '../contract/jobs.ts';
import type { JobRow } from '../store/rows.ts';

/** How a job's container ended, recorded before its final status (`jobs.pending_finish`, JSON). */
export interface Ending {
  /** When the end was recorded: the indexer gets until env.indexGiveUpMs after it. */
  endedAt?: number;
  /** null when no container ran to an exit (lost, never found, never started). */
  exitCode: number | null;
  oomKilled: boolean;
  /** The job fails with this whatever its exit code (e.g. its container was lost). */
  error?: JobError;
  /** From the indexer: a note on dropped entries, or why indexing failed. */
  artifactsNote?: string;
  artifactsFailure?: JobError;
}

/** What the container executor knows about an OOM kill; the lifecycle decides (oom-watch.ts). */
export interface OomFacts {
  /** Podman's State.OOMKilled (false on cgroup v1 hosts even after an OOM kill). */
  stateOomKilled: boolean;
  /** The memory cgroup recorded an OOM kill (or peaked at the limit) while the container ran. */
  cgroupEvidence: boolean;
}

export interface IndexSummary {
  /** What is served; empty when indexing failed. */
  artifacts: IndexedArtifact[];
  /** Human note on dropped entries (the outcome is unchanged). */
  note?: string;
  /** Indexing itself failed: the job fails with this. */
  failure?: JobError;
}

export type Fact =
  // From the scheduler's queue pass (admission.ts planQueue), for a queued job:
  | { type: 'admitted'; backfilled: boolean }
  /** It waited its queue_timeout_minutes out (→ expired), or can never fit the host any more (→ failed). */
  | { type: 'queueGaveUp'; error: QueueTimeout | LargerThanHost }
  // From the container executor (live, or re-reported by every reconcile pass):
  | { type: 'containerCreating' }
  | { type: 'containerCreated'; containerId: string }
  | { type: 'containerStarted'; containerId: string; startedAt: number }
  /** The container could not be created or started, and why (container_start_failed, upload_mount_refused, ...). */
  | { type: 'startFailed'; error: JobError }
  /** The disk watch found the job holding more than its budget (disk-watch.ts), or the backend killed it for that (no figures then). */
  | { type: 'diskLimitExceeded'; reason: string; bytes?: number; entries?: number }
  | { type: 'containerExited'; containerId: string; exitCode: number; oom: OomFacts }
  | { type: 'containerGone' }
  | { type: 'containerMissing' }
  /** Still listed by the backend, which can no longer say what it does (a silent Kubernetes node). */
  | { type: 'containerLost'; containerId: string; reason: string }
  | { type: 'runtimeUnreachable'; reason: string }
  | { type: 'logTruncated' }
  // From the artifact indexer:
  | { type: 'artifactsIndexed'; summary: IndexSummary }
  // From the API:
  | { type: 'killRequested' }
  // From the scheduler's clocks and its cleanup pass:
  | { type: 'deadlinePassed' }
  | { type: 'cleanupPass' }
  | { type: 'artifactsDeleted' }
  | { type: 'logEvicted' }
  | { type: 'logDeleted' }
  | { type: 'jobFilesDeleted' };

export type FactType = Fact['type'];

export type Command =
  // For the container executor:
  | { type: 'createContainer'; jobId: string; spec: JobContainerSpec; logPath: string; uploadId?: string }
  | { type: 'startContainer'; jobId: string; containerId: string; logPath: string; logCapBytes: number }
  | { type: 'killContainer'; jobId: string; containerId: string; graceMs: number }
  | { type: 'removeContainer'; jobId: string; containerId: string }
  // For the artifact indexer:
  | { type: 'indexArtifacts'; jobId: string; dir: string }
  // For the scheduler itself: its clock, the store (same transaction), and files.
  | { type: 'armDeadline'; jobId: string; at: number }
  | { type: 'consumeUpload'; uploadId: string; at: number }
  | { type: 'expireUpload'; uploadId: string; at: number }
  | { type: 'releaseUpload'; uploadId: string }
  | { type: 'storeArtifacts'; jobId: string; artifacts: IndexedArtifact[] }
  | { type: 'dropArtifactRows'; jobId: string }
  | { type: 'forgetClientKey'; jobId: string }
  | { type: 'deleteArtifacts'; jobId: string; dir: string }
  | { type: 'deleteLog'; jobId: string; path: string }
  /** Also conmon's file and the capture state, which the executor deletes with the container (still there when the container vanished unseen). */
  | { type: 'deleteJobFiles'; jobId: string; logPath: string; artifactsDir: string; containerFiles: string[] };

export interface Transition {
  job: JobRow;
  commands: Command[];
  /** Set when the fact could not apply to the job's state; the job is returned unchanged. */
  ignored?: string;
}

/** Everything `next` needs besides the job and the fact: the clock, settings, and paths. */
export interface LifecycleEnv {
  now: number;
  paths: JobPaths;
  killGraceMs: number;
  /** How long one "minute" of timeout_minutes lasts (tests shorten it). */
  timeoutMinuteMs: number;
  /** A job still pending this long with the container runtime unreachable fails. */
  pendingMaxMs: number;
  /** How long after its end a job waits for the indexer before it finishes without artifacts. */
  indexGiveUpMs: number;
  logCapBytes: number;
  artifactTtlMs: number;
  logTtlMs: number;
  container: ContainerSettings;
}

/** What every job container gets beyond the job's own fields (containers.md). */
export interface ContainerSettings {
  pidsLimit: number;
  rootless: boolean;
  networkMode: string;
  instanceId: string;
  spireSocket: string;
  tokenSocket: string;
}

const isActive = (job: JobRow) => ACTIVE_STATES.includes(job.status);
const released = (job: JobRow) => job.resources_released_at !== null;
const indexed = (job: JobRow) => job.artifacts_indexed_at !== null;
/** Its final status and outcome are written (finishIfDone); its container may still be going. */
export const isFinished = (job: JobRow) => job.outcome !== null;

/** Nothing is left to do for the job's container: its final status is written and it is gone. */
export function isSettled(job: JobRow): boolean {
  return !isActive(job) && released(job) && indexed(job);
}

export function endingOf(job: JobRow): Ending | undefined {
  if (job.pending_finish === null) return undefined;
  const raw = JSON.parse(job.pending_finish) as Partial<Ending>;
  return { ...raw, exitCode: raw.exitCode ?? null, oomKilled: raw.oomKilled ?? false };
}

/** When a running job's time is up. */
export function deadlineOf(job: JobRow, env: Pick<LifecycleEnv, 'timeoutMinuteMs'>): number | undefined {
  return job.started_at === null ? undefined : job.started_at + job.timeout_minutes * env.timeoutMinuteMs;
}

export function containerSpec(job: JobRow, env: LifecycleEnv): JobContainerSpec {
  const { container, paths } = env;
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
    pidsLimit: container.pidsLimit,
    uploadDir: job.files_id ? paths.sealedUpload(job.files_id) : undefined,
    artifactsDir: paths.artifacts(job.id),
    identitySockets: { spire: container.spireSocket, token: container.tokenSocket },
    needGithubToken: job.job_type === 'worker' && job.need_github_token === 1,
    rootless: container.rootless,
    networkMode: container.networkMode,
    instanceId: container.instanceId,
  };
}

/** The first command of a job just admitted: its container. */
export function onAdmitted(job: JobRow, env: LifecycleEnv): Command[] {
  return [createContainer(job, env)];
}

/** The commands that bring the job's world in line with its row after a scheduler restart. */
export function onResume(job: JobRow, env: LifecycleEnv): Command[] {
  const deadline = deadlineOf(job, env);
  return job.status === 'running' && deadline !== undefined && job.kill_reason === null && job.pending_finish === null
    ? [{ type: 'armDeadline', jobId: job.id, at: deadline }]
    : [];
}

/** What can happen to a queued job: it has no container, no clock and no files yet. */
const QUEUE_FACTS: readonly FactType[] = ['admitted', 'queueGaveUp', 'killRequested'];

export function next(job: JobRow, fact: Fact, env: LifecycleEnv): Transition {
  const step = new Step(job, env);
  if (job.status === 'queued' && !QUEUE_FACTS.includes(fact.type)) step.ignore('a queued job has no container yet');
  else HANDLERS[fact.type](step, fact as never);
  return step.result();
}

/** Accumulates one transition: the changed row and the commands, or why the fact was ignored. */
class Step {
  job: JobRow;
  readonly commands: Command[] = [];
  ignored: string | undefined;
  readonly env: LifecycleEnv;

  constructor(job: JobRow, env: LifecycleEnv) {
    this.job = job;
    this.env = env;
  }

  get now(): number {
    return this.env.now;
  }

  set(changes: Partial<JobRow>): void {
    this.job = { ...this.job, ...changes };
  }

  send(...commands: Command[]): void {
    this.commands.push(...commands);
  }

  ignore(reason: string): void {
    this.ignored = `${reason} (job is ${this.job.status})`;
  }

  get ending(): Ending | undefined {
    return endingOf(this.job);
  }

  setEnding(ending: Ending): void {
    this.set({ pending_finish: JSON.stringify({ endedAt: this.now, ...ending }) });
  }

  result(): Transition {
    return this.ignored === undefined ? { job: this.job, commands: this.commands } : { job: this.job, commands: [], ignored: this.ignored };
  }
}

type Handler<T extends FactType> = (step: Step, fact: Extract<Fact, { type: T }>) => void;

const HANDLERS: { [T in FactType]: Handler<T> } = {
  admitted(step, { backfilled }) {
    if (step.job.status !== 'queued') return step.ignore('only a queued job can be admitted');
    step.set({ status: 'pending', admitted_at: step.now, backfilled: backfilled ? 1 : 0 });
    step.send(createContainer(step.job, step.env));
  },

  queueGaveUp(step, { error }) {
    const { job, now } = step;
    if (job.status !== 'queued') return step.ignore('only a queued job can leave the queue unstarted');
    const status = error.code === 'queue_timeout' ? 'expired' : 'failed';
    step.set({ status, outcome: status, error: jobErrorText(error) ?? null, error_code: error.code, completed_at: now });
    // Nothing ran: nothing to index, no resources were held, and the upload it kept is let go.
    release(step);
  },

  containerCreating(step) {
    if (step.job.status === 'pending') step.set({ status: 'starting' });
  },

  containerCreated(step, { containerId }) {
    const { job } = step;
    if (isSettled(job) || released(job) || isFinished(job)) return step.send(removeContainer(job, containerId));
    if (step.ending) return step.ignore('a container was created after the job ended');
    if (job.status === 'running' || (job.status === 'cancelled' && job.started_at !== null)) {
      return step.ignore('a started container was reported as never started');
    }
    // Cancelled while starting, its container is started all the same, to end by the kill
    // sequence like every cancelled job (jobs.md "Cancel": exit 143, or 137 after the grace).
    step.set({ status: job.status === 'cancelled' ? 'cancelled' : 'starting', container_id: containerId });
    step.send({ type: 'startContainer', jobId: job.id, containerId, logPath: step.env.paths.log(job.id), logCapBytes: step.env.logCapBytes });
  },

  containerStarted(step, { containerId, startedAt }) {
    const { job } = step;
    if (released(job)) return isSettled(job) ? step.send(removeContainer(job, containerId)) : step.ignore('a started container was reported after the job\'s container was gone');
    if (isFinished(job)) return step.send(removeContainer(job, containerId));
    if (step.ending) return; // already exited; a late report
    if (job.status === 'cancelled') {
      step.set({ container_id: containerId, started_at: job.started_at ?? startedAt });
      return step.send(killContainer(step));
    }
    if (job.status === 'pending' || job.status === 'starting') {
      step.set({ status: 'running', container_id: containerId, started_at: startedAt });
      if (job.files_id) step.send({ type: 'consumeUpload', uploadId: job.files_id, at: startedAt });
    } else if (job.started_at === null) {
      step.set({ started_at: startedAt, container_id: containerId });
    }
    if (step.job.kill_reason !== null) return step.send(killContainer(step));
    armOrTimeout(step);
  },

  startFailed(step, { error }) {
    const { job } = step;
    if (released(job) || step.ending || isFinished(job)) return step.ignore('a start failure was reported after the job\'s container was settled');
    if (job.started_at !== null) return step.ignore('a started job reported a start failure');
    step.setEnding({ exitCode: null, oomKilled: false, error });
    release(step);
    finishIfDone(step);
  },

  diskLimitExceeded(step, { reason }) {
    const { job } = step;
    if ((job.status !== 'running' && job.status !== 'cancelled') || job.started_at === null) return step.ignore('a disk budget was passed by a job that is not running');
    if (step.ending || released(job) || job.failure !== null) return;
    // SIGKILL at once, without a grace: a grace would only let the job write more.
    step.set({ failure: JSON.stringify({ code: 'disk_limit_exceeded', reason } satisfies JobError) });
    step.send({ ...killContainer(step), graceMs: 0 });
  },

  containerExited(step, { containerId, exitCode, oom }) {
    containerEnded(step, containerId, 'an exit', (job) => {
      // Only a SIGKILL we did not send ourselves can be the kernel's OOM kill (oom-watch.ts).
      const oomKilled = oom.stateOomKilled || (oom.cgroupEvidence && exitCode === 137 && job.kill_reason === null && job.failure === null);
      return { exitCode, oomKilled };
    });
  },

  containerLost(step, { containerId, reason }) {
    // No exit code will come. A cancelled or timed-out job keeps its kill's outcome, as when its
    // container vanishes (containerAbsent); whatever reached the host's artifact directory is indexed.
    containerEnded(step, containerId, 'a lost container', (job) => ({
      exitCode: null, oomKilled: false, ...(job.kill_reason === null ? { error: { code: 'container_lost', reason } } : {}),
    }));
  },

  containerGone(step) {
    containerAbsent(step, 'removed');
  },

  containerMissing(step) {
    containerAbsent(step, 'missing');
  },

  runtimeUnreachable(step, { reason }) {
    const { job } = step;
    if (job.status !== 'pending' || step.now - job.created_at < step.env.pendingMaxMs) return;
    step.setEnding({ exitCode: null, oomKilled: false, error: { code: 'container_runtime_unavailable', reason } });
    release(step);
    finishIfDone(step);
  },

  logTruncated(step) {
    if (step.job.status === 'cleaning' || step.job.status === 'cleaned') return step.ignore('a log was truncated after it was deleted');
    if (step.job.log_truncated === 0) step.set({ log_truncated: 1 });
  },

  artifactsIndexed(step, { summary }) {
    const { job } = step;
    if (indexed(job)) return; // a repeated index command finished twice
    const ending = step.ending;
    if (!ending && !released(job)) return step.ignore('artifacts were indexed before the job\'s container ended');
    step.set({ artifacts_indexed_at: step.now });
    step.setEnding({
      ...(ending ?? { exitCode: null, oomKilled: false }),
      ...(summary.note !== undefined ? { artifactsNote: summary.note } : {}),
      ...(summary.failure !== undefined ? { artifactsFailure: summary.failure } : {}),
    });
    step.send({ type: 'storeArtifacts', jobId: job.id, artifacts: summary.artifacts });
    finishIfDone(step);
  },

  killRequested(step) {
    const { job } = step;
    if (!isActive(job) && job.status !== 'queued') return step.ignore('job_already_terminal');
    const { now } = step;
    step.set({ status: 'cancelled', kill_reason: 'cancel', kill_requested_at: now, completed_at: now });
    if (job.status === 'pending' || job.status === 'queued') {
      // No container was taken up yet: nothing to wait for, nothing to index (release expires the upload).
      release(step);
      return finishIfDone(step);
    }
    if (job.status === 'starting' && job.files_id) step.send({ type: 'expireUpload', uploadId: job.files_id, at: now });
    if (step.ending) return; // exited already; its container is on its way out
    if (job.status === 'running') step.send(killContainer(step));
    // Starting: the kill is sent once its container is reported started.
  },

  deadlinePassed(step) {
    const { job } = step;
    if (job.status !== 'running' || job.kill_reason !== null || step.ending) return;
    armOrTimeout(step);
  },

  cleanupPass(step) {
    const { job, now, env } = step;
    if (job.status === 'cleaning') return step.send(deleteJobFiles(step));
    if (!TERMINAL_STATES.includes(job.status) || !isSettled(job) || job.completed_at === null) return;
    if (job.artifacts_deleted_at === null) {
      if (job.completed_at + env.artifactTtlMs <= now) step.send({ type: 'deleteArtifacts', jobId: job.id, dir: env.paths.artifacts(job.id) });
      return;
    }
    if (job.logs_deleted_at !== null || job.completed_at + env.logTtlMs <= now) {
      step.set({ status: 'cleaning' });
      step.send(deleteJobFiles(step));
    }
  },

  artifactsDeleted(step) {
    if (!isSettled(step.job) || !TERMINAL_STATES.includes(step.job.status)) return step.ignore('artifacts were deleted for a job that is not settled');
    if (step.job.artifacts_deleted_at !== null) return;
    step.set({ artifacts_deleted_at: step.now });
    step.send({ type: 'dropArtifactRows', jobId: step.job.id });
  },

  logEvicted(step) {
    const { job } = step;
    if (!isSettled(job) || !TERMINAL_STATES.includes(job.status)) return step.ignore('the log of a job that is not settled cannot be evicted');
    if (job.logs_deleted_at === null) step.send({ type: 'deleteLog', jobId: job.id, path: step.env.paths.log(job.id) });
  },

  logDeleted(step) {
    if (!isSettled(step.job) || !TERMINAL_STATES.includes(step.job.status)) return step.ignore('a log was deleted for a job that is not settled');
    if (step.job.logs_deleted_at === null) step.set({ logs_deleted_at: step.now });
  },

  jobFilesDeleted(step) {
    const { job, now } = step;
    if (job.status !== 'cleaning') return step.ignore('files were deleted for a job that is not cleaning');
    step.set({ status: 'cleaned', logs_deleted_at: job.logs_deleted_at ?? now, artifacts_deleted_at: job.artifacts_deleted_at ?? now });
    step.send({ type: 'forgetClientKey', jobId: job.id });
    if (job.artifacts_deleted_at === null) step.send({ type: 'dropArtifactRows', jobId: job.id });
  },
};

/** The container ended (it exited, or its backend lost it): the ending once, then the index and the removal. */
function containerEnded(step: Step, containerId: string, what: string, ending: (job: JobRow) => Ending): void {
  const { job } = step;
  if (released(job)) return isSettled(job) ? step.send(removeContainer(job, containerId)) : undefined;
  // Finished before its container went, and the container is still there: remove it again.
  if (isFinished(job)) return step.send(removeContainer(job, containerId));
  if (step.ending) {
    // Seen again (a watch and a reconcile pass both saw it, or a command was lost): what is
    // still outstanding is asked for again; executors absorb a repeat of one in flight.
    step.send(removeContainer(job, containerId));
    return awaitIndex(step);
  }
  if (!isActive(job) && job.status !== 'cancelled') return step.ignore(`${what} was reported for a job that already ended`);
  step.setEnding(ending(job));
  step.set({ container_id: job.container_id ?? containerId });
  if (job.status === 'pending' || job.status === 'starting') {
    // It ran and ended before a start was reported (e.g. while this runtime was down).
    step.set({ status: 'running' });
    if (job.files_id) step.send({ type: 'consumeUpload', uploadId: job.files_id, at: step.now });
  }
  step.send(indexArtifacts(step), removeContainer(job, containerId));
}

/** The container is not there: we removed it, or a reconcile pass found none. */
function containerAbsent(step: Step, how: 'removed' | 'missing'): void {
  const { job } = step;
  if (isSettled(job)) return;
  // On a reconcile pass the index is asked for again: the indexer may have died with the command.
  const reindex = how === 'missing' && !indexed(job);
  if (released(job)) {
    if (reindex) awaitIndex(step);
    return;
  }
  if (job.status === 'pending') {
    if (how === 'removed') return step.ignore('a container was removed that was never created');
    // The create was never taken up (the executor was down, or lost it): ask again.
    return step.send(createContainer(job, step.env));
  }
  // It finished at its exit; the removal only frees what it held.
  if (isFinished(job)) return release(step);
  if (step.ending) {
    release(step);
    if (reindex) return awaitIndex(step);
    return finishIfDone(step);
  }
  // Cancelled before it started: nothing ran, so nothing to index (release marks it indexed).
  if (job.status === 'cancelled' && job.started_at === null) {
    release(step);
    return finishIfDone(step);
  }
  // Gone without an exit seen: lost (cancelled jobs keep no error).
  const error: JobError | undefined =
    job.status === 'cancelled' ? undefined
      : job.status === 'running' ? { code: 'container_lost_on_recovery' }
        : { code: 'container_not_found_on_recovery' };
  step.setEnding({ exitCode: null, oomKilled: false, ...(error ? { error } : {}) });
  release(step);
  // Whatever a lost container wrote to /artifacts is still indexed and served.
  if (!indexed(step.job)) step.send(indexArtifacts(step));
  finishIfDone(step);
}

/**
 * The index is still outstanding: asked for again, or — past env.indexGiveUpMs after the end,
 * the indexer having crashed or hung — given up on, so the job finishes with nothing listed and
 * a note, rather than never.
 */
function awaitIndex(step: Step): void {
  if (indexed(step.job)) return;
  // Endings recorded before endedAt existed count from the container's removal.
  const endedAt = step.ending?.endedAt ?? step.job.resources_released_at ?? undefined;
  if (endedAt === undefined || step.now - endedAt < step.env.indexGiveUpMs) return step.send(indexArtifacts(step));
  const note = notIndexedNote(`no answer within ${Math.round(step.env.indexGiveUpMs / 1000)} s`);
  step.set({ artifacts_indexed_at: step.now });
  step.setEnding({ ...step.ending!, artifactsNote: note });
  step.send({ type: 'storeArtifacts', jobId: step.job.id, artifacts: [] });
  finishIfDone(step);
}

/** The container is gone (or never existed): its resources and its upload snapshot are free. */
function release(step: Step): void {
  const { job, now } = step;
  step.set({ resources_released_at: now });
  // Nothing ran, so nothing can be in /artifacts.
  if (job.started_at === null && (step.ending?.exitCode ?? null) === null && !indexed(job)) step.set({ artifacts_indexed_at: now });
  if (job.files_id) {
    if (job.started_at === null) step.send({ type: 'expireUpload', uploadId: job.files_id, at: now });
    step.send({ type: 'releaseUpload', uploadId: job.files_id });
  }
}

/** A running job past its deadline starts its timeout kill; before it, the clock is (re)armed. */
function armOrTimeout(step: Step): void {
  const deadline = deadlineOf(step.job, step.env);
  if (deadline === undefined) return;
  if (step.now < deadline) return step.send({ type: 'armDeadline', jobId: step.job.id, at: deadline });
  step.set({ kill_reason: 'timeout', kill_requested_at: step.now });
  step.send(killContainer(step));
}

/**
 * Writes the final status once the job's end is known — its container exited (the log is then
 * complete) or is gone — and its artifacts are indexed. It does not wait for the container's
 * removal: that takes Podman 20–150 ms here, all of it on the time from the exit to the client's
 * answer (issue 13). Admission stops counting the job at its exit already (job-reads.ts
 * heldResources: an exited container runs nothing), so `completed` means the room is free.
 */
function finishIfDone(step: Step): void {
  const { job, now } = step;
  if (!indexed(job)) return;
  if (!released(job) && (step.ending?.exitCode ?? null) === null) return;
  const ending = step.ending;
  if (job.status === 'cancelled') {
    if (job.exit_code === null && ending?.exitCode != null) step.set({ exit_code: ending.exitCode });
    step.set({ outcome: 'cancelled', error: ending?.artifactsNote ?? job.error, pending_finish: null });
    return;
  }
  if (!isActive(job) || !ending) return;
  const { status, error } = outcome(job, ending);
  // A note on the artifacts goes with an outcome of the job's own making (its exit code), not
  // with a failure Flashpods decided (timeout, OOM, disk, indexing, a lost container).
  const noted = error === undefined || error.code === 'process_exited' || error.code === 'spire_attestation_timeout' || error.code === 'token_exchange_failed';
  step.set({
    status,
    outcome: status,
    exit_code: ending.exitCode,
    error: jobErrorText(error, noted ? ending.artifactsNote : undefined) ?? null,
    error_code: error?.code ?? null,
    completed_at: job.completed_at ?? now,
    pending_finish: null,
  });
}

/** How an ended job's status and error follow from how its container ended (jobs.md "Exit codes"). */
function outcome(job: JobRow, ending: Ending): { status: Exclude<JobState, 'queued' | 'pending' | 'starting' | 'running' | 'expired' | 'cleaning' | 'cleaned'>; error?: JobError } {
  if (job.kill_reason === 'timeout') return { status: 'timed_out', error: { code: 'timeout' } };
  if (job.failure !== null) return { status: 'failed', error: JSON.parse(job.failure) as JobError };
  if (ending.artifactsFailure) return { status: 'failed', error: ending.artifactsFailure };
  if (ending.error) return { status: 'failed', error: ending.error };
  if (ending.exitCode === 0) return { status: 'completed' };
  if (ending.oomKilled) return { status: 'failed', error: { code: 'oom_killed' } };
  const identity = entrypointExitError({ jobType: job.job_type, needGithubToken: job.need_github_token === 1 }, ending.exitCode);
  if (identity) return { status: 'failed', error: identity };
  return { status: 'failed', error: { code: 'process_exited', exitCode: ending.exitCode ?? -1 } };
}

function createContainer(job: JobRow, env: LifecycleEnv): Command {
  return { type: 'createContainer', jobId: job.id, spec: containerSpec(job, env), logPath: env.paths.log(job.id), ...(job.files_id ? { uploadId: job.files_id } : {}) };
}

function removeContainer(job: JobRow, containerId: string): Command {
  return { type: 'removeContainer', jobId: job.id, containerId };
}

function killContainer(step: Step): Extract<Command, { type: 'killContainer' }> {
  return { type: 'killContainer', jobId: step.job.id, containerId: step.job.container_id!, graceMs: step.env.killGraceMs };
}

function indexArtifacts(step: Step): Command {
  return { type: 'indexArtifacts', jobId: step.job.id, dir: step.env.paths.artifacts(step.job.id) };
}

function deleteJobFiles(step: Step): Command {
  const { paths } = step.env;
  const id = step.job.id;
  return { type: 'deleteJobFiles', jobId: id, logPath: paths.log(id), artifactsDir: paths.artifacts(id), containerFiles: [paths.containerLog(id), paths.captureState(id)] };
}
