/**
 * @module scheduler/admission
 * Who starts, who waits and who gives up (issue 15): a FIFO queue with safe (EASY) backfill, as
 * pure functions of the capacity, the jobs holding resources, the queue and `now`.
 *
 * - `planQueue` is the queue pass. Heads start in FIFO order while they fit. The first head that
 *   does not fit gets a reservation: its shadow time, the earliest instant at which, by the upper
 *   bounds on when held jobs end, it would fit. A later job may then start now only if it fits
 *   now and either it is certain to end by the shadow time, or it uses only what would still be
 *   spare at the shadow time with the head started. So backfill never makes the head start later
 *   than its shadow time. Jobs past their queue_timeout_minutes expire before anything starts.
 * - `decideSubmission` is POST /jobs: the new job joins the tail and the same pass decides, so
 *   a new job never overtakes the queue by a rule the queued jobs do not get.
 *
 * The scheduler reads held jobs and the queue (in its FIFO order) and writes the plan in one
 * transaction, and runs a pass whenever resources are released, a job is queued or cancelled,
 * and at `wakeAt`.
 *
 * "Certain to end by" (`endsBy`). Every job has a timeout (schema: 1–120 minutes), so a running
 * job ends by started_at + timeout + the kill grace, plus the release allowance (Podman removing
 * the container; resources are held until it is gone). A kill already asked for ends it by the
 * kill time + grace. Before `running` (image pull, namespaces) no contract bounds the time, so a
 * job is assumed to be running within the startup allowance of its admission; a start-up that
 * overruns it makes the bound an estimate (the bound then counts from now). An overdue bound is
 * clamped to now: the job may release at any moment, but its resources are not free yet.
 *
 * Decisions the issue leaves open:
 * - `queue: false` keeps today's answer (start or 429 insufficient_resources), but while jobs
 *   wait it starts only where a backfill could: free resources reserved for the head are not
 *   free to it, or a stream of small requests would starve the queue. The 429 says so.
 * - Larger than the whole capacity: today's 429 insufficient_resources, with a message saying
 *   it can never run, whatever `queue` says. A queued job that no longer fits the capacity
 *   (lowered across a restart) fails at once (`refuse`), rather than block the queue until it expires.
 * - A job expires at exactly queued_at + queue_timeout_minutes, before it could start in that pass.
 * - queue_full compares the queue as it is after the pass (expiries make room) with the limit.
 */

import type { LargerThanHost, QueueTimeout } from '../contract/jobs.ts';

export interface Resources {
  cpus: number;
  memoryGb: number;
}

/** A job whose container may be alive: pending, starting, running, or killed but not yet gone. */
export interface HeldJob extends Resources {
  id: string;
  timeoutMinutes: number;
  /** When it was admitted (left the queue, or was created when it never queued). */
  admittedAt: number;
  /** When it reached `running` (its timeout clock's start); null before. */
  startedAt: number | null;
  /** When a cancel or timeout kill was asked for; null when none was. */
  killRequestedAt: number | null;
}

/** A queued job; the queue is given in FIFO order (queued_at, then queue_seq). */
export interface QueuedJob extends Resources {
  id: string;
  timeoutMinutes: number;
  queuedAt: number;
  queueTimeoutMinutes: number;
}

export interface AdmissionSettings {
  capacity: Resources;
  /** How long one minute of timeout_minutes and queue_timeout_minutes lasts (tests shorten it). */
  timeoutMinuteMs: number;
  killGraceMs: number;
  /** Assumed longest time from admission to `running`. */
  startupAllowanceMs: number;
  /** Assumed longest time from the container's exit to its removal (resources released). */
  releaseAllowanceMs: number;
  maxQueueLength: number;
}

export interface QueueState {
  now: number;
  held: HeldJob[];
  queue: QueuedJob[];
}

/** The head that could not start, and what backfill weighed against it. */
export interface Reservation {
  jobId: string;
  /** Its shadow time: the earliest instant it fits, by the held jobs' upper bounds. */
  shadowAt: number;
  /** Resources free now after this pass's starts. */
  freeNow: Resources;
  /** Resources still spare at the shadow time with the head started, after this pass's backfills. */
  spareAtShadow: Resources;
}

export interface QueuePlan {
  /** In the order they are admitted; `backfilled` when it started ahead of a waiting head. */
  start: Array<{ jobId: string; backfilled: boolean }>;
  expire: Array<{ jobId: string; error: QueueTimeout }>;
  /** Fail at once: they would block the queue forever. */
  refuse: Array<{ jobId: string; error: LargerThanHost }>;
  /** Every job still queued, in order, from position 1. */
  positions: Array<{ jobId: string; position: number }>;
  reservation: Reservation | undefined;
  /** When the next expiry is due (a pass must run then even if nothing else happens). */
  wakeAt: number | undefined;
}

