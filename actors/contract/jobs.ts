/**
 * @module contract/jobs
 * Job types, states and per-type limits from jobs.md, shared by the API, the scheduler, the
 * container actor, the MCP shim and the tests.
 */
export const JOB_TYPES = ['worker', 'agent'] as const;
export type JobType = (typeof JOB_TYPES)[number];

export const JOB_STATES = ['pending', 'starting', 'running', 'completed', 'failed', 'timed_out', 'cancelled', 'cleaning', 'cleaned'] as const;
export type JobState = (typeof JOB_STATES)[number];

export const TERMINAL_STATES: readonly JobState[] = ['completed', 'failed', 'timed_out', 'cancelled'];
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
export const MAX_COMMAND_CHARS = 10_000;
export const MAX_TASK_CHARS = 100_000;
export const MAX_CONTEXT_CHARS = 100_000;
export const MAX_IMAGE_CHARS = 255;
export const DEFAULT_WORKER_IMAGE = 'ubuntu:22.04';

/** GET /jobs?status= groups. */
export const STATUS_FILTERS: Record<'all' | 'running' | 'completed' | 'failed', readonly JobState[] | undefined> = {
  all: undefined,
  running: ACTIVE_STATES,
  completed: ['completed'],
  failed: ['failed', 'timed_out', 'cancelled'],
};
export const LIST_LIMIT = { default: 20, max: 100 } as const;
export const OUTPUT_TAIL = { default: 100, max: 10_000 } as const;

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

/** The `error` an exit code means for a job, when Flashpods' identity step ran in it. */
export function entrypointExitError(job: { jobType: JobType; needGithubToken: boolean }, exitCode: number | null): string | undefined {
  if (exitCode === null) return undefined;
  if (job.jobType !== 'agent' && !job.needGithubToken) return undefined;
  return ENTRYPOINT_EXIT_CODES[exitCode];
}

export const ID_PATTERNS = {
  job: /^job_[a-z0-9]{16}$/,
  // Hyphens too: the spec's example generator `upload_${crypto.randomUUID().slice(0, 12)}` makes
  // ids like upload_1b9d6bcd-bbf. The `upload_` prefix keeps an id from ever reading as an option.
  upload: /^upload_[A-Za-z0-9-]{12}$/,
} as const;

/** How an upload id looks, for messages that refuse one. */
export const UPLOAD_ID_SHAPE = 'upload_ followed by 12 letters, digits or hyphens';
