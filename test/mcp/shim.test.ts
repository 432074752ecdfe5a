/**
 * The MCP shim end to end: a separate shim process driven through the SDK Client, a real rsync
 * daemon whose `uploads` module is the stack's uploads root, and a real Flashpods server on real
 * Podman.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE } from '../support/podman.ts';
import { startRsyncDaemon, type RsyncDaemon } from '../support/rsyncd.ts';
import { json, startStack, type Stack } from '../support/stack.ts';
import { callTool, SHIM, startShim, type Shim } from './helpers.ts';

let stack: Stack;
let rsyncd: RsyncDaemon;
let shim: Shim;
let downloads: string;
let shimEnv: Record<string, string>;

beforeAll(async () => {
  stack = await startStack();
  // Its transfer register where the server reads it (the dev default of paths.rsyncTransfers).
  rsyncd = await startRsyncDaemon({ uploadsDir: join(stack.home, 'uploads'), transfersDir: join(stack.home, 'rsync-transfers') });
  downloads = mkdtempSync(join(tmpdir(), 'fp-mcp-downloads-'));
  const url = new URL(stack.server.url);
  shimEnv = {
    FLASHPODS_API_TOKEN: stack.server.token,
    FLASHPODS_HOST: url.hostname,
    FLASHPODS_PORT: url.port,
    FLASHPODS_RSYNC_HOST: rsyncd.host,
    FLASHPODS_RSYNC_PORT: String(rsyncd.port),
    FLASHPODS_DOWNLOAD_DIR: downloads,
    FLASHPODS_MCP_WAIT_TICK_MS: '300',
  };
  shim = await startShim(shimEnv);
});

afterAll(async () => {
  await shim?.close();
  await rsyncd?.stop();
  await stack?.stop();
});

/** A project directory with the usual clutter the default excludes must leave out. */
function makeProject(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fp-mcp-project-'));
  const files: Record<string, string> = {
    'README.md': '# demo\n',
    'src/main.rs': 'fn main() {}\n',
    'src/lib/util.py': 'x = 1\n',
    'node_modules/left-pad/index.js': 'module.exports = 1\n',
    '.git/HEAD': 'ref: refs/heads/main\n',
    'target/debug/app': 'binary\n',
    'src/__pycache__/util.cpython-312.pyc': 'pyc\n',
    '.venv/bin/python': '#!/bin/sh\n',
    'dist/bundle.js': 'bundle\n',
    'notes.log': 'log\n',
  };
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), content);
  }
  return dir;
}

const worker = (command: string, extra: Record<string, unknown> = {}) => ({ command, image: TEST_IMAGE, cpus: 1, memory_gb: 1, ...extra });

