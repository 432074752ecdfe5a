/**
 * @module histogram-from-rows
 * A histogram by job type that is emptied and refilled from database rows at every scrape, for
 * figures the database owns (job run times, queue waits): why they are not observed as they
 * happen is in metrics.ts. Both job types are always written, at zero when no row has it, so a
 * rate() over a type has a series from the first scrape on.
 */
import { Histogram, type Registry } from 'prom-client';
import { JOB_TYPES, type JobType } from '../contract/jobs.ts';

export interface HistogramFromRows {
  name: string;
  help: string;
  buckets: number[];
  registry: Registry;
  /** Every observation, read afresh at each scrape. */
  rows: () => Array<{ type: JobType; seconds: number }>;
}

export function histogramFromRows({ name, help, buckets, registry, rows }: HistogramFromRows): void {
  new Histogram({
    name, help, labelNames: ['type'], buckets, registers: [registry],
    collect() {
      this.reset();
      for (const type of JOB_TYPES) this.zero({ type });
      for (const { type, seconds } of rows()) this.observe({ type }, seconds);
    },
  });
}
