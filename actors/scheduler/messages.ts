/**
 * @module scheduler/messages
 * The scheduler owns every write to the store. The API asks it to create and cancel jobs and to
 * finalize or delete uploads; the container actor reports each step of a job's life to it.
 * After every change it publishes `job-changed`, which the API's long-polls and streams wait on
 * and the container actor acts on.
 */
import type { JobState } from '../contract/jobs.ts';
import type { JobRow, UploadRow } from '../store/rows.ts';
import type { CleanupCounts, DiskUsage } from './cleanup.ts';
import type { Finish } from './jobs-store.ts';
import type { JobRequest } from './job-request.ts';

type Empty = Record<string, never>;

export type SchedulerProtocol = {
  createJob: { req: JobRequest; res: { job: JobRow; created: boolean } };
  cancelJob: { req: { jobId: string }; res: { job: JobRow } };
  finalizeUpload: { req: { uploadId: string }; res: UploadRow };
  deleteUpload: { req: { uploadId: string }; res: Empty };
  // Reported by the container actor:
  jobStarting: { req: { jobId: string }; res: { proceed: boolean } };
  jobRunning: { req: { jobId: string; containerId: string; startedAt: number }; res: { status: JobState | undefined } };
  jobTimedOut: { req: { jobId: string }; res: { kill: boolean } };
  recordArtifacts: { req: { jobId: string; artifacts: Array<{ name: string; sizeBytes: number; createdAt: number }> }; res: Empty };
  jobLogTruncated: { req: { jobId: string }; res: Empty };
  /** The container exited; its container is about to be removed. */
  jobExited: { req: { jobId: string; finish: Finish }; res: Empty };
  /** The final status; `released` when the container is gone (or never existed). */
  jobFinished: { req: { jobId: string; finish: Finish; released: boolean }; res: { job: JobRow | undefined } };
  jobReleased: { req: { jobId: string }; res: Empty };
};

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
