import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import artifactsActor from '../../../actors/artifacts/actor.ts';
import { loadConfig } from '../../../actors/contract/config.ts';
import { next } from '../../../actors/scheduler/lifecycle.ts';
import type { ActorContext, ActorLog, ActorRef } from '../../../runtime/actor.ts';
import type { FlashpodsRegistry } from '../../../actors/registry.ts';
import { env, NOW, STATES } from '../scheduler/lifecycle-fixtures.ts';

// The scheduler here is a stand-in that records the facts reported to it; the index task and
// its pool are real.
const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function recorder() {
  const calls: Array<[string, unknown]> = [];
  const ref = { name: 'scheduler', available: true, call: async (type: string, payload: unknown) => void calls.push([type, payload]) };
  return { calls, ref: ref as unknown as ActorRef<any> };
}

const logged: Array<[string, string]> = [];
const log: ActorLog = {
  debug: () => undefined,
  info: () => undefined,
  warn: (msg) => void logged.push(['warn', msg]),
  error: (msg) => void logged.push(['error', msg]),
};

describe('when indexing itself breaks down, the job still settles', () => {
  it('the artifacts actor reports no artifacts and a note when its index task throws', async () => {
    const home = mkdtempSync(join(tmpdir(), 'fp-indexer-'));
    made.push(home);
    // The artifacts root is a file: the real task fails on the job's own directory (ENOTDIR).
    writeFileSync(join(home, 'not-a-dir'), '');
    const config = loadConfig({ env: { FLASHPODS_HOME: home } });
    const scheduler = recorder();
    const ctx = { name: 'artifacts', config, log, peer: () => scheduler.ref, publish: () => undefined, subscribe: () => () => undefined } as unknown as ActorContext<typeof config, FlashpodsRegistry>;
    const handlers = await artifactsActor.start(ctx);
    try {
      const dir = join(home, 'not-a-dir', 'job_aaaaaaaaaaaaaaaa');
      expect(await handlers.indexArtifacts({ jobId: 'job_aaaaaaaaaaaaaaaa', dir }, 'scheduler')).toEqual({ accepted: true });
      const deadline = Date.now() + 10_000;
      while (scheduler.calls.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(scheduler.calls).toEqual([['report', {
        jobId: 'job_aaaaaaaaaaaaaaaa',
        fact: {
          type: 'artifactsIndexed',
          summary: { artifacts: [], note: expect.stringMatching(/^artifacts not indexed: the indexer stopped \(ENOTDIR: not a directory, realpath '.*not-a-dir\/job_aaaaaaaaaaaaaaaa'\); none are listed$/) },
        },
      }]]);
      expect(logged.at(-1)?.[0]).toBe('error');
    } finally {
      await artifactsActor.stop?.(0);
    }
  });

  it('an artifacts actor that never reports (crashed, stuck): the lifecycle stops waiting and the job finishes with a note', () => {
    const ended = next(STATES.exitedGone, { type: 'containerMissing' }, { ...env, now: NOW + env.indexGiveUpMs });
    expect(ended.job).toMatchObject({ status: 'completed', exit_code: 0, error: 'artifacts not indexed: the indexer stopped (no answer within 120 s); none are listed' });
    expect(ended.job.artifacts_indexed_at).toBe(NOW + env.indexGiveUpMs);
  });
});
