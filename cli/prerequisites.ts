/**
 * @module cli/prerequisites
 * Files an actor cannot start without and that nothing in the same start creates, each with what
 * creates it. `flashpods serve` checks them before any thread starts, so a missing one stops it at
 * once with one line per file (exit 2) instead of an actor crashing through its restart budget.
 * Sockets of services that come and go at run time (Podman's, the SPIRE agent's) are not
 * prerequisites: the actors wait for those and say so in the log.
 */
import { statSync } from 'node:fs';
import type { FlashpodsConfig } from '../actors/contract/config.ts';

interface Prerequisite {
  /** The actor that needs it. */
  actor: string;
  /** What the file is, for the message. */
  what: string;
  path: (config: FlashpodsConfig) => string;
  /** Whether starting `actors` makes the file before `actor` needs it. */
  madeBy?: (actors: string[]) => boolean;
  createdBy: string;
}

const PREREQUISITES: Prerequisite[] = [
  {
    // The API opens it read-only; only the scheduler (which starts before it) creates and migrates it.
    actor: 'api', what: 'the database', path: (c) => c.paths.db, madeBy: (actors) => actors.includes('scheduler'),
    createdBy: 'the scheduler actor creates it on its first start: run `flashpods serve` (its default actors include the scheduler) once, or start --actors scheduler,api',
  },
  {
    actor: 'tokens', what: 'the secrets file', path: (c) => c.paths.secretsFile,
    createdBy: 'the operator writes it: a JSON object with "anthropic_api_key" and "github_token", mode 0600 (docs/operations.md "Token service not answering")',
  },
];

function absent(path: string): boolean {
  try {
    statSync(path);
    return false;
  } catch (err) {
    // Anything else (EACCES, …) is for the actor to report with its own words.
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR';
  }
}

/** One line per missing prerequisite of the actors about to start; empty when all are there. */
export function missingPrerequisites(config: FlashpodsConfig, actors: string[]): string[] {
  return PREREQUISITES
    .filter((p) => actors.includes(p.actor) && !p.madeBy?.(actors) && absent(p.path(config)))
    .map((p) => `cannot start the ${p.actor} actor: ${p.what} ${p.path(config)} does not exist; ${p.createdBy}`);
}
