/**
 * @module database-errors
 * Turns SQLite failures inside scheduler handlers into the contract's `database_error`, with a
 * message that says what to do (a full disk is the common case). The failed transaction was
 * rolled back by SQLite, so nothing half-written remains.
 */
import type { ActorLog, Handlers } from '../../runtime/actor.ts';
import type { Protocol } from '../../runtime/envelope.ts';
import { apiError } from '../contract/errors.ts';

function isSqliteError(err: unknown): err is Error & { code: string } {
  return err instanceof Error && err.name === 'SqliteError';
}

export function describeSqliteError(code: string, dbPath: string): string {
  if (code === 'SQLITE_FULL') return `The database disk is full; nothing was written. Free space on the volume holding ${dbPath} and retry.`;
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return 'The database is busy; retry in a moment.';
  if (code.startsWith('SQLITE_IOERR')) return `The database could not write to disk (${code}); check the volume holding ${dbPath}.`;
  return `The database failed (${code}); the supervisor log on the host has the details.`;
}

export function withDatabaseErrors<P extends Protocol>(handlers: Handlers<P>, dbPath: string, log: ActorLog): Handlers<P> {
  const wrapped = {} as Record<string, (payload: unknown, from: string) => unknown>;
  for (const [type, handler] of Object.entries(handlers) as Array<[string, (payload: unknown, from: string) => unknown]>) {
    wrapped[type] = async (payload, from) => {
      try {
        return await handler(payload, from);
      } catch (err) {
        if (!isSqliteError(err)) throw err;
        log.error(`database error in ${type}: ${err.message}`, { event: 'database_error', code: err.code, request: type });
        throw apiError('database_error', describeSqliteError(err.code, dbPath));
      }
    };
  }
  return wrapped as Handlers<P>;
}
