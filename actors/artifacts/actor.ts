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
import type { Dropped, IndexInput, IndexOutput } from './index-tree.task.ts';
import type { ArtifactsProtocol } from './messages.ts';

let pool: TaskPool<IndexInput, IndexOutput> | undefined;

const REASONS: Record<Dropped['reason'], string> = {
  escaping_symlink: 'symlink pointing outside /artifacts',
  invalid_name: 'invalid name',
  file_too_large: 'file over the per-file limit',
  too_many_files: 'over the file-count limit',
  job_too_large: 'over the per-job size limit',
};

/** "artifacts dropped: 1 file over the per-file limit (big.bin); …" — symlinks only warn. */
export function describeDropped(dropped: Dropped[]): string | undefined {
  const limited = dropped.filter((d) => d.reason !== 'escaping_symlink');
  if (limited.length === 0) return undefined;
  const groups = new Map<Dropped['reason'], string[]>();
  for (const d of limited) groups.set(d.reason, [...(groups.get(d.reason) ?? []), d.path]);
  const parts = [...groups].map(([reason, paths]) => {
    const shown = paths.slice(0, 3).join(', ') + (paths.length > 3 ? `, … ${paths.length - 3} more` : '');
    return `${paths.length} ${REASONS[reason]} (${shown})`;
  });
  return `artifacts dropped: ${parts.join('; ')}`;
}

export default defineActor<ArtifactsProtocol, FlashpodsConfig>({
  start(ctx) {
    const { config, log } = ctx;
    const scheduler = ctx.peer<SchedulerProtocol>('scheduler');
    pool = createTaskPool<IndexInput, IndexOutput>(new URL('./index-tree.task.ts', import.meta.url), 1);
    const tasks = pool;
    return {
      async indexJob({ jobId }) {
        const started = performance.now();
        log.debug(`job ${jobId}: indexing artifacts`, { event: 'artifacts_indexing', job_id: jobId });
        const result = await tasks.run({
          dir: join(config.paths.artifacts, jobId),
          fileMaxBytes: config.limits.artifactFileMaxBytes,
          jobMaxBytes: config.limits.artifactJobMaxBytes,
          maxFiles: config.limits.artifactMaxFiles,
        });
        if (!result.ok) {
          log.warn(`job ${jobId}: indexing artifacts failed: ${result.message}`, { event: 'artifacts_failed', job_id: jobId, code: result.code });
          await scheduler.call('recordArtifacts', { jobId, artifacts: [] });
          return { artifacts: 0, note: undefined, failure: `${result.code}: ${result.message}` };
        }
        for (const d of result.dropped) {
          const fields = { event: 'artifact_dropped', job_id: jobId, path: d.path, reason: d.reason };
          if (d.reason === 'escaping_symlink') log.warn(`job ${jobId}: removed ${d.path}, a symlink that escapes /artifacts`, fields);
          else log.info(`job ${jobId}: dropped ${d.path} (${REASONS[d.reason]})`, fields);
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