/** The figures of a 429 (jobs.md "Admission control"), plus the queue's. */
export interface Figures {
  requested: { cpus: number; memory_gb: number };
  available: { cpus: number; memory_gb: number };
  host_capacity: { cpus: number; memory_gb: number };
  running_jobs: number;
  queued_jobs: number;
}

export interface Submission extends Resources {
  id: string;
  timeoutMinutes: number;
  queueTimeoutMinutes: number;
  /** POST /jobs `queue`: wait when it does not fit, instead of a 429. */
  queue: boolean;
}

export type Refusal =
  /** `larger_than_host`: more than the whole capacity, so it could never start (never queued). */
  | { code: 'insufficient_resources'; reason: 'larger_than_host' | 'no_room_now'; figures: Figures }
  | { code: 'queue_full'; reason: 'queue_full'; figures: Figures & { max_queue_length: number } };

/**
 * What to do with a new job, and the pass to write with it (other jobs may start or expire in
 * the same transaction). A refused job is absent from the plan.
 */
export type SubmissionDecision =
  | { outcome: 'start'; backfilled: boolean; plan: QueuePlan }
  | { outcome: 'queue'; position: number; plan: QueuePlan }
  | { outcome: 'refuse'; refusal: Refusal; plan: QueuePlan };

type BoundSettings = Pick<AdmissionSettings, 'timeoutMinuteMs' | 'killGraceMs' | 'startupAllowanceMs' | 'releaseAllowanceMs'>;

/** The latest instant the job's resources can still be held, never before `now`. */
export function endsBy(job: HeldJob, now: number, s: BoundSettings): number {
  const runningBy = job.startedAt ?? Math.max(now, job.admittedAt + s.startupAllowanceMs);
  const byTimeout = runningBy + job.timeoutMinutes * s.timeoutMinuteMs + s.killGraceMs;
  const byKill = job.killRequestedAt === null ? Infinity : Math.max(job.killRequestedAt, runningBy) + s.killGraceMs;
  return Math.max(now, Math.min(byTimeout, byKill) + s.releaseAllowanceMs);
}

export function expiresAt(job: QueuedJob, s: Pick<AdmissionSettings, 'timeoutMinuteMs'>): number {
  return job.queuedAt + job.queueTimeoutMinutes * s.timeoutMinuteMs;
}

const fits = (want: Resources, room: Resources) => want.cpus <= room.cpus && want.memoryGb <= room.memoryGb;
const minus = (a: Resources, b: Resources): Resources => ({ cpus: a.cpus - b.cpus, memoryGb: a.memoryGb - b.memoryGb });
const plus = (a: Resources, b: Resources): Resources => ({ cpus: a.cpus + b.cpus, memoryGb: a.memoryGb + b.memoryGb });

/** Free resources now: capacity less everything held. */
export function freeNow(held: readonly Resources[], capacity: Resources): Resources {
  return held.reduce(minus, capacity);
}

/**
 * The head's shadow time and what is free at that instant (before the head takes its share);
 * undefined when it never fits, even with every held job gone.
 */
function shadowOf(head: Resources, bounded: ReadonlyArray<{ job: Resources; endsBy: number }>, free: Resources): { at: number; free: Resources } | undefined {
  const byEnd = [...bounded].sort((a, b) => a.endsBy - b.endsBy);
  let room = free;
  for (let i = 0; i < byEnd.length; i++) {
    room = plus(room, byEnd[i]!.job);
    // Jobs ending at the same instant release together.
    if (byEnd[i + 1]?.endsBy === byEnd[i]!.endsBy) continue;
    if (fits(head, room)) return { at: byEnd[i]!.endsBy, free: room };
  }
  return undefined;
}

