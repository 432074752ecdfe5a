import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import artifactsActor from '../../../actors/artifacts/actor.ts';
import { indexArtifacts, type RunnerDeps } from '../../../actors/containers/job-runner.ts';
import { loadConfig } from '../../../actors/contract/config.ts';
import type { ActorContext, ActorLog, ActorRef } from '../../../runtime/actor.ts';
import { ActorUnavailable } from '../../../runtime/errors.ts';

// The peers here are stand-ins that record calls (the scheduler) or fail them the way the
// runtime does (an artifacts actor that died mid-call); the index task and its pool are real.
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
  it('the artifacts actor answers with no artifacts and a note when its index task throws', async () => {
    const home = mkdtempSync(join(tmpdir(), 'fp-indexer-'));
    made.push(home);
    // The artifacts root is a file: the real task fails on the job's own directory (ENOTDIR).
    writeFileSync(join(home, 'not-a-dir'), '');
    const config = loadConfig({ env: { FLASHPODS_HOME: home, FLASHPODS_ARTIFACTS_DIR: join(home, 'not-a-dir') } });
    const scheduler = recorder();
    const ctx = { name: 'artifacts', config, log, peer: () => scheduler.ref, publish: () => undefined, subscribe: () => () => undefined } as ActorContext<typeof config>;
    const handlers = await artifactsActor.start(ctx);
    try {
      const summary = await handlers.indexJob({ jobId: 'job_aaaaaaaaaaaaaaaa' }, 'containers');
      expect(summary).toEqual({
        artifacts: 0,
        note: expect.stringMatching(/^artifacts not indexed: the indexer stopped \(ENOTDIR: not a directory, realpath '.*not-a-dir\/job_aaaaaaaaaaaaaaaa'\); none are listed$/),
        failure: undefined,
      });
      expect(scheduler.calls).toEqual([['recordArtifacts', { jobId: 'job_aaaaaaaaaaaaaaaa', artifacts: [] }]]);
    } finally {
      await artifactsActor.stop?.(0);
    }
  });

  it('the job runner answers with no artifacts and a note when the artifacts actor is unavailable', async () => {
    const scheduler = recorder();
    const artifacts = { name: 'artifacts', available: false, call: async () => { throw new ActorUnavailable('artifacts', 'crashed'); } };
    const deps = { config: loadConfig({ env: {} }), scheduler: scheduler.ref, artifacts, log } as unknown as RunnerDeps;
    expect(await indexArtifacts(deps, 'job_bbbbbbbbbbbbbbbb')).toEqual({
      artifacts: 0,
      note: 'artifacts not indexed: the indexer stopped (actor "artifacts" is unavailable: crashed); none are listed',
      failure: undefined,
    });
    expect(scheduler.calls).toEqual([['recordArtifacts', { jobId: 'job_bbbbbbbbbbbbbbbb', artifacts: [] }]]);
    expect(logged.at(-1)?.[0]).toBe('error');
  });
});
