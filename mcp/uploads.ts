/**
 * @module mcp/uploads
 * Sending a local directory to the host (spec/storage.md "Uploads"): check it exists, pick an
 * id `upload_<12 chars>`, `rsync -az --delete --exclude … <dir>/ rsync://<host>/uploads/<id>/`,
 * then POST /uploads/{id}/finalize. rsync's progress (`--info=progress2`) becomes MCP progress;
 * "No space left on device" becomes `upload_disk_full`, any other rsync failure `upload_failed`
 * with a hint for what rsync saw (refused connection, unknown module, access denied, timeouts…)
 * and that cause in `details.reason`.
 * rsync failing to connect (or the daemon being at its connection limit) is a network error and
 * is retried per the table (3 attempts); re-running rsync into the same id only sends what is
 * missing. An upload that cannot become a job is deleted again (best effort).
 */
import { spawn, execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { ApiClient } from './api-client.ts';
import { checkNotCancelled, sleep } from './api-client.ts';
import type { McpConfig } from './config.ts';
import { ToolFailure } from './errors.ts';
import type { Log } from './log.ts';
import { retryDecision } from './retry.ts';

export interface FilesInput {
  local_path: string;
  exclude?: string[] | undefined;
}

export interface RsyncProgress {
  bytes: number;
  percent: number;
  rate: string;
}

export interface UploadResult {
  upload_id: string;
  local_path: string;
  size_bytes: number;
  file_count: number;
  excluded: string[];
  seconds: number;
  rsync_attempts: number;
}

/** spec/mcp.md's generator, as written there: ids like upload_1b9d6bcd-bbf. */
export function newUploadId(): string {
  return `upload_${randomUUID().slice(0, 12)}`;
}

/** The directory to upload, as an absolute path; a ToolFailure before anything is sent. */
export async function checkLocalDir(localPath: string, cwd: string): Promise<string> {
  const dir = isAbsolute(localPath) ? localPath : resolve(cwd, localPath);
  let info;
  try {
    info = await stat(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new ToolFailure('local_path_not_found', `files.local_path ${JSON.stringify(localPath)} does not exist (resolved to ${dir}); give the absolute path of a directory on this machine.`);
    }
    throw new ToolFailure('local_path_not_found', `files.local_path ${JSON.stringify(localPath)} cannot be read (${code ?? String(err)}).`);
  }
  if (!info.isDirectory()) {
    throw new ToolFailure('local_path_not_directory', `files.local_path ${JSON.stringify(localPath)} is not a directory; upload the directory that contains it.`);
  }
  return dir;
}

/** One `--info=progress2` record, e.g. `  1,234,567  45%   12.34MB/s    0:00:01 (xfr#3, to-chk=5/10)`. */
export function parseProgress2(line: string): RsyncProgress | undefined {
  const m = /^\s*([\d,.']+)\s+(\d{1,3})%\s+(\S+\/s)\s+\d+:\d\d:\d\d/.exec(line);
  if (!m) return undefined;
  return { bytes: Number(m[1]!.replace(/[^\d]/g, '')), percent: Math.min(100, Number(m[2])), rate: m[3]! };
}

const DISK_FULL = /No space left on device|ENOSPC|Disk quota exceeded|EDQUOT/i;
/** rsync exit codes that mean "could not talk to the daemon", worth another try. */
const NETWORK_EXITS = new Set([10, 12, 30, 35]);

const EXIT_MEANING: Record<number, string> = {
  1: 'syntax or usage error', 2: 'protocol incompatibility', 3: 'errors selecting input/output files', 5: 'error starting the client-server protocol',
  10: 'error in socket I/O', 11: 'error in file I/O', 12: 'error in the rsync protocol data stream', 20: 'interrupted', 23: 'partial transfer due to error',
  24: 'some source files vanished', 30: 'timeout in data send/receive', 35: 'timeout waiting for the daemon connection',
};

export interface RsyncOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  spawnError?: NodeJS.ErrnoException;
}

/** What went wrong, told apart by rsync's exit code and the client's or daemon's own words. */
interface Diagnosis {
  reason: string;
  matches: (outcome: RsyncOutcome) => RegExpExecArray | boolean | null;
  /** `at` is host:port of the daemon. */
  hint: (at: string, match: RegExpExecArray | boolean) => string;
}

const SETTINGS_HINT = 'FLASHPODS_RSYNC_HOST / FLASHPODS_RSYNC_PORT';

/** First match wins; the daemon's @ERROR lines come before the exit codes they share. */
const DIAGNOSES: Diagnosis[] = [
  {
    reason: 'unknown_module',
    matches: (o) => /@ERROR: Unknown module '([^']*)'/.exec(o.stderr),
    hint: (at) => `The rsync daemon at ${at} has no module "uploads": it is not Flashpods' upload daemon, or its config lacks the [uploads] module of scripts/rsyncd/rsyncd.conf.template; check ${SETTINGS_HINT}.`,
  },
  {
    reason: 'access_denied',
    matches: (o) => /@ERROR: access denied to \S+ from \S+ \(([^)]*)\)/.exec(o.stderr),
    hint: (at, m) => `The rsync daemon at ${at} refused this machine (it sees it as ${(m as RegExpExecArray)[1]}): that address must be in the uploads module's "hosts allow".`,
  },
  {
    reason: 'max_connections',
    matches: (o) => /@ERROR: max connections/.test(o.stderr),
    hint: (at) => `The rsync daemon at ${at} is at its connection limit (other uploads are running); try again shortly.`,
  },
  {
    reason: 'daemon_refused',
    matches: (o) => /@ERROR: (.*)/.exec(o.stderr),
    hint: (at, m) => `The rsync daemon at ${at} refused the upload: ${(m as RegExpExecArray)[1]}.`,
  },
  {
    reason: 'connection_refused',
    matches: (o) => /Connection refused/.test(o.stderr),
    hint: (at) => `Nothing accepts connections at ${at}: start the rsync daemon there (for a dev host, scripts/dev.sh starts one and prints the shim settings), or fix ${SETTINGS_HINT}.`,
  },
  {
    reason: 'host_not_found',
    matches: (o) => /getaddrinfo: .*(?:not known|Temporary failure in name resolution|No address)/.test(o.stderr),
    hint: (at) => `The host name of ${at} does not resolve; fix FLASHPODS_RSYNC_HOST (the host's WireGuard address, e.g. 10.0.0.1).`,
  },
  {
    reason: 'no_route',
    matches: (o) => /No route to host|Network is unreachable/.test(o.stderr),
    hint: (at) => `There is no route to ${at}: is WireGuard up (wg show)?`,
  },
  {
    reason: 'connect_timeout',
    matches: (o) => o.code === 35,
    hint: (at) => `${at} did not accept the connection in time: is WireGuard up (wg show) and the host reachable?`,
  },
  {
    reason: 'io_timeout',
    matches: (o) => o.code === 30,
    hint: (at) => `The connection to ${at} stalled (no data within rsync's --timeout): the network or the host stopped answering mid-upload; try again.`,
  },
];

