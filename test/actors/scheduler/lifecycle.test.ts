/**
 * The state table of the job lifecycle (actors/scheduler/lifecycle.ts): every state it tells
 * apart × every fact, in milliseconds and without Podman. Each cell says what the lifecycle does:
 * `→status` when the status changes, the commands it sends, `ignored` for a fact that cannot
 * apply (the job is left exactly as it was), `changed` for a change of columns only; a cell not
 * listed is a no-op (job unchanged, no command). Then the rules every cell obeys, and the
 * outcomes of whole lives, fact by fact.
 */
import { describe, expect, it } from 'vitest';
import { jobErrorText, TERMINAL_STATES, type JobState } from '../../../actors/contract/jobs.ts';
import { endingOf, isSettled, next, type Fact, type Transition } from '../../../actors/scheduler/lifecycle.ts';
import type { JobRow } from '../../../actors/store/rows.ts';
import { env, FACT_TYPES_COVERED, FACTS, job, NOW, STATES, type FactName, type StateName } from './lifecycle-fixtures.ts';

/** A terminal job whose container is gone and whose artifacts are indexed (or that never ran). */
const SETTLED_TERMINAL: Partial<Record<FactName, string>> = {
  containerLost: 'removeContainer',
  containerCreated: 'removeContainer',
  containerStarted: 'removeContainer',
  startFailed: 'ignored',
  exited0: 'removeContainer',
  exited3: 'removeContainer',
  exitedOom: 'removeContainer',
  diskLimitExceeded: 'ignored',
  logTruncated: 'changed',
  killRequested: 'ignored',
  artifactsDeleted: 'dropArtifactRows',
  logEvicted: 'deleteLog',
  logDeleted: 'changed',
  jobFilesDeleted: 'ignored',
};

