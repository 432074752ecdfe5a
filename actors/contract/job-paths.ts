/**
 * @module contract/job-paths
 * Every on-disk path of a job or an upload, built in this one place from the configured roots
 * (storage.md): the job's log file, its artifact directory, conmon's record of its output and the
 * capture's resume point (containers/conmon-capture.ts), an upload while rsync writes it, and
 * the sealed snapshot a finalized upload becomes. Callers never join these paths themselves.
 */
import { join } from 'node:path';
import type { FlashpodsConfig } from './config.ts';

export type PathRoots = Pick<FlashpodsConfig['paths'], 'logs' | 'artifacts' | 'containerLogs' | 'uploads' | 'sealedUploads'>;

export interface JobPaths {
  /** `<logs>/<job_id>.log` */
  log(jobId: string): string;
  /** `<artifacts>/<job_id>`, bind-mounted at /artifacts. */
  artifacts(jobId: string): string;
  /** `<container-logs>/<job_id>.ctr.log`: conmon's k8s-file of the job's output. */
  containerLog(jobId: string): string;
  /** `<container-logs>/<job_id>.capture.json`: where the job log's capture resumes in it. */
  captureState(jobId: string): string;
  /** `<uploads>/<upload_id>`, inside the rsync module, until finalize moves it. */
  rsyncUpload(uploadId: string): string;
  /** `<sealed>/<upload_id>`, outside the rsync module, mounted at /work. */
  sealedUpload(uploadId: string): string;
  /** The job id a file name in the logs root belongs to, or undefined for anything else. */
  jobOfLogFile(name: string): string | undefined;
}

const LOG_SUFFIX = '.log';

/** The file names of a job's conmon log and capture state, in the container-logs root. */
export const containerLogName = (jobId: string) => `${jobId}.ctr.log`;
export const captureStateName = (jobId: string) => `${jobId}.capture.json`;

export function jobPaths(roots: PathRoots): JobPaths {
  return {
    log: (jobId) => join(roots.logs, `${jobId}${LOG_SUFFIX}`),
    artifacts: (jobId) => join(roots.artifacts, jobId),
    containerLog: (jobId) => join(roots.containerLogs, containerLogName(jobId)),
    captureState: (jobId) => join(roots.containerLogs, captureStateName(jobId)),
    rsyncUpload: (uploadId) => join(roots.uploads, uploadId),
    sealedUpload: (uploadId) => join(roots.sealedUploads, uploadId),
    jobOfLogFile: (name) => (name.endsWith(LOG_SUFFIX) ? name.slice(0, -LOG_SUFFIX.length) : undefined),
  };
}