/** The ToolFailure for a failed rsync run; `details.reason` names what went wrong when it is known. */
export function rsyncFailure(outcome: RsyncOutcome, target: string): ToolFailure {
  const detail = outcome.stderr.trim().split('\n').filter(Boolean).slice(-6).join('\n');
  if (outcome.spawnError) {
    const missing = outcome.spawnError.code === 'ENOENT';
    return new ToolFailure('upload_failed', missing
      ? 'rsync is not installed on this machine; install it (apt install rsync, brew install rsync) and try again.'
      : `rsync could not be started: ${outcome.spawnError.message}`);
  }
  if (DISK_FULL.test(outcome.stderr)) {
    return new ToolFailure('upload_disk_full', `The host ran out of disk space while receiving the upload (rsync: ${detail || 'No space left on device'}). Upload less (exclude build outputs) or ask the operator to free space.`, {
      rsync_exit_code: outcome.code,
    });
  }
  const why = outcome.code !== null ? `rsync exited with code ${outcome.code}${EXIT_MEANING[outcome.code] ? ` (${EXIT_MEANING[outcome.code]})` : ''}` : `rsync was killed by ${outcome.signal}`;
  const message = `Uploading to ${target} failed: ${why}.${detail ? `\n${detail}` : ''}`;
  const { hostname, port } = new URL(target);
  const at = `${hostname}:${port || 873}`;
  for (const diagnosis of DIAGNOSES) {
    const match = diagnosis.matches(outcome);
    if (match) return new ToolFailure('upload_failed', `${message}\n${diagnosis.hint(at, match)}`, { rsync_exit_code: outcome.code, reason: diagnosis.reason });
  }
  return new ToolFailure('upload_failed', message, { rsync_exit_code: outcome.code });
}

