/**
 * @module job-watch
 * Wakes long-polls and live log streams when the scheduler reports a job change, instead of
 * having each of them poll the database.
 */
import { createNanoEvents } from 'nanoevents';
import type { JobState } from '../contract/jobs.ts';

export class JobWatch {
  private readonly emitter = createNanoEvents<Record<string, (status: JobState) => void>>();

  notify(jobId: string, status: JobState): void {
    this.emitter.emit(jobId, status);
  }

  /** Resolves on the next change of the job, or after `ms`; `signal` cancels the wait. */
  nextChange(jobId: string, ms: number, signal?: AbortSignal): Promise<JobState | undefined> {
    return new Promise((resolve) => {
      const done = (status: JobState | undefined) => {
        clearTimeout(timer);
        unbind();
        signal?.removeEventListener('abort', onAbort);
        resolve(status);
      };
      const onAbort = () => done(undefined);
      const timer = setTimeout(() => done(undefined), ms);
      const unbind = this.emitter.on(jobId, done);
      signal?.addEventListener('abort', onAbort);
    });
  }
}
