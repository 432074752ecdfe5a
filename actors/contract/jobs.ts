/**
 * @module contract/jobs
 * Job types, states and per-type limits from jobs.md, shared by the API, the scheduler, the
 * container actor, the MCP shim and the tests.
 */
export const JOB_TYPES = ['worker', 'agent'] as const;
export type JobType = (typeof JOB_TYPES)[number];

/**
 * `queued` (issue 15): POST /jobs with `"queue": true` that did not fit waits here, holding no
 * resources and no container, until the queue pass admits it (→ pending) or its
 * queue_timeout_minutes pass (→ `expired`, terminal). Both are additions to jobs.md's states.
 */
export const JOB_STATES = ['queued', 'pending', 'starting', 'running', 'completed', 'failed', 'timed_out', 'cancelled', 'expired', 'cleaning', 'cleaned'] as const;
export type JobState = (typeof JOB_STATES)[number];

export const TERMINAL_STATES: readonly JobState[] = ['completed', 'failed', 'timed_out', 'cancelled', 'expired'];
/** Admitted and not ended: a container may exist. A queued job is not active: it has none. */
export const ACTIVE_STATES: readonly JobState[] = ['pending', 'starting', 'running'];

export function isTerminal(state: JobState): boolean {
  return TERMINAL_STATES.includes(state) || state === 'cleaning' || state === 'cleaned';
}

export interface TypeLimits {
  defaultCpus: number;
  maxCpus: number;
  defaultMemoryGb: number;
  maxMemoryGb: number;
  defaultTimeoutMinutes: number;
}

export const TYPE_LIMITS: Record<JobType, TypeLimits> = {
  worker: { defaultCpus: 2, maxCpus: 8, defaultMemoryGb: 4, maxMemoryGb: 16, defaultTimeoutMinutes: 30 },
  agent: { defaultCpus: 2, maxCpus: 4, defaultMemoryGb: 4, maxMemoryGb: 8, defaultTimeoutMinutes: 60 },
};

export const TIMEOUT_MINUTES = { min: 1, max: 120 } as const;
/** POST /jobs `queue_timeout_minutes`: how long a queued job may wait before it expires (a day at most). */
export const QUEUE_TIMEOUT_MINUTES = { min: 1, max: 1440, default: 60 } as const;
export const MAX_COMMAND_CHARS = 10_000;
export const MAX_TASK_CHARS = 100_000;
export const MAX_CONTEXT_CHARS = 100_000;
export const MAX_IMAGE_CHARS = 255;
export const DEFAULT_WORKER_IMAGE = 'ubuntu:22.04';

/** GET /jobs?status= groups. */
export const STATUS_FILTERS: Record<'all' | 'queued' | 'running' | 'completed' | 'failed', readonly JobState[] | undefined> = {
  all: undefined,
  /** In queue order, first to start first (job-reads.ts). */
  queued: ['queued'],
  running: ACTIVE_STATES,
  completed: ['completed'],
  failed: ['failed', 'timed_out', 'cancelled', 'expired'],
};
export const LIST_LIMIT = { default: 20, max: 100 } as const;
export const OUTPUT_TAIL = { default: 100, max: 10_000 } as const;

/** The `error` text of each job error code, as the API shows it (jobs.md). */
export const JOB_ERRORS = {
  timeout: 'Job exceeded timeout limit',
  oomKilled: 'oom_killed',
  notFoundOnRecovery: 'container_not_found_on_recovery',
  lostOnRecovery: 'container_lost_on_recovery',
  spireAttestationTimeout: 'spire_attestation_timeout',
  tokenExchangeFailed: 'token_exchange_failed',
  /** Killed for holding more disk than its budget (containers/disk-watch.ts says what and why). */
  diskLimitExceeded: 'disk_limit_exceeded',
} as const;

/**
 * Exit codes reserved by the Flashpods images' identity step (images/lib/identity.sh, used by
 * the agent's /entrypoint.sh and the worker image's flashpods-tokens) — the single source of
 * these numbers; the shell sets FP_EXIT_* to the same values and test/e2e/identity.test.ts
 * checks they agree. A container that exits with one of them fails its job with that `error`:
 *   90 spire_attestation_timeout — the SPIRE socket did not answer within 10 s, or no JWT-SVID
 *      after 3 tries;
 *   91 token_exchange_failed — no usable answer from the token service after 3 tries, or a
 *      token the identity needs was missing.
 * They count only where Flashpods' own script ran the identity step: every agent job (agent
 * jobs always run the agent image, whose entrypoint maps its coding agent's own 90/91 to 1), and
 * worker jobs created with `need_github_token: true` (whose image's flashpods-tokens ran it before
 * the command; such a command should not exit 90/91 itself).
 */
export const ENTRYPOINT_EXIT_CODES: Readonly<Record<number, (typeof JOB_ERRORS)['spireAttestationTimeout' | 'tokenExchangeFailed']>> = {
  90: JOB_ERRORS.spireAttestationTimeout,
  91: JOB_ERRORS.tokenExchangeFailed,
};

