/**
 * @module test/actors/containers/conmon-fixtures
 * conmon `k8s-file` records written by the tests themselves, byte for byte in the format conmon
 * 2.1.6 writes on our machines (see actors/containers/conmon-log.ts).
 */

export const T0 = Date.parse('2026-11-29T13:15:12.000Z');

/** One record: nanosecond time with `+00:00`, stream, F (full) or P (piece), text, newline. */
export function conmonRecord(ms: number, stream: 'stdout' | 'stderr', tag: 'F' | 'P', text: string): string {
  return `${new Date(ms).toISOString().slice(0, 23)}456789+00:00 ${stream} ${tag} ${text}\n`;
}

/** Interleaved pieces of both streams, an empty line, and lines left without a newline at the end. */
export const MIXED = [
  conmonRecord(T0, 'stdout', 'F', 'one'),
  conmonRecord(T0 + 1, 'stdout', 'P', 'two-a '),
  conmonRecord(T0 + 2, 'stderr', 'P', 'err-a '),
  conmonRecord(T0 + 3, 'stderr', 'F', 'err-b'),
  conmonRecord(T0 + 4, 'stdout', 'P', 'two-b '),
  conmonRecord(T0 + 5, 'stderr', 'F', ''),
  conmonRecord(T0 + 6, 'stdout', 'F', 'two-c'),
  conmonRecord(T0 + 7, 'stdout', 'F', 'three'),
  conmonRecord(T0 + 8, 'stderr', 'P', 'err-tail'),
  conmonRecord(T0 + 9, 'stdout', 'P', 'out-tail'),
].join('');

/** MIXED as whole lines, `stream:text`, in the order they complete. */
export const MIXED_LINES = ['stdout:one', 'stderr:err-a err-b', 'stderr:', 'stdout:two-a two-b two-c', 'stdout:three', 'stderr:err-tail', 'stdout:out-tail'];
