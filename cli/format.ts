/**
 * @module cli/format
 * Small text helpers for the human commands: aligned tables, key/value blocks, relative times
 * ("3 min ago"), durations and byte sizes. Everything shown from the server passes through
 * `clean`, so a command with a newline or an escape sequence cannot break a table or a terminal.
 */

/** Control characters as visible escapes (`\n`, `\t`, `\x1b`). */
export function clean(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (ch) => {
    if (ch === '\n') return '\\n';
    if (ch === '\t') return '\\t';
    if (ch === '\r') return '\\r';
    return `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

/** Cuts `text` to `width` characters, ending in "…" when it was longer. */
export function truncate(text: string, width: number): string {
  if (width < 1) return '';
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}

export interface Column<T> {
  header: string;
  value: (row: T) => string;
  align?: 'left' | 'right';
}

/**
 * An aligned table: a header row, then one row per item, columns two spaces apart. The last
 * column is not padded; when `maxWidth` is given it is cut so each line fits.
 */
export function table<T>(rows: readonly T[], columns: readonly Column<T>[], maxWidth?: number): string {
  const cells = [columns.map((c) => c.header), ...rows.map((row) => columns.map((c) => clean(c.value(row))))];
  const widths = columns.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells
    .map((r) => {
      const parts = r.map((cell, i) => {
        if (i === columns.length - 1) return columns[i]!.align === 'right' ? cell.padStart(widths[i]!) : cell;
        return columns[i]!.align === 'right' ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!);
      });
      const last = parts.pop()!;
      const head = parts.length > 0 ? `${parts.join('  ')}  ` : '';
      return maxWidth ? head + truncate(last, Math.max(8, maxWidth - head.length)) : head + last;
    })
    .join('\n');
}

/** `key  value` lines with the keys aligned; undefined values are left out. */
export function keyValues(pairs: ReadonlyArray<[string, string | undefined]>): string {
  const present = pairs.filter((p): p is [string, string] => p[1] !== undefined);
  const width = Math.max(...present.map(([k]) => k.length));
  return present
    .map(([k, v]) => {
      const lines = v.split('\n');
      return [`${k.padEnd(width)}  ${lines[0]}`, ...lines.slice(1).map((l) => `${' '.repeat(width)}  ${l}`)].join('\n');
    })
    .join('\n');
}

function span(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86_400)} d`;
}

/** "3 min ago", "in 58 min", "just now"; "-" for a missing time. */
export function relative(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return iso;
  const diff = Math.round((now - at) / 1000);
  if (Math.abs(diff) < 5) return 'just now';
  return diff > 0 ? `${span(diff)} ago` : `in ${span(-diff)}`;
}

/** "2026-01-21T10:30:00Z (3 min ago)". */
export function when(iso: string | null | undefined, now = Date.now()): string | undefined {
  return iso ? `${iso} (${relative(iso, now)})` : undefined;
}

/** "42s", "3m 04s", "1h 02m". */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '-';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** "512 B", "1.2 KiB", "3.4 MiB", "1.0 GiB". */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '-';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** Machine output: the API's body, pretty-printed JSON. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function print(text: string): void {
  process.stdout.write(text.endsWith('\n') || text === '' ? text : `${text}\n`);
}

/** The terminal width when stdout is a terminal, else undefined (no truncation in pipes). */
export function terminalWidth(): number | undefined {
  return process.stdout.isTTY ? process.stdout.columns || 80 : undefined;
}
