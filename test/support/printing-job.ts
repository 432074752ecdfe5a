/**
 * @module test/support/printing-job
 * A job that keeps its own record of what it printed and when, and the check that a job log is
 * exactly that record: every line once, per stream in order, each stamped with the time it was
 * printed (not the time a capture that was down got to it). For the log-recovery tests.
 */
import { existsSync, readFileSync } from 'node:fs';
import { expect } from 'vitest';

const DAY = 86_400_000;
/** How late conmon's stamp of a line may be after the job took its own time, just before printing it. */
export const STAMP_LATE_MAX_MS = 500;
export const PRINTED_LINES = 300;

/**
 * Prints PRINTED_LINES lines (stdout and stderr, some over 16 KiB so conmon cuts them into `P`
 * pieces, some written in two parts with a pause between), each starting with its stream, its
 * number and the job's own time in µs taken just before printing it, and appends each to
 * /artifacts/record once printed. Ends with a line without a newline. Runs about 10 s.
 */
export const PRINTING_JOB = `
now() { busybox adjtimex | busybox awk '/tv_sec/{s=$2} /tv_usec/{u=$2} END{printf "%d%06d", s, u}'; }
long=$(head -c 20000 /dev/zero | tr '\\0' x)
i=0
while [ $i -lt ${PRINTED_LINES} ]; do
  t=$(now)
  case $((i % 5)) in
    0) l="out $i $t short"; echo "$l" ;;
    1) l="err $i $t short"; echo "$l" >&2 ;;
    2) l="out $i $t long $long"; echo "$l" ;;
    3) l="err $i $t long $long$long"; echo "$l" >&2 ;;
    4) l="out $i $t split-begin split-end"; printf '%s' "out $i $t split-begin"; busybox usleep 30000; echo ' split-end' ;;
  esac
  echo "$l" >> /artifacts/record
  i=$((i+1))
  busybox usleep 20000
done
t=$(now); l="out $i $t final-without-newline"; echo "$l" >> /artifacts/record; printf '%s' "$l"
`;

/** The lines of a file, without their newlines; none for a missing file. */
export function fileLines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').slice(0, -1) : [];
}

export interface Outage {
  from: number;
  to: number;
}

/**
 * The job log holds the record exactly (per stream, nothing twice), every line stamped with the
 * time it was printed; at least `atLeastDuringOutages` of them were printed while no capture ran.
 */
export function expectLogIsRecord(logLines: string[], record: string[], outages: Outage[], atLeastDuringOutages: number): void {
  expect(record).toHaveLength(PRINTED_LINES + 1);
  const written = logLines.map((l) => /^\[(\d\d):(\d\d):(\d\d)\.(\d{3})\] (.*)$/.exec(l)!);
  expect(written.every(Boolean), 'every log line is stamped').toBe(true);
  const texts = written.map((m) => m[5]!);
  expect(texts).toHaveLength(record.length);
  for (const stream of ['out ', 'err ']) expect(texts.filter((t) => t.startsWith(stream))).toEqual(record.filter((t) => t.startsWith(stream)));
  let printedDuringOutages = 0;
  for (const m of written) {
    const stamped = ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number(m[4]);
    const printedMs = Math.floor(Number(m[5]!.split(' ')[2]) / 1000);
    const lateMs = (((stamped - (printedMs % DAY)) % DAY) + DAY + DAY / 2) % DAY - DAY / 2;
    expect(lateMs, m[5]!.slice(0, 40)).toBeGreaterThanOrEqual(0);
    expect(lateMs, m[5]!.slice(0, 40)).toBeLessThanOrEqual(STAMP_LATE_MAX_MS);
    if (outages.some((o) => printedMs >= o.from && printedMs <= o.to - STAMP_LATE_MAX_MS)) printedDuringOutages++;
  }
  expect(printedDuringOutages).toBeGreaterThanOrEqual(atLeastDuringOutages);
}
