/**
 * Peers and topics are checked by the compiler against actors/registry.ts: the lines marked
 * below must NOT compile (`tsc -p .`, run by scripts/test.sh, fails if one ever does); the rest
 * shows what does. At run time, isActorName knows exactly the actors of the registry.
 */
import { describe, expect, it } from 'vitest';
import type { ActorContext } from '../../runtime/actor.ts';
import { isActorName, type FlashpodsRegistry } from '../../actors/registry.ts';

/** Never called: it exists for the compiler. */
export function typeChecks(ctx: ActorContext<unknown, FlashpodsRegistry>): void {
  const scheduler = ctx.peer('scheduler');
  void scheduler.call('cancelJob', { jobId: 'job_aaaaaaaaaaaaaaaa' });
  ctx.publish('job-changed', { jobId: 'job_aaaaaaaaaaaaaaaa', status: 'running' });
  ctx.subscribe('cleanup-done', (report) => report.usage);
  ctx.subscribe('actor-states', (states) => states.api);

  // @ts-expect-error no actor of that name
  ctx.peer('schedular');
  // @ts-expect-error a request the scheduler's protocol does not have
  void scheduler.call('startContainer', { jobId: 'x' });
  // @ts-expect-error the containers actor's request sent to the scheduler
  void ctx.peer('scheduler').call('killContainer', { jobId: 'x', containerId: 'c', graceMs: 0 });
  // @ts-expect-error a payload of the wrong shape for its topic
  ctx.publish('job-changed', { id: 'job_aaaaaaaaaaaaaaaa' });
  // @ts-expect-error a topic nobody publishes
  ctx.subscribe('job-changd', () => undefined);
}

describe('the actor registry', () => {
  it('names exactly the actors the supervisor runs', () => {
    expect(['scheduler', 'containers', 'artifacts', 'api', 'tokens'].every(isActorName)).toBe(true);
    expect(['schedular', 'constructor', 'toString', ''].some(isActorName)).toBe(false);
  });
});