const TABLE: Record<StateName, Partial<Record<FactName, string>>> = {
  queued: {
    containerLost: 'ignored',
    admitted: '→pending createContainer',
    admittedBackfill: '→pending createContainer',
    queueTimedOut: '→expired expireUpload releaseUpload',
    queueLargerThanHost: '→failed expireUpload releaseUpload',
    containerCreating: 'ignored',
    containerCreated: 'ignored',
    containerStarted: 'ignored',
    startFailed: 'ignored',
    exited0: 'ignored',
    exited3: 'ignored',
    exitedOom: 'ignored',
    diskLimitExceeded: 'ignored',
    containerGone: 'ignored',
    containerMissing: 'ignored',
    runtimeUnreachable: 'ignored',
    logTruncated: 'ignored',
    artifactsIndexed: 'ignored',
    killRequested: '→cancelled expireUpload releaseUpload',
    deadlinePassed: 'ignored',
    cleanupPass: 'ignored',
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: 'ignored',
  },
  pending: {
    containerLost: '→running consumeUpload indexArtifacts removeContainer',
    containerCreating: '→starting',
    containerCreated: '→starting startContainer',
    containerStarted: '→running consumeUpload armDeadline',
    startFailed: '→failed expireUpload releaseUpload',
    exited0: '→running consumeUpload indexArtifacts removeContainer',
    exited3: '→running consumeUpload indexArtifacts removeContainer',
    exitedOom: '→running consumeUpload indexArtifacts removeContainer',
    diskLimitExceeded: 'ignored',
    containerGone: 'ignored',
    containerMissing: 'createContainer',
    logTruncated: 'changed',
    artifactsIndexed: 'ignored',
    killRequested: '→cancelled expireUpload releaseUpload',
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: 'ignored',
  },
  pendingStale: {
    containerLost: '→running consumeUpload indexArtifacts removeContainer',
    containerCreating: '→starting',
    containerCreated: '→starting startContainer',
    containerStarted: '→running consumeUpload armDeadline',
    startFailed: '→failed expireUpload releaseUpload',
    exited0: '→running consumeUpload indexArtifacts removeContainer',
    exited3: '→running consumeUpload indexArtifacts removeContainer',
    exitedOom: '→running consumeUpload indexArtifacts removeContainer',
    diskLimitExceeded: 'ignored',
    containerGone: 'ignored',
    containerMissing: 'createContainer',
    runtimeUnreachable: '→failed expireUpload releaseUpload',
    logTruncated: 'changed',
    artifactsIndexed: 'ignored',
    killRequested: '→cancelled expireUpload releaseUpload',
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: 'ignored',
  },
  starting: {
    containerLost: '→running consumeUpload indexArtifacts removeContainer',
    containerCreated: 'startContainer',
    containerStarted: '→running consumeUpload armDeadline',
    startFailed: '→failed expireUpload releaseUpload',
    exited0: '→running consumeUpload indexArtifacts removeContainer',
    exited3: '→running consumeUpload indexArtifacts removeContainer',
    exitedOom: '→running consumeUpload indexArtifacts removeContainer',
    diskLimitExceeded: 'ignored',
    containerGone: '→failed expireUpload releaseUpload',
    containerMissing: '→failed expireUpload releaseUpload',
    logTruncated: 'changed',
    artifactsIndexed: 'ignored',
    killRequested: '→cancelled expireUpload',
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: 'ignored',
  },
  created: {
    containerLost: '→running consumeUpload indexArtifacts removeContainer',
    containerCreated: 'startContainer',
    containerStarted: '→running consumeUpload armDeadline',
    startFailed: '→failed expireUpload releaseUpload',
    exited0: '→running consumeUpload indexArtifacts removeContainer',
    exited3: '→running consumeUpload indexArtifacts removeContainer',
    exitedOom: '→running consumeUpload indexArtifacts removeContainer',
    diskLimitExceeded: 'ignored',
    containerGone: '→failed expireUpload releaseUpload',
    containerMissing: '→failed expireUpload releaseUpload',
    logTruncated: 'changed',
    artifactsIndexed: 'ignored',
    killRequested: '→cancelled expireUpload',
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: 'ignored',
  },
  running: {
    containerLost: 'indexArtifacts removeContainer',
    containerCreated: 'ignored',
    containerStarted: 'armDeadline',
    startFailed: 'ignored',
    exited0: 'indexArtifacts removeContainer',
    exited3: 'indexArtifacts removeContainer',
    exitedOom: 'indexArtifacts removeContainer',
    diskLimitExceeded: 'killContainer',
    containerGone: 'releaseUpload indexArtifacts',
    containerMissing: 'releaseUpload indexArtifacts',
    logTruncated: 'changed',
    artifactsIndexed: 'ignored',
    killRequested: '→cancelled killContainer',
    deadlinePassed: 'armDeadline',
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: 'ignored',
  },
  overdue: {
    containerLost: 'indexArtifacts removeContainer',
    containerCreated: 'ignored',
    containerStarted: 'killContainer',
    startFailed: 'ignored',
    exited0: 'indexArtifacts removeContainer',
    exited3: 'indexArtifacts removeContainer',
    exitedOom: 'indexArtifacts removeContainer',
    diskLimitExceeded: 'killContainer',
    containerGone: 'releaseUpload indexArtifacts',
    containerMissing: 'releaseUpload indexArtifacts',
    logTruncated: 'changed',
    artifactsIndexed: 'ignored',
    killRequested: '→cancelled killContainer',
    deadlinePassed: 'killContainer',
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: 'ignored',
  },
  timingOut: {
    containerLost: 'indexArtifacts removeContainer',
    containerCreated: 'ignored',
    containerStarted: 'killContainer',
    startFailed: 'ignored',
    exited0: 'indexArtifacts removeContainer',
    exited3: 'indexArtifacts removeContainer',
    exitedOom: 'indexArtifacts removeContainer',
    diskLimitExceeded: 'killContainer',
    containerGone: 'releaseUpload indexArtifacts',
    containerMissing: 'releaseUpload indexArtifacts',
    logTruncated: 'changed',
    artifactsIndexed: 'ignored',
    killRequested: '→cancelled killContainer',
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: 'ignored',
  },
  exited: {
    containerLost: 'removeContainer indexArtifacts',
    containerCreated: 'ignored',
    startFailed: 'ignored',
    exited0: 'removeContainer indexArtifacts',
    exited3: 'removeContainer indexArtifacts',
    exitedOom: 'removeContainer indexArtifacts',
    containerGone: 'releaseUpload',
    containerMissing: 'releaseUpload indexArtifacts',
    logTruncated: 'changed',
    artifactsIndexed: '→completed storeArtifacts',
    killRequested: '→cancelled',
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: 'ignored',
  },
  exitedIndexed: {
    containerLost: 'removeContainer',
    containerCreated: 'ignored',
    startFailed: 'ignored',
    exited0: 'removeContainer',
    exited3: 'removeContainer',
    exitedOom: 'removeContainer',
    containerGone: '→completed releaseUpload',
    containerMissing: '→completed releaseUpload',
    logTruncated: 'changed',
    killRequested: '→cancelled',
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: 'ignored',
  },
  exitedGone: {
    containerCreated: 'removeContainer',
    containerStarted: 'ignored',
    startFailed: 'ignored',
    containerMissing: 'indexArtifacts',
    logTruncated: 'changed',
    artifactsIndexed: '→completed storeArtifacts',
    killRequested: '→cancelled',
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: 'ignored',
  },
  cancelledStarting: {
    containerLost: 'indexArtifacts removeContainer',
    containerCreated: 'startContainer',
    containerStarted: 'killContainer',
    startFailed: 'expireUpload releaseUpload',
    exited0: 'indexArtifacts removeContainer',
    exited3: 'indexArtifacts removeContainer',
    exitedOom: 'indexArtifacts removeContainer',
    diskLimitExceeded: 'ignored',
    containerGone: 'expireUpload releaseUpload',
    containerMissing: 'expireUpload releaseUpload',
    logTruncated: 'changed',
    artifactsIndexed: 'ignored',
    killRequested: 'ignored',
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: 'ignored',
  },
  cancelledCreated: {
    containerLost: 'indexArtifacts removeContainer',
    containerCreated: 'startContainer',
    containerStarted: 'killContainer',
    startFailed: 'expireUpload releaseUpload',
    exited0: 'indexArtifacts removeContainer',
    exited3: 'indexArtifacts removeContainer',
    exitedOom: 'indexArtifacts removeContainer',
    diskLimitExceeded: 'ignored',
    containerGone: 'expireUpload releaseUpload',
    containerMissing: 'expireUpload releaseUpload',
    logTruncated: 'changed',
    artifactsIndexed: 'ignored',
    killRequested: 'ignored',
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: 'ignored',
  },
  cancelledRunning: {
    containerLost: 'indexArtifacts removeContainer',
    containerCreated: 'ignored',
    containerStarted: 'killContainer',
    startFailed: 'ignored',
    exited0: 'indexArtifacts removeContainer',
    exited3: 'indexArtifacts removeContainer',
    exitedOom: 'indexArtifacts removeContainer',
    diskLimitExceeded: 'killContainer',
    containerGone: 'releaseUpload indexArtifacts',
    containerMissing: 'releaseUpload indexArtifacts',
    logTruncated: 'changed',
    artifactsIndexed: 'ignored',
    killRequested: 'ignored',
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: 'ignored',
  },
  cancelledExited: {
    containerLost: 'removeContainer indexArtifacts',
    containerCreated: 'ignored',
    startFailed: 'ignored',
    exited0: 'removeContainer indexArtifacts',
    exited3: 'removeContainer indexArtifacts',
    exitedOom: 'removeContainer indexArtifacts',
    containerGone: 'releaseUpload',
    containerMissing: 'releaseUpload indexArtifacts',
    logTruncated: 'changed',
    artifactsIndexed: 'storeArtifacts',
    killRequested: 'ignored',
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: 'ignored',
  },
  completedNotGone: {
    containerLost: 'removeContainer',
    containerCreated: 'removeContainer',
    containerStarted: 'removeContainer',
    startFailed: 'ignored',
    exited0: 'removeContainer',
    exited3: 'removeContainer',
    exitedOom: 'removeContainer',
    diskLimitExceeded: 'ignored',
    containerGone: 'releaseUpload',
    containerMissing: 'releaseUpload',
    logTruncated: 'changed',
    killRequested: 'ignored',
    // Cleanup only takes settled jobs: these cannot come before the container is gone.
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: 'ignored',
  },
  // Expired in the queue: settled at once, nothing ran; a container reported for it is a stray.
  expired: SETTLED_TERMINAL,
  completed: SETTLED_TERMINAL,
  failed: SETTLED_TERMINAL,
  timedOut: SETTLED_TERMINAL,
  cancelled: {
    containerLost: 'removeContainer',
    containerCreated: 'removeContainer',
    containerStarted: 'removeContainer',
    startFailed: 'ignored',
    exited0: 'removeContainer',
    exited3: 'removeContainer',
    exitedOom: 'removeContainer',
    logTruncated: 'changed',
    killRequested: 'ignored',
    artifactsDeleted: 'dropArtifactRows',
    logEvicted: 'deleteLog',
    logDeleted: 'changed',
    jobFilesDeleted: 'ignored',
  },
  artifactsDue: {
    containerLost: 'removeContainer',
    containerCreated: 'removeContainer',
    containerStarted: 'removeContainer',
    startFailed: 'ignored',
    exited0: 'removeContainer',
    exited3: 'removeContainer',
    exitedOom: 'removeContainer',
    diskLimitExceeded: 'ignored',
    logTruncated: 'changed',
    killRequested: 'ignored',
    cleanupPass: 'deleteArtifacts',
    artifactsDeleted: 'dropArtifactRows',
    logEvicted: 'deleteLog',
    logDeleted: 'changed',
    jobFilesDeleted: 'ignored',
  },
  logsDue: {
    containerLost: 'removeContainer',
    containerCreated: 'removeContainer',
    containerStarted: 'removeContainer',
    startFailed: 'ignored',
    exited0: 'removeContainer',
    exited3: 'removeContainer',
    exitedOom: 'removeContainer',
    diskLimitExceeded: 'ignored',
    logTruncated: 'changed',
    killRequested: 'ignored',
    cleanupPass: '→cleaning deleteJobFiles',
    logEvicted: 'deleteLog',
    logDeleted: 'changed',
    jobFilesDeleted: 'ignored',
  },
  cleaning: {
    containerLost: 'removeContainer',
    containerCreated: 'removeContainer',
    containerStarted: 'removeContainer',
    startFailed: 'ignored',
    exited0: 'removeContainer',
    exited3: 'removeContainer',
    exitedOom: 'removeContainer',
    diskLimitExceeded: 'ignored',
    logTruncated: 'ignored',
    killRequested: 'ignored',
    cleanupPass: 'deleteJobFiles',
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: '→cleaned forgetClientKey',
  },
  cleaned: {
    containerLost: 'removeContainer',
    containerCreated: 'removeContainer',
    containerStarted: 'removeContainer',
    startFailed: 'ignored',
    exited0: 'removeContainer',
    exited3: 'removeContainer',
    exitedOom: 'removeContainer',
    diskLimitExceeded: 'ignored',
    logTruncated: 'ignored',
    killRequested: 'ignored',
    artifactsDeleted: 'ignored',
    logEvicted: 'ignored',
    logDeleted: 'ignored',
    jobFilesDeleted: 'ignored',
  },
};

