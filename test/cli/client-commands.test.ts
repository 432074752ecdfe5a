/**
 * The human `flashpods` commands driven as separate processes (`node cli/flashpods.mjs …`)
 * against a real server on real Podman.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJob, startStack, until, waitForJob, type Stack } from '../support/stack.ts';

const CLI = fileURLToPath(new URL('../../cli/flashpods.mjs', import.meta.url));
const STAMP = /^\[\d\d:\d\d:\d\d\.\d{3}\] /;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** When each stdout chunk arrived, ms after the start. */
  chunks: Array<{ at: number; text: string }>;
  ms: number;
}

let stack: Stack;
let work: string;

/** The environment without any FLASHPODS_* setting of the machine running the tests. */
function cleanEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => !e[0].startsWith('FLASHPODS_') && e[1] !== undefined));
}

function cli(args: string[], options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  const env = options.env ?? { FLASHPODS_URL: stack.server.url, FLASHPODS_API_TOKEN_FILE: join(stack.home, 'api-token') };
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd ?? work, env: { ...cleanEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const run: Run = { code: null, stdout: '', stderr: '', chunks: [], ms: 0 };
  child.stdout.on('data', (d: Buffer) => {
    run.stdout += d.toString();
    run.chunks.push({ at: performance.now() - started, text: d.toString() });
  });
  child.stderr.on('data', (d: Buffer) => (run.stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      run.code = code;
      run.ms = performance.now() - started;
      resolve(run);
    });
  });
}

const worker = (command: string) => createJob(stack.server, { type: 'worker', command, cpus: 1, memory_gb: 1 }).then((r) => r.body.job_id as string);

beforeAll(async () => {
  stack = await startStack();
  work = mkdtempSync(join(tmpdir(), 'fp-cli-'));
});
afterAll(async () => {
  await stack?.stop();
});

