/**
 * @module actors/containers/kubernetes-log
 * A job Pod's log (the `job` container's) from the API server's log stream with timestamps,
 * into the job's capped log file (storage.md "Logs": `[HH:MM:SS.mmm] <text>`, one truncation
 * marker), exactly once per line across restarts of Flashpods and cuts of the stream.
 *
 * How exactness is kept: every line of the stream carries the kubelet's RFC3339Nano time, which
 * never changes between two reads of the same line. The cursor is `{lastNs, seenAtLast}`: the
 * time of the last line written and how many lines with exactly that time were written. A
 * resume asks for `sinceTime` = lastNs rounded down to the second (the API server's resolution)
 * and drops every line before lastNs, and the first seenAtLast lines at lastNs. As in
 * job-log-writer.ts, the cursor lives in a small state file `{cursor, bytesWritten, truncated}`
 * rewritten in place after every append: on resume the log is cut back to bytesWritten, so a
 * crash between an append and its state repeats nothing. The stamps come from the kubelet, so
 * the lines written again are the same bytes. A line still without its newline when the stream
 * ends is written only once the container has exited (the kubelet then has all of it).
 *
 * The stream is read with node:https and the client's own credentials (KubeConfig
 * applyToHTTPSOptions): the client's Log class pipes the response without passing on its
 * errors, so a cut connection would look like a stream that never ends.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { get, type RequestOptions } from 'node:https';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { DEFAULT_LOG_CAP_BYTES, formatLogTime, truncationMarker, type LogCapture, type LogCaptureOptions, type LogCaptureResult } from './log-capture.ts';

export interface LogCursor {
  /** Nanoseconds since the epoch of the last line written, as a decimal string. */
  lastNs: string;
  /** How many lines with exactly that time were written. */
  seenAtLast: number;
}

interface CaptureState {
  cursor: LogCursor | null;
  bytesWritten: number;
  truncated: boolean;
}

export interface PodLogSource {
  kubeConfig: KubeConfig;
  namespace: string;
  pod: string;
  container: string;
  /** Whether the container has exited (the stream then ends for good); throws when the Pod is gone. */
  exited(): Promise<boolean>;
}

const STATE_BYTES = 512;
const LINE_OVERHEAD = 16;
const RETRY_MS = 500;

/** Beside Podman's capture states (paths.containerLogs); removed with the Pod. */
export function podLogStatePath(dir: string, jobId: string): string {
  return join(dir, `${jobId}.pod-capture.json`);
}

