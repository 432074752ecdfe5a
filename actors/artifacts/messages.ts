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
