/**
 * @module cli/actors
 * The child spec of every actor `flashpods serve` can run, in start order. The API starts last
 * so it accepts work only when the actors behind it are ready, and stops first.
 */
import type { ChildSpec } from '../runtime/supervisor.ts';

const actorModule = (name: string) => new URL(`../actors/${name}/actor.ts`, import.meta.url).href;

const standard = { restart: 'permanent', maxRestarts: 5, periodMs: 60_000, backoff: { initialMs: 100, maxMs: 5_000 } } as const;

export const ACTOR_SPECS: ChildSpec[] = [
  { name: 'scheduler', module: actorModule('scheduler'), ...standard, maxHeapMb: 512 },
  { name: 'artifacts', module: actorModule('artifacts'), ...standard, maxHeapMb: 256 },
  { name: 'containers', module: actorModule('containers'), ...standard, maxHeapMb: 512 },
  { name: 'api', module: actorModule('api'), ...standard, maxHeapMb: 512 },
  // The token unit: run alone (`--actors tokens`) by the only user that may read the secrets file.
  { name: 'tokens', module: actorModule('tokens'), ...standard, maxHeapMb: 256 },
];

/** The API unit's actors; the token unit runs `--actors tokens` under its own user. */
export const DEFAULT_ACTORS = ['scheduler', 'artifacts', 'containers', 'api'];

export function selectActors(names: string[]): ChildSpec[] {
  const unknown = names.filter((n) => !ACTOR_SPECS.some((s) => s.name === n));
  if (unknown.length > 0) {
    throw new Error(`unknown actor(s): ${unknown.join(', ')}; choose from ${ACTOR_SPECS.map((s) => s.name).join(', ')}`);
  }
  return ACTOR_SPECS.filter((s) => names.includes(s.name));
}
