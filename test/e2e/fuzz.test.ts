import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPENAPI } from '../../actors/api/openapi.ts';
import { startStack, type Stack } from '../support/stack.ts';

// Property-based fuzzing of the whole API from its OpenAPI document (schemathesis, installed
// into .venv by scripts/install.sh), against a real server and real Podman.
const schemathesis = new URL('../../.venv/bin/schemathesis', import.meta.url).pathname;
let stack: Stack;

beforeAll(async () => {
  // Low capacity: most generated jobs are refused (429, documented) rather than run.
  stack = await startStack({ FLASHPODS_CAPACITY_CPUS: '2', FLASHPODS_CAPACITY_MEMORY_GB: '2' });
});
afterAll(async () => {
  await stack?.stop();
});

describe('the API under property-based fuzzing', () => {
  it('answers no 5xx and nothing outside its OpenAPI document', async () => {
    expect(existsSync(schemathesis), 'run scripts/install.sh to create .venv with schemathesis').toBe(true);
    const spec = join(stack.home, 'openapi.json');
    writeFileSync(spec, JSON.stringify(OPENAPI));
    const args = [
      'run', spec, '--url', stack.server.url,
      '-H', `Authorization: Bearer ${stack.server.token}`,
      '--checks', 'not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance',
      '--phases', 'examples,coverage,fuzzing,stateful',
      '--max-examples', '50', '--seed', '1', '--workers', '1',
      '--request-timeout', '20', '--generation-deterministic',
      '--exclude-path', '/jobs/{id}/output/stream',
    ];
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(schemathesis, args, { env: { ...process.env, NO_COLOR: '1', SCHEMATHESIS_TELEMETRY: 'false' } });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      child.on('exit', (c) => resolve({ code: c, output }));
    });
    if (code !== 0) console.log(output.slice(-20_000));
    expect(output).toMatch(/\d+ passed/);
    expect(code).toBe(0);
    expect(stack.server.logLines().filter((l) => l.msg === 'unexpected error while serving a request')).toEqual([]);
  }, 600_000);
});
