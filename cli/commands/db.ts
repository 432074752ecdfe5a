/**
 * @module cli/commands/db
 * `flashpods db backup <file>` and `flashpods db check`: the operator's database tools, run on
 * the host against the database the configuration names. A backup is SQLite's online backup
 * (safe while Flashpods runs and writes), followed by an integrity check of the copy.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, loadConfig } from '../../actors/contract/config.ts';
import { loadMigrations, openDatabase, schemaVersion } from '../../actors/store/database.ts';
import { CliError, UsageError } from '../client.ts';
import { parse, type Command } from './common.ts';

function databasePath(): string {
  try {
    return loadConfig().paths.db;
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, 2);
    throw err;
  }
}

function integrity(path: string): string[] {
  const db = openDatabase(path, { readonly: true });
  try {
    return (db.pragma('integrity_check') as Array<{ integrity_check: string }>).map((r) => r.integrity_check);
  } finally {
    db.close();
  }
}

async function backup(dest: string, json: boolean): Promise<number> {
  const source = databasePath();
  if (!existsSync(source)) throw new CliError(`no database at ${source}; set FLASHPODS_DB (or FLASHPODS_PROFILE=production on the host)`);
  const target = resolve(dest);
  if (existsSync(target)) throw new CliError(`${target} exists; choose a new file name (backups never overwrite)`);
  const db = openDatabase(source, { readonly: true });
  const started = Date.now();
  try {
    await db.backup(target, {
      progress: ({ totalPages, remainingPages }) => {
        if (!json && process.stderr.isTTY) process.stderr.write(`\rbacking up: ${totalPages - remainingPages}/${totalPages} pages`);
        return 256;
      },
    });
  } finally {
    db.close();
  }
  if (!json && process.stderr.isTTY) process.stderr.write('\n');
  const problems = integrity(target).filter((r) => r !== 'ok');
  const result = { source, backup: target, ms: Date.now() - started, integrity: problems.length === 0 ? 'ok' : problems };
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else process.stdout.write(`backed up ${source} to ${target} in ${result.ms} ms; integrity of the copy: ${problems.length === 0 ? 'ok' : problems.join('; ')}\n`);
  return problems.length === 0 ? 0 : 1;
}

function check(json: boolean): number {
  const path = databasePath();
  if (!existsSync(path)) throw new CliError(`no database at ${path}; set FLASHPODS_DB (or FLASHPODS_PROFILE=production on the host)`);
  const problems = integrity(path).filter((r) => r !== 'ok');
  const db = openDatabase(path, { readonly: true });
  let version: number;
  try {
    version = schemaVersion(db);
  } finally {
    db.close();
  }
  const latest = loadMigrations().at(-1)?.version ?? 0;
  const result = { path, integrity: problems.length === 0 ? 'ok' : problems, schema_version: version, latest_schema_version: latest };
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(`${path}: integrity ${problems.length === 0 ? 'ok' : `FAILED: ${problems.join('; ')}`}; schema ${version} of ${latest}\n`);
    if (problems.length > 0) process.stdout.write('restore the latest backup (docs/operations.md, "Restore the database")\n');
  }
  return problems.length === 0 ? 0 : 1;
}

export const dbCommand: Command = {
  name: 'db',
  usage: 'db backup <file> | db check',
  summary: 'online backup of the database, or an integrity check (on the host)',
  details: 'Reads the database path from FLASHPODS_DB / FLASHPODS_PROFILE like `flashpods serve`.',
  async run(args) {
    const [action, ...rest] = args;
    if (action === 'backup') {
      const parsed = parse({ ...this, usage: 'db backup <file>' }, rest, {}, ['file']);
      return parsed ? backup(parsed.positionals[0]!, parsed.values.json === true) : 0;
    }
    if (action === 'check') {
      const parsed = parse({ ...this, usage: 'db check' }, rest, {}, []);
      return parsed ? check(parsed.values.json === true) : 0;
    }
    if (action === undefined || action === '--help' || action === '-h') {
      process.stdout.write(`usage: flashpods ${this.usage} [--json]\n\n${this.summary}.\n${this.details}\n`);
      return action === undefined ? 2 : 0;
    }
    throw new UsageError(`unknown db action ${JSON.stringify(action)}\nusage: flashpods ${this.usage}`);
  },
};
