/**
 * @module test/actors/scheduler/lifecycle-fixtures
 * Jobs in every state the lifecycle distinguishes, one of each fact, and the environment: the
 * rows and facts of the state-table test.
 */
import { jobPaths } from '../../../actors/contract/job-paths.ts';
import type { Fact, FactType, LifecycleEnv } from '../../../actors/scheduler/lifecycle.ts';
import type { JobRow } from '../../../actors/store/rows.ts';

export const NOW = 1_800_000_000_000;
const MIN = 60_000;

export const env: LifecycleEnv = {
  now: NOW,
  paths: jobPaths({ logs: '/logs', artifacts: '/artifacts', containerLogs: '/container-logs', uploads: '/uploads', sealedUploads: '/sealed' }),
  killGraceMs: 10_000,
  timeoutMinuteMs: MIN,
  pendingMaxMs: 5 * MIN,
  indexGiveUpMs: 2 * MIN,
  logCapBytes: 1024,
  artifactTtlMs: 60 * MIN,
  logTtlMs: 24 * 60 * MIN,
  container: { pidsLimit: 1024, rootless: true, networkMode: 'slirp4netns', instanceId: 'inst', spireSocket: '/run/spire.sock', tokenSocket: '/run/token.sock' },
};

export function job(overrides: Partial<JobRow> = {}): JobRow {
  return {
    id: 'job_aaaaaaaaaaaaaaaa', user_id: 'default', job_type: 'worker', status: 'pending', command: 'make test', task: null, context: null,
    git_branch: null, files_id: 'upload_AAAAAAAAAAAA', image: 'localhost/busybox:test', cpus: 1, memory_gb: 1, timeout_minutes: 30,
    container_id: null, exit_code: null, error: null, created_at: NOW - 10 * MIN, started_at: null, completed_at: null, log_truncated: 0,
    kill_requested_at: null, kill_reason: null, resources_released_at: null, artifacts_indexed_at: null, artifacts_deleted_at: null,
    logs_deleted_at: null, pending_finish: null, need_github_token: 0, error_code: null, outcome: null, failure: null,
    queued_at: null, queue_seq: null, queue_timeout_minutes: null, admitted_at: NOW - 10 * MIN, backfilled: 0,
    ...overrides,
  };
}

const ran = { container_id: 'c1', started_at: NOW - 5 * MIN };
const ended = (exitCode: number | null) => JSON.stringify({ exitCode, oomKilled: false });
const settled = { ...ran, resources_released_at: NOW - 2 * MIN, artifacts_indexed_at: NOW - 2 * MIN, completed_at: NOW - 2 * MIN };

/** One job per state the lifecycle tells apart (status plus the progress of its end). */
export const STATES = {
  queued: job({ status: 'queued', created_at: NOW - 2 * MIN, queued_at: NOW - 2 * MIN, queue_seq: 7, queue_timeout_minutes: 60, admitted_at: null }),
  pending: job({ created_at: NOW - MIN, admitted_at: NOW - MIN }),
  pendingStale: job({ created_at: NOW - 6 * MIN }),
  starting: job({ status: 'starting' }),
  created: job({ status: 'starting', container_id: 'c1' }),
  running: job({ status: 'running', ...ran }),
  overdue: job({ status: 'running', ...ran, started_at: NOW - 31 * MIN }),
  timingOut: job({ status: 'running', ...ran, started_at: NOW - 31 * MIN, kill_reason: 'timeout', kill_requested_at: NOW - 1_000 }),
  exited: job({ status: 'running', ...ran, pending_finish: ended(0) }),
  exitedIndexed: job({ status: 'running', ...ran, pending_finish: ended(0), artifacts_indexed_at: NOW - 1_000 }),
  exitedGone: job({ status: 'running', ...ran, pending_finish: ended(0), resources_released_at: NOW - 1_000 }),
  cancelledStarting: job({ status: 'cancelled', kill_reason: 'cancel', kill_requested_at: NOW - 1_000, completed_at: NOW - 1_000 }),
  cancelledCreated: job({ status: 'cancelled', container_id: 'c1', kill_reason: 'cancel', kill_requested_at: NOW - 1_000, completed_at: NOW - 1_000 }),
  cancelledRunning: job({ status: 'cancelled', ...ran, kill_reason: 'cancel', kill_requested_at: NOW - 1_000, completed_at: NOW - 1_000 }),
  cancelledExited: job({ status: 'cancelled', ...ran, kill_reason: 'cancel', kill_requested_at: NOW - 1_000, completed_at: NOW - 1_000, pending_finish: ended(143) }),
  // Finished at its exit (the log complete, the artifacts indexed); its container is being removed.
  completedNotGone: job({ status: 'completed', outcome: 'completed', exit_code: 0, ...ran, artifacts_indexed_at: NOW - 1_000, completed_at: NOW - 1_000 }),
  completed: job({ status: 'completed', outcome: 'completed', exit_code: 0, ...settled }),
  failed: job({ status: 'failed', outcome: 'failed', exit_code: 3, error: 'Process exited with code 3', error_code: 'process_exited', ...settled }),
  timedOut: job({ status: 'timed_out', outcome: 'timed_out', exit_code: 137, kill_reason: 'timeout', error: 'Job exceeded timeout limit', error_code: 'timeout', ...settled }),
  cancelled: job({ status: 'cancelled', outcome: 'cancelled', exit_code: 143, kill_reason: 'cancel', ...settled }),
  expired: job({
    status: 'expired', outcome: 'expired', queued_at: NOW - 70 * MIN, queue_seq: 3, queue_timeout_minutes: 60, admitted_at: null, error_code: 'queue_timeout',
    error: 'queue_timeout: waited 1 h in the queue', resources_released_at: NOW - 10 * MIN, artifacts_indexed_at: NOW - 10 * MIN, completed_at: NOW - 10 * MIN,
  }),
  artifactsDue: job({ status: 'completed', outcome: 'completed', exit_code: 0, ...settled, completed_at: NOW - 61 * MIN }),
  logsDue: job({ status: 'completed', outcome: 'completed', exit_code: 0, ...settled, completed_at: NOW - 25 * 60 * MIN, artifacts_deleted_at: NOW - 23 * 60 * MIN }),
  cleaning: job({ status: 'cleaning', outcome: 'completed', exit_code: 0, ...settled, artifacts_deleted_at: NOW - 1_000 }),
  cleaned: job({ status: 'cleaned', outcome: 'completed', exit_code: 0, ...settled, artifacts_deleted_at: NOW - 1_000, logs_deleted_at: NOW - 1_000 }),
} satisfies Record<string, JobRow>;

