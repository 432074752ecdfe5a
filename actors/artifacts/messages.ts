/**
 * @module artifacts/messages
 * The artifact indexer is an executor: the scheduler commands it to index a job's /artifacts
 * directory once the job's container has ended, and it reports the result back as the
 * `artifactsIndexed` fact. The command is answered at once; indexing a large tree takes a while.
 */
import type { Accepted } from '../contract/commands.ts';

export type ArtifactsProtocol = {
  indexArtifacts: { req: { jobId: string; dir: string }; res: Accepted };
};

/** One top-level entry of /artifacts that is served. */
export type { IndexedArtifact } from './index-tree.task.ts';

/**
 * The indexer's clocks, from the one setting timing.artifactIndexBudgetMs: the walk stops
 * itself at the budget; a grace later the pool ends its thread; a grace after that the
 * lifecycle stops waiting for an answer. So every job gets an end, even from a stuck or crashed
 * indexer, and finishes.
 */
const INDEX_GRACE_MS = 15_000;
export const indexAbortMs = (budgetMs: number): number => budgetMs + INDEX_GRACE_MS;
export const indexGiveUpMs = (budgetMs: number): number => budgetMs + 2 * INDEX_GRACE_MS;

/**
 * The job's `error` note when indexing itself broke down (a crashed or stuck indexer, not a bad
 * entry): nothing is listed, and, as for dropped entries, the outcome stays the exit code's —
 * the command did run; it is Flashpods that could not index what it left.
 */
export const notIndexedNote = (why: string): string => `artifacts not indexed: the indexer stopped (${why}); none are listed`;
