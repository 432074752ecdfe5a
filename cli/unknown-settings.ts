/**
 * @module cli/unknown-settings
 * `flashpods serve` warns about each FLASHPODS_* variable that nothing reads — a typo such as
 * FLASHPODS_DB_PATH would otherwise be ignored without a word — naming the nearest server
 * setting. Variables the CLI client and the MCP shim read are known too: one shell often sets
 * them all.
 */
import { LOADER_ENV, SETTINGS } from '../actors/contract/config.ts';
import { SHIM_ENV } from '../mcp/config.ts';
import { CLIENT_ENV } from './client.ts';

const SERVER_ENV: readonly string[] = [...SETTINGS.map((s) => s.env), ...LOADER_ENV];
const KNOWN = new Set([...SERVER_ENV, ...SHIM_ENV, ...CLIENT_ENV]);

/** Edits (insert, delete, substitute, swap two neighbours) that turn a into b. */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

export interface UnknownSetting {
  variable: string;
  nearest: string;
  message: string;
}

/** The FLASHPODS_* variables of `env` that no part of Flashpods reads, each with the nearest server setting. */
export function unknownSettings(env: NodeJS.ProcessEnv): UnknownSetting[] {
  return Object.keys(env)
    .filter((name) => name.startsWith('FLASHPODS_') && !KNOWN.has(name))
    .sort()
    .map((variable) => {
      const nearest = SERVER_ENV.reduce((best, name) => (editDistance(variable, name) < editDistance(variable, best) ? name : best));
      return { variable, nearest, message: `${variable} is not a Flashpods setting and is ignored; did you mean ${nearest}? (every setting: SETTINGS in actors/contract/config.ts)` };
    });
}