function describeCell(before: JobRow, t: Transition): string {
  if (t.ignored !== undefined) return 'ignored';
  const status = t.job.status !== before.status ? `→${t.job.status}` : '';
  const commands = t.commands.map((c) => c.type).join(' ');
  const changed = (Object.keys(t.job) as Array<keyof JobRow>).some((k) => t.job[k] !== before[k]);
  return [status, commands].filter(Boolean).join(' ') || (changed ? 'changed' : 'noop');
}

// Only a queued job can be admitted or leave the queue: every other state ignores those facts.
for (const state of Object.keys(TABLE) as StateName[]) {
  if (state !== 'queued') TABLE[state] = { admitted: 'ignored', admittedBackfill: 'ignored', queueTimedOut: 'ignored', queueLargerThanHost: 'ignored', ...TABLE[state] };
}

const RANK: Record<JobState, number> = { queued: -1, pending: 0, starting: 1, running: 2, completed: 3, failed: 3, timed_out: 3, cancelled: 3, expired: 3, cleaning: 4, cleaned: 5 };
const cells = (Object.keys(STATES) as StateName[]).flatMap((s) => (Object.keys(FACTS) as FactName[]).map((f) => [s, f] as const));

describe('the state table: every state × every fact', () => {
  it.each(cells)('%s + %s', (state, fact) => {
    const before = STATES[state];
    const t = next(before, FACTS[fact] as Fact, env);
    expect(describeCell(before, t)).toBe(TABLE[state][fact] ?? 'noop');
  });

  it('covers every fact type', () => {
    expect(Object.values(FACT_TYPES_COVERED).every((name) => name in FACTS)).toBe(true);
  });

  it('keeps the transitions of jobs.md in every cell', () => {
    for (const [state, fact] of cells) {
      const before = STATES[state];
      const t = next(before, FACTS[fact] as Fact, env);
      const where = `${state} + ${fact}`;
      const [from, to] = [before.status, t.job.status];
      // An ignored fact leaves the job exactly as it was and commands nothing.
      if (t.ignored !== undefined) expect([t.job, t.commands], where).toEqual([before, []]);
      // Forward only: nothing leaves cleaned, a terminal job never runs again.
      expect(RANK[to], where).toBeGreaterThanOrEqual(RANK[from]);
      if (from === 'cleaned') expect(to, where).toBe('cleaned');
      if (TERMINAL_STATES.includes(from)) expect([from, 'cleaning'], where).toContain(to);
      if (from === 'cleaning') expect(['cleaning', 'cleaned'], where).toContain(to);
      // Completed and timed_out need a container that ran; a cancelled job never becomes anything else.
      if (to !== from && (to === 'completed' || to === 'timed_out')) expect(from, where).toBe('running');
      if (from === 'cancelled') expect(['cancelled', 'cleaning'], where).toContain(to);
      // A terminal status is written only once the job's end is known (its container exited, so
      // its log is complete, or is gone) and the artifacts are indexed.
      if (to !== from && TERMINAL_STATES.includes(to) && to !== 'cancelled') {
        const endKnown = t.job.resources_released_at !== null || endingOf(before)?.exitCode != null || (FACTS[fact] as Fact).type === 'containerExited';
        expect([endKnown, t.job.artifacts_indexed_at, t.job.outcome], where).toEqual([true, expect.any(Number), to]);
      }
      // Every failed or timed_out job carries an error (jobs.md).
      if (to === 'failed' || to === 'timed_out') expect(t.job.error, where).toEqual(expect.any(String));
    }
  });

  it('never throws, whatever the row holds', () => {
    const odd: JobRow[] = [job({ status: 'running', started_at: null, container_id: null }), job({ status: 'running', pending_finish: '{}' }), job({ status: 'cancelled', resources_released_at: NOW })];
    for (const row of odd) for (const fact of Object.values(FACTS)) expect(() => next(row, fact as Fact, env)).not.toThrow();
  });
});

