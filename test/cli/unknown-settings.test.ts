/**
 * The nearest-setting suggestion for unknown FLASHPODS_* variables, and a guard that every
 * FLASHPODS_* variable the code reads is one the check knows (a new one would otherwise warn).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { editDistance, unknownSettings } from '../../cli/unknown-settings.ts';

const root = new URL('../..', import.meta.url).pathname;

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join(root, dir, f));
}

describe('unknown FLASHPODS_* variables', () => {
  it('name the nearest server setting', () => {
    const nearest = (variable: string) => unknownSettings({ [variable]: 'x' }).map((u) => u.nearest);
    expect(nearest('FLASHPODS_DB_PATH')).toEqual(['FLASHPODS_DB']);
    expect(nearest('FLASHPODS_LISTN')).toEqual(['FLASHPODS_LISTEN']);
    expect(nearest('FLASHPODS_PROFIEL')).toEqual(['FLASHPODS_PROFILE']);
    expect(nearest('FLASHPODS_UPLOAD_DIR')).toEqual(['FLASHPODS_UPLOADS_DIR']);
    expect(nearest('FLASHPODS_KILL_GRACE_SECS')).toEqual(['FLASHPODS_KILL_GRACE_SECONDS']);
    expect(unknownSettings({ FLASHPODS_DB_PATH: 'x' })[0]!.message).toBe(
      'FLASHPODS_DB_PATH is not a Flashpods setting and is ignored; did you mean FLASHPODS_DB? (every setting: SETTINGS in actors/contract/config.ts)');
  });

  it('leave alone other variables and those read by the server, the CLI client and the MCP shim', () => {
    expect(unknownSettings({
      PATH: '/bin', FLASHPODS: 'x', flashpods_db_path: 'x', FLASHPODS_DB: 'x', FLASHPODS_CONFIG: 'x', FLASHPODS_PROFILE: 'x', FLASHPODS_HOME: 'x',
      FLASHPODS_URL: 'x', FLASHPODS_API_TOKEN: 'x', FLASHPODS_API_TOKEN_FILE: 'x', FLASHPODS_HOST: 'x', FLASHPODS_PORT: 'x', FLASHPODS_RSYNC_HOST: 'x',
      FLASHPODS_RSYNC_PORT: 'x', FLASHPODS_DOWNLOAD_DIR: 'x', FLASHPODS_MCP_CONFIG: 'x', FLASHPODS_MCP_LOG_LEVEL: 'x', FLASHPODS_MCP_WAIT_TICK_MS: 'x',
    })).toEqual([]);
  });

  it('know every FLASHPODS_* variable the server, CLI and shim read', () => {
    const read = new Set<string>();
    for (const file of ['actors', 'cli', 'mcp', 'runtime'].flatMap(sources)) {
      for (const m of readFileSync(file, 'utf8').matchAll(/\benv(?:\.|\[')(FLASHPODS_[A-Z0-9_]+)|\benv: '(FLASHPODS_[A-Z0-9_]+)'/g)) read.add((m[1] ?? m[2])!);
    }
    expect(read.size).toBeGreaterThan(50);
    expect(unknownSettings(Object.fromEntries([...read].map((name) => [name, 'x']))).map((u) => u.variable)).toEqual([]);
  });

  it('measure edits with swaps of neighbours as one', () => {
    expect(editDistance('FLASHPODS_DB', 'FLASHPODS_DB')).toBe(0);
    expect(editDistance('FLASHPODS_DB_PATH', 'FLASHPODS_DB')).toBe(5);
    expect(editDistance('ab', 'ba')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
  });
});
