/**
 * @module artifacts
 * The artifact indexing actor. Walking a tree can be slow, so it runs on a piscina pool; the
 * result is recorded through the scheduler (the only writer) in one transaction, so a listing is
 * never half-indexed: until then the job says copy_in_progress.
 */
import { join } from 'node:path';
import { defineActor } from '../../runtime/actor.ts';
import { createTaskPool, type TaskPool } from '../../runtime/task-pool.ts';
import type { FlashpodsConfig } from '../contract/config.ts';
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

export default defineActor<ArtifactsProtocol, FlashpodsConfig>({
  start(ctx) {
    const { config, log } = ctx;
    const scheduler = ctx.peer<SchedulerProtocol>('scheduler');
    pool = createTaskPool<IndexInput, IndexOutput>(new URL('./index-tree.task.ts', import.meta.url), 1);
    const tasks = pool;
    const budgetMs = config.timing.artifactIndexBudgetMs;
    return {
      async indexJob({ jobId }) {
        const started = performance.now();
        log.debug(`job ${jobId}: indexing artifacts`, { event: 'artifacts_indexing', job_id: jobId });
        let result: IndexOutput;
        try {
          // The walk stops itself at the budget; the signal ends a thread that does not.
          result = await tasks.run(
            { dir: join(config.paths.artifacts, jobId), fileMaxBytes: config.limits.artifactFileMaxBytes, jobMaxBytes: config.limits.artifactJobMaxBytes, maxEntries: config.limits.artifactMaxFiles, budgetMs },
            { signal: AbortSignal.timeout(indexAbortMs(budgetMs)) },
          );
        } catch (err) {
          const why = (err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError' ? `still running ${indexAbortMs(budgetMs) / 1000} s after it started` : (err as Error).message;
          log.error(`job ${jobId}: the artifact indexer stopped (${why}); the job finishes with no artifacts listed. Its files stay in ${join(config.paths.artifacts, jobId)} until cleanup.`, {
            event: 'artifacts_index_failed', job_id: jobId,
          });
          await scheduler.call('recordArtifacts', { jobId, artifacts: [] });
          return { artifacts: 0, note: notIndexedNote(why), failure: undefined };
        }
        if (!result.ok) {
          log.warn(`job ${jobId}: indexing artifacts failed: ${result.message}`, { event: 'artifacts_failed', job_id: jobId, code: result.code });
          await scheduler.call('recordArtifacts', { jobId, artifacts: [] });
          return { artifacts: 0, note: undefined, failure: `${result.code}: ${result.message}` };
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
        await scheduler.call('recordArtifacts', { jobId, artifacts: result.artifacts });
        log.debug(`job ${jobId}: ${result.artifacts.length} artifacts indexed`, { event: 'artifacts_indexed', job_id: jobId, ms: Math.round(performance.now() - started) });
        return { artifacts: result.artifacts.length, note: describeDropped(result.dropped), failure: undefined };
      },
    };
  },
  async stop() {
    await pool?.destroy();
  },
});
