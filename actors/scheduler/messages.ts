/**
 * @module scheduler/messages
 * The scheduler owns every job's lifecycle and every write to the store. The API asks it to
 * create and cancel jobs and to finalize or delete uploads; the executors (containers,
 * artifacts) report facts to it and receive commands from it. After every change to a job it
 * publishes `job-changed`, which the API's long-polls and streams wait on.
 */
import type { ErrorCode } from '../contract/errors.ts';
import type { JobState } from '../contract/jobs.ts';
import type { JobRow, UploadRow } from '../store/rows.ts';
import type { CleanupCounts, DiskUsage } from './cleanup.ts';
import type { JobRequest } from './job-request.ts';
import type { Fact } from './lifecycle.ts';

type Empty = Record<string, never>;

export type SchedulerProtocol = {
  createJob: { req: JobRequest; res: { job: JobRow; created: boolean } };
  cancelJob: { req: { jobId: string }; res: { job: JobRow } };
  finalizeUpload: { req: { uploadId: string }; res: UploadRow };
  deleteUpload: { req: { uploadId: string }; res: Empty };
  /** A fact about a job, from an executor: the lifecycle decides what follows. */
  report: { req: { jobId: string; fact: Fact }; res: Empty };
  /** For the reconcile pass: every job whose container may exist or whose end is not recorded yet. */
  unsettledJobs: { req: Empty; res: { instanceId: string; jobs: UnsettledJob[] } };
  /** A labelled container of this instance that no unsettled job accounts for. */
  strayContainer: { req: { containerId: string; name: string; jobId: string }; res: Empty };
};

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

/** The error codes the scheduler's requests can fail with (WireError.code of this protocol). */
export type SchedulerErrorCode = Extract<ErrorCode,
  | 'insufficient_resources' | 'job_not_found' | 'job_already_terminal' | 'database_error'
  | 'upload_not_found' | 'upload_not_finalized' | 'upload_expired' | 'upload_already_consumed' | 'upload_already_finalized'
  | 'invalid_upload_id' | 'insufficient_storage'>;

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
