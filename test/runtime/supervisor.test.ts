import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ActorUnavailable } from '../../runtime/errors.ts';
import { createLogger } from '../../runtime/log.ts';
import { Supervisor, type ChildSpec } from '../../runtime/supervisor.ts';
import type { RelayProtocol } from '../fixtures/actors/relay.ts';
import type { VictimProtocol } from '../fixtures/actors/victim.ts';

function spec(name: string, extra: Partial<ChildSpec> = {}): ChildSpec {
  return {
    name,
    module: new URL(`../fixtures/actors/${name}.ts`, import.meta.url).href,
    restart: 'permanent',
    maxRestarts: 5,
    periodMs: 60_000,
    backoff: { initialMs: 10, maxMs: 50 },
    ...extra,
  };
}

function capturedLog(level: 'debug' | 'info' = 'debug') {
  const stream = new PassThrough();
  const lines: Array<Record<string, unknown>> = [];
  stream.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
  });
  return { logger: createLogger({ format: 'json', level, destination: stream }), lines };
}

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

let supervisor: Supervisor | undefined;
afterEach(async () => {
  await supervisor?.shutdown('test done');
  supervisor = undefined;
});

async function startPair(victimExtra: Partial<ChildSpec> = {}, level: 'debug' | 'info' = 'debug') {
  const log = capturedLog(level);
  let gaveUp: string | undefined;
  supervisor = new Supervisor([spec('victim', victimExtra), spec('relay')], {
    logger: log.logger,
    config: {},
    stopGraceMs: 2_000,
    onGiveUp: (reason) => (gaveUp = reason),
  });
  await supervisor.start();
  return { sup: supervisor, log, gaveUp: () => gaveUp };
}

describe('supervisor', () => {
  it('routes typed request/reply between the main thread and an actor, and actor to actor', async () => {
    const { sup } = await startPair();
    await expect(sup.ref<VictimProtocol>('victim').call('echo', { value: 7 })).resolves.toEqual({ value: 7 });
    const relayed = await sup.ref<RelayProtocol>('relay').call('callVictim', { type: 'echo', timeoutMs: 1_000 });
    expect(relayed.ok).toBe(true);
  });

  it("writes actors' log lines to the supervisor log with the actor's name, at the log's level", async () => {
    const verbose = await startPair({}, 'debug');
    await verbose.sup.ref<VictimProtocol>('victim').call('logBoth', { tag: 'a' });
    await until(() => verbose.log.lines.some((l) => l.msg === 'info a'));
    expect(verbose.log.lines.filter((l) => l.actor === 'victim' && /^(debug|info) a$/.test(String(l.msg))).map((l) => l.msg)).toEqual(['debug a', 'info a']);
    await verbose.sup.shutdown('next');

    const quiet = await startPair({}, 'info');
    supervisor = quiet.sup;
    await quiet.sup.ref<VictimProtocol>('victim').call('logBoth', { tag: 'b' });
    await until(() => quiet.log.lines.some((l) => l.msg === 'info b'));
    expect(quiet.log.lines.some((l) => l.msg === 'debug b')).toBe(false);
  });

  it('delivers the error codes a protocol declares, and turns any other into internal_error', async () => {
    const { sup, log } = await startPair();
    const victim = sup.ref<VictimProtocol>('victim');
    await expect(victim.call('refuse', { code: 'victim_refused' })).rejects.toMatchObject({ code: 'victim_refused', status: 409 });
    await expect(victim.call('refuse', { code: 'made_up' })).rejects.toMatchObject({ code: 'internal_error', status: 500 });
    await until(() => log.lines.some((l) => /"made_up", a code the victim protocol does not declare/.test(String(l.msg))));
  });

  it('times out a call the actor never answers', async () => {
    const { sup } = await startPair();
    await expect(sup.ref<VictimProtocol>('victim').call('hang', {}, { timeoutMs: 100 })).rejects.toMatchObject({ code: 'actor_timeout' });
  });

  for (const [how, request, expected] of [
    ['throws an uncaught exception', 'throwUncaught', 'boom from victim'],
    ['calls process.exit', 'exitProcess', 'exited with code 7'],
    ['blows its heap', 'blowHeap', 'ERR_WORKER_OUT_OF_MEMORY'],
  ] as const) {
    it(`restarts an actor that ${how}; pending callers get ActorUnavailable at once`, async () => {
      const { sup, log } = await startPair({ maxHeapMb: 32 });
      const victim = sup.ref<VictimProtocol>('victim');
      const relay = sup.ref<RelayProtocol>('relay');

      const mainPending = victim.call('hang', {}, { timeoutMs: 30_000 }).catch((err: unknown) => err);
      const relayPending = relay.call('callVictim', { type: 'hang', timeoutMs: 30_000 }, { timeoutMs: 30_000 });
      await new Promise((r) => setTimeout(r, 50));
      const started = performance.now();
      await victim.call(request, request === 'exitProcess' ? { code: 7 } : ({} as never));

      const mainErr = await mainPending;
      const relayed = await relayPending;
      expect(mainErr).toBeInstanceOf(ActorUnavailable);
      expect(relayed).toMatchObject({ ok: false, code: 'actor_unavailable' });
      // "At once" means well under the 30 s call timeout; heap exhaustion itself takes a while.
      expect(performance.now() - started).toBeLessThan(10_000);

      await until(() => log.lines.some((l) => l.actor === 'victim' && l.event === 'restarted'));
      await until(() => sup.states().victim === 'running');
      await expect(victim.call('echo', { value: 1 })).resolves.toEqual({ value: 1 });
      const relayedAfter = await relay.call('callVictim', { type: 'echo', timeoutMs: 1_000 });
      expect(relayedAfter.ok).toBe(true);

      const crashed = log.lines.find((l) => l.actor === 'victim' && l.event === 'crashed');
      expect(JSON.stringify(crashed)).toContain(expected);
      expect(log.lines.some((l) => l.actor === 'victim' && l.event === 'restarted')).toBe(true);
    });
  }

  it('answers calls to a restarting actor with ActorUnavailable without waiting', async () => {
    const { sup } = await startPair({ backoff: { initialMs: 2_000, maxMs: 2_000 } });
    const victim = sup.ref<VictimProtocol>('victim');
    await victim.call('exitProcess', { code: 1 });
    await until(() => sup.states().victim === 'restarting');
    const started = performance.now();
    await expect(victim.call('echo', { value: 1 })).rejects.toBeInstanceOf(ActorUnavailable);
    expect(performance.now() - started).toBeLessThan(100);
  });

  it('gives up over the restart budget and stops everything', async () => {
    const { sup, log, gaveUp } = await startPair({ maxRestarts: 2 });
    const victim = sup.ref<VictimProtocol>('victim');
    for (let i = 0; i < 3; i++) {
      await until(() => sup.states().victim === 'running');
      await victim.call('exitProcess', { code: 2 });
      await until(() => sup.states().victim !== 'running');
    }
    await until(() => gaveUp() !== undefined);
    expect(gaveUp()).toMatch(/victim crashed 3 times/);
    expect(sup.states()).toEqual({ victim: 'failed', relay: 'stopped' });
    expect(log.lines.some((l) => l.event === 'gave_up' && l.actor === 'victim')).toBe(true);
  });
});
