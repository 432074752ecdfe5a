/**
 * @module scheduler/deadlines
 * The scheduler's clock for running jobs: one timer per job, armed by the lifecycle's
 * `armDeadline` command, reporting `deadlinePassed` when it fires. Arming again at the same
 * time keeps the timer, so the reconcile pass may re-arm on every report. The timers live in
 * memory only: after a restart the scheduler re-arms them from the store (lifecycle `onResume`),
 * and every reconcile report of a running job checks the deadline again.
 */
export class Deadlines {
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly onPassed: (jobId: string) => void;

  constructor(onPassed: (jobId: string) => void) {
    this.onPassed = onPassed;
  }

  arm(jobId: string, at: number): void {
    const existing = this.timers.get(jobId);
    if (existing?.at === at) return;
    if (existing) clearTimeout(existing.timer);
    // setTimeout's maximum is ~24.8 days; timeouts are at most 120 min.
    const timer = setTimeout(() => {
      this.timers.delete(jobId);
      this.onPassed(jobId);
    }, Math.max(0, at - Date.now()));
    this.timers.set(jobId, { at, timer });
  }

  clear(): void {
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
