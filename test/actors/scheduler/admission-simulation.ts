/**
 * @module test/actors/scheduler/admission-simulation
 * A seeded discrete-event run of the queue, for the property check of admission.test.ts. Jobs
 * arrive as POST /jobs with `queue: true` (mixed sizes, some larger than the host), reach
 * `running` within the startup allowance and release their resources within their timeout, kill
 * grace and release allowance; some are cancelled, queued or running. A pass runs after every
 * batch of simultaneous events and at the plan's `wakeAt`, as the scheduler will. Each plan is
 * applied and checked; what breaks a rule is collected as text, so a failure names its seed.
 */
import {
  decideSubmission, expiresAt, freeNow, planQueue, type AdmissionSettings, type HeldJob, type QueuedJob, type QueuePlan,
} from '../../../actors/scheduler/admission.ts';

/** mulberry32: small, seeded, good enough to draw test cases. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RunReport {
  jobs: number;
  started: number;
  backfills: number;
  /** Heads that started at exactly a shadow time computed for them: the bound was tight. */
  startsAtShadow: number;
  expiries: number;
  refused: number;
  cancelledQueued: number;
  violations: string[];
}

interface Plot {
  job: QueuedJob;
  arriveAt: number;
  startupMs: number;
  runMs: number;
  releaseMs: number;
  cancelAt: number | undefined;
}

type Event = { at: number; kind: 'release' | 'running' | 'cancel' | 'arrive'; id: string };
// At one instant: resources come back first, so a pass at the bound sees them free.
const KIND_ORDER = { release: 0, running: 1, cancel: 2, arrive: 3 } as const;