describe('the MCP shim', () => {
  it('lists the nine tools with their schemas, defaults, bounds and annotations', async () => {
    const { tools } = await shim.client.listTools();
    const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
    expect(Object.keys(byName).sort()).toEqual([
      'download_artifact', 'get_job_artifacts', 'get_job_output', 'get_job_status', 'kill_job', 'list_jobs', 'spawn_sub_agent', 'spawn_worker', 'wait_for_job',
    ]);
    const sw = byName.spawn_worker!.inputSchema as any;
    expect(sw.required).toEqual(['command']);
    expect(sw.properties.cpus).toMatchObject({ type: 'integer', minimum: 1, maximum: 8, default: 2 });
    expect(sw.properties.memory_gb).toMatchObject({ type: 'integer', minimum: 1, maximum: 16, default: 4 });
    expect(sw.properties.timeout_minutes).toMatchObject({ type: 'integer', minimum: 1, maximum: 120, default: 30 });
    expect(sw.properties.image).toMatchObject({ type: 'string', default: 'ubuntu:22.04' });
    expect(sw.properties.files).toMatchObject({ type: 'object', required: ['local_path'] });
    expect(sw.properties.files.properties.exclude).toMatchObject({ type: 'array', items: { type: 'string' } });
    const sa = byName.spawn_sub_agent!.inputSchema as any;
    expect([...sa.required].sort()).toEqual(['git_branch', 'task']);
    expect(sa.properties.cpus).toMatchObject({ minimum: 1, maximum: 4, default: 2 });
    expect(sa.properties.memory_gb).toMatchObject({ minimum: 1, maximum: 8, default: 4 });
    expect(sa.properties.timeout_minutes).toMatchObject({ minimum: 1, maximum: 120, default: 60 });
    expect(sa.properties.context).toMatchObject({ type: 'string' });
    expect((byName.get_job_output!.inputSchema as any).properties.tail).toMatchObject({ minimum: 1, maximum: 10000, default: 100 });
    expect((byName.list_jobs!.inputSchema as any).properties.status).toMatchObject({ enum: ['all', 'queued', 'running', 'completed', 'failed'], default: 'all' });
    expect((byName.list_jobs!.inputSchema as any).properties.limit).toMatchObject({ minimum: 1, maximum: 100, default: 20 });
    expect((byName.download_artifact!.inputSchema as any).required).toEqual(['job_id', 'artifact_name']);
    expect((byName.wait_for_job!.inputSchema as any).properties.timeout_seconds).toMatchObject({ type: 'integer', minimum: 1 });
    for (const name of ['get_job_status', 'get_job_output', 'get_job_artifacts', 'list_jobs', 'wait_for_job']) {
      expect(byName[name]!.annotations, name).toMatchObject({ readOnlyHint: true, destructiveHint: false, idempotentHint: true });
    }
    expect(byName.spawn_worker!.annotations).toMatchObject({ readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true });
    expect(byName.kill_job!.annotations).toMatchObject({ readOnlyHint: false, destructiveHint: true });
    // The descriptions teach what the container gets.
    expect(byName.spawn_worker!.description).toMatch(/\/work READ-ONLY/);
    expect(byName.spawn_worker!.description).toMatch(/\/artifacts/);
    expect(byName.spawn_worker!.description).toMatch(/cargo build --release/);
    expect(byName.spawn_worker!.description).toMatch(/npm test/);
    expect(byName.spawn_worker!.description).toMatch(/pytest -x/);
    expect(byName.spawn_sub_agent!.description).toMatch(/READ-WRITE/);
    expect(byName.spawn_sub_agent!.description).toMatch(/cannot spawn/);
    expect(byName.spawn_worker!.description).toMatch(/No secrets/);
  });

  it('uploads a project without the excluded directories, runs it, and brings results back', async () => {
    const project = makeProject();
    const spawned = await callTool(shim, 'spawn_worker', worker(
      'cd /work && find . | sort && echo hello > /artifacts/hello.txt && mkdir /artifacts/report && echo r > /artifacts/report/r.txt && head -c 300000 /dev/urandom > /artifacts/blob.bin',
      { files: { local_path: project, exclude: ['dist', '*.log'] } },
    ), { progress: true });
    expect(spawned.isError, spawned.text).toBe(false);
    expect(spawned.body).toMatchObject({ status: 'starting', type: 'worker', upload: { file_count: 3, excluded: expect.arrayContaining(['.git', 'node_modules', 'target', '__pycache__', '.venv', 'dist', '*.log']) } });
    expect(spawned.body.job_id).toMatch(/^job_[a-z0-9]{16}$/);
    expect(spawned.body.upload.upload_id).toMatch(/^upload_[0-9a-f]{8}-[0-9a-f]{3}$/); // hyphenated, through rsync, finalize and the job
    expect(JSON.parse(spawned.text)).toEqual(spawned.body); // text carries the same JSON
    const id = spawned.body.job_id as string;

    const waited = await callTool(shim, 'wait_for_job', { job_id: id, timeout_seconds: 60 }, { progress: true });
    expect(waited.isError, waited.text).toBe(false);
    expect(waited.body).toMatchObject({ job_id: id, status: 'completed', terminal: true, exit_code: 0, error: null });

    const status = await callTool(shim, 'get_job_status', { job_id: id });
    expect(status.body).toMatchObject({ job_id: id, status: 'completed', exit_code: 0, terminal: true });
    expect(status.body.elapsed_seconds).toEqual(expect.any(Number));

    const output = await callTool(shim, 'get_job_output', { job_id: id, tail: 1000 });
    const listed = (output.body.output as string).split('\n').filter(Boolean).map((l) => l.replace(/^\[[\d:.]+\] /, ''));
    expect(listed).toEqual(['.', './README.md', './src', './src/lib', './src/lib/util.py', './src/main.rs']);
    const tail2 = await callTool(shim, 'get_job_output', { job_id: id, tail: 2 });
    expect(tail2.body.lines).toBe(2);

    const artifacts = await callTool(shim, 'get_job_artifacts', { job_id: id });
    expect(artifacts.body.artifacts.map((a: any) => [a.name, a.size_bytes]).sort()).toEqual([['blob.bin', 300000], ['hello.txt', 6], ['report', 2]]);

    const hello = await callTool(shim, 'download_artifact', { job_id: id, artifact_name: 'hello.txt' });
    expect(hello.body).toMatchObject({ saved_to: join(downloads, 'hello.txt'), size_bytes: 6 });
    expect(readFileSync(join(downloads, 'hello.txt'), 'utf8')).toBe('hello\n');

    const blob = await callTool(shim, 'download_artifact', { job_id: id, artifact_name: 'blob.bin', save_to: 'out/sub/blob.bin' }, { progress: true });
    expect(blob.isError, blob.text).toBe(false);
    const onDisk = readFileSync(join(downloads, 'out/sub/blob.bin'));
    expect(onDisk.length).toBe(300000);
    expect(blob.body.sha256).toBe(createHash('sha256').update(onDisk).digest('hex'));
    // The server's copy is the reference: the same bytes.
    expect(onDisk.equals(readFileSync(join(stack.home, 'artifacts', id, 'blob.bin')))).toBe(true);

    // An existing file is refused unless overwrite is asked for; nothing partial is left.
    const again = await callTool(shim, 'download_artifact', { job_id: id, artifact_name: 'hello.txt' });
    expect(again).toMatchObject({ isError: true, body: { error: 'file_exists' } });
    writeFileSync(join(downloads, 'hello.txt'), 'old');
    const over = await callTool(shim, 'download_artifact', { job_id: id, artifact_name: 'hello.txt', save_to: 'hello.txt', overwrite: true });
    expect(over.body).toMatchObject({ overwritten: true, size_bytes: 6 });
    expect(readFileSync(join(downloads, 'hello.txt'), 'utf8')).toBe('hello\n');

    // A directory artifact arrives as a tar stream, saved as <name>.tar.
    const report = await callTool(shim, 'download_artifact', { job_id: id, artifact_name: 'report', save_to: 'out/' });
    expect(report.body.saved_to).toBe(join(downloads, 'out', 'report.tar'));
    expect(execFileSync('tar', ['-tf', join(downloads, 'out', 'report.tar')], { encoding: 'utf8' }).split('\n').filter(Boolean)).toContain('report/r.txt');

    expect(readdirSync(downloads).concat(readdirSync(join(downloads, 'out'))).filter((n) => n.endsWith('.partial'))).toEqual([]);
  });

  it('passes need_github_token through to the job: its container gets the flag only when asked', async () => {
    const { tools } = await shim.client.listTools();
    const sw = tools.find((t) => t.name === 'spawn_worker')!.inputSchema as any;
    expect(sw.properties.need_github_token).toMatchObject({ type: 'boolean', default: false });
    const flag = 'echo "NEED=${FLASHPODS_NEED_GITHUB_TOKEN:-unset}"';
    const asked = await callTool(shim, 'spawn_worker', worker(flag, { need_github_token: true }));
    const plain = await callTool(shim, 'spawn_worker', worker(flag));
    expect(asked.isError, asked.text).toBe(false);
    for (const [spawned, expected] of [[asked, 'NEED=true'], [plain, 'NEED=unset']] as const) {
      const done = await callTool(shim, 'wait_for_job', { job_id: spawned.body.job_id, timeout_seconds: 60 });
      expect(done.body, done.text).toMatchObject({ status: 'completed', exit_code: 0 });
      expect(done.body.output_tail).toContain(expected);
    }
  });

  it('mounts /work read-only for a worker and read-write for a sub-agent', async () => {
    const project = makeProject();
    const ro = await callTool(shim, 'spawn_worker', worker('echo changed > /work/README.md', { files: { local_path: project } }));
    const roDone = await callTool(shim, 'wait_for_job', { job_id: ro.body.job_id });
    expect(roDone.body).toMatchObject({ status: 'failed', terminal: true });
    expect(roDone.body.exit_code).not.toBe(0);
    expect(roDone.body.output_tail).toMatch(/Read-only file system/);

    // The test agent image's /entrypoint.sh runs the task as a shell command.
    const agent = await callTool(shim, 'spawn_sub_agent', {
      task: 'echo changed > /work/README.md && cat /work/README.md && cp /work/README.md /artifacts/summary.md', git_branch: 'agent/readme',
      context: 'test context', files: { local_path: project }, cpus: 1, memory_gb: 1, timeout_minutes: 5,
    });
    expect(agent.isError, agent.text).toBe(false);
    expect(agent.body).toMatchObject({ type: 'agent', status: 'starting' });
    const done = await callTool(shim, 'wait_for_job', { job_id: agent.body.job_id });
    expect(done.body).toMatchObject({ status: 'completed', exit_code: 0, type: 'agent', git_branch: 'agent/readme', timeout_minutes: 5 });
    expect(done.body.output_tail).toMatch(/changed/);
    expect(readFileSync(join(project, 'README.md'), 'utf8')).toBe('# demo\n'); // the laptop's copy is untouched
  });

  it('puts nothing but JSON-RPC on stdout', async () => {
    const child = spawn(process.execPath, [SHIM], { env: { PATH: process.env.PATH!, HOME: mkdtempSync(join(tmpdir(), 'fp-mcp-home-')), ...shimEnv }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    const send = (m: object) => child.stdin.write(`${JSON.stringify(m)}\n`);
    send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
    send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    send({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
    send({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'list_jobs', arguments: { limit: 1 } } });
    send({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'spawn_worker', arguments: { cpus: 'many' } } });
    send({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'spawn_worker', arguments: { command: 'true', files: { local_path: '/nope' } } } });
    const deadline = Date.now() + 15_000;
    while ((out.match(/\n/g) ?? []).length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    child.stdin.end();
    await new Promise((r) => child.once('exit', r));
    const lines = out.split('\n').filter(Boolean);
    expect(lines).toHaveLength(5);
    const messages = lines.map((l) => JSON.parse(l));
    expect(messages.every((m) => m.jsonrpc === '2.0')).toBe(true);
    messages.sort((a, b) => a.id - b.id); // concurrent calls answer in any order
    expect(messages.map((m) => m.id)).toEqual([1, 2, 3, 4, 5]);
    expect(messages[3].result).toMatchObject({ isError: true, structuredContent: { error: 'missing_command' } });
    expect(messages[4].result).toMatchObject({ isError: true, structuredContent: { error: 'local_path_not_found' } });
    expect(child.exitCode).toBe(0); // stdin closed: it exits
  });

  it('reports upload progress for a multi-megabyte upload and the job sees every byte', async () => {
    const project = mkdtempSync(join(tmpdir(), 'fp-mcp-big-'));
    const sums: string[] = [];
    for (let i = 0; i < 6; i++) {
      const data = randomBytes(1024 * 1024);
      writeFileSync(join(project, `random-${i}.bin`), data);
      sums.push(createHash('md5').update(data).digest('hex'));
    }
    const started = Date.now();
    const spawned = await callTool(shim, 'spawn_worker', worker('cd /work && md5sum random-*.bin', { files: { local_path: project } }), { progress: true });
    const ms = Date.now() - started;
    expect(spawned.isError, spawned.text).toBe(false);
    expect(spawned.body.upload).toMatchObject({ size_bytes: 6 * 1024 * 1024, file_count: 6 });
    const uploadProgress = spawned.progress.filter((p) => /uploading/.test(p.message ?? ''));
    expect(uploadProgress.length).toBeGreaterThan(0);
    const values = spawned.progress.map((p) => p.progress);
    expect([...values].sort((a, b) => a - b)).toEqual(values); // increasing
    expect(new Set(values).size).toBe(values.length);
    expect(spawned.progress.every((p) => p.total === undefined || p.total === 100)).toBe(true);
    expect(spawned.progress.at(-1)!.progress).toBeGreaterThanOrEqual(90); // the upload reached 100 %
    console.log(`upload: 6 MiB random in ${ms} ms end to end (rsync ${spawned.body.upload.seconds} s incl. finalize) → ${(6 / (ms / 1000)).toFixed(1)} MiB/s; ${spawned.progress.length} progress notifications`);

    const waited = await callTool(shim, 'wait_for_job', { job_id: spawned.body.job_id, timeout_seconds: 60 });
    expect(waited.body.status).toBe('completed');
    const out = await callTool(shim, 'get_job_output', { job_id: spawned.body.job_id });
    expect((out.body.output as string).match(/[0-9a-f]{32}/g)).toEqual(sums);
  });

  it('streams the newest log lines as progress while wait_for_job waits', async () => {
    const spawned = await callTool(shim, 'spawn_worker', worker('for i in 1 2 3 4 5 6; do echo tick-$i; sleep 0.4; done'));
    const waited = await callTool(shim, 'wait_for_job', { job_id: spawned.body.job_id, timeout_seconds: 30 }, { progress: true });
    expect(waited.body, waited.text).toMatchObject({ status: 'completed', terminal: true, exit_code: 0 });
    expect(waited.body.output_tail).toMatch(/tick-6/);
    // Lines printed while it waited arrive as progress. (The SDK client dispatches progress a
    // microtask late, so a notification in the same chunk as the result can be dropped: the
    // last lines are checked in output_tail instead.)
    const messages = waited.progress.map((p) => p.message ?? '').join('\n');
    for (let i = 1; i <= 4; i++) expect(messages).toMatch(new RegExp(`tick-${i}`));
    expect(waited.progress.length).toBeGreaterThan(2);
    expect(waited.progress.every((p) => p.total === 30)).toBe(true);
    // Without a progress token: no notifications, and a timeout that is not an error.
    const long = await callTool(shim, 'spawn_worker', worker('sleep 30'));
    const short = await callTool(shim, 'wait_for_job', { job_id: long.body.job_id, timeout_seconds: 1 });
    expect(short).toMatchObject({ isError: false, body: { terminal: false }, progress: [] });
    expect(short.body.waited_seconds).toBeGreaterThanOrEqual(0.9);
    const killed = await callTool(shim, 'kill_job', { job_id: long.body.job_id });
    expect(killed.body).toMatchObject({ job_id: long.body.job_id, status: 'cancelled' });
  });

  it('kills a long job: cancelled, and a second kill says job_already_terminal', async () => {
    const spawned = await callTool(shim, 'spawn_worker', worker('echo started; sleep 300'));
    const id = spawned.body.job_id;
    // Wait until the log shows it running, then kill it.
    for (let i = 0; i < 100; i++) {
      const out = await callTool(shim, 'get_job_output', { job_id: id });
      if (!out.isError && /started/.test(out.body.output)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const killed = await callTool(shim, 'kill_job', { job_id: id });
    expect(killed).toMatchObject({ isError: false, body: { job_id: id, status: 'cancelled' } });
    const waited = await callTool(shim, 'wait_for_job', { job_id: id, timeout_seconds: 30 });
    expect(waited.body).toMatchObject({ status: 'cancelled', terminal: true });
    const twice = await callTool(shim, 'kill_job', { job_id: id });
    expect(twice).toMatchObject({ isError: true, body: { error: 'job_already_terminal' } });
  });

  it('lists jobs with status filters and a limit', async () => {
    const ids = await Promise.all(['exit 3', 'true', 'true'].map(async (c) => (await callTool(shim, 'spawn_worker', worker(c))).body.job_id as string));
    const running = await callTool(shim, 'list_jobs', { status: 'running' });
    expect(running.body.jobs.every((j: any) => ['pending', 'starting', 'running'].includes(j.status))).toBe(true);
    for (const id of ids) await callTool(shim, 'wait_for_job', { job_id: id });
    const all = await callTool(shim, 'list_jobs', {});
    expect(all.body).toMatchObject({ status: 'all', limit: 20 });
    expect(all.body.total).toBeGreaterThanOrEqual(3);
    expect(all.body.jobs.slice(0, 3).map((j: any) => j.job_id).sort()).toEqual([...ids].sort()); // newest first
    const failed = await callTool(shim, 'list_jobs', { status: 'failed', limit: 100 });
    expect(failed.body.jobs.every((j: any) => ['failed', 'timed_out', 'cancelled'].includes(j.status))).toBe(true);
    expect(failed.body.jobs.map((j: any) => j.job_id)).toContain(ids[0]);
    expect(failed.body.jobs.find((j: any) => j.job_id === ids[0])).toMatchObject({ status: 'failed', exit_code: 3, type: 'worker', command: 'exit 3' });
    const completed = await callTool(shim, 'list_jobs', { status: 'completed', limit: 2 });
    expect(completed.body.jobs).toHaveLength(2);
    expect(completed.body.jobs.every((j: any) => j.status === 'completed')).toBe(true);
    const server = await json(await stack.server.fetch('/jobs?status=completed&limit=2'));
    expect(completed.body.jobs.map((j: any) => j.job_id)).toEqual(server.jobs.map((j: any) => j.id));
    expect(completed.body.total).toBe(server.total);
  });

  it('answers bad inputs with tool errors carrying the contract codes', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'fp-mcp-file-')), 'plain.txt');
    writeFileSync(file, 'x');
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['spawn_worker', {}, 'missing_command'],
      ['spawn_worker', { command: '' }, 'missing_command'],
      ['spawn_worker', { command: 'true', cpus: 9 }, 'invalid_cpus'],
      ['spawn_worker', { command: 'true', cpus: 1.5 }, 'invalid_cpus'],
      ['spawn_worker', { command: 'true', memory_gb: 0 }, 'invalid_memory'],
      ['spawn_worker', { command: 'true', timeout_minutes: 121 }, 'invalid_timeout'],
      ['spawn_worker', { command: 'true', files: {} }, 'invalid_argument'],
      ['spawn_worker', { command: 'true', files: { local_path: '/no/such/dir' } }, 'local_path_not_found'],
      ['spawn_worker', { command: 'true', files: { local_path: file } }, 'local_path_not_directory'],
      ['spawn_worker', { command: 'true', image: 'NOT A/valid image' }, 'invalid_image'],
      ['spawn_sub_agent', { git_branch: 'main' }, 'missing_task'],
      ['spawn_sub_agent', { task: 'do it' }, 'missing_git_branch'],
      ['spawn_sub_agent', { task: 'do it', git_branch: 'bad..ref' }, 'missing_git_branch'],
      ['spawn_sub_agent', { task: 'do it', git_branch: 'main', cpus: 5 }, 'invalid_cpus'],
      ['spawn_sub_agent', { task: 'do it', git_branch: 'main', memory_gb: 9 }, 'invalid_memory'],
      ['get_job_status', {}, 'job_not_found'],
      ['get_job_status', { job_id: '../../uploads' }, 'job_not_found'],
      ['get_job_status', { job_id: 'job_doesnotexist0000' }, 'job_not_found'],
      ['get_job_output', { job_id: 'job_doesnotexist0000' }, 'job_not_found'],
      ['get_job_output', { job_id: 'job_doesnotexist0000', tail: 0 }, 'invalid_query'],
      ['get_job_output', { job_id: 'job_doesnotexist0000', tail: 10001 }, 'invalid_query'],
      ['get_job_artifacts', { job_id: 'job_doesnotexist0000' }, 'job_not_found'],
      ['list_jobs', { status: 'weird' }, 'invalid_query'],
      ['list_jobs', { limit: 101 }, 'invalid_query'],
      ['kill_job', { job_id: 'job_doesnotexist0000' }, 'job_not_found'],
      ['wait_for_job', { job_id: 'job_doesnotexist0000' }, 'job_not_found'],
      ['wait_for_job', { job_id: 'job_doesnotexist0000', timeout_seconds: 0 }, 'invalid_argument'],
      ['download_artifact', { job_id: 'job_doesnotexist0000', artifact_name: '../../etc/passwd' }, 'invalid_artifact_name'],
      ['download_artifact', { job_id: 'job_doesnotexist0000', artifact_name: 'a/b' }, 'invalid_artifact_name'],
      ['download_artifact', { job_id: 'job_doesnotexist0000', artifact_name: ' x' }, 'invalid_artifact_name'],
      ['download_artifact', { job_id: 'job_doesnotexist0000', artifact_name: 'x', save_to: '../../escape.txt' }, 'invalid_save_to'],
      ['download_artifact', { job_id: 'job_doesnotexist0000', artifact_name: 'x', save_to: '/etc/passwd' }, 'invalid_save_to'],
      ['download_artifact', { job_id: 'job_doesnotexist0000', artifact_name: 'x' }, 'job_not_found'],
      ['no_such_tool', {}, 'unknown_tool'],
    ];
    const before = (await json(await stack.server.fetch('/jobs?limit=1'))).total;
    const uploadsBefore = readdirSync(join(stack.home, 'uploads')).length;
    for (const [tool, args, code] of cases) {
      const answer = await callTool(shim, tool, args);
      expect([answer.isError, answer.body?.error], `${tool} ${JSON.stringify(args)}: ${answer.text}`).toEqual([true, code]);
      expect(answer.body.message).toEqual(expect.any(String));
      expect(answer.text).not.toMatch(/\n\s+at /); // never a stack trace
      expect(JSON.parse(answer.text)).toMatchObject({ error: code });
    }
    // None of them created a job or left an upload behind (invalid_image is refused after upload-free creation).
    expect((await json(await stack.server.fetch('/jobs?limit=1'))).total).toBe(before);
    expect(readdirSync(join(stack.home, 'uploads')).length).toBe(uploadsBefore);
  });

  it('refuses a save_to that escapes through a symlink', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'fp-mcp-outside-'));
    symlinkSync(outside, join(downloads, 'sneaky'));
    const answer = await callTool(shim, 'download_artifact', { job_id: 'job_doesnotexist0000', artifact_name: 'x', save_to: 'sneaky/x' });
    expect(answer.body.error).toBe('invalid_save_to');
    expect(readdirSync(outside)).toEqual([]);
  });

  it('deletes the upload again when the job cannot be created', async () => {
    const project = makeProject();
    const uploadsBefore = readdirSync(join(stack.home, 'uploads')).length;
    const sealedBefore = existsSync(join(stack.home, 'sealed')) ? readdirSync(join(stack.home, 'sealed')).length : 0;
    const answer = await callTool(shim, 'spawn_worker', worker('true', { image: 'UPPER/Case', files: { local_path: project } }));
    expect(answer.body.error).toBe('invalid_image');
    expect(readdirSync(join(stack.home, 'uploads')).length).toBe(uploadsBefore);
    expect(readdirSync(join(stack.home, 'sealed')).length).toBe(sealedBefore);
  });

  it('says clearly when the server is unreachable, and refuses to start without a token', async () => {
    const dead = await startShim({ ...shimEnv, FLASHPODS_PORT: '1', FLASHPODS_RETRY_BASE_DELAY_MS: '10' });
    try {
      const answer = await callTool(dead, 'list_jobs', {});
      expect(answer).toMatchObject({ isError: true, body: { error: 'server_unreachable', details: { attempts: 3 } } });
      expect(answer.body.message).toMatch(/Cannot reach the Flashpods API at http:\/\/127\.0\.0\.1:1 .*WireGuard/);
    } finally {
      await dead.close();
    }
    const noRsync = await startShim({ ...shimEnv, FLASHPODS_RSYNC_PORT: '1', FLASHPODS_RETRY_BASE_DELAY_MS: '10' });
    try {
      const before = (await json(await stack.server.fetch('/jobs?limit=1'))).total;
      const answer = await callTool(noRsync, 'spawn_worker', worker('true', { files: { local_path: makeProject() } }));
      expect(answer).toMatchObject({ isError: true, body: { error: 'upload_failed', details: { rsync_exit_code: 10, reason: 'connection_refused' } } });
      expect(answer.body.message).toMatch(/rsync:\/\/127\.0\.0\.1:1\/uploads\/upload_[\w-]{12}\/ failed: rsync exited with code 10/);
      expect(answer.body.message).toContain('Nothing accepts connections at 127.0.0.1:1');
      expect(answer.body.message).not.toContain('hosts allow');
      expect((await json(await stack.server.fetch('/jobs?limit=1'))).total).toBe(before);
    } finally {
      await noRsync.close();
    }
    const noToken = spawnSync(process.execPath, [SHIM], { env: { PATH: process.env.PATH, HOME: mkdtempSync(join(tmpdir(), 'fp-mcp-home-')) }, input: '', encoding: 'utf8', timeout: 20_000 });
    expect(noToken.status).toBe(1);
    expect(noToken.stdout).toBe('');
    expect(noToken.stderr).toMatch(/FLASHPODS_API_TOKEN is not set/);
    expect(noToken.stderr).not.toMatch(/\n\s+at /);
  });

  it('maps rsync running out of disk space to upload_disk_full', async () => {
    const small = mkdtempSync(join(tmpdir(), 'fp-mcp-full-'));
    // A real full disk: a 1 MB tmpfs (mounting needs root, as the whole suite does).
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small], { encoding: 'utf8' });
    expect(mounted.status, `mount a tmpfs (run the suite as root): ${mounted.stderr}`).toBe(0);
    let tiny: RsyncDaemon | undefined;
    let full: Shim | undefined;
    try {
      tiny = await startRsyncDaemon({ uploadsDir: small });
      full = await startShim({ ...shimEnv, FLASHPODS_RSYNC_PORT: String(tiny.port) });
      const project = mkdtempSync(join(tmpdir(), 'fp-mcp-large-'));
      writeFileSync(join(project, 'big.bin'), randomBytes(3 * 1024 * 1024));
      const answer = await callTool(full, 'spawn_worker', worker('true', { files: { local_path: project } }));
      expect(answer).toMatchObject({ isError: true, body: { error: 'upload_disk_full' } });
      expect(answer.body.message).toMatch(/No space left on device/);
    } finally {
      await full?.close();
      await tiny?.stop();
      spawnSync('umount', [small]);
      rmSync(small, { recursive: true, force: true });
    }
  });
});
