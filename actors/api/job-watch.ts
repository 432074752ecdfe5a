/**
 * @module job-watch
 * Wakes long-polls and live log streams when the scheduler reports a job change, and log streams
 * when the job's log file is written (inotify), instead of having each of them poll.
 */
import { watch, type FSWatcher } from 'node:fs';
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

/**
 * Changes of one file, as wake-ups. The file may not exist yet (a job still pending): then
 * nothing is watched and only the caller's fallback period wakes it, until `rearm` finds it.
 */
export class FileWake {
  private watcher: FSWatcher | undefined;
  private waiting: (() => void) | undefined;
  private changed = false;

  constructor(private readonly path: string) {
    this.rearm();
  }

  /** Starts watching once the file exists; true while it is watched. */
  rearm(): boolean {
    if (this.watcher) return true;
    try {
      this.watcher = watch(this.path, () => this.fire());
      this.watcher.on('error', () => this.close());
    } catch {
      return false;
    }
    return true;
  }

  /** Resolves at the next change since the last call (at once if one came meanwhile). */
  next(): Promise<void> {
    if (this.changed) {
      this.changed = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.waiting = () => {
        this.changed = false;
        resolve();
      };
    });
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  private fire(): void {
    this.changed = true;
    const wake = this.waiting;
    this.waiting = undefined;
    wake?.();
  }
}
