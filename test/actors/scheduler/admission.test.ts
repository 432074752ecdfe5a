/**
 * The queue's admission (actors/scheduler/admission.ts), in milliseconds and without Podman:
 * a table of queue passes — what holds resources, what waits, and what the pass does —, the
 * decision for a new POST /jobs, and a seeded simulation of whole runs that checks what every
 * pass must keep: no overcommit, FIFO except where backfill is allowed, and no head starting
 * later than a shadow time computed while it waited.
 *
 * Capacity 4 cpus / 8 GB; a "minute" is 60 s; kill grace 10 s + release allowance 20 s, so a
 * running job with timeout T started at S ends by S + T min + 30 s, and a job admitted now by
 * now + 2 min (startup allowance) + T min + 30 s.
 */
import { describe, expect, it } from 'vitest';
import {
  decideSubmission, endsBy, planQueue, refusalMessage,
  type AdmissionSettings, type HeldJob, type QueuedJob, type QueuePlan, type Submission,
} from '../../../actors/scheduler/admission.ts';
import { simulate } from './admission-simulation.ts';
import { jobErrorText } from '../../../actors/contract/jobs.ts';

const NOW = 1_800_000_000_000;
const MIN = 60_000;
const SETTINGS: AdmissionSettings = {
  capacity: { cpus: 4, memoryGb: 8 },
  timeoutMinuteMs: MIN,
  killGraceMs: 10_000,
  startupAllowanceMs: 2 * MIN,
  releaseAllowanceMs: 20_000,
  maxQueueLength: 3,
};

/** A running job (timeout 60) whose upper bound is `endsIn` minutes from now. */
function running(id: string, cpus: number, memoryGb: number, endsIn: number): HeldJob {
  return { id, cpus, memoryGb, timeoutMinutes: 60, admittedAt: NOW - 2 * 60 * MIN, startedAt: NOW + (endsIn - 60) * MIN - 30_000, killRequestedAt: null };
}

function queued(id: string, cpus: number, memoryGb: number, o: { timeout?: number; waited?: number; queueTimeout?: number } = {}): QueuedJob {
  return { id, cpus, memoryGb, timeoutMinutes: o.timeout ?? 30, queuedAt: NOW - (o.waited ?? 1) * MIN, queueTimeoutMinutes: o.queueTimeout ?? 60 };
}

