/**
 * The shim's pure parts: configuration, the retry table at its real delays, rsync progress and
 * failure parsing, save_to resolution, and the argument-error mapping.
 */
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ID_PATTERNS } from '../../actors/contract/jobs.ts';
import { ConfigError, DEFAULT_EXCLUDE, loadConfig } from '../../mcp/config.ts';
import { resolveSaveTo } from '../../mcp/downloads.ts';
import { ToolFailure } from '../../mcp/errors.ts';
import { silentLog } from '../../mcp/log.ts';
import { Progress } from '../../mcp/progress.ts';
import { retryDecision, schedule } from '../../mcp/retry.ts';
import { validationError } from '../../mcp/server.ts';
import { buildTools } from '../../mcp/tools.ts';
import { newUploadId, parseProgress2, rsyncFailure } from '../../mcp/uploads.ts';
import { ApiClient } from '../../mcp/api-client.ts';

const home = () => mkdtempSync(join(tmpdir(), 'fp-mcp-unit-'));

describe('config', () => {
  it('has the defaults of mcp.md and needs only the token', () => {
    const config = loadConfig({ HOME: home(), FLASHPODS_API_TOKEN: 'abc' }, '/somewhere');
    expect(config).toMatchObject({
      apiToken: 'abc', apiHost: '10.0.0.1', apiPort: 8080, rsyncHost: '10.0.0.1', rsyncPort: 873,
      defaultExclude: [...DEFAULT_EXCLUDE], retry: { maxAttempts: 5, baseDelayMs: 1000, maxDelayMs: 30_000 }, downloadDir: '/somewhere',
    });
  });

  it('reads ~/.config/flashpods/config.json, and the environment wins over it', () => {
    const h = home();
    mkdirSync(join(h, '.config', 'flashpods'), { recursive: true });
    writeFileSync(join(h, '.config', 'flashpods', 'config.json'), JSON.stringify({
      api_host: '10.9.0.1', api_port: 9000, rsync_host: '10.9.0.2', default_exclude: ['build'], retry_max_attempts: 3, retry_base_delay_ms: 10, retry_max_delay_ms: 50,
    }));
    const fromFile = loadConfig({ HOME: h, FLASHPODS_API_TOKEN: 't' });
    expect(fromFile).toMatchObject({ apiHost: '10.9.0.1', apiPort: 9000, rsyncHost: '10.9.0.2', defaultExclude: ['build'], retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50 } });
    expect(fromFile.configFile).toBe(join(h, '.config', 'flashpods', 'config.json'));
    const env = loadConfig({ HOME: h, FLASHPODS_API_TOKEN: 't', FLASHPODS_HOST: '127.0.0.1', FLASHPODS_PORT: '18080', FLASHPODS_DEFAULT_EXCLUDE: 'a, b', FLASHPODS_RETRY_MAX_ATTEMPTS: '2' });
    expect(env).toMatchObject({ apiHost: '127.0.0.1', apiPort: 18080, rsyncHost: '10.9.0.2', defaultExclude: ['a', 'b'], retry: { maxAttempts: 2 } });
  });

  it('refuses to start without a token, and names every bad value', () => {
    const h = home();
    mkdirSync(join(h, '.config', 'flashpods'), { recursive: true });
    writeFileSync(join(h, '.config', 'flashpods', 'config.json'), JSON.stringify({ api_port: 'x', api_token: 'nope', surprise: 1 }));
    let error: ConfigError | undefined;
    try {
      loadConfig({ HOME: h, FLASHPODS_RSYNC_PORT: '70000', FLASHPODS_RETRY_BASE_DELAY_MS: '-1' });
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.problems[0]).toMatch(/FLASHPODS_API_TOKEN is not set.*mcpServers/);
    const text = error!.problems.join('\n');
    expect(text).toMatch(/api_port: must be a whole number/);
    expect(text).toMatch(/api_token does not belong in the file/);
    expect(text).toMatch(/unknown key "surprise"/);
    expect(text).toMatch(/FLASHPODS_RSYNC_PORT: must be a whole number from 1 to 65535/);
    expect(text).toMatch(/FLASHPODS_RETRY_BASE_DELAY_MS/);
    const broken = home();
    mkdirSync(join(broken, '.config', 'flashpods'), { recursive: true });
    writeFileSync(join(broken, '.config', 'flashpods', 'config.json'), '{ nope');
    expect(() => loadConfig({ HOME: broken, FLASHPODS_API_TOKEN: 't' })).toThrow(/not valid JSON/);
  });
});

