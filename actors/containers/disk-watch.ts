/**
 * @module actors/containers/disk-watch
 * What stops a running job from filling the host's disk. Podman can cap a container's writable
 * layer only on overlay over xfs with project quotas (`--storage-opt size=`), which our hosts do
 * not have, and /artifacts (and an agent's /work) are plain host directories. So the places a job
 * writes to are measured every interval, on the task pool, and the job is killed once they hold
 * more than its budget: `limits.jobDiskMultiple` × `limits.artifactJobMaxBytes`, or
 * MAX_JOB_ENTRIES entries (inodes run out as surely as bytes).
 */
import { jobErrorText, type JobError } from '../contract/jobs.ts';
import type { MeasureDiskInput, MeasureDiskOutput } from './measure-disk.task.ts';

/**
 * Files and directories a job may hold across its writable places. A big `node_modules` or
 * build tree is a few hundred thousand; this also bounds the cost of one measuring pass.
 */
export const MAX_JOB_ENTRIES = 1_000_000;

/** A host directory the job writes to, and how the job knows it (for the error message). */
export interface WritablePlace {
  hostPath: string;
  name: string;
}

export interface DiskBudget {
  bytes: number;
  multiple: number;
  artifactJobMaxBytes: number;
}

export interface DiskWatchOptions {
  places: WritablePlace[];
  /** Host pid of the container's init, to count files its processes deleted but keep open. */
  containerPid?: number;
  budget: DiskBudget;
  intervalMs: number;
  measure: (input: MeasureDiskInput) => Promise<MeasureDiskOutput>;
  /** Called once, with the `error` the job fails with (as text and as a JobError), when the budget is passed. */
  onOver: (error: string, usage: MeasureDiskOutput, failure: Extract<JobError, { code: 'disk_limit_exceeded' }>) => void;
  /** Called once, the first time a pass finds directories it cannot read (they count as empty). */
  onUnreadable: (unreadable: MeasureDiskOutput['unreadable']) => void;
  /** A pass that failed; the watch carries on with the next one. */
  onPassFailed: (err: Error) => void;
}

export interface DiskWatch {
  stop(): void;
}

export function diskBudget(limits: { jobDiskMultiple: number; artifactJobMaxBytes: number }): DiskBudget {
  return { bytes: limits.jobDiskMultiple * limits.artifactJobMaxBytes, multiple: limits.jobDiskMultiple, artifactJobMaxBytes: limits.artifactJobMaxBytes };
}

/** The job's error when the budget was passed, or undefined while it holds. */
export function overBudget(usage: Pick<MeasureDiskOutput, 'bytes' | 'entries'>, budget: DiskBudget, places: WritablePlace[]): Extract<JobError, { code: 'disk_limit_exceeded' }> | undefined {
  const where = listed(places.map((p) => p.name));
  if (usage.bytes > budget.bytes) {
    return { code: 'disk_limit_exceeded', reason: `the job held ${size(usage.bytes)} in ${where}, over its ${size(budget.bytes)} disk budget `
      + `(${budget.multiple}× the ${size(budget.artifactJobMaxBytes)} per-job artifact limit); it was killed. Write less there, or ask the operator to raise FLASHPODS_JOB_DISK_MULTIPLE.` };
  }
  if (usage.entries >= MAX_JOB_ENTRIES) {
    return { code: 'disk_limit_exceeded', reason: `the job created ${MAX_JOB_ENTRIES} files and directories in ${where}, the most a job may hold; it was killed.` };
  }
  return undefined;
}

/** The job's error when its backend killed it for its disk use (Exit.overDiskBudget), in the backend's words. */
export function killedOverBudget(backendSays: string, budget: DiskBudget): Extract<JobError, { code: 'disk_limit_exceeded' }> {
  return { code: 'disk_limit_exceeded', reason: `it was killed for its disk use ("${backendSays.trim()}"); its disk budget is ${size(budget.bytes)} `
    + `(${budget.multiple}× the ${size(budget.artifactJobMaxBytes)} per-job artifact limit) for /artifacts and its container filesystem. `
    + 'Write less there, or ask the operator to raise FLASHPODS_JOB_DISK_MULTIPLE.' };
}

/** overBudget as the job's `error` text. */
export function overBudgetError(usage: Pick<MeasureDiskOutput, 'bytes' | 'entries'>, budget: DiskBudget, places: WritablePlace[]): string | undefined {
  return jobErrorText(overBudget(usage, budget, places));
}

/** Measures the job's writable places every `intervalMs` (one pass at a time) until stopped or over budget. */
export function watchDisk(options: DiskWatchOptions): DiskWatch {
  const { places, budget, intervalMs } = options;
  let stopped = false;
  let toldUnreadable = false;
  let timer: NodeJS.Timeout | undefined;
  const pass = async (): Promise<void> => {
    const usage = await options.measure({
      roots: places.map((p) => p.hostPath), containerPid: options.containerPid, stopAboveBytes: budget.bytes, maxEntries: MAX_JOB_ENTRIES,
    });
    if (stopped) return;
    if (usage.unreadable.count > 0 && !toldUnreadable) {
      toldUnreadable = true;
      options.onUnreadable(usage.unreadable);
    }
    const failure = overBudget(usage, budget, places);
    if (failure === undefined) return;
    stopped = true;
    options.onOver(jobErrorText(failure)!, usage, failure);
  };
  const schedule = (): void => {
    timer = setTimeout(() => {
      void pass()
        .catch((err: Error) => {
          if (!stopped) options.onPassFailed(err);
        })
        .finally(() => {
          if (!stopped) schedule();
        });
    }, intervalMs);
  };
  schedule();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** "1.5 GB" from a GiB up, "3 MB" below (the limits are powers of 1024, as in storage.md's "2 GB"). */
function size(n: number): string {
  const gib = 1024 ** 3;
  return n >= gib ? `${Number((n / gib).toFixed(1))} GB` : `${Number((n / 1024 ** 2).toFixed(1))} MB`;
}

function listed(names: string[]): string {
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}