/** `start a b*` (* = backfilled) `| expire c | refuse d | queue e f | shadow e@+30m`. */
function summary(plan: QueuePlan): string {
  const at = (ms: number) => {
    const s = Math.round((ms - NOW) / 1000);
    return `+${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  };
  return [
    plan.start.length ? `start ${plan.start.map((s) => s.jobId + (s.backfilled ? '*' : '')).join(' ')}` : '',
    plan.expire.length ? `expire ${plan.expire.map((e) => e.jobId).join(' ')}` : '',
    plan.refuse.length ? `refuse ${plan.refuse.map((e) => e.jobId).join(' ')}` : '',
    plan.positions.length ? `queue ${plan.positions.map((p) => p.jobId).join(' ')}` : '',
    plan.reservation ? `shadow ${plan.reservation.jobId}@${at(plan.reservation.shadowAt)}` : '',
  ].filter(Boolean).join(' | ');
}

const PASSES: Array<{ name: string; held: HeldJob[]; queue: QueuedJob[]; capacity?: AdmissionSettings['capacity']; expect: string }> = [
  { name: 'nothing queued', held: [running('r', 4, 8, 10)], queue: [], expect: '' },
  {
    name: 'FIFO: heads start in order while they fit, the first that does not waits with the rest behind it',
    held: [], queue: [queued('a', 2, 2), queued('b', 2, 2), queued('c', 1, 1), queued('d', 1, 1)],
    expect: 'start a b | queue c d | shadow c@+32m30s',
  },
  {
    name: 'the head starts when it fits; the next head waits for the job just started',
    held: [running('r', 2, 4, 10)], queue: [queued('a', 2, 4), queued('b', 4, 8), queued('c', 1, 1)],
    expect: 'start a | queue b c | shadow b@+32m30s',
  },
  {
    name: 'backfill allowed: a short small job ends before the head could start',
    held: [running('r1', 2, 4, 30), running('r2', 1, 2, 40)], queue: [queued('h', 3, 4), queued('s', 1, 1, { timeout: 10 })],
    expect: 'start s* | queue h | shadow h@+30m',
  },
  {
    name: 'backfill allowed when it ends exactly at the shadow time',
    held: [running('r1', 2, 4, 29.5), running('r2', 1, 2, 40)], queue: [queued('h', 3, 4), queued('s', 1, 1, { timeout: 27 })],
    expect: 'start s* | queue h | shadow h@+29m30s',
  },
  {
    name: 'backfill refused: it fits now but could still run when the head could start, and no cpu is spare then',
    held: [running('r1', 2, 4, 30), running('r2', 1, 2, 40)], queue: [queued('h', 3, 4), queued('s', 1, 1, { timeout: 28 })],
    expect: 'queue h s | shadow h@+30m',
  },
  {
    name: 'backfill using what is spare at the shadow time: one long job takes the spare cpu, the next finds none',
    held: [running('r1', 1, 4, 30), running('r2', 1, 2, 60)], queue: [queued('h', 2, 4), queued('l1', 1, 1, { timeout: 60 }), queued('l2', 1, 1, { timeout: 60 })],
    expect: 'start l1* | queue h l2 | shadow h@+30m',
  },
  {
    name: 'a refused candidate does not stop a later one that is safe',
    held: [running('r1', 2, 4, 30), running('r2', 1, 2, 40)], queue: [queued('h', 3, 4), queued('long', 1, 1, { timeout: 60 }), queued('short', 1, 1, { timeout: 5 })],
    expect: 'start short* | queue h long | shadow h@+30m',
  },
  {
    name: 'a candidate that does not fit now waits, however short',
    held: [running('r', 3, 4, 30)], queue: [queued('h', 2, 2), queued('s', 2, 1, { timeout: 1 })],
    expect: 'queue h s | shadow h@+30m',
  },
  {
    name: 'several starts in one pass: FIFO heads, then backfills, each taking from what is left',
    held: [running('r', 1, 1, 30)], queue: [queued('a', 1, 2), queued('h', 4, 1), queued('s1', 1, 1, { timeout: 5 }), queued('s2', 1, 1, { timeout: 5 }), queued('s3', 1, 1, { timeout: 5 })],
    expect: 'start a s1* s2* | queue h s3 | shadow h@+32m30s',
  },
  {
    name: 'memory alone can block the head',
    held: [running('r', 1, 7, 20)], queue: [queued('h', 1, 2), queued('s', 1, 1, { timeout: 30 })],
    expect: 'start s* | queue h | shadow h@+20m',
  },
  {
    name: 'backfill refused when it would end 1 ms after the shadow time',
    held: [{ ...running('r1', 2, 4, 29.5), startedAt: running('r1', 2, 4, 29.5).startedAt! - 1 }, running('r2', 1, 2, 40)],
    queue: [queued('h', 3, 4), queued('s', 1, 1, { timeout: 27 })],
    expect: 'queue h s | shadow h@+29m30s',
  },
  {
    name: 'jobs ending at the same instant release together, and all of it counts as spare',
    held: [running('r1', 1, 2, 15), running('r2', 1, 2, 15)], queue: [queued('h', 3, 6), queued('l', 1, 2, { timeout: 60 })],
    expect: 'start l* | queue h | shadow h@+15m',
  },
  {
    name: 'expiry: past its queue_timeout_minutes a job expires, even if it would fit now',
    held: [], queue: [queued('e', 1, 1, { waited: 61, queueTimeout: 60 }), queued('a', 1, 1)],
    expect: 'start a | expire e',
  },
  {
    name: 'an expired head lets the next job start as a FIFO head, not a backfill',
    held: [running('r', 2, 4, 30)], queue: [queued('e', 4, 8, { waited: 30, queueTimeout: 30 }), queued('a', 2, 2)],
    expect: 'start a | expire e',
  },
  {
    name: 'a queued job larger than the capacity (lowered across a restart) is refused and does not block the queue',
    held: [], capacity: { cpus: 2, memoryGb: 8 }, queue: [queued('big', 4, 4), queued('a', 2, 2)],
    expect: 'start a | refuse big',
  },
  {
    name: 'a job being killed ends by its kill request + grace + release allowance',
    held: [{ ...running('r', 4, 8, 60), killRequestedAt: NOW - 5_000 }], queue: [queued('h', 1, 1)],
    expect: 'queue h | shadow h@+0m25s',
  },
  {
    name: 'a job still starting is bounded from its admission by the startup allowance',
    held: [{ id: 'st', cpus: 4, memoryGb: 8, timeoutMinutes: 10, admittedAt: NOW - MIN, startedAt: null, killRequestedAt: null }], queue: [queued('h', 1, 1)],
    expect: 'queue h | shadow h@+11m30s',
  },
  {
    name: 'a start-up overrunning its allowance is bounded from now',
    held: [{ id: 'st', cpus: 4, memoryGb: 8, timeoutMinutes: 10, admittedAt: NOW - 5 * MIN, startedAt: null, killRequestedAt: null }], queue: [queued('h', 1, 1)],
    expect: 'queue h | shadow h@+10m30s',
  },
  {
    name: 'a job past its bound but not yet gone: shadow now, and nothing can end before it',
    held: [running('r', 3, 8, -1)], queue: [queued('h', 2, 2), queued('s', 1, 1, { timeout: 1 })],
    expect: 'queue h s | shadow h@+0m',
  },
];

describe('queue pass', () => {
  it.each(PASSES)('$name', ({ held, queue, capacity, expect: expected }) => {
    const plan = planQueue({ now: NOW, held, queue }, { ...SETTINGS, capacity: capacity ?? SETTINGS.capacity });
    expect(summary(plan)).toBe(expected);
    expect(plan.positions.map((p) => p.position)).toEqual(plan.positions.map((_, i) => i + 1));
  });

  it('what backfill weighed is reported with the reservation', () => {
    const plan = planQueue({ now: NOW, held: [running('r1', 1, 4, 30), running('r2', 1, 2, 60)], queue: [queued('h', 2, 4), queued('l1', 1, 1, { timeout: 60 })] }, SETTINGS);
    expect(plan.reservation).toEqual({ jobId: 'h', shadowAt: NOW + 30 * MIN, freeNow: { cpus: 1, memoryGb: 1 }, spareAtShadow: { cpus: 0, memoryGb: 1 } });
  });

  it('expiry: due at exactly queued_at + queue_timeout_minutes, not a millisecond before; wakeAt names the next one', () => {
    const due = queued('e', 4, 8, { waited: 30, queueTimeout: 30 });
    const held = [running('r', 4, 8, 60)];
    expect(summary(planQueue({ now: NOW - 1, held, queue: [due] }, SETTINGS))).toBe('queue e | shadow e@+60m');
    const plan = planQueue({ now: NOW, held, queue: [due, queued('f', 1, 1, { waited: 10, queueTimeout: 15 }), queued('g', 1, 1, { waited: 1, queueTimeout: 5 })] }, SETTINGS);
    expect(plan.expire).toEqual([{ jobId: 'e', error: { code: 'queue_timeout', waitedMs: 30 * MIN, queueTimeoutMinutes: 30 } }]);
    expect(plan.wakeAt).toBe(NOW + 4 * MIN);
    expect(jobErrorText(plan.expire[0]!.error)).toBe(
      'queue_timeout: waited 30 min in the queue without room to start (queue_timeout_minutes 30); '
      + 'submit it again when the host is less busy, or with a longer queue_timeout_minutes or fewer cpus/memory_gb',
    );
    expect(jobErrorText({ code: 'queue_timeout', waitedMs: 3_723_400, queueTimeoutMinutes: 60 })).toMatch(/^queue_timeout: waited 1 h 2 min 3 s in/);
    expect(planQueue({ now: NOW, held, queue: [] }, SETTINGS).wakeAt).toBeUndefined();
  });

  it('cancelling a queued job (it leaves the queue) renumbers the rest; cancelling the head lets the next one start', () => {
    const held = [running('r1', 2, 6, 30), running('r2', 1, 1, 90)];
    const [a, b, c] = [queued('a', 3, 2), queued('b', 1, 1, { timeout: 60 }), queued('c', 2, 2)];
    expect(planQueue({ now: NOW, held, queue: [a, b, c] }, SETTINGS).positions).toEqual([{ jobId: 'a', position: 1 }, { jobId: 'b', position: 2 }, { jobId: 'c', position: 3 }]);
    expect(planQueue({ now: NOW, held, queue: [a, c] }, SETTINGS).positions).toEqual([{ jobId: 'a', position: 1 }, { jobId: 'c', position: 2 }]);
    expect(summary(planQueue({ now: NOW, held, queue: [b, c] }, SETTINGS))).toBe('start b | queue c | shadow c@+30m');
  });

  it('a pass never starts more than fits, whatever the queue holds', () => {
    const queue = Array.from({ length: 12 }, (_, i) => queued(`q${i}`, 1 + (i % 3), 1 + (i % 4), { timeout: 1 + i }));
    const plan = planQueue({ now: NOW, held: [running('r', 1, 2, 10)], queue }, SETTINGS);
    const started = queue.filter((q) => plan.start.some((s) => s.jobId === q.id));
    expect(started.reduce((n, q) => n + q.cpus, 1)).toBeLessThanOrEqual(4);
    expect(started.reduce((n, q) => n + q.memoryGb, 2)).toBeLessThanOrEqual(8);
    expect(started.length + plan.positions.length).toBe(12);
  });
});

describe('upper bound on a job\'s end', () => {
  it('running: started_at + timeout + kill grace + release allowance; a kill asked for ends it sooner', () => {
    const job: HeldJob = { id: 'r', cpus: 1, memoryGb: 1, timeoutMinutes: 10, admittedAt: NOW - 5 * MIN, startedAt: NOW - 4 * MIN, killRequestedAt: null };
    expect(endsBy(job, NOW, SETTINGS)).toBe(NOW + 6 * MIN + 30_000);
    expect(endsBy({ ...job, killRequestedAt: NOW - 1_000 }, NOW, SETTINGS)).toBe(NOW + 29_000);
    // A kill asked for while it was still starting takes effect once it runs.
    expect(endsBy({ ...job, admittedAt: NOW - MIN, startedAt: null, killRequestedAt: NOW - 1_000 }, NOW, SETTINGS)).toBe(NOW + MIN + 30_000);
  });
});

const submission = (id: string, cpus: number, memoryGb: number, o: { queue?: boolean; timeout?: number } = {}): Submission =>
  ({ id, cpus, memoryGb, timeoutMinutes: o.timeout ?? 30, queueTimeoutMinutes: 60, queue: o.queue ?? true });

describe('POST /jobs', () => {
  const blocked = { now: NOW, held: [running('r1', 2, 4, 30), running('r2', 1, 2, 40)], queue: [queued('h', 3, 4)] };

  it('fits and nothing waits: starts, as today', () => {
    const decision = decideSubmission({ now: NOW, held: [running('r', 2, 4, 10)], queue: [] }, submission('n', 2, 4, { queue: false }), SETTINGS);
    expect(decision).toMatchObject({ outcome: 'start', backfilled: false });
    expect(summary(decision.plan)).toBe('start n');
  });

  it('jobs waiting: a new job starts only where a queued one could, as a backfill', () => {
    const decision = decideSubmission(blocked, submission('n', 1, 1, { timeout: 10, queue: false }), SETTINGS);
    expect([decision.outcome, summary(decision.plan)]).toEqual(['start', 'start n* | queue h | shadow h@+30m']);
  });

  it('queue: false and it could delay the head: 429 insufficient_resources with the figures, though it would fit', () => {
    const decision = decideSubmission(blocked, submission('n', 1, 1, { timeout: 60, queue: false }), SETTINGS);
    expect(decision.outcome).toBe('refuse');
    if (decision.outcome !== 'refuse') return;
    expect(decision.refusal).toEqual({
      code: 'insufficient_resources', reason: 'no_room_now',
      figures: { requested: { cpus: 1, memory_gb: 1 }, available: { cpus: 1, memory_gb: 2 }, host_capacity: { cpus: 4, memory_gb: 8 }, running_jobs: 2, queued_jobs: 1 },
    });
    expect(refusalMessage(decision.refusal)).toBe('Not enough resources to start job: what is free is reserved for the 1 queued job(s) ahead of it; send "queue": true to wait in line.');
    expect(summary(decision.plan)).toBe('queue h | shadow h@+30m');
  });

  it('queue: false, nothing waits, it does not fit: today\'s 429 and message', () => {
    const decision = decideSubmission({ now: NOW, held: [running('r', 3, 4, 10)], queue: [] }, submission('n', 2, 2, { queue: false }), SETTINGS);
    expect(decision.outcome === 'refuse' && decision.refusal).toEqual({
      code: 'insufficient_resources', reason: 'no_room_now',
      figures: { requested: { cpus: 2, memory_gb: 2 }, available: { cpus: 1, memory_gb: 4 }, host_capacity: { cpus: 4, memory_gb: 8 }, running_jobs: 1, queued_jobs: 0 },
    });
    expect(decision.outcome === 'refuse' && refusalMessage(decision.refusal)).toBe('Not enough resources to start job');
  });

  it('queue: true and it does not fit: queued at the tail with its position', () => {
    const decision = decideSubmission(blocked, submission('n', 1, 1, { timeout: 60 }), SETTINGS);
    expect(decision).toMatchObject({ outcome: 'queue', position: 2 });
    expect(summary(decision.plan)).toBe('queue h n | shadow h@+30m');
  });

  it('larger than the whole host: refused at once, never queued, whatever `queue` says', () => {
    for (const queue of [true, false]) {
      const decision = decideSubmission({ now: NOW, held: [], queue: [] }, submission('n', 5, 4, { queue }), SETTINGS);
      expect(decision.outcome === 'refuse' && decision.refusal).toEqual({
        code: 'insufficient_resources', reason: 'larger_than_host',
        figures: { requested: { cpus: 5, memory_gb: 4 }, available: { cpus: 4, memory_gb: 8 }, host_capacity: { cpus: 4, memory_gb: 8 }, running_jobs: 0, queued_jobs: 0 },
      });
      expect(decision.plan.positions).toEqual([]);
    }
    const refused = decideSubmission({ now: NOW, held: [], queue: [] }, submission('n', 1, 9), SETTINGS);
    expect(refused.outcome === 'refuse' && refusalMessage(refused.refusal)).toBe(
      'Not enough resources to start job: it needs 1 cpus and 9 GB, more than the whole host (4 cpus, 8 GB); it can never run here, so lower cpus/memory_gb.',
    );
  });

  it('queue full: 429 queue_full with the figures once max_queue_length jobs wait; one fewer still queues', () => {
    const held = [running('r', 4, 8, 30)];
    const three = [queued('a', 1, 1), queued('b', 1, 1), queued('c', 1, 1)];
    expect(decideSubmission({ now: NOW, held, queue: three.slice(0, 2) }, submission('n', 1, 1), SETTINGS)).toMatchObject({ outcome: 'queue', position: 3 });
    const full = decideSubmission({ now: NOW, held, queue: three }, submission('n', 1, 1), SETTINGS);
    expect(full.outcome === 'refuse' && full.refusal).toEqual({
      code: 'queue_full', reason: 'queue_full',
      figures: { requested: { cpus: 1, memory_gb: 1 }, available: { cpus: 0, memory_gb: 0 }, host_capacity: { cpus: 4, memory_gb: 8 }, running_jobs: 1, queued_jobs: 3, max_queue_length: 3 },
    });
    expect(full.outcome === 'refuse' && refusalMessage(full.refusal)).toBe('The queue is full (3 of 3 jobs waiting); retry later, or ask the operator to raise the queue length.');
    // A job that expires in the same pass makes room.
    const oneDue = [queued('a', 1, 1, { waited: 60, queueTimeout: 60 }), ...three.slice(1)];
    expect(decideSubmission({ now: NOW, held, queue: oneDue }, submission('n', 1, 1), SETTINGS)).toMatchObject({ outcome: 'queue', position: 3, plan: { expire: [{ jobId: 'a' }] } });
  });

  it('a job larger than the host names both figures in its error', () => {
    expect(jobErrorText({ code: 'larger_than_host', requested: { cpus: 4, memoryGb: 4 }, capacity: { cpus: 2, memoryGb: 8 } })).toBe(
      'larger_than_host: the job needs 4 cpus and 4 GB but the host\'s capacity is now 2 cpus and 8 GB (it was lowered while the job was queued); submit it again with fewer cpus/memory_gb',
    );
  });
});

describe('simulated runs (seeded)', () => {
  it('never overcommit, keep FIFO except allowed backfill, never start a head after a shadow time computed while it waited', () => {
    let backfills = 0;
    let expiries = 0;
    let startsAtShadow = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const run = simulate(seed);
      expect(run.violations, `seed ${seed}`).toEqual([]);
      backfills += run.backfills;
      expiries += run.expiries;
      startsAtShadow += run.startsAtShadow;
      expect(run.started + run.expiries + run.refused + run.cancelledQueued, `seed ${seed}: every job accounted for`).toBe(run.jobs);
    }
    // The runs exercised what they check.
    expect(backfills).toBeGreaterThan(300);
    expect(expiries).toBeGreaterThan(300);
    expect(startsAtShadow).toBeGreaterThan(300);
  });
});
