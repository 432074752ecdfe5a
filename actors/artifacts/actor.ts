/**
 * @module artifacts
 * The artifact indexing actor, an executor: on the scheduler's `indexArtifacts` command it walks
 * the job's /artifacts directory on a piscina pool and reports `artifactsIndexed` with what is
 * served. The scheduler records that in one transaction, so a listing is never half-indexed:
 * until then the job says copy_in_progress. Every command gets a report, even when the walk
 * breaks down; an index of a job already being indexed is absorbed.
 */
import { defineActor } from '../../runtime/actor.ts';
import type { FlashpodsRegistry } from '../registry.ts';
import { createTaskPool, type TaskPool } from '../../runtime/task-pool.ts';
import type { FlashpodsConfig } from '../contract/config.ts';
import { ACCEPTED } from '../contract/commands.ts';
import type { Fact } from '../scheduler/lifecycle.ts';
import type { SchedulerProtocol } from '../scheduler/messages.ts';
import { PATH_MAX, type DropReason, type Dropped, type IndexInput, type IndexOutput } from './index-tree.task.ts';
import { indexAbortMs, notIndexedNote, type ArtifactsProtocol } from './messages.ts';

let pool: TaskPool<IndexInput, IndexOutput> | undefined;

const REASONS: Record<DropReason, string> = {
  escaping_symlink: 'symlink pointing outside /artifacts',
  unresolvable_symlink: 'dangling or looping symlink',
  invalid_name: 'invalid name',
  path_too_long: `entry whose path passes ${PATH_MAX} bytes`,
  unreadable: 'unreadable entry',
  vanished: 'entry that vanished while indexing',
  file_too_large: 'file over the per-file limit',
  too_many_files: 'over the file-count limit',
  job_too_large: 'over the per-job size limit',
  out_of_time: 'not indexed within the time budget',
  withheld: 'artifact withheld, holding entries that could not be removed',
};

/** A path as the note shows it: a 4 KB path would drown the job's error. */
function shown({ path, code }: Dropped['examples'][number]): string {
  const short = path.length > 120 ? `${path.slice(0, 60)}…${path.slice(-40)}` : path;
  return code ? `${short}: ${code}` : short;
}

/** "artifacts dropped: 1 file over the per-file limit (big.bin); …" — escaping symlinks only warn. */
export function describeDropped(dropped: Dropped[]): string | undefined {
  const parts = dropped
    .filter((d) => d.reason !== 'escaping_symlink')
    .map(({ reason, count, examples }) => {
      const more = count > 3 ? `, … ${count - 3} more` : '';
      return `${count} ${REASONS[reason]} (${examples.slice(0, 3).map(shown).join(', ')}${more})`;
    });
  return parts.length === 0 ? undefined : `artifacts dropped: ${parts.join('; ')}`;
}

export default defineActor<ArtifactsProtocol, FlashpodsConfig, FlashpodsRegistry>({
  start(ctx) {
    const { config, log } = ctx;
    const scheduler = ctx.peer('scheduler');
    pool = createTaskPool<IndexInput, IndexOutput>(new URL('./index-tree.task.ts', import.meta.url), 1);
    const tasks = pool;
    const budgetMs = config.timing.artifactIndexBudgetMs;
    const indexing = new Set<string>();

    const index = async (jobId: string, dir: string): Promise<Extract<Fact, { type: 'artifactsIndexed' }>> => {
      const started = performance.now();
      log.debug(`job ${jobId}: indexing artifacts`, { event: 'artifacts_indexing', job_id: jobId });
      let result: IndexOutput;
      try {
        // The walk stops itself at the budget; the signal ends a thread that does not.
        result = await tasks.run(
          { dir, fileMaxBytes: config.limits.artifactFileMaxBytes, jobMaxBytes: config.limits.artifactJobMaxBytes, maxEntries: config.limits.artifactMaxFiles, budgetMs },
          { signal: AbortSignal.timeout(indexAbortMs(budgetMs)) },
        );
      } catch (err) {
        const why = (err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError' ? `still running ${indexAbortMs(budgetMs) / 1000} s after it started` : (err as Error).message;
        log.error(`job ${jobId}: the artifact indexer stopped (${why}); the job finishes with no artifacts listed. Its files stay in ${dir} until cleanup.`, {
          event: 'artifacts_index_failed', job_id: jobId,
        });
        return { type: 'artifactsIndexed', summary: { artifacts: [], note: notIndexedNote(why) } };
      }
      if (!result.ok) {
        log.warn(`job ${jobId}: indexing artifacts failed: ${result.message}`, { event: 'artifacts_failed', job_id: jobId, code: result.code });
        return { type: 'artifactsIndexed', summary: { artifacts: [], failure: { code: result.code, reason: result.message } } };
      }
      for (const { reason, count, examples } of result.dropped) {
        for (const example of examples) {
          const fields = { event: 'artifact_dropped', job_id: jobId, path: example.path, reason, code: example.code };
          if (reason === 'escaping_symlink') log.warn(`job ${jobId}: removed ${shown(example)}, a symlink that escapes /artifacts`, fields);
          else log.info(`job ${jobId}: dropped ${shown(example)} (${REASONS[reason]})`, fields);
        }
        if (count > examples.length) log.info(`job ${jobId}: dropped ${count - examples.length} more (${REASONS[reason]})`, { event: 'artifact_dropped', job_id: jobId, reason, count: count - examples.length });
      }
      for (const a of result.artifacts.filter((x) => x.name.startsWith('.'))) {
        log.info(`job ${jobId}: hidden artifact ${a.name}`, { event: 'artifact_hidden', job_id: jobId, name: a.name });
      }
      log.debug(`job ${jobId}: ${result.artifacts.length} artifacts indexed`, { event: 'artifacts_indexed', job_id: jobId, ms: Math.round(performance.now() - started) });
      const note = describeDropped(result.dropped);
      return { type: 'artifactsIndexed', summary: { artifacts: result.artifacts, ...(note !== undefined ? { note } : {}) } };
    };

    return {
      indexArtifacts({ jobId, dir }) {
        if (indexing.has(jobId)) return ACCEPTED;
        indexing.add(jobId);
        void index(jobId, dir)
          .then((fact) => scheduler.call('report', { jobId, fact }))
          .catch((err: Error) => {
            // Not reported (the scheduler is restarting): the reconcile pass asks for the index again.
            log.warn(`job ${jobId}: artifacts indexed but not reported (${err.message}); the next reconcile pass asks again`, { event: 'artifacts_unreported', job_id: jobId });
          })
          .finally(() => indexing.delete(jobId));
        return ACCEPTED;
      },
    };
  },
  async stop() {
    await pool?.destroy();
  },
});