/** One queue pass: expiries, FIFO starts, the head's reservation, backfill, positions. */
export function planQueue(state: QueueState, s: AdmissionSettings): QueuePlan {
  const { now } = state;
  const plan: QueuePlan = { start: [], expire: [], refuse: [], positions: [], reservation: undefined, wakeAt: undefined };
  const bounded = state.held.map((job) => ({ job: job as Resources, endsBy: endsBy(job, now, s) }));
  let free = freeNow(state.held, s.capacity);
  const admit = (job: QueuedJob) => bounded.push({ job, endsBy: endsBy({ ...job, admittedAt: now, startedAt: null, killRequestedAt: null }, now, s) });

  const waiting: QueuedJob[] = [];
  for (const job of state.queue) {
    if (expiresAt(job, s) <= now) plan.expire.push({ jobId: job.id, error: { code: 'queue_timeout', waitedMs: now - job.queuedAt, queueTimeoutMinutes: job.queueTimeoutMinutes } });
    else if (!fits(job, s.capacity)) plan.refuse.push({ jobId: job.id, error: { code: 'larger_than_host', requested: { cpus: job.cpus, memoryGb: job.memoryGb }, capacity: s.capacity } });
    else waiting.push(job);
  }

  let headAt = 0;
  while (headAt < waiting.length && fits(waiting[headAt]!, free)) {
    const head = waiting[headAt++]!;
    free = minus(free, head);
    admit(head);
    plan.start.push({ jobId: head.id, backfilled: false });
  }

  const remaining: QueuedJob[] = [];
  const head = waiting[headAt];
  if (head) {
    remaining.push(head);
    // Every queued job fits the capacity (the rest were refused above), so the head has a shadow.
    const shadow = shadowOf(head, bounded, free)!;
    let spare = minus(shadow.free, head);
    for (const job of waiting.slice(headAt + 1)) {
      if (!fits(job, free)) {
        remaining.push(job);
        continue;
      }
      const endsBeforeShadow = endsBy({ ...job, admittedAt: now, startedAt: null, killRequestedAt: null }, now, s) <= shadow.at;
      if (!endsBeforeShadow && !fits(job, spare)) {
        remaining.push(job);
        continue;
      }
      free = minus(free, job);
      if (!endsBeforeShadow) spare = minus(spare, job);
      plan.start.push({ jobId: job.id, backfilled: true });
    }
    plan.reservation = { jobId: head.id, shadowAt: shadow.at, freeNow: free, spareAtShadow: spare };
  }

  plan.positions = remaining.map((job, i) => ({ jobId: job.id, position: i + 1 }));
  const expiries = remaining.map((job) => expiresAt(job, s));
  plan.wakeAt = expiries.length ? Math.min(...expiries) : undefined;
  return plan;
}

/** POST /jobs: start it, queue it, or refuse it with the figures of the 429. */
export function decideSubmission(state: QueueState, job: Submission, s: AdmissionSettings): SubmissionDecision {
  // The figures as they stand after the pass: what it started is no longer available.
  const figures = (plan: QueuePlan): Figures => {
    const started = new Set(plan.start.map((start) => start.jobId));
    const free = freeNow([...state.held, ...state.queue.filter((q) => started.has(q.id))], s.capacity);
    return {
      requested: { cpus: job.cpus, memory_gb: job.memoryGb },
      available: { cpus: Math.max(0, free.cpus), memory_gb: Math.max(0, free.memoryGb) },
      host_capacity: { cpus: s.capacity.cpus, memory_gb: s.capacity.memoryGb },
      running_jobs: state.held.length + started.size,
      queued_jobs: plan.positions.length,
    };
  };
  // Refused, it is in no pass: the pass written with the refusal is the one without it.
  const refuse = (refusal: (plan: QueuePlan) => Refusal): SubmissionDecision => {
    const without = planQueue(state, s);
    return { outcome: 'refuse', refusal: refusal(without), plan: without };
  };
  const queuedJob: QueuedJob = { id: job.id, cpus: job.cpus, memoryGb: job.memoryGb, timeoutMinutes: job.timeoutMinutes, queuedAt: state.now, queueTimeoutMinutes: job.queueTimeoutMinutes };
  if (!fits(job, s.capacity)) return refuse((without) => ({ code: 'insufficient_resources', reason: 'larger_than_host', figures: figures(without) }));

  const plan = planQueue({ ...state, queue: [...state.queue, queuedJob] }, s);
  const started = plan.start.find((start) => start.jobId === job.id);
  if (started) return { outcome: 'start', backfilled: started.backfilled, plan };

  if (!job.queue) return refuse((without) => ({ code: 'insufficient_resources', reason: 'no_room_now', figures: figures(without) }));
  if (plan.positions.length > s.maxQueueLength) {
    return refuse((without) => ({ code: 'queue_full', reason: 'queue_full', figures: { ...figures(without), max_queue_length: s.maxQueueLength } }));
  }
  const position = plan.positions.find((p) => p.jobId === job.id)!.position;
  return { outcome: 'queue', position, plan };
}

/** The 429's message: the contract's text, and what the client can do about it. */
export function refusalMessage(refusal: Refusal): string {
  const { requested: r, host_capacity: c, available: a, queued_jobs: queued } = refusal.figures;
  switch (refusal.reason) {
    case 'larger_than_host':
      return `Not enough resources to start job: it needs ${r.cpus} cpus and ${r.memory_gb} GB, more than the whole host (${c.cpus} cpus, ${c.memory_gb} GB); it can never run here, so lower cpus/memory_gb.`;
    case 'no_room_now':
      return r.cpus <= a.cpus && r.memory_gb <= a.memory_gb
        ? `Not enough resources to start job: what is free is reserved for the ${queued} queued job(s) ahead of it; send "queue": true to wait in line.`
        : 'Not enough resources to start job';
    case 'queue_full':
      return `The queue is full (${queued} of ${refusal.figures.max_queue_length} jobs waiting); retry later, or ask the operator to raise the queue length.`;
  }
}