describe('flashpods client commands', () => {
  it('health, a bad token, a server that is down, and usage errors', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    const badToken = 'f'.repeat(64);
    const [health, healthJson, bad, down, usage, noToken, defaultToken] = await Promise.all([
      cli(['health']),
      cli(['health', '--json']),
      cli(['jobs'], { env: { FLASHPODS_URL: stack.server.url, FLASHPODS_API_TOKEN: badToken } }),
      cli(['jobs'], { env: { FLASHPODS_URL: `http://127.0.0.1:${closedPort}`, FLASHPODS_API_TOKEN: badToken } }),
      cli(['jobs', '--status', 'weird']),
      cli(['jobs'], { env: { FLASHPODS_URL: stack.server.url } }),
      (async () => {
        // The dev profile's token file in the working directory is found without any setting.
        const dir = mkdtempSync(join(tmpdir(), 'fp-cli-cwd-'));
        mkdirSync(join(dir, '.flashpods'));
        writeFileSync(join(dir, '.flashpods', 'api-token'), `${stack.server.token}\n`);
        return cli(['jobs', '--json'], { cwd: dir, env: { FLASHPODS_URL: stack.server.url } });
      })(),
    ]);

    expect(health.code).toBe(0);
    expect(health.stdout).toMatch(/^status\s+healthy$/m);
    expect(health.stdout).toMatch(/^version\s+0\.1\.0$/m);
    expect(health.stdout).toContain(stack.server.url);
    expect(JSON.parse(healthJson.stdout)).toMatchObject({ status: 'healthy', version: '0.1.0' });

    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^flashpods: The bearer token is not valid; check it against the API token file on the host.*\(invalid_token\)$/m);
    expect(bad.stderr).toContain('FLASHPODS_API_TOKEN');
    expect(bad.stderr + bad.stdout).not.toContain(badToken);

    expect(down.code).toBe(1);
    expect(down.stderr).toContain(`flashpods: cannot reach the Flashpods API at http://127.0.0.1:${closedPort} (connection refused)`);
    expect(down.stderr).toMatch(/server running/);
    expect(down.stderr).not.toContain(badToken);

    expect(usage.code).toBe(2);
    expect(usage.stderr).toBe('flashpods: --status must be one of all, queued, running, completed, failed (got "weird")\n');

    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toMatch(/^flashpods: no API token: set FLASHPODS_API_TOKEN/);

    expect(defaultToken.code).toBe(0);
    expect(JSON.parse(defaultToken.stdout)).toMatchObject({ jobs: expect.any(Array), total: expect.any(Number) });

    const bads = await Promise.all([cli(['job']), cli(['job', 'nope']), cli(['logs', 'job_aaaaaaaaaaaaaaaa', '--tail', 'x']), cli(['kill', 'job_aaaaaaaaaaaaaaaa', '--bogus'])]);
    expect(bads.map((r) => r.code)).toEqual([2, 2, 2, 2]);
    expect(bads.map((r) => r.stderr.split('\n')[0])).toEqual([
      'flashpods: missing <id>',
      'flashpods: "nope" is not a job id; job ids look like job_ followed by 16 lowercase letters or digits (flashpods jobs lists them)',
      'flashpods: --tail must be a whole number of at least 1 (got "x")',
      "flashpods: Unknown option '--bogus'",
    ]);
  });

  it('waits for a job, lists it, prints its log and artifacts, and downloads them exactly', async () => {
    const id = await worker('echo first line; sleep 1; echo second line; head -c 300000 /dev/urandom > /artifacts/blob.bin; mkdir /artifacts/dir; echo x > /artifacts/dir/f');

    const waited = await cli(['job', id, '--wait']);
    expect(waited.code).toBe(0);
    expect(waited.stdout).toMatch(new RegExp(`^id\\s+${id}$`, 'm'));
    expect(waited.stdout).toMatch(/^status\s+completed \(exit 0\)$/m);
    expect(waited.stdout).toMatch(/^command\s+echo first line; sleep 1;/m);
    expect(waited.stdout).toMatch(/^created\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \((just now|\d+ s ago)\)$/m);

    const [list, listJson, log, tail, logJson, arts, artsJson] = await Promise.all([
      cli(['jobs']),
      cli(['jobs', '--status', 'completed', '--limit', '5', '--json']),
      cli(['logs', id]),
      cli(['logs', id, '--tail', '1']),
      cli(['logs', id, '--json']),
      cli(['artifacts', id]),
      cli(['artifacts', id, '--json']),
    ]);
    expect(list.code).toBe(0);
    const [header, ...rows] = list.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+TYPE\s+STATUS\s+EXIT\s+CREATED\s+ENDED\s+COMMAND$/);
    const row = rows.find((r) => r.startsWith(id));
    expect(row).toMatch(new RegExp(`^${id}\\s+worker\\s+completed\\s+0\\s+(just now|\\d+ s ago)\\s+(just now|\\d+ s ago)\\s+echo first line;`));
    // Aligned: every row's STATUS column starts where the header's does.
    expect(rows.every((r) => r.indexOf(' worker ') === -1 || r.slice(header!.indexOf('STATUS')).match(/^[a-z_]+ /))).toBe(true);
    expect(JSON.parse(listJson.stdout).jobs[0]).toMatchObject({ id, status: 'completed', exit_code: 0 });

    expect(log.code).toBe(0);
    expect(log.stdout.split('\n').filter(Boolean).map((l) => l.replace(STAMP, ''))).toEqual(['first line', 'second line']);
    expect(tail.stdout.replace(STAMP, '')).toBe('second line\n');
    expect(JSON.parse(logJson.stdout)).toMatchObject({ lines: 2, truncated: false });

    expect(arts.code).toBe(0);
    expect(arts.stdout).toMatch(/^NAME\s+SIZE\s+CREATED$/m);
    expect(arts.stdout).toMatch(/^blob\.bin\s+293\.0 KiB\s+/m);
    expect(arts.stdout).toMatch(/^dir\s+2 B\s+/m);
    expect(arts.stdout).toMatch(/^2 artifacts, 293\.0 KiB in total; deleted in (59 min|1 h) \(/m);
    expect(JSON.parse(artsJson.stdout).artifacts.map((a: any) => [a.name, a.size_bytes])).toEqual([['blob.bin', 300_000], ['dir', 2]]);

    const expected = readFileSync(join(stack.home, 'artifacts', id, 'blob.bin'));
    const saved = await cli(['download', id, 'blob.bin']);
    expect(saved.code).toBe(0);
    expect(saved.stdout).toMatch(new RegExp(`^saved ${join(work, 'blob.bin')} \\(293\\.0 KiB in [\\d.]+s, .+/s\\)\\n$`));
    expect(saved.stderr).toBe(''); // no progress line when stderr is not a terminal
    expect(readFileSync(join(work, 'blob.bin')).equals(expected)).toBe(true);

    writeFileSync(join(work, 'blob.bin'), 'mine');
    const refused = await cli(['download', id, 'blob.bin']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`flashpods: ${join(work, 'blob.bin')} already exists; pass --force to overwrite it\n`);
    expect(readFileSync(join(work, 'blob.bin'), 'utf8')).toBe('mine');

    mkdirSync(join(work, 'out'));
    const [forced, intoDir, tar, missing, badName] = await Promise.all([
      cli(['download', id, 'blob.bin', '--force']),
      cli(['download', id, 'blob.bin', '-o', 'out', '--json']),
      cli(['download', id, 'dir', '-o', join(work, 'out')]),
      cli(['download', id, 'nothing.txt']),
      cli(['download', id, '../etc']),
    ]);
    expect(forced.code).toBe(0);
    expect(readFileSync(join(work, 'blob.bin')).equals(expected)).toBe(true);
    expect(JSON.parse(intoDir.stdout)).toEqual({ job_id: id, name: 'blob.bin', path: join(work, 'out', 'blob.bin'), size_bytes: 300_000 });
    expect(readFileSync(join(work, 'out', 'blob.bin')).equals(expected)).toBe(true);
    expect(tar.code).toBe(0);
    expect(execFileSync('tar', ['-tf', join(work, 'out', 'dir.tar')], { encoding: 'utf8' })).toBe('dir/f\n');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^flashpods: Job job_\w+ has no artifact "nothing.txt".*\(artifact_not_found\)$/m);
    expect(existsSync(join(work, 'nothing.txt'))).toBe(false);
    expect(badName.code).toBe(2);
    expect(badName.stderr).toMatch(/^flashpods: "\.\.\/etc" is not an artifact name: it contains "\/"/);
    expect(readdirSync(work).filter((f) => f.endsWith('.part')).concat(readdirSync(join(work, 'out')).filter((f) => f.endsWith('.part')))).toEqual([]);
  });

  it('follows a running job log until the job ends', async () => {
    // 6 s of output: a CLI that starts slowly on a loaded host (3 s was seen with the VM suite
    // beside it) still attaches a while before the end.
    const id = await worker('for i in 1 2 3 4 5 6; do echo line $i; sleep 1; done');
    const followed = await cli(['logs', id, '-f']);
    expect(followed.code).toBe(0);
    expect(followed.stdout.split('\n').filter(Boolean).map((l) => l.replace(STAMP, ''))).toEqual(['line 1', 'line 2', 'line 3', 'line 4', 'line 5', 'line 6']);
    expect(followed.stderr).toBe(`[${id} completed, exit 0]\n`);
    // Lines arrived while the job ran, not all at the end.
    const first = followed.chunks.find((c) => c.text.includes('line 1'))!;
    expect(followed.ms - first.at).toBeGreaterThan(1000);

    const json = await cli(['logs', id, '-f', '--json', '--tail', '2']);
    expect(json.stdout.trimEnd().split('\n').map((l) => JSON.parse(l))).toEqual([
      { event: 'line', data: expect.stringMatching(/line 5$/) },
      { event: 'line', data: expect.stringMatching(/line 6$/) },
      { event: 'end', status: 'completed', exit_code: 0 },
    ]);
  });

  it('removes the partial file when a download breaks off', async () => {
    // A stand-in server that promises 100000 bytes and hangs up after 1000: the real one cannot be made to.
    const fake = createHttpServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '100000' });
      res.write(Buffer.alloc(1000, 1), () => setTimeout(() => res.socket?.destroy(), 50));
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    const dir = mkdtempSync(join(tmpdir(), 'fp-cli-broken-'));
    try {
      const url = `http://127.0.0.1:${(fake.address() as { port: number }).port}`;
      const broken = await cli(['download', 'job_aaaaaaaaaaaaaaaa', 'f.bin'], { cwd: dir, env: { FLASHPODS_URL: url, FLASHPODS_API_TOKEN: 'x' } });
      expect(broken.code).toBe(1);
      expect(broken.stderr).toMatch(/^flashpods: the download of f\.bin (failed \(connection closed\)|broke off after 1000 of 100000 bytes); removed the partial file\n$/);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      fake.close();
    }
  });

  it('kills a running job', async () => {
    const id = await worker('sleep 60');
    await until(async () => (await (await stack.server.fetch(`/jobs/${id}`)).json() as any).status === 'running', 30_000, 'job running');
    const killed = await cli(['kill', id]);
    expect(killed.code).toBe(0);
    expect(killed.stdout).toBe(`${id} cancelled: job termination initiated\n`);
    const shown = await cli(['job', id, '--json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id, status: 'cancelled' });
    await waitForJob(stack.server, id);
    const again = await cli(['kill', id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/\(job_already_terminal\)\n$/);
  });
});
