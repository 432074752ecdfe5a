/**
 * @module database
 * Opens the SQLite store (WAL, synchronous=NORMAL) and migrates it forward from the versioned
 * sections of `schema.sql`. The scheduler actor is the only writer; other actors open it
 * read-only, which WAL lets them do without blocking the writer.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export type Db = Database.Database;

export interface Migration {
  version: number;
  title: string;
  sql: string;
}

const schemaUrl = new URL('../../schema.sql', import.meta.url);

/** Splits schema.sql into its `-- migration N: title` sections, checking they count up from 1. */
export function loadMigrations(schemaText = readFileSync(schemaUrl, 'utf8')): Migration[] {
  const migrations: Migration[] = [];
  const header = /^-- migration (\d+): (.+)$/gm;
  const marks = [...schemaText.matchAll(header)];
  marks.forEach((mark, i) => {
    const version = Number(mark[1]);
    if (version !== i + 1) throw new Error(`schema.sql: migration ${version} is out of order (expected ${i + 1})`);
    const start = mark.index! + mark[0].length;
    const end = marks[i + 1]?.index ?? schemaText.length;
    migrations.push({ version, title: mark[2]!, sql: schemaText.slice(start, end) });
  });
  return migrations;
}

export function schemaVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/** Applies every migration newer than the database, each in its own transaction. */
export function migrate(db: Db, migrations = loadMigrations()): { from: number; to: number } {
  const from = schemaVersion(db);
  const latest = migrations.at(-1)?.version ?? 0;
  if (from > latest) {
    throw new Error(`database schema version ${from} is newer than this build knows (${latest}); upgrade Flashpods or restore a matching backup`);
  }
  for (const m of migrations) {
    if (m.version <= from) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    })();
  }
  return { from, to: Math.max(from, latest) };
}

export interface OpenOptions {
  readonly?: boolean;
}

export function openDatabase(path: string, options: OpenOptions = {}): Db {
  if (!options.readonly) mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
  db.pragma('busy_timeout = 5000');
  if (!options.readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
  }
  return db;
}
