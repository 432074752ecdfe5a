/**
 * @module cli/validate/report
 * How `flashpods validate` prints its results: one line per check (PASS / FAIL / SKIP, the
 * check id, what it checks, what was seen), a `hint:` line under each failure, and a summary.
 */
import type { CheckResult } from './checks.ts';

export interface Summary {
  passed: number;
  failed: number;
  skipped: number;
}

export function summarize(results: CheckResult[]): Summary {
  return {
    passed: results.filter((r) => r.status === 'pass').length,
    failed: results.filter((r) => r.status === 'fail').length,
    skipped: results.filter((r) => r.status === 'skip').length,
  };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export function formatText(results: CheckResult[], header: string, color = false): string {
  const paint = (code: number, s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const tag = { pass: paint(32, 'PASS'), fail: paint(31, 'FAIL'), skip: paint(33, 'SKIP') };
  const idWidth = Math.max(...results.map((r) => r.id.length), 2);
  const lines = [header];
  for (const r of results) {
    lines.push(`${tag[r.status]}  ${r.id.padEnd(idWidth)}  ${r.title} → ${r.expected}`);
    lines.push(`${' '.repeat(idWidth + 8)}${r.detail}${r.status === 'skip' ? '' : ` [${seconds(r.ms)}]`}`);
    if (r.hint) lines.push(`${' '.repeat(idWidth + 8)}${paint(1, 'hint:')} ${r.hint}`);
  }
  const s = summarize(results);
  lines.push(`${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`);
  return `${lines.join('\n')}\n`;
}

export function formatJson(results: CheckResult[], meta: Record<string, unknown>): string {
  const s = summarize(results);
  return `${JSON.stringify({ ok: s.failed === 0, ...s, ...meta, checks: results }, null, 2)}\n`;
}
