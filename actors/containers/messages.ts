/**
 * @module containers/messages
 * The container actor acts on the scheduler's `job-changed` events (a new pending job is
 * started, a cancelled one is killed) and on its own reconcile pass; callers only ask it how it
 * is doing.
 */
export type ContainersProtocol = {
  status: { req: Record<string, never>; res: { podmanReachable: boolean; monitoredJobs: string[] } };
  /** Runs one reconcile pass now and reports what it did (tests and `flashpods validate` use it). */
  reconcile: { req: Record<string, never>; res: ReconcileReport };
};

export interface ReconcileReport {
  podmanReachable: boolean;
  adopted: string[];
  finished: string[];
  lost: string[];
  orphansRemoved: string[];
  started: string[];
}
