/**
 * @module artifacts/messages
 * The artifact indexer: the container actor asks it to index a job's /artifacts after the
 * container exited and before the job's final status is written.
 */
export type ArtifactsProtocol = {
  indexJob: { req: { jobId: string }; res: IndexSummary };
};

export interface IndexSummary {
  artifacts: number;
  /** Human note for the job's `error` when entries were dropped (the outcome is unchanged). */
  note: string | undefined;
  /** Set when indexing itself failed: the job fails with this code. */
  failure: string | undefined;
}

/**
 * The indexer's clocks, from the one setting timing.artifactIndexBudgetMs: the walk stops
 * itself at the budget; a grace later the pool ends its thread; a grace after that the caller
 * stops waiting. So an answer always comes, even from a stuck or crashed indexer, and the job
 * finishes and releases what it reserved.
 */
const INDEX_GRACE_MS = 15_000;
export const indexAbortMs = (budgetMs: number): number => budgetMs + INDEX_GRACE_MS;
export const indexCallTimeoutMs = (budgetMs: number): number => budgetMs + 2 * INDEX_GRACE_MS;

/**
 * The job's `error` when indexing itself broke down (a crashed or stuck indexer, not a bad
 * entry): nothing is listed, and, as for dropped entries, the outcome stays the exit code's —
 * the command did run; it is Flashpods that could not index what it left.
 */
export const notIndexedNote = (why: string): string => `artifacts not indexed: the indexer stopped (${why}); none are listed`;