/** Feeds facts one after another, as the scheduler does; returns the job and every command sent. */
function live(start: JobRow, ...facts: Fact[]): { job: JobRow; commands: string[]; ignored: string[] } {
  let row = start;
  const commands: string[] = [];
  const ignored: string[] = [];
  for (const fact of facts) {
    const t = next(row, fact, env);
    row = t.job;
    commands.push(...t.commands.map((c) => c.type));
    if (t.ignored) ignored.push(`${fact.type}: ${t.ignored}`);
  }
  return { job: row, commands, ignored };
}

const exited = (exitCode: number, oom: Partial<{ stateOomKilled: boolean; cgroupEvidence: boolean }> = {}): Fact =>
  ({ type: 'containerExited', containerId: 'c1', exitCode, oom: { stateOomKilled: false, cgroupEvidence: false, ...oom } });
const indexed = (note?: string): Fact => ({ type: 'artifactsIndexed', summary: { artifacts: [], ...(note ? { note } : {}) } });
const started: Fact = { type: 'containerStarted', containerId: 'c1', startedAt: NOW - 60_000 };
const toRunning: Fact[] = [{ type: 'containerCreating' }, { type: 'containerCreated', containerId: 'c1' }, started];
const view = (j: JobRow) => ({ status: j.status, exit_code: j.exit_code, error: j.error, error_code: j.error_code, outcome: j.outcome });

