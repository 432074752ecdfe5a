/**
 * @module bench/job-pool
 * The job benches' client: N jobs with at most C in flight, timed from outside, and the
 * percentile every table of bench/README.md reads from the latencies.
 */

export interface Run {
  label: string;
  seconds: number;
  /** Per job, from its submission to its answer, sorted ascending. */
  latenciesMs: number[];
}

/** The p-th percentile of an ascending list (nearest rank). */
export const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

/** Runs `one` for 0..n-1 with at most `c` in flight; the wall time and each one's latency. */
export async function pool(label: string, n: number, c: number, one: (i: number) => Promise<void>): Promise<Run> {
  const latenciesMs: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: c }, async () => {
    while (next < n) {
      const i = next++;
      const t = performance.now();
      await one(i);
      latenciesMs.push(performance.now() - t);
    }
  }));
  return { label, seconds: (performance.now() - started) / 1000, latenciesMs: latenciesMs.sort((a, b) => a - b) };
}