/** The error an exit code means for a job, when Flashpods' identity step ran in it. */
export function entrypointExitError(job: { jobType: JobType; needGithubToken: boolean }, exitCode: number | null): JobError | undefined {
  if (exitCode === null) return undefined;
  if (job.jobType !== 'agent' && !job.needGithubToken) return undefined;
  const text = ENTRYPOINT_EXIT_CODES[exitCode];
  if (text === JOB_ERRORS.spireAttestationTimeout) return { code: 'spire_attestation_timeout' };
  if (text === JOB_ERRORS.tokenExchangeFailed) return { code: 'token_exchange_failed' };
  return undefined;
}

/**
 * Why a job failed, as a value: this is what travels between actors and what the lifecycle
 * decides. The database keeps the code (`error_code`) beside the text the API shows (`error`,
 * from jobErrorText), so nothing ever parses a "code: message" string back.
 */
export type JobError =
  | { code: 'timeout' }
  | { code: 'oom_killed' }
  | { code: 'process_exited'; exitCode: number }
  | { code: 'container_start_failed'; reason: string }
  | { code: 'container_not_found_on_recovery' }
  | { code: 'container_lost_on_recovery' }
  /** The backend can no longer say what the running container does (its Kubernetes node went silent). */
  | { code: 'container_lost'; reason: string }
  | { code: 'container_runtime_unavailable'; reason: string }
  | { code: 'spire_attestation_timeout' }
  | { code: 'token_exchange_failed' }
  | { code: 'artifact_copy_permission'; reason: string }
  | { code: 'disk_limit_exceeded'; reason: string }
  | { code: 'upload_mount_refused'; reason: string }
  | QueueTimeout
  | LargerThanHost;

/** A queued job that waited its queue_timeout_minutes out (→ `expired`). */
export interface QueueTimeout {
  code: 'queue_timeout';
  waitedMs: number;
  queueTimeoutMinutes: number;
}

/** A queued job the host can no longer hold at all (its capacity was lowered while it waited). */
export interface LargerThanHost {
  code: 'larger_than_host';
  requested: { cpus: number; memoryGb: number };
  capacity: { cpus: number; memoryGb: number };
}

export type JobErrorCode = JobError['code'];

/**
 * The API's `error` field: the contract's fixed texts (jobs.md) where it has one, otherwise the
 * code followed by what a human needs to act; an artifacts note (dropped entries) is appended.
 */
export function jobErrorText(error: JobError | undefined, note?: string): string | undefined {
  const text = error === undefined ? undefined : describeJobError(error);
  if (text === undefined) return note;
  return note === undefined ? text : `${text}; ${note}`;
}

function describeJobError(error: JobError): string {
  switch (error.code) {
    case 'timeout': return JOB_ERRORS.timeout;
    case 'oom_killed': return JOB_ERRORS.oomKilled;
    case 'process_exited': return `Process exited with code ${error.exitCode}`;
    case 'container_not_found_on_recovery': return JOB_ERRORS.notFoundOnRecovery;
    case 'container_lost_on_recovery': return JOB_ERRORS.lostOnRecovery;
    case 'spire_attestation_timeout': return JOB_ERRORS.spireAttestationTimeout;
    case 'token_exchange_failed': return JOB_ERRORS.tokenExchangeFailed;
    case 'container_start_failed':
    case 'container_runtime_unavailable':
    case 'container_lost':
    case 'artifact_copy_permission':
    case 'disk_limit_exceeded':
    case 'upload_mount_refused':
      return `${error.code}: ${error.reason}`;
    case 'queue_timeout':
      return `queue_timeout: waited ${duration(error.waitedMs)} in the queue without room to start (queue_timeout_minutes ${error.queueTimeoutMinutes}); `
        + 'submit it again when the host is less busy, or with a longer queue_timeout_minutes or fewer cpus/memory_gb';
    case 'larger_than_host': {
      const { requested: r, capacity: c } = error;
      return `larger_than_host: the job needs ${r.cpus} cpus and ${r.memoryGb} GB but the host's capacity is now ${c.cpus} cpus and ${c.memoryGb} GB `
        + '(it was lowered while the job was queued); submit it again with fewer cpus/memory_gb';
    }
  }
}

function duration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  const parts = [[Math.floor(seconds / 3600), 'h'], [Math.floor(seconds / 60) % 60, 'min'], [seconds % 60, 's']] as const;
  const shown = parts.filter(([n]) => n > 0).map(([n, unit]) => `${n} ${unit}`);
  return shown.length ? shown.join(' ') : '0 s';
}

export const ID_PATTERNS = {
  job: /^job_[a-z0-9]{16}$/,
  // Hyphens too: the spec's example generator `upload_${crypto.randomUUID().slice(0, 12)}` makes
  // ids like upload_1b9d6bcd-bbf. The `upload_` prefix keeps an id from ever reading as an option.
  upload: /^upload_[A-Za-z0-9-]{12}$/,
} as const;

/** How an upload id looks, for messages that refuse one. */
export const UPLOAD_ID_SHAPE = 'upload_ followed by 12 letters, digits or hyphens';
