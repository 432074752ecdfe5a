/**
 * SETTINGS is checked against FlashpodsConfig by the compiler: the rows below must NOT compile
 * (`tsc -p .`, run by scripts/test.sh, fails if one ever does), and at run time every row's key
 * holds a value of the loaded config.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig, SETTINGS, type Setting } from '../../../actors/contract/config.ts';

const refusedByTheCompiler: Setting[] = [
  // @ts-expect-error a key that is no path of FlashpodsConfig
  { key: 'paths.dbPath', env: 'FLASHPODS_DB', parse: (raw: unknown) => String(raw), dev: () => 'x', production: 'x' },
  // @ts-expect-error a parser yielding a string where the config holds a number
  { key: 'rateLimit.burst', env: 'FLASHPODS_RATE_LIMIT_BURST', parse: (raw: unknown) => String(raw), dev: () => 10, production: 10 },
  // @ts-expect-error a parser yielding any string where the config holds 'json' | 'pretty'
  { key: 'log.format', env: 'FLASHPODS_LOG_FORMAT', parse: (raw: unknown) => String(raw), dev: () => 'json', production: 'json' },
];

describe('SETTINGS against FlashpodsConfig', () => {
  it('every row sets a value the loaded config holds', () => {
    const config = loadConfig({ env: {} });
    for (const { key } of SETTINGS) {
      const value = key.split('.').reduce<unknown>((node, part) => (node as Record<string, unknown>)[part], config);
      expect(value, key).toBeDefined();
    }
  });
});