let versionCheck: Promise<boolean> | undefined;
/** rsync ≥ 3.1 understands --info=progress2 (macOS's old rsync 2.6.9 and openrsync do not). */
export function rsyncHasProgress2(): Promise<boolean> {
  versionCheck ??= promisify(execFile)('rsync', ['--version'], { timeout: 5000 }).then(
    ({ stdout }) => {
      const m = /version\s+v?(\d+)\.(\d+)/.exec(stdout);
      return m !== null && (Number(m[1]) > 3 || (Number(m[1]) === 3 && Number(m[2]) >= 1)) && !/openrsync/i.test(stdout);
    },
    () => false,
  );
  return versionCheck;
}

export interface RsyncRun {
  dir: string;
  target: string;
  excludes: string[];
  signal?: AbortSignal | undefined;
  onProgress?: ((p: RsyncProgress) => void) | undefined;
  /** rsync's --contimeout and --timeout; default 15 s to connect, 120 s without data. */
  timeoutsSec?: { connect: number; io: number };
}

/** Runs rsync once. */
export async function runRsync(run: RsyncRun): Promise<RsyncOutcome> {
  const progress2 = await rsyncHasProgress2();
  const args = [
    '-az', '--delete', `--contimeout=${run.timeoutsSec?.connect ?? 15}`, `--timeout=${run.timeoutsSec?.io ?? 120}`,
    ...(progress2 ? ['--info=progress2', '--no-inc-recursive'] : []),
    ...run.excludes.map((pattern) => `--exclude=${pattern}`),
    `${run.dir.replace(/\/+$/, '')}/`,
    run.target,
  ];
  return new Promise((resolvePromise) => {
    const child = spawn('rsync', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let stderr = '';
    let pending = '';
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      const records = pending.split(/[\r\n]/);
      pending = records.pop() ?? '';
      for (const record of records) {
        const p = parseProgress2(record);
        if (p) run.onProgress?.(p);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString('utf8')).slice(-16_384); });
    const onAbort = () => child.kill('SIGTERM');
    run.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (err: NodeJS.ErrnoException) => {
      run.signal?.removeEventListener('abort', onAbort);
      resolvePromise({ code: null, signal: null, stderr, spawnError: err });
    });
    child.on('close', (code, signal) => {
      run.signal?.removeEventListener('abort', onAbort);
      const last = parseProgress2(pending);
      if (last) run.onProgress?.(last);
      resolvePromise({ code, signal, stderr });
    });
  });
}

export interface UploadOptions {
  config: McpConfig;
  api: ApiClient;
  log: Log;
  cwd: string;
  signal?: AbortSignal | undefined;
  /** Upload progress, 0–100, with a human line. */
  onProgress?: ((percent: number, message: string) => void) | undefined;
  onRetry?: ((message: string) => void) | undefined;
}