describe('the retry table at its real delays (base 1 s, cap 30 s, 5 attempts)', () => {
  const policy = { maxAttempts: 5, baseDelayMs: 1000, maxDelayMs: 30_000 };
  it.each([
    ['429 rate_limited', { kind: 'http', status: 429, code: 'rate_limited' }, [1000, 2000, 4000, 8000]],
    ['429 insufficient_resources', { kind: 'http', status: 429, code: 'insufficient_resources' }, [1000, 2000, 4000, 8000]],
    ['503', { kind: 'http', status: 503, code: 'service_unavailable' }, [1000, 2000, 4000, 8000]],
    ['503 copy_in_progress', { kind: 'http', status: 503, code: 'copy_in_progress' }, [1000, 2000, 4000, 8000]],
    ['507', { kind: 'http', status: 507, code: 'insufficient_storage' }, []],
    ['network', { kind: 'network', reason: 'ECONNREFUSED' }, [1000, 2000]],
    ['404', { kind: 'http', status: 404, code: 'job_not_found' }, []],
    ['400', { kind: 'http', status: 400, code: 'invalid_cpus' }, []],
    ['409', { kind: 'http', status: 409, code: 'job_already_terminal' }, []],
    ['410 permanent', { kind: 'http', status: 410, code: 'upload_expired' }, []],
    ['500', { kind: 'http', status: 500, code: 'internal_error' }, [1000]],
    ['502 without a body', { kind: 'http', status: 502 }, [1000]],
  ] as const)('%s', (_name, failure, waits) => {
    expect(schedule(failure, policy)).toEqual(waits);
  });

  it('caps exponential waits and lets linear ones grow by the base', () => {
    expect(schedule({ kind: 'http', status: 503 }, { maxAttempts: 8, baseDelayMs: 1000, maxDelayMs: 30_000 })).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    expect(schedule({ kind: 'http', status: 500 }, { maxAttempts: 8, baseDelayMs: 1000, maxDelayMs: 30_000 })).toEqual([1000]);
    expect(schedule({ kind: 'network', reason: 'x' }, { maxAttempts: 2, baseDelayMs: 1000, maxDelayMs: 30_000 })).toEqual([1000]);
    expect(schedule({ kind: 'http', status: 429 }, { maxAttempts: 1, baseDelayMs: 1000, maxDelayMs: 30_000 })).toEqual([]);
  });

  it('treats retry_after_seconds as a floor, and reports one longer than the cap', () => {
    expect(retryDecision({ kind: 'http', status: 429, code: 'rate_limited', retryAfterSeconds: 3 }, 1, policy)).toMatchObject({ retry: true, delayMs: 3000 });
    expect(retryDecision({ kind: 'http', status: 429, code: 'rate_limited', retryAfterSeconds: 1 }, 4, policy)).toMatchObject({ retry: true, delayMs: 8000 });
    expect(retryDecision({ kind: 'http', status: 429, code: 'rate_limited', retryAfterSeconds: 60 }, 1, policy)).toMatchObject({ retry: false });
  });
});

