/**
 * @module log
 * The supervisor log operators tail: one JSON object per line (pino), or a colourised,
 * human-readable rendering of the same records in pretty mode.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type LogFormat = 'json' | 'pretty';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LogOptions {
  format: LogFormat;
  level: LogLevel;
  /** Defaults to stdout; tests pass a file descriptor or stream. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LogOptions): Logger {
  const base = { level: options.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (options.format === 'pretty') {
    return pino(base, pretty({
      sync: true,
      singleLine: true,
      translateTime: 'SYS:HH:MM:ss.l',
      messageFormat: '{if actor}[{actor}] {end}{msg}',
      ignore: 'pid,actor',
      destination: options.destination ?? 1,
    }));
  }
  return pino(base, options.destination ?? pino.destination({ sync: true }));
}

export type { Logger };