export function simulate(seed: number, jobCount = 40): RunReport {
  const rand = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const upTo = (max: number) => (rand() < 0.4 ? max : int(0, max));
  const s: AdmissionSettings = {
    capacity: { cpus: int(2, 8), memoryGb: int(2, 16) },
    timeoutMinuteMs: 1_000, killGraceMs: 100, startupAllowanceMs: 500, releaseAllowanceMs: 200, maxQueueLength: 1_000,
  };
  const plots = new Map<string, Plot>();
  const events: Event[] = [];
  for (let i = 0; i < jobCount; i++) {
    const id = `j${String(i).padStart(2, '0')}`;
    const timeoutMinutes = int(1, 15);
    const arriveAt = int(0, 120_000);
    const oversized = rand() < 0.05;
    const job: QueuedJob = {
      id, timeoutMinutes, queuedAt: arriveAt, queueTimeoutMinutes: int(5, 60),
      cpus: oversized ? s.capacity.cpus + 1 : int(1, s.capacity.cpus), memoryGb: int(1, s.capacity.memoryGb + (oversized ? 2 : 0)),
    };
    plots.set(id, {
      job, arriveAt,
      // Often the whole of each allowance, so that heads start right at their shadow time.
      startupMs: upTo(s.startupAllowanceMs),
      runMs: Math.max(1, upTo(timeoutMinutes * s.timeoutMinuteMs + s.killGraceMs)),
      releaseMs: upTo(s.releaseAllowanceMs),
      cancelAt: rand() < 0.15 ? arriveAt + int(0, 20_000) : undefined,
    });
    events.push({ at: arriveAt, kind: 'arrive', id });
    if (plots.get(id)!.cancelAt !== undefined) events.push({ at: plots.get(id)!.cancelAt!, kind: 'cancel', id });
  }

  const report: RunReport = { jobs: jobCount, started: 0, backfills: 0, startsAtShadow: 0, expiries: 0, refused: 0, cancelledQueued: 0, violations: [] };
  const fail = (t: number, what: string) => report.violations.push(`t=${t}: ${what}`);
  let queue: QueuedJob[] = [];
  const held = new Map<string, HeldJob & { runningAt: number; releaseAt: number }>();
  /** The earliest shadow time computed for each job while it was the waiting head. */
  const shadows = new Map<string, number>();
  let wakeAt: number | undefined;

  const state = (now: number) => ({ now, held: [...held.values()], queue: [...queue] });

  function apply(plan: QueuePlan, t: number): void {
    for (const { jobId } of plan.expire) {
      const job = queue.find((q) => q.id === jobId)!;
      if (expiresAt(job, s) !== t) fail(t, `${jobId} expired at ${t}, due at ${expiresAt(job, s)}`);
      report.expiries++;
    }
    for (const { jobId } of plan.refuse) {
      const job = queue.find((q) => q.id === jobId)!;
      if (job.cpus <= s.capacity.cpus && job.memoryGb <= s.capacity.memoryGb) fail(t, `${jobId} refused though it fits the capacity`);
      report.refused++;
    }
    const gone = new Set([...plan.expire, ...plan.refuse].map((e) => e.jobId));
    queue = queue.filter((q) => !gone.has(q.id));

    for (const { jobId, backfilled } of plan.start) {
      const index = queue.findIndex((q) => q.id === jobId);
      if (index < 0) fail(t, `${jobId} started but is not queued`);
      if (!backfilled && index !== 0) fail(t, `${jobId} started as a FIFO head at position ${index + 1}`);
      if (backfilled && index === 0) fail(t, `${jobId} started as a backfill but was the head`);
      if (t > (shadows.get(jobId) ?? Infinity)) fail(t, `${jobId} started after its shadow time ${shadows.get(jobId)}`);
      if (t === shadows.get(jobId)) report.startsAtShadow++;
      const plot = plots.get(jobId)!;
      queue.splice(index, 1);
      const runningAt = t + plot.startupMs;
      const releaseAt = runningAt + plot.runMs + plot.releaseMs;
      held.set(jobId, { ...plot.job, admittedAt: t, startedAt: null, killRequestedAt: null, runningAt, releaseAt });
      events.push({ at: runningAt, kind: 'running', id: jobId }, { at: releaseAt, kind: 'release', id: jobId });
      report.started++;
      if (backfilled) report.backfills++;
    }

    const order = queue.map((q) => q.id);
    if (plan.positions.map((p) => `${p.jobId}@${p.position}`).join(' ') !== order.map((id, i) => `${id}@${i + 1}`).join(' ')) {
      fail(t, `positions ${JSON.stringify(plan.positions)} are not the queue ${order.join(' ')}`);
    }
    const free = freeNow([...held.values()], s.capacity);
    if (free.cpus < 0 || free.memoryGb < 0) fail(t, `overcommitted: free ${JSON.stringify(free)}`);
    const head = queue[0];
    if (head && head.cpus <= free.cpus && head.memoryGb <= free.memoryGb) fail(t, `head ${head.id} fits but waits`);
    if (plan.reservation) {
      if (plan.reservation.jobId !== head?.id) fail(t, `reservation for ${plan.reservation.jobId}, head is ${head?.id}`);
      shadows.set(plan.reservation.jobId, Math.min(shadows.get(plan.reservation.jobId) ?? Infinity, plan.reservation.shadowAt));
    }
  }

  for (;;) {
    const nextEvent = events.reduce((min, e) => Math.min(min, e.at), Infinity);
    const t = Math.min(nextEvent, wakeAt ?? Infinity);
    if (t === Infinity) break;
    const batch = events.filter((e) => e.at === t).sort((a, b) => KIND_ORDER[a.kind] - KIND_ORDER[b.kind]);
    for (const e of batch) events.splice(events.indexOf(e), 1);

    for (const { kind, id } of batch) {
      const job = held.get(id);
      if (kind === 'release') held.delete(id);
      else if (kind === 'running' && job) job.startedAt = t;
      else if (kind === 'cancel') {
        if (queue.some((q) => q.id === id)) {
          queue = queue.filter((q) => q.id !== id);
          report.cancelledQueued++;
        } else if (job && job.killRequestedAt === null) {
          job.killRequestedAt = t;
          const releaseAt = Math.max(t, job.runningAt) + int(0, s.killGraceMs) + int(0, s.releaseAllowanceMs);
          if (releaseAt < job.releaseAt) {
            events.splice(events.findIndex((e) => e.kind === 'release' && e.id === id), 1);
            events.push({ at: releaseAt, kind: 'release', id });
            job.releaseAt = releaseAt;
          }
        }
      } else if (kind === 'arrive') {
        const { job: submitted } = plots.get(id)!;
        const decision = decideSubmission(state(t), { ...submitted, queue: true }, s);
        if (decision.outcome === 'refuse') {
          report.refused++;
          if (decision.refusal.reason !== 'larger_than_host') fail(t, `${id} refused: ${decision.refusal.reason}`);
        } else queue.push(submitted);
        apply(decision.plan, t);
        if (decision.outcome === 'queue' && queue.at(-1)?.id !== id) fail(t, `${id} queued but not at the tail`);
      }
    }
    const plan = planQueue(state(t), s);
    apply(plan, t);
    wakeAt = plan.wakeAt;
    if (wakeAt !== undefined && wakeAt <= t) {
      fail(t, `the pass asks to run again at ${wakeAt}, not after now`);
      break;
    }
  }
  if (queue.length || held.size) fail(-1, `run ended with ${queue.length} queued and ${held.size} held`);
  return report;
}