/** RFC3339 with 0–9 fraction digits → nanoseconds since the epoch. */
export function rfc3339Nanos(ts: string): bigint | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(ts);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (!Number.isFinite(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

/** Follows the Pod's log into `options.path` until the container has exited and every line is written. */
export async function capturePodLog(source: PodLogSource, statePath: string, options: LogCaptureOptions): Promise<LogCapture> {
  const writer = await PodLogWriter.open(options.path, statePath, options.capBytes ?? DEFAULT_LOG_CAP_BYTES, options.onLine);
  const truncatedBefore = writer.truncated || options.alreadyTruncated === true;
  const done = (async (): Promise<LogCaptureResult> => {
    try {
      if (!truncatedBefore) await follow(source, writer, options.signal);
      if (writer.truncated && !truncatedBefore) options.onTruncated?.();
      return { bytesWritten: writer.bytesWritten, truncated: writer.truncated };
    } finally {
      await writer.close();
    }
  })();
  return { done };
}

async function follow(source: PodLogSource, writer: PodLogWriter, signal: AbortSignal | undefined): Promise<void> {
  for (;;) {
    if (signal?.aborted) throw new Error('log capture stopped');
    // Asked before the read: an exited container's stream, read to its end, holds every line.
    const exitedBefore = await source.exited();
    const ended = await readOnce(source, writer, { follow: !exitedBefore, signal });
    if (writer.truncated) return;
    if (exitedBefore && ended.whole) {
      if (ended.partial) await writer.append([ended.partial]);
      return;
    }
    if (!ended.whole) await new Promise((r) => setTimeout(r, RETRY_MS));
  }
}

interface Line { ns: bigint; text: string }

/** One request of the log; `whole`: the server ended it (not a cut). Lines before the cursor are dropped. */
async function readOnce(source: PodLogSource, writer: PodLogWriter, { follow: following, signal }: { follow: boolean; signal: AbortSignal | undefined }): Promise<{ whole: boolean; partial?: Line }> {
  const cursor = writer.cursor;
  const url = new URL(`${source.kubeConfig.getCurrentCluster()!.server}/api/v1/namespaces/${source.namespace}/pods/${source.pod}/log`);
  url.searchParams.set('container', source.container);
  url.searchParams.set('timestamps', 'true');
  url.searchParams.set('follow', String(following));
  const lastNs = cursor ? BigInt(cursor.lastNs) : undefined;
  if (lastNs !== undefined) url.searchParams.set('sinceTime', new Date(Number(lastNs / 1_000_000_000n) * 1000).toISOString().replace(/\.\d+Z$/, 'Z'));
  const opts: RequestOptions = {};
  await source.kubeConfig.applyToHTTPSOptions(opts);
  let ties = 0;
  const keep = (line: Line): boolean => {
    if (lastNs === undefined || line.ns > lastNs) return true;
    return line.ns === lastNs && ++ties > cursor!.seenAtLast;
  };
  return new Promise((resolve, reject) => {
    let pending = Buffer.alloc(0);
    let chain = Promise.resolve();
    const req = get(url, { ...opts, ...(signal ? { signal } : {}) }, (res) => {
      if (res.statusCode !== 200 && res.statusCode! >= 500) {
        // The API server could not reach the kubelet (node down, restarting): tried again, like a cut.
        res.resume();
        res.on('end', () => chain.then(() => resolve({ whole: false }), reject));
        return;
      }
      if (res.statusCode !== 200) {
        let body = '';
        res.on('data', (c: Buffer) => { if (body.length < 4096) body += c.toString(); });
        res.on('end', () => reject(Object.assign(new Error(`the API server answered ${res.statusCode} to the log request of Pod ${source.pod}: ${body.trim().slice(0, 300)}`), { statusCode: res.statusCode })));
        return;
      }
      res.on('data', (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        const lines: Line[] = [];
        let nl: number;
        while ((nl = pending.indexOf(0x0a)) >= 0) {
          const line = parseLine(pending.subarray(0, nl).toString('utf8'));
          pending = pending.subarray(nl + 1);
          if (line && keep(line)) lines.push(line);
        }
        if (lines.length === 0) return;
        res.pause();
        chain = chain.then(() => writer.append(lines)).then(() => {
          if (writer.truncated) req.destroy();
          else res.resume();
        });
      });
      res.on('end', () => {
        const partial = pending.length > 0 ? parseLine(pending.toString('utf8')) : undefined;
        chain.then(() => resolve({ whole: true, ...(partial && keep(partial) ? { partial } : {}) }), reject);
      });
      res.on('error', () => chain.then(() => resolve({ whole: false }), reject));
      res.on('aborted', () => chain.then(() => resolve({ whole: false }), reject));
    });
    req.on('error', (err) => {
      if (signal?.aborted) return reject(new Error('log capture stopped'));
      if (writer.truncated) return chain.then(() => resolve({ whole: true }), reject);
      // A connection that failed is retried by the caller; a request the server refused (4xx) is not.
      chain.then(() => resolve({ whole: false }), reject);
      void err;
    });
  });
}

function parseLine(raw: string): Line | undefined {
  const sp = raw.indexOf(' ');
  const ns = sp > 0 ? rfc3339Nanos(raw.slice(0, sp)) : undefined;
  return ns === undefined ? undefined : { ns, text: raw.slice(sp + 1) };
}

/** The log file and its state (see the module note). */
class PodLogWriter {
  private constructor(
    private readonly file: FileHandle,
    private readonly stateFile: FileHandle,
    private readonly cap: number,
    private readonly onLine: ((line: string) => void) | undefined,
    private state: CaptureState,
  ) {}

  static async open(logPath: string, statePath: string, cap: number, onLine?: (line: string) => void): Promise<PodLogWriter> {
    const stateFile = await open(statePath, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    let file: FileHandle | undefined;
    try {
      const raw = (await stateFile.readFile('utf8')).trim();
      const saved = raw === '' ? undefined : (JSON.parse(raw) as CaptureState);
      file = await open(logPath, constants.O_RDWR | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW, 0o644);
      const size = (await file.stat()).size;
      if (saved && size > saved.bytesWritten) await file.truncate(saved.bytesWritten);
      const writer = new PodLogWriter(file, stateFile, cap, onLine, saved ? { ...saved, bytesWritten: Math.min(size, saved.bytesWritten) } : { cursor: null, bytesWritten: size, truncated: false });
      if (!saved) await writer.save();
      return writer;
    } catch (err) {
      await file?.close();
      await stateFile.close();
      throw err;
    }
  }

  get cursor(): LogCursor | null {
    return this.state.cursor;
  }

  get truncated(): boolean {
    return this.state.truncated;
  }

  get bytesWritten(): number {
    return this.state.bytesWritten;
  }

  /** The lines in one write, then the state that includes them; the first that does not fit becomes the marker. */
  async append(lines: readonly Line[]): Promise<void> {
    if (this.state.truncated || lines.length === 0) return;
    const out: string[] = [];
    let bytes = this.state.bytesWritten;
    let cursor = this.state.cursor;
    let truncated = false;
    for (const line of lines) {
      const at = new Date(Number(line.ns / 1_000_000n));
      const text = `[${formatLogTime(at)}] ${line.text}`;
      const size = Buffer.byteLength(text) + 1;
      if (bytes + size > this.cap || size - 1 > this.cap - LINE_OVERHEAD) {
        out.push(truncationMarker(at, this.cap));
        truncated = true;
        break;
      }
      out.push(text);
      bytes += size;
      const ns = line.ns.toString();
      cursor = cursor?.lastNs === ns ? { lastNs: ns, seenAtLast: cursor.seenAtLast + 1 } : { lastNs: ns, seenAtLast: 1 };
    }
    const data = Buffer.from(`${out.join('\n')}\n`);
    let done = 0;
    while (done < data.length) done += (await this.file.write(data, done, data.length - done)).bytesWritten;
    this.state = { cursor, bytesWritten: this.state.bytesWritten + data.length, truncated };
    for (const line of out) this.onLine?.(line);
    await this.save();
  }

  async close(): Promise<void> {
    await this.file.close();
    await this.stateFile.close();
  }

  /** One write at offset 0, within a page: after a SIGKILL the file holds the old state or the new one. */
  private async save(): Promise<void> {
    const record = Buffer.alloc(STATE_BYTES, ' ');
    record.write(JSON.stringify(this.state));
    record[STATE_BYTES - 1] = 0x0a;
    await this.stateFile.write(record, 0, STATE_BYTES, 0);
  }
}
