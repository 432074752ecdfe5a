/**
 * @module cli/serve
 * `flashpods serve [--actors a,b] [--pretty]`: checks what the selected actors need before any
 * thread starts (so a bad setup fails with one clear message, not a restart loop), prepares the
 * dev profile's directories and API token, then runs the supervisor until signalled.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { FlashpodsConfig } from '../actors/contract/config.ts';
import { createLogger, type Logger } from '../runtime/log.ts';
import { runSupervised } from '../runtime/run.ts';
import { selectActors } from './actors.ts';
import { missingPrerequisites } from './prerequisites.ts';
import { unknownSettings } from './unknown-settings.ts';

export class StartupError extends Error {}

function ensureDevToken(path: string, log: Logger): void {
  if (existsSync(path)) return;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  log.info({ event: 'token_created', path }, `generated an API token in ${path} (read it with: cat ${path})`);
}

function checkTokenFile(path: string): void {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new StartupError(`cannot read the API token file ${path} (${(err as NodeJS.ErrnoException).code}); create it with: openssl rand -hex 32 > ${path} && chmod 600 ${path}`);
  }
  if (!/^[0-9a-f]{64}$/i.test(text)) throw new StartupError(`${path} must contain 64 hex characters; regenerate it with: openssl rand -hex 32 > ${path}`);
}

export async function serve(config: FlashpodsConfig, actorNames: string[]): Promise<void> {
  const logger = createLogger(config.log);
  for (const u of unknownSettings(process.env)) logger.warn({ event: 'unknown_setting', variable: u.variable, nearest: u.nearest }, u.message);
  let specs;
  try {
    specs = selectActors(actorNames);
  } catch (err) {
    throw new StartupError((err as Error).message);
  }
  const names = specs.map((s) => s.name);
  const missing = missingPrerequisites(config, names);
  if (missing.length > 0) throw new StartupError(missing.join('\n'));
  if (config.profile === 'dev') {
    // Each unit makes only its own directories: the token unit may run as a user of its own, who
    // can write nothing of the API's (nix/modules/token-service.nix).
    const { paths } = config;
    const dirs = [
      ...(names.some((n) => n !== 'tokens') ? [paths.uploads, paths.sealedUploads, paths.artifacts, paths.logs, dirname(paths.db), dirname(paths.apiSocket)] : []),
      ...(names.includes('tokens') ? [dirname(paths.tokenSocket)] : []),
    ];
    for (const dir of dirs) mkdirSync(dir, { recursive: true });
    if (names.includes('api')) ensureDevToken(config.paths.apiTokenFile, logger);
  }
  if (names.includes('api')) checkTokenFile(config.paths.apiTokenFile);

  logger.info({ event: 'starting', actors: names, profile: config.profile }, `flashpods starting actors: ${names.join(', ')}`);
  if (config.faultInjection) logger.warn({ event: 'fault_injection' }, 'fault injection is ON: actors can be crashed through POST /_faults/crash/:actor (tests only)');
  const timed = specs.map((s) => ({ ...s, startTimeoutMs: config.timing.actorStartMs }));
  await runSupervised(timed, { logger, config, stopGraceMs: config.timing.shutdownGraceMs, faultInjection: config.faultInjection });
  logger.info({ event: 'ready', actors: names }, 'flashpods ready');
}
