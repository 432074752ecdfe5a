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
  let specs;
  try {
    specs = selectActors(actorNames);
  } catch (err) {
    throw new StartupError((err as Error).message);
  }
  const names = specs.map((s) => s.name);
  if (config.profile === 'dev') {
    for (const dir of [config.paths.uploads, config.paths.sealedUploads, config.paths.artifacts, config.paths.logs, dirname(config.paths.db), dirname(config.paths.tokenSocket), dirname(config.paths.apiSocket)]) {
      mkdirSync(dir, { recursive: true });
    }
    if (names.includes('api')) ensureDevToken(config.paths.apiTokenFile, logger);
  }
  if (names.includes('api')) checkTokenFile(config.paths.apiTokenFile);

  logger.info({ event: 'starting', actors: names, profile: config.profile }, `flashpods starting actors: ${names.join(', ')}`);
  if (config.faultInjection) logger.warn({ event: 'fault_injection' }, 'fault injection is ON: actors can be crashed through POST /_faults/crash/:actor (tests only)');
  await runSupervised(specs, { logger, config, stopGraceMs: config.timing.shutdownGraceMs, faultInjection: config.faultInjection });
  logger.info({ event: 'ready', actors: names }, 'flashpods ready');
}
