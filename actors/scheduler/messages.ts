/**
 * @module scheduler/messages
 * The scheduler owns every job's lifecycle and every write to the store. The API asks it to
 * create and cancel jobs and to finalize or delete uploads; the executors (containers,
 * artifacts) report facts to it and receive commands from it. After every change to a job it
 * publishes `job-changed`, which the API's long-polls and streams wait on.
 */
import type { ErrorCodeOf, RuntimeErrorCode } from '../../runtime/envelope.ts';
import type { ErrorCode } from '../contract/errors.ts';
import type { JobState } from '../contract/jobs.ts';
import type { JobRow, UploadRow } from '../store/rows.ts';
import type { CleanupCounts, DiskUsage } from './cleanup.ts';
import type { JobRequest } from './job-request.ts';
import type { Fact } from './lifecycle.ts';

type Empty = Record<string, never>;

/** Every write can fail because the database cannot write (database-errors.ts). */
type Db = 'database_error';

export type SchedulerProtocol = {
  createJob: {
    req: JobRequest; res: { job: JobRow; created: boolean };
    errors: 'insufficient_resources' | 'queue_full' | 'upload_not_found' | 'upload_not_finalized' | 'upload_expired' | 'upload_already_consumed' | Db;
  };
  cancelJob: { req: { jobId: string }; res: { job: JobRow }; errors: 'job_not_found' | 'job_already_terminal' | Db };
  finalizeUpload: {
    req: { uploadId: string }; res: UploadRow;
    errors: 'invalid_upload_id' | 'upload_not_found' | 'upload_in_progress' | 'upload_already_finalized' | 'upload_already_consumed' | 'upload_expired' | 'insufficient_storage' | Db;
  };
  deleteUpload: { req: { uploadId: string }; res: Empty; errors: 'invalid_upload_id' | 'upload_not_found' | 'upload_already_consumed' | Db };
  /** A fact about a job, from an executor: the lifecycle decides what follows. */
  report: { req: { jobId: string; fact: Fact }; res: Empty; errors: Db };
  /** For the reconcile pass: every job whose container may exist or whose end is not recorded yet. */
  unsettledJobs: { req: Empty; res: { instanceId: string; jobs: UnsettledJob[] }; errors: Db };
  /** A labelled container of this instance that no unsettled job accounts for. */
  strayContainer: { req: { containerId: string; name: string; jobId: string }; res: Empty; errors: Db };
};

/** The domain codes the scheduler answers with: all of them contract codes the API can pass on. */
export type SchedulerErrorCode = Exclude<ErrorCodeOf<SchedulerProtocol>, RuntimeErrorCode>;
const EVERY_SCHEDULER_ERROR = {
  insufficient_resources: true, queue_full: true, upload_not_found: true, upload_not_finalized: true, upload_expired: true, upload_already_consumed: true,
  job_not_found: true, job_already_terminal: true, invalid_upload_id: true, upload_in_progress: true, upload_already_finalized: true, insufficient_storage: true,
  database_error: true,
} as const satisfies Record<SchedulerErrorCode, true>;
export const SCHEDULER_ERRORS = Object.keys(EVERY_SCHEDULER_ERROR) as SchedulerErrorCode[];
/** Compiles only while every scheduler code is a contract code (contract/errors.ts). */
export type SchedulerCodesAreContractCodes = SchedulerErrorCode extends ErrorCode ? true : never;
const _checked: SchedulerCodesAreContractCodes = true;

/** What the executor needs to observe a job's container and finish its log. */
export interface UnsettledJob {
  jobId: string;
  status: JobState;
  containerId: string | null;
  logPath: string;
  logCapBytes: number;
  /** The job's log was truncated at the cap (so a resumed capture writes nothing more). */
  logTruncated: boolean;
}

export const SCHEDULER_EVENTS = {
  /** A job's row changed; `status` is its new status. */
  jobChanged: 'job-changed',
  /** A cleanup pass finished: what it did and the disk usage it saw (CleanupReport). */
  cleanupDone: 'cleanup-done',
  /** POST /jobs was refused for lack of capacity. */
  admissionRejected: 'admission-rejected',
} as const;

export interface CleanupReport {
  counts: CleanupCounts;
  usage: DiskUsage;
}

export interface JobChanged {
  jobId: string;
  status: JobState;
}