export type StateName = keyof typeof STATES;

/** One of each fact, and the variants of an exit that lead to different outcomes. */
export const FACTS = {
  admitted: { type: 'admitted', backfilled: false },
  admittedBackfill: { type: 'admitted', backfilled: true },
  queueTimedOut: { type: 'queueGaveUp', error: { code: 'queue_timeout', waitedMs: 3_600_000, queueTimeoutMinutes: 60 } },
  queueLargerThanHost: { type: 'queueGaveUp', error: { code: 'larger_than_host', requested: { cpus: 8, memoryGb: 1 }, capacity: { cpus: 4, memoryGb: 8 } } },
  containerCreating: { type: 'containerCreating' },
  containerCreated: { type: 'containerCreated', containerId: 'c1' },
  containerStarted: { type: 'containerStarted', containerId: 'c1', startedAt: NOW - 1_000 },
  startFailed: { type: 'startFailed', error: { code: 'container_start_failed', reason: 'image pull failed for x' } },
  exited0: { type: 'containerExited', containerId: 'c1', exitCode: 0, oom: { stateOomKilled: false, cgroupEvidence: false } },
  exited3: { type: 'containerExited', containerId: 'c1', exitCode: 3, oom: { stateOomKilled: false, cgroupEvidence: false } },
  exitedOom: { type: 'containerExited', containerId: 'c1', exitCode: 137, oom: { stateOomKilled: false, cgroupEvidence: true } },
  diskLimitExceeded: { type: 'diskLimitExceeded', reason: 'the job held 4 MB in /artifacts, over its 3 MB disk budget', bytes: 4 * 1024 ** 2, entries: 3 },
  containerGone: { type: 'containerGone' },
  containerMissing: { type: 'containerMissing' },
  containerLost: { type: 'containerLost', containerId: 'c1', reason: 'its node n1 stopped reporting to the cluster for 60 s' },
  runtimeUnreachable: { type: 'runtimeUnreachable', reason: 'Podman was unreachable' },
  logTruncated: { type: 'logTruncated' },
  artifactsIndexed: { type: 'artifactsIndexed', summary: { artifacts: [{ name: 'out.txt', sizeBytes: 3, createdAt: NOW, kind: 'file' }] } },
  killRequested: { type: 'killRequested' },
  deadlinePassed: { type: 'deadlinePassed' },
  cleanupPass: { type: 'cleanupPass' },
  artifactsDeleted: { type: 'artifactsDeleted' },
  logEvicted: { type: 'logEvicted' },
  logDeleted: { type: 'logDeleted' },
  jobFilesDeleted: { type: 'jobFilesDeleted' },
} satisfies Record<string, Fact>;

export type FactName = keyof typeof FACTS;

/** Every fact type has at least one fact in FACTS (checked by the compiler through this list). */
export const FACT_TYPES_COVERED: Record<FactType, FactName> = {
  admitted: 'admitted', queueGaveUp: 'queueTimedOut',
  containerCreating: 'containerCreating', containerCreated: 'containerCreated', containerStarted: 'containerStarted', startFailed: 'startFailed',
  containerExited: 'exited0', diskLimitExceeded: 'diskLimitExceeded', containerGone: 'containerGone', containerMissing: 'containerMissing', containerLost: 'containerLost', runtimeUnreachable: 'runtimeUnreachable',
  logTruncated: 'logTruncated', artifactsIndexed: 'artifactsIndexed', killRequested: 'killRequested', deadlinePassed: 'deadlinePassed',
  cleanupPass: 'cleanupPass', artifactsDeleted: 'artifactsDeleted', logEvicted: 'logEvicted', logDeleted: 'logDeleted', jobFilesDeleted: 'jobFilesDeleted',
};