describe('uploads', () => {
  it('picks ids the API accepts', () => {
    const ids = new Set(Array.from({ length: 100 }, newUploadId));
    expect(ids.size).toBe(100);
    for (const id of ids) {
      expect(id).toMatch(/^upload_[0-9a-f]{8}-[0-9a-f]{3}$/); // spec/mcp.md's generator: hyphenated
      expect(ID_PATTERNS.upload.test(id)).toBe(true);
    }
  });

  it('parses --info=progress2 records', () => {
    expect(parseProgress2('      3,000,000 100%   64.31MB/s    0:00:00 (xfr#1, to-chk=0/2)')).toEqual({ bytes: 3_000_000, percent: 100, rate: '64.31MB/s' });
    expect(parseProgress2('         32,768   1%    0.00kB/s    0:00:00  ')).toEqual({ bytes: 32_768, percent: 1, rate: '0.00kB/s' });
    expect(parseProgress2('sending incremental file list')).toBeUndefined();
  });

  it('maps rsync failures: disk full, refused, missing binary', () => {
    const full = rsyncFailure({ code: 11, signal: null, stderr: 'rsync: [receiver] write failed on "big.bin" (in uploads): No space left on device (28)\nrsync error: error in file IO (code 11)' }, 'rsync://h:873/uploads/upload_x/');
    expect(full).toMatchObject({ code: 'upload_disk_full' });
    expect(full.message).toMatch(/No space left on device/);
    const denied = rsyncFailure({ code: 5, signal: null, stderr: '@ERROR: access denied to uploads from UNDETERMINED (10.0.0.9)\nrsync error: error starting client-server protocol (code 5)' }, 'rsync://h:873/uploads/upload_x/');
    expect(denied).toMatchObject({ code: 'upload_failed' });
    expect(denied.message).toMatch(/code 5 \(error starting the client-server protocol\).*hosts allow/s);
    const missing = rsyncFailure({ code: null, signal: null, stderr: '', spawnError: Object.assign(new Error('spawn rsync ENOENT'), { code: 'ENOENT' }) }, 'x');
    expect(missing.message).toMatch(/rsync is not installed/);
  });
});

describe('save_to', () => {
  const root = () => {
    const dir = mkdtempSync(join(tmpdir(), 'fp-mcp-save-'));
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'exists.txt'), 'x');
    return dir;
  };
  const code = async (p: Promise<unknown>) => p.then(() => 'ok', (e: ToolFailure) => e.code);

  it('resolves inside the download directory', async () => {
    const dir = root();
    expect(await resolveSaveTo(dir, undefined, 'a.txt', false)).toMatchObject({ path: join(dir, 'a.txt'), intoDirectory: true });
    expect(await resolveSaveTo(dir, 'sub', 'a.txt', false)).toMatchObject({ path: join(dir, 'sub', 'a.txt') });
    expect(await resolveSaveTo(dir, 'new/dir/', 'a.txt', false)).toMatchObject({ path: join(dir, 'new', 'dir', 'a.txt') });
    expect(await resolveSaveTo(dir, 'renamed.bin', 'a.txt', false)).toMatchObject({ path: join(dir, 'renamed.bin'), intoDirectory: false });
    expect(await resolveSaveTo(dir, join(dir, 'sub', 'abs.txt'), 'a.txt', false)).toMatchObject({ path: join(dir, 'sub', 'abs.txt') });
  });

  it('refuses escapes, existing files and bad names', async () => {
    const dir = root();
    const outside = mkdtempSync(join(tmpdir(), 'fp-mcp-out-'));
    symlinkSync(outside, join(dir, 'link'));
    expect(await code(resolveSaveTo(dir, '../x.txt', 'a', false))).toBe('invalid_save_to');
    expect(await code(resolveSaveTo(dir, 'sub/../../x.txt', 'a', false))).toBe('invalid_save_to');
    expect(await code(resolveSaveTo(dir, '/etc/passwd', 'a', true))).toBe('invalid_save_to');
    expect(await code(resolveSaveTo(dir, 'link/x.txt', 'a', false))).toBe('invalid_save_to');
    expect(await code(resolveSaveTo(dir, 'link/deeper/x.txt', 'a', false))).toBe('invalid_save_to');
    expect(await code(resolveSaveTo(dir, 'exists.txt', 'a', false))).toBe('file_exists');
    expect(await code(resolveSaveTo(dir, 'exists.txt', 'a', true))).toBe('ok');
    expect(await code(resolveSaveTo(dir, undefined, 'exists.txt', false))).toBe('file_exists');
    expect(await code(resolveSaveTo(dir, undefined, '../a', false))).toBe('invalid_artifact_name');
    expect(await code(resolveSaveTo(join(dir, 'missing'), undefined, 'a', false))).toBe('invalid_save_to');
  });
});

