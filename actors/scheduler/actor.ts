/**
 * @module scheduler
 * The scheduling actor: sole writer of the SQLite store. It migrates the database on start, so
 * every other actor may open it read-only once the scheduler is ready.
 */
import { defineActor } from '../../runtime/actor.ts';
import type { FlashpodsConfig } from '../contract/config.ts';
import { migrate, openDatabase, schemaVersion, type Db } from '../store/database.ts';
import type { SchedulerProtocol } from './messages.ts';

let db: Db | undefined;

export default defineActor<SchedulerProtocol, FlashpodsConfig>({
  start(ctx) {
    db = openDatabase(ctx.config.paths.db);
    const { from, to } = migrate(db);
    if (from !== to) ctx.log.info(`database migrated from schema ${from} to ${to}`, { event: 'migrated', from, to, path: ctx.config.paths.db });
    const store = db;
    return {
      schemaVersion: () => ({ version: schemaVersion(store) }),
    };
  },
  stop() {
    db?.close();
    db = undefined;
  },
});