/** Uploads `files.local_path` and finalizes it; the caller turns the id into a job. */
export async function uploadDirectory(files: FilesInput, options: UploadOptions): Promise<UploadResult> {
  const { config, api, log, signal } = options;
  const dir = await checkLocalDir(files.local_path, options.cwd);
  const excludes = [...new Set([...config.defaultExclude, ...(files.exclude ?? [])])];
  const uploadId = newUploadId();
  const host = config.rsyncHost.includes(':') && !config.rsyncHost.startsWith('[') ? `[${config.rsyncHost}]` : config.rsyncHost;
  const target = `rsync://${host}:${config.rsyncPort}/uploads/${uploadId}/`;
  const started = Date.now();
  log.info('upload starting', { upload_id: uploadId, dir, target, excludes });

  let attempts = 0;
  try {
    for (;;) {
      checkNotCancelled(signal);
      attempts++;
      const outcome = await runRsync({
        dir, target, excludes, signal,
        onProgress: (p) => options.onProgress?.(p.percent, `uploading ${dir}: ${formatBytes(p.bytes)} (${p.percent}%) at ${p.rate}`),
      });
      checkNotCancelled(signal);
      if (outcome.code === 0) break;
      const connectFailure = !outcome.spawnError && !DISK_FULL.test(outcome.stderr) &&
        ((outcome.code !== null && NETWORK_EXITS.has(outcome.code)) || /max connections|try again later/i.test(outcome.stderr));
      const failure = rsyncFailure(outcome, target);
      if (!connectFailure) throw failure;
      const decision = retryDecision({ kind: 'network', reason: `rsync exit ${outcome.code}` }, attempts, config.retry);
      log.warn('rsync failed', { upload_id: uploadId, exit_code: outcome.code, stderr: outcome.stderr.slice(-500), retry: decision.retry });
      if (!decision.retry) throw failure;
      options.onRetry?.(`rsync could not reach ${target}; attempt ${attempts + 1} in ${decision.delayMs} ms`);
      await sleep(decision.delayMs, signal);
    }
    const rsyncSeconds = (Date.now() - started) / 1000;
    options.onProgress?.(100, `uploaded ${dir}; finalizing ${uploadId}`);

    const finalized = await finalize(api, uploadId, signal, options.onRetry);
    log.info('upload finalized', { upload_id: uploadId, size_bytes: finalized.size_bytes, file_count: finalized.file_count, rsync_seconds: rsyncSeconds });
    return {
      upload_id: uploadId, local_path: dir, size_bytes: finalized.size_bytes, file_count: finalized.file_count,
      excluded: excludes, seconds: Math.round((Date.now() - started) / 100) / 10, rsync_attempts: attempts,
    };
  } catch (err) {
    await discardUpload(api, uploadId, log);
    throw err;
  }
}

interface FinalizeBody {
  upload_id: string;
  state: string;
  size_bytes: number;
  file_count: number;
}

async function finalize(api: ApiClient, uploadId: string, signal: AbortSignal | undefined, onRetry: UploadOptions['onRetry']): Promise<FinalizeBody> {
  let retried = false;
  try {
    const answer = await api.json<FinalizeBody>('POST', `/uploads/${uploadId}/finalize`, {
      signal, timeoutMs: 150_000,
      onRetry: (n) => {
        retried = true;
        onRetry?.(`finalize: ${n.why}; attempt ${n.attempts + 1} in ${n.delayMs} ms`);
      },
    });
    return answer.body;
  } catch (err) {
    // A retry after a lost answer finds the upload already finalized: that is success.
    if (retried && err instanceof ToolFailure && err.code === 'upload_already_finalized') {
      const status = await api.json<FinalizeBody>('GET', `/uploads/${uploadId}`, { signal });
      if (status.body.state === 'finalized') return status.body;
    }
    throw err;
  }
}

/** DELETE /uploads/{id}, once, without retries; the host's cleanup loop catches what this misses. */
export async function discardUpload(api: ApiClient, uploadId: string, log: Log): Promise<void> {
  try {
    await api.json('DELETE', `/uploads/${uploadId}`, { timeoutMs: 5000, noRetry: true });
    log.info('upload discarded', { upload_id: uploadId });
  } catch (err) {
    const code = err instanceof ToolFailure ? err.code : String(err);
    if (code !== 'upload_not_found') log.info('upload not discarded (the host cleans it up)', { upload_id: uploadId, why: code });
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}