describe('argument errors', () => {
  const config = loadConfig({ HOME: home(), FLASHPODS_API_TOKEN: 't' });
  const tools = buildTools({ config, api: new ApiClient(config), log: silentLog, cwd: '/' });
  const tool = (name: string) => tools.find((t) => t.name === name)!;
  const codeFor = (name: string, args: unknown) => {
    const parsed = tool(name).inputSchema.safeParse(args);
    return parsed.success ? 'ok' : validationError(tool(name), parsed.error).error;
  };

  it('carry the contract code of the first offending argument', () => {
    expect(codeFor('spawn_worker', { command: 'x', cpus: 0 })).toBe('invalid_cpus');
    expect(codeFor('spawn_worker', { command: 'x', memory_gb: 17 })).toBe('invalid_memory');
    expect(codeFor('spawn_worker', { command: 'x', timeout_minutes: 0 })).toBe('invalid_timeout');
    expect(codeFor('spawn_worker', { command: '   ' })).toBe('missing_command');
    expect(codeFor('spawn_worker', { command: 'x'.repeat(10_001) })).toBe('missing_command');
    expect(codeFor('spawn_worker', { command: 'x', files: { local_path: '/p', exclude: ['a\nb'] } })).toBe('invalid_argument');
    expect(codeFor('spawn_sub_agent', { task: 't', git_branch: '-bad' })).toBe('missing_git_branch');
    expect(codeFor('spawn_sub_agent', { task: 't', git_branch: 'ok', context: 'x'.repeat(100_001) })).toBe('invalid_context');
    expect(codeFor('download_artifact', { job_id: 'job_0000000000000000', artifact_name: 'a\0b' })).toBe('invalid_artifact_name');
    expect(codeFor('spawn_worker', { command: 'x', need_github_token: 'yes' })).toBe('invalid_argument');
    expect(codeFor('spawn_worker', { command: 'x' })).toBe('ok');
  });

  it('fill in the defaults of mcp.md', () => {
    // The spawn tools queue by default (issue 15): an agent's fan-out waits rather than fails.
    expect(tool('spawn_worker').inputSchema.parse({ command: 'x' })).toEqual({ command: 'x', cpus: 2, memory_gb: 4, timeout_minutes: 30, need_github_token: false, queue: true, queue_timeout_minutes: 60 });
    expect(tool('spawn_sub_agent').inputSchema.parse({ task: 't', git_branch: 'b' })).toEqual({ task: 't', git_branch: 'b', cpus: 2, memory_gb: 4, timeout_minutes: 60, queue: true, queue_timeout_minutes: 60 });
    expect(tool('list_jobs').inputSchema.parse({})).toEqual({ status: 'all', limit: 20 });
    expect(tool('get_job_output').inputSchema.parse({ job_id: 'job_0000000000000000' })).toMatchObject({ tail: 100 });
  });
});

describe('progress', () => {
  it('is sent only with a token, strictly increasing', async () => {
    const sent: Array<{ progress: number }> = [];
    const extra = (token?: string) => ({
      signal: new AbortController().signal,
      _meta: token ? { progressToken: token } : {},
      sendNotification: async (n: { params: { progress: number } }) => { sent.push(n.params); },
    });
    const none = new Progress(extra(), undefined, 0);
    none.report(1, 100, 'x');
    expect(sent).toEqual([]);
    const p = new Progress(extra('t'), undefined, 0);
    p.report(5, 100, 'a');
    p.report(5, 100, 'b');
    p.report(3, 100, 'c');
    p.report(50, 100, 'd');
    await p.flush();
    expect(sent.map((s) => s.progress)).toEqual([5, 5.001, 5.002, 50]);
  });
});