describe('whole lives', () => {
  it('pending → starting → running → completed: terminal once exited and indexed, its resources freed once gone', () => {
    const { job: done, commands } = live(STATES.pending, ...toRunning, exited(0), indexed(), { type: 'containerGone' });
    expect(view(done)).toEqual({ status: 'completed', exit_code: 0, error: null, error_code: null, outcome: 'completed' });
    expect(commands).toEqual(['startContainer', 'consumeUpload', 'armDeadline', 'indexArtifacts', 'removeContainer', 'storeArtifacts', 'releaseUpload']);
    expect(done.pending_finish).toBe(null);
    expect(done.resources_released_at).toEqual(expect.any(Number));
    const finished = live(STATES.pending, ...toRunning, exited(0), indexed()).job;
    expect(view(finished)).toEqual({ status: 'completed', exit_code: 0, error: null, error_code: null, outcome: 'completed' });
    expect([finished.resources_released_at, isSettled(finished)]).toEqual([null, false]);
    expect(live(STATES.pending, ...toRunning, exited(0)).job.status).toBe('running');
  });

  it('a non-zero exit fails with "Process exited with code N"; dropped artifacts are noted', () => {
    expect(view(live(STATES.running, exited(3), indexed(), { type: 'containerGone' }).job))
      .toEqual({ status: 'failed', exit_code: 3, error: 'Process exited with code 3', error_code: 'process_exited', outcome: 'failed' });
    const note = 'artifacts dropped: 1 file over the per-file limit (big.bin)';
    expect(live(STATES.running, exited(0), indexed(note), { type: 'containerGone' }).job).toMatchObject({ status: 'completed', error: note, error_code: null });
    expect(live(STATES.running, exited(2), indexed(note), { type: 'containerGone' }).job.error).toBe(`Process exited with code 2; ${note}`);
  });

  it('an indexing failure fails the job with its code, whatever the exit', () => {
    const failure: Fact = { type: 'artifactsIndexed', summary: { artifacts: [], failure: { code: 'artifact_copy_permission', reason: 'cannot read /artifacts: permission denied' } } };
    expect(view(live(STATES.running, exited(0), failure, { type: 'containerGone' }).job)).toEqual({
      status: 'failed', exit_code: 0, error: 'artifact_copy_permission: cannot read /artifacts: permission denied', error_code: 'artifact_copy_permission', outcome: 'failed',
    });
  });

  it('a timeout kills with the grace and ends timed_out with the exit the kill caused: 143 on SIGTERM, 137 on SIGKILL', () => {
    const deadline = next(STATES.overdue, { type: 'deadlinePassed' }, env);
    expect(deadline.commands).toEqual([{ type: 'killContainer', jobId: STATES.overdue.id, containerId: 'c1', graceMs: env.killGraceMs }]);
    for (const code of [143, 137]) {
      expect(view(live(deadline.job, exited(code), indexed(), { type: 'containerGone' }).job))
        .toEqual({ status: 'timed_out', exit_code: code, error: 'Job exceeded timeout limit', error_code: 'timeout', outcome: 'timed_out' });
    }
    // The clock is only armed before the deadline; a running job re-reported past it is killed once.
    expect(next(STATES.running, { type: 'deadlinePassed' }, env).commands).toEqual([{ type: 'armDeadline', jobId: STATES.running.id, at: STATES.running.started_at! + 30 * 60_000 }]);
    expect(live(STATES.overdue, started, started, { type: 'deadlinePassed' }).commands).toEqual(['killContainer', 'killContainer']);
  });

  it('cancel: cancelled at once, resources held until the container is gone, exit code kept; never completed', () => {
    const { job: cancelled, commands } = live(STATES.running, { type: 'killRequested' });
    expect([cancelled.status, cancelled.resources_released_at, commands]).toEqual(['cancelled', null, ['killContainer']]);
    const done = live(cancelled, exited(143), indexed(), { type: 'containerGone' }).job;
    expect(view(done)).toEqual({ status: 'cancelled', exit_code: 143, error: null, error_code: null, outcome: 'cancelled' });
    expect(done.resources_released_at).toBe(NOW);
    expect(next(done, { type: 'killRequested' }, env).ignored).toMatch(/^job_already_terminal/);
  });

  it('cancelling a pending job releases it and its upload at once; a starting one ends by the kill sequence', () => {
    expect(live(STATES.pending, { type: 'killRequested' })).toMatchObject({ job: { status: 'cancelled', outcome: 'cancelled', resources_released_at: NOW, artifacts_indexed_at: NOW }, commands: ['expireUpload', 'releaseUpload'] });
    const starting = live(STATES.starting, { type: 'killRequested' }, { type: 'containerCreated', containerId: 'c1' }, started, exited(143), indexed(), { type: 'containerGone' });
    expect(starting.commands).toEqual(['expireUpload', 'startContainer', 'killContainer', 'indexArtifacts', 'removeContainer', 'storeArtifacts', 'releaseUpload']);
    expect(view(starting.job)).toEqual({ status: 'cancelled', exit_code: 143, error: null, error_code: null, outcome: 'cancelled' });
    // Its container gone before it ever started: nothing ran, nothing to index.
    expect(view(live(STATES.cancelledCreated, { type: 'containerMissing' }).job)).toEqual({ status: 'cancelled', exit_code: null, error: null, error_code: null, outcome: 'cancelled' });
  });

  it('OOM: from the container state, or from cgroup evidence with a SIGKILL Flashpods did not send', () => {
    const end = (row: JobRow, fact: Fact) => live(row, fact, indexed(), { type: 'containerGone' }).job;
    expect(view(end(STATES.running, exited(137, { stateOomKilled: true })))).toEqual({ status: 'failed', exit_code: 137, error: 'oom_killed', error_code: 'oom_killed', outcome: 'failed' });
    expect(end(STATES.running, exited(137, { cgroupEvidence: true })).error).toBe('oom_killed');
    expect(end(STATES.running, exited(137)).error).toBe('Process exited with code 137');
    // Killed by a cancel or a timeout: the memory peak is not the reason.
    expect(end(live(STATES.running, { type: 'killRequested' }).job, exited(137, { cgroupEvidence: true })).outcome).toBe('cancelled');
    expect(end(STATES.timingOut, exited(137, { cgroupEvidence: true })).error).toBe('Job exceeded timeout limit');
  });

  it('the identity step\'s exits 90 and 91 name their failure, for agents and for workers that asked for tokens', () => {
    const end = (row: JobRow, code: number) => live(row, exited(code), indexed(), { type: 'containerGone' }).job;
    const agent = job({ ...STATES.running, job_type: 'agent', command: null, task: 't', git_branch: 'b' });
    expect(view(end(agent, 90))).toMatchObject({ error: 'spire_attestation_timeout', error_code: 'spire_attestation_timeout' });
    expect(end(job({ ...STATES.running, need_github_token: 1 }), 91).error).toBe('token_exchange_failed');
    expect(end(STATES.running, 91).error).toBe('Process exited with code 91');
  });

  it('recovery: missing while starting → container_not_found_on_recovery; while running → container_lost_on_recovery, artifacts still indexed', () => {
    expect(view(live(STATES.created, { type: 'containerMissing' }).job))
      .toEqual({ status: 'failed', exit_code: null, error: 'container_not_found_on_recovery', error_code: 'container_not_found_on_recovery', outcome: 'failed' });
    const lost = live(STATES.running, { type: 'containerMissing' });
    expect([lost.job.status, lost.commands]).toEqual(['running', ['releaseUpload', 'indexArtifacts']]);
    expect(view(live(lost.job, indexed()).job)).toEqual({ status: 'failed', exit_code: null, error: 'container_lost_on_recovery', error_code: 'container_lost_on_recovery', outcome: 'failed' });
    // Exited and removed before a crash: finished with its real exit code.
    expect(view(live(STATES.exitedIndexed, { type: 'containerMissing' }).job)).toMatchObject({ status: 'completed', exit_code: 0 });
  });

  it('a container the backend has lost (its node silent) fails as container_lost with the reason, is removed, and its artifacts are indexed; a cancel keeps its outcome', () => {
    const lostFact: Fact = { type: 'containerLost', containerId: 'c1', reason: 'its node n1 stopped reporting' };
    const lost = live(STATES.running, lostFact);
    expect([lost.job.status, lost.commands]).toEqual(['running', ['indexArtifacts', 'removeContainer']]);
    // No exit code: final once the container is gone (the Pod deleted), like a vanished one.
    expect(live(lost.job, indexed()).job.status).toBe('running');
    expect(view(live(lost.job, indexed(), { type: 'containerGone' }).job))
      .toEqual({ status: 'failed', exit_code: null, error: 'container_lost: its node n1 stopped reporting', error_code: 'container_lost', outcome: 'failed' });
    expect(view(live(STATES.cancelledRunning, lostFact, indexed(), { type: 'containerGone' }).job)).toMatchObject({ status: 'cancelled', error_code: null });
    expect(view(live(STATES.timingOut, lostFact, indexed(), { type: 'containerGone' }).job)).toMatchObject({ status: 'timed_out', error_code: 'timeout' });
  });

  it('the same fact twice (a watch and a reconcile pass) changes nothing the second time', () => {
    const once = live(STATES.running, exited(3));
    const twice = live(once.job, exited(3));
    expect(twice.job).toEqual(once.job);
    // What is outstanding is asked for again; executors absorb a repeat of one in flight.
    expect(twice.commands).toEqual(['removeContainer', 'indexArtifacts']);
    const done = live(once.job, indexed(), { type: 'containerGone' }).job;
    expect(live(done, exited(3), { type: 'containerGone' }, indexed()).job).toEqual({ ...done });
  });

  it('Podman restarting between create and start: the container found created is started again', () => {
    const created = live(STATES.pending, { type: 'containerCreating' }, { type: 'containerCreated', containerId: 'c1' });
    // The start never reached Podman; the reconcile pass after the outage reports the container still created.
    const again = live(created.job, { type: 'containerCreated', containerId: 'c1' }, started, exited(4), indexed(), { type: 'containerGone' });
    expect(again.commands.slice(0, 1)).toEqual(['startContainer']);
    expect(view(again.job)).toMatchObject({ status: 'failed', exit_code: 4 });
  });

  it('a start that fails names why: Podman refused it, or Podman stayed away', () => {
    expect(view(live(STATES.starting, { type: 'startFailed', error: { code: 'container_start_failed', reason: 'image pull failed for x: not found' } }).job))
      .toEqual({ status: 'failed', exit_code: null, error: 'container_start_failed: image pull failed for x: not found', error_code: 'container_start_failed', outcome: 'failed' });
    expect(live(STATES.starting, { type: 'startFailed', error: { code: 'container_runtime_unavailable', reason: 'Podman was unreachable for 5 minutes' } }).job.error_code).toBe('container_runtime_unavailable');
    const refused = live(STATES.starting, { type: 'startFailed', error: { code: 'upload_mount_refused', reason: 'upload u was not mounted at /work: /sealed/u is a symbolic link' } });
    expect([refused.job.error, refused.commands]).toEqual(['upload_mount_refused: upload u was not mounted at /work: /sealed/u is a symbolic link', ['expireUpload', 'releaseUpload']]);
  });

  it('a job pending for 5 minutes while Podman is unreachable fails, with the reason', () => {
    expect(live(STATES.pending, { type: 'runtimeUnreachable', reason: 'x' }).job.status).toBe('pending');
    expect(view(live(STATES.pendingStale, { type: 'runtimeUnreachable', reason: 'Podman was unreachable at /run/podman.sock' }).job))
      .toEqual({ status: 'failed', exit_code: null, error: 'container_runtime_unavailable: Podman was unreachable at /run/podman.sock', error_code: 'container_runtime_unavailable', outcome: 'failed' });
  });

  it('cleanup: artifacts after their TTL, then the log, then cleaned, and only then the client key is freed', () => {
    const due = live(STATES.artifactsDue, { type: 'cleanupPass' }, { type: 'artifactsDeleted' }, { type: 'cleanupPass' });
    expect([due.job.status, due.commands]).toEqual(['completed', ['deleteArtifacts', 'dropArtifactRows']]);
    const cleaned = live(STATES.logsDue, { type: 'cleanupPass' }, { type: 'jobFilesDeleted' });
    expect([cleaned.job.status, cleaned.job.outcome, cleaned.commands]).toEqual(['cleaned', 'completed', ['deleteJobFiles', 'forgetClientKey']]);
    // conmon's file and the capture state go too: the executor deletes them with the container,
    // but one removed behind Flashpods' back leaves them.
    const id = STATES.logsDue.id;
    expect(next(STATES.logsDue, { type: 'cleanupPass' }, env).commands).toContainEqual({
      type: 'deleteJobFiles', jobId: id, logPath: `/logs/${id}.log`, artifactsDir: `/artifacts/${id}`,
      containerFiles: [`/container-logs/${id}.ctr.log`, `/container-logs/${id}.capture.json`],
    });
  });

  it('over its disk budget a job is SIGKILLed at once and fails with disk_limit_exceeded, whatever its exit', () => {
    const over = live(STATES.running, FACTS.diskLimitExceeded as Fact);
    expect(over.commands).toEqual(['killContainer']);
    expect(next(STATES.running, FACTS.diskLimitExceeded as Fact, env).commands[0]).toMatchObject({ type: 'killContainer', graceMs: 0 });
    // Reported twice (a second watch pass): one kill.
    expect(live(over.job, FACTS.diskLimitExceeded as Fact).commands).toEqual([]);
    const done = live(over.job, exited(137, { cgroupEvidence: true }), indexed(), { type: 'containerGone' }).job;
    expect(view(done)).toEqual({
      status: 'failed', exit_code: 137, error: 'disk_limit_exceeded: the job held 4 MB in /artifacts, over its 3 MB disk budget', error_code: 'disk_limit_exceeded', outcome: 'failed',
    });
  });

  it('an index that never comes is given up on: the job finishes with nothing listed and a note', () => {
    const lost = live(STATES.running, exited(0), { type: 'containerGone' }).job;
    // Within env.indexGiveUpMs of the end, a reconcile pass asks for the index again.
    expect(live(lost, { type: 'containerMissing' }).commands).toEqual(['indexArtifacts']);
    const later = next(lost, { type: 'containerMissing' }, { ...env, now: NOW + env.indexGiveUpMs });
    expect(later.commands.map((c) => c.type)).toEqual(['storeArtifacts']);
    expect(view(later.job)).toEqual({ status: 'completed', exit_code: 0, error: 'artifacts not indexed: the indexer stopped (no answer within 120 s); none are listed', error_code: null, outcome: 'completed' });
  });

  it('a log truncated at the cap is marked; nothing marks a cleaned record', () => {
    expect(next(STATES.running, { type: 'logTruncated' }, env).job.log_truncated).toBe(1);
    expect(next(STATES.cleaned, { type: 'logTruncated' }, env).ignored).toBeDefined();
  });

  it('the Ending survives the row as JSON', () => {
    expect(endingOf(live(STATES.running, exited(5)).job)).toEqual({ endedAt: NOW, exitCode: 5, oomKilled: false });
  });
});

describe('jobErrorText', () => {
  it('renders the contract texts', () => {
    expect(jobErrorText({ code: 'timeout' })).toBe('Job exceeded timeout limit');
    expect(jobErrorText({ code: 'container_start_failed', reason: 'image pull failed' })).toBe('container_start_failed: image pull failed');
    expect(jobErrorText(undefined, 'artifacts dropped: x')).toBe('artifacts dropped: x');
    expect(jobErrorText(undefined)).toBeUndefined();
  });
});
