/**
 * @module bench/measure
 * The measurement loop shared by the actor bench (run inside the pinger's worker thread) and its
 * same-thread baseline (run on the main thread), so both sides are timed by the very same code.
 *
 * `inFlight` lanes each await one call at a time, back to back, until the deadline; a call's
 * latency is the performance.now() difference around its `await`. Latencies go into a
 * log-linear histogram (relative error < 0.2 %) instead of an array, so a multi-million-call
 * baseline run neither allocates nor pauses for GC on the bench's own account.
 */

export interface MeasureOptions {
  /** Calls kept in flight at once: 1 = sequential, >1 = pipelined. */
  inFlight: number;
  /** Calls made but not recorded before the measured window (JIT, caches, channel warm-up). */
  warmupMs: number;
  durationMs: number;
}

export interface MeasureResult {
  inFlight: number;
  calls: number;
  elapsedMs: number;
  perSecond: number;
  /** Latency of one call in microseconds. */
  latencyUs: { mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
}

export type Call = (seq: number) => unknown;

/** Runs `call` per the options and returns throughput and the latency distribution. */
export async function measure(call: Call, options: MeasureOptions): Promise<MeasureResult> {
  const { inFlight, warmupMs, durationMs } = options;
  if (!(inFlight >= 1) || !Number.isInteger(inFlight)) throw new Error(`inFlight must be a positive integer, got ${inFlight}`);
  let seq = 0;

  const lane = async (until: number, histogram: Histogram | undefined): Promise<void> => {
    let t0 = performance.now();
    while (t0 < until) {
      await call(seq++);
      const t1 = performance.now();
      histogram?.record(t1 - t0);
      t0 = t1;
    }
  };
  const lanes = (until: number, histogram: Histogram | undefined) =>
    Promise.all(Array.from({ length: inFlight }, () => lane(until, histogram)));

  await lanes(performance.now() + warmupMs, undefined);

  const histogram = new Histogram();
  const started = performance.now();
  await lanes(started + durationMs, histogram);
  // Measured up to the last reply, so the tail of calls still in flight at the deadline counts.
  const elapsedMs = performance.now() - started;

  return {
    inFlight,
    calls: histogram.count,
    elapsedMs,
    perSecond: (histogram.count * 1000) / elapsedMs,
    latencyUs: {
      mean: histogram.mean(),
      p50: histogram.percentile(50),
      p90: histogram.percentile(90),
      p99: histogram.percentile(99),
      p999: histogram.percentile(99.9),
      max: histogram.max / 1000,
    },
  };
}

/**
 * Log-linear histogram of nanosecond values: exact below 1024 ns, then 512 sub-buckets per power
 * of two (relative error < 0.2 %), clamped at ~2 s.
 */
class Histogram {
  private static readonly SUB = 512;
  private static readonly MAX_SHIFT = 22;
  private readonly counts = new Float64Array(1024 + Histogram.MAX_SHIFT * Histogram.SUB);
  count = 0;
  max = 0;
  private sumNs = 0;

  record(ms: number): void {
    const ns = Math.max(0, Math.round(ms * 1e6));
    this.count++;
    this.sumNs += ns;
    if (ns > this.max) this.max = ns;
    this.counts[Histogram.index(ns)]! += 1;
  }

  mean(): number {
    return this.count === 0 ? 0 : this.sumNs / this.count / 1000;
  }

  /** The p-th percentile in microseconds (bucket midpoint, never above the recorded max). */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(Histogram.midpoint(i), this.max) / 1000;
    }
    return this.max / 1000;
  }

  private static index(ns: number): number {
    if (ns < 1024) return ns;
    const magnitude = Math.min(31 - Math.clz32(Math.min(ns, 0x7fffffff)), 9 + Histogram.MAX_SHIFT);
    const shift = magnitude - 9;
    const sub = Math.min(Math.floor(ns / 2 ** shift), 1023);
    return 1024 + (shift - 1) * Histogram.SUB + (sub - Histogram.SUB);
  }

  private static midpoint(index: number): number {
    if (index < 1024) return index;
    const shift = Math.floor((index - 1024) / Histogram.SUB) + 1;
    const sub = ((index - 1024) % Histogram.SUB) + Histogram.SUB;
    return sub * 2 ** shift + (2 ** shift - 1) / 2;
  }
}
