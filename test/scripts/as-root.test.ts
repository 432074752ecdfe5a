/**
 * The README's two commands work as written for root and for a sudoer: they begin with
 * scripts/as-root.sh, which lets root through (a fresh Debian root has no sudo) and re-runs
 * anyone else under the REAL sudo, environment and PATH kept. A probe script stands in for
 * dev.sh/test.sh (which would install packages); the sudoer is a user this file creates with a
 * NOPASSWD rule and removes again. Also: the README starts with exactly those two commands, and
 * .ci/run runs exactly the second.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = new URL('../..', import.meta.url).pathname;
const SUDOER = 'fp-readme-sudoer';
const SUDOERS_FILE = `/etc/sudoers.d/${SUDOER}`;
let dir: string;
let probe: string;
/** A PATH directory with bash and nothing else: no sudo. */
let bashOnly: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fp-as-root-'));
  chmodSync(dir, 0o755);
  probe = join(dir, 'probe.sh');
  bashOnly = join(dir, 'bin');
  mkdirSync(bashOnly);
  symlinkSync('/usr/bin/bash', join(bashOnly, 'bash'));
  writeFileSync(probe, `#!/usr/bin/env bash\nset -euo pipefail\nsource ${join(root, 'scripts/as-root.sh')}\necho "uid=$EUID probe=\${FP_PROBE_VALUE:-unset} node=$(command -v node) args=$*"\n`, { mode: 0o755 });
  spawnSync('userdel', [SUDOER]);
  execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/bin/bash', SUDOER]);
  writeFileSync(SUDOERS_FILE, `${SUDOER} ALL=(ALL:ALL) NOPASSWD: ALL\n`, { mode: 0o440 });
});
afterAll(() => {
  rmSync(SUDOERS_FILE, { force: true });
  spawnSync('userdel', [SUDOER]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const run = (user: string | undefined, path: string) => spawnSync(user ? '/usr/sbin/runuser' : '/usr/bin/bash', user ? ['-u', user, '--', 'bash', probe, 'a', 'b c'] : [probe, 'a', 'b c'], {
  env: { PATH: path, FP_PROBE_VALUE: 'kept', HOME: '/' }, encoding: 'utf8', timeout: 20_000, cwd: dir,
});
const nodeDir = dirname(process.execPath);

describe('scripts/as-root.sh', () => {
  it('lets root through without sudo', () => {
    const r = run(undefined, `${bashOnly}:${nodeDir}`);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(`uid=0 probe=kept node=${process.execPath} args=a b c`);
  });

  it('re-runs a sudoer under the real sudo, keeping the environment, PATH and arguments', () => {
    const r = run(SUDOER, `${nodeDir}:/usr/sbin:/usr/bin:/sbin:/bin`);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(`uid=0 probe=kept node=${process.execPath} args=a b c`);
  });

  it('tells anyone else where no sudo exists to run it as root', () => {
    const r = run('nobody', bashOnly);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toBe('probe.sh: run it as root (it installs system packages and runs rootful Podman); there is no sudo here to do it for you');
  });
});

describe('the README commands', () => {
  it('are the first lines of the README, and .ci/run runs exactly the test command', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8').split('\n');
    expect(readme.slice(0, 6)).toEqual([
      '# Flashpods', '', '```sh',
      expect.stringMatching(/^bash scripts\/dev\.sh +# /),
      expect.stringMatching(/^bash scripts\/test\.sh +# /),
      '```',
    ]);
    const ci = readFileSync(join(root, '.ci/run'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    expect(ci.at(-1)).toBe('exec bash scripts/test.sh');
    for (const script of ['scripts/dev.sh', 'scripts/test.sh']) {
      expect(readFileSync(join(root, script), 'utf8'), script).toContain('source "$ROOT/scripts/as-root.sh"\n');
    }
  });
});
