/**
 * @module actors/containers/log-capture
 * Job log files (spec/storage.md "Logs"): a container's stdout and stderr in arrival order,
 * written line by line as `[HH:MM:SS.mmm] <text>` (UTC, stamped at capture), capped in bytes
 * with a single truncation marker, resumable after a runtime restart. Also reads the last N
 * lines of a log without reading the whole file.
 *
 * This is the fallback source (podman-executor.ts): jobs are captured from conmon's file
 * (conmon-capture.ts) wherever it can be read. Here, a fresh job is captured through attach, set
 * up before its container starts: complete and live. A container found already
 * started (runtime restart) is captured by polling the logs API from shortly before the file's
 * last write (RESUME_OVERLAP_MS): Podman 4.3's `follow` stream was measured dropping thousands of
 * lines under heavy output and losing the tail at exit, and attaching to a running container
 * risks Podman re-initialising it (wiping its exit code) if it exits at that moment.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import type Docker from 'dockerode';
import { attachOutput, decodeFrames, pollLogFrames, type LogFrame } from './log-sources.ts';

export const DEFAULT_LOG_CAP_BYTES = 50 * 1024 * 1024;

/**
 * On resume, logs are re-read from this long before the file's last write (rounded down to the
 * second, the API's resolution). A line in flight, or a partial line still buffered, when the
 * runtime died was logged by Podman before that write; the overlap re-captures it at the cost of
 * repeating the lines of the last one to two seconds. Never losing a line is preferred to never
 * repeating one.
 */
export const RESUME_OVERLAP_MS = 1000;
const RESUME_POLL_MS = 500;

export interface LogCaptureOptions {
  /** The job's log file; appended to (and counted toward the cap) when it already exists. */
  path: string;
  capBytes?: number;
  /** The caller created the container and has not started it: attach without asking Podman first. */
  justCreated?: boolean;
  /** Called with every line written to the file (without its newline), the marker included. */
  onLine?: (line: string) => void;
  /**
   * Called once when capture stops at the cap (the marker written), or finds the log already
   * truncated. Only the writer knows it truncated: a job printing the marker's text does not.
   */
  onTruncated?: () => void;
  /**
   * On resume: whether the job's log was already truncated, as its record says. Given, it is
   * trusted over the file's last line (which a job can print itself); not given, that line decides.
   */
  alreadyTruncated?: boolean;
  /** Told why output was lost for good (the source dropped it while nobody read it). */
  onGap?: (why: string) => void;
  /**
   * Stops capture early (e.g. runtime shutdown) without writing buffered partial lines; a later
   * resume re-reads them.
   */
  signal?: AbortSignal;
}

export interface LogCaptureResult {
  /** Size of the log file when capture ended, bytes from before a resume included. */
  bytesWritten: number;
  truncated: boolean;
}

export interface LogCapture {
  /** Settles once the container has exited and its output is written (or the log is truncated). */
  done: Promise<LogCaptureResult>;
}

export interface LogTail {
  /** The last lines of the file, verbatim (each with its newline). */
  output: string;
  lines: number;
  totalBytes: number;
}

const NEWLINE = 0x0a;
const MARKER_PATTERN = /^\[\d\d:\d\d:\d\d\.\d{3}\] \[TRUNCATED - log exceeded [\d.]+ MB limit\]\n?$/;

/** `HH:MM:SS.mmm` in UTC. */
export function formatLogTime(at: Date): string {
  return at.toISOString().slice(11, 23);
}

export function truncationMarker(at: Date, capBytes: number): string {
  const mb = Number((capBytes / (1024 * 1024)).toFixed(2));
  return `[${formatLogTime(at)}] [TRUNCATED - log exceeded ${mb} MB limit]`;
}

/**
 * Sets up capture and resolves once it is in place. A `created` container is attached to, and
 * the caller starts it afterwards; a started one (resume) is polled. A file already ending with
 * the truncation marker is left as it is.
 */
export async function startLogCapture(docker: Docker, containerId: string, options: LogCaptureOptions): Promise<LogCapture> {
  const existing = await stat(options.path).catch(() => undefined);
  if (existing && existing.size > 0 && (await wasTruncated(options))) {
    options.onTruncated?.();
    return { done: Promise.resolve({ bytesWritten: existing.size, truncated: true }) };
  }
  const created = options.justCreated || (await docker.getContainer(containerId).inspect()).State.Status === 'created';
  if (created) {
    const stream = await attachOutput(docker, containerId);
    return { done: captureLogStream(stream, options) };
  }
  const sinceSeconds = existing ? Math.floor((existing.mtimeMs - RESUME_OVERLAP_MS) / 1000) : 0;
  return {
    done: capture(options, (writer) => pollLogFrames(docker, containerId, {
      sinceSeconds,
      intervalMs: RESUME_POLL_MS,
      stop: () => writer.truncated,
      signal: options.signal,
    })),
  };
}

/** startLogCapture, awaited to the end: for a container that is already running or exited. */
export async function captureContainerLogs(docker: Docker, containerId: string, options: LogCaptureOptions): Promise<LogCaptureResult> {
  return await (await startLogCapture(docker, containerId, options)).done;
}

/**
 * Writes a Docker multiplexed stream (8-byte frame headers) to the log file until it ends. Past
 * the cap the stream is still read to its end, so the container is never held up by it.
 */
export async function captureLogStream(
  stream: AsyncIterable<Buffer | string> | NodeJS.ReadableStream,
  options: LogCaptureOptions,
): Promise<LogCaptureResult> {
  const abort = (): void => { (stream as { destroy?: () => void }).destroy?.(); };
  options.signal?.addEventListener('abort', abort, { once: true });
  try {
    return await capture(options, () => decodeFrames(stream as AsyncIterable<Buffer | string>));
  } finally {
    options.signal?.removeEventListener('abort', abort);
  }
}

/** The last `n` lines of a log file, read backwards in chunks. A missing file reads as empty. */
export async function readLogTail(path: string, n: number, chunkBytes = 64 * 1024): Promise<LogTail> {
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { output: '', lines: 0, totalBytes: 0 };
    throw err;
  }
  try {
    const totalBytes = (await file.stat()).size;
    if (n <= 0 || totalBytes === 0) return { output: '', lines: 0, totalBytes };
    const chunks: Buffer[] = [];
    let end = totalBytes;
    let newlines = 0;
    let start = 0;
    // A final newline ends the last line; it does not start another one.
    let skipFinal = true;
    scan: while (end > 0) {
      const begin = Math.max(0, end - chunkBytes);
      const chunk = Buffer.alloc(end - begin);
      await file.read(chunk, 0, chunk.length, begin);
      chunks.unshift(chunk);
      for (let i = chunk.length - 1; i >= 0; i--) {
        if (chunk[i] !== NEWLINE) { skipFinal = false; continue; }
        if (skipFinal) { skipFinal = false; continue; }
        if (++newlines === n) { start = begin + i + 1; break scan; }
      }
      end = begin;
    }
    const buffered = Buffer.concat(chunks);
    const output = buffered.subarray(start - (totalBytes - buffered.length)).toString('utf8');
    return { output, lines: Math.min(n, newlines + 1), totalBytes };
  } finally {
    await file.close();
  }
}

async function endsWithMarker(path: string): Promise<boolean> {
  return MARKER_PATTERN.test((await readLogTail(path, 1)).output);
}

async function wasTruncated(options: LogCaptureOptions): Promise<boolean> {
  return options.alreadyTruncated ?? (await endsWithMarker(options.path));
}

async function capture(
  options: LogCaptureOptions,
  source: (writer: LogWriter) => AsyncIterable<LogFrame[]>,
): Promise<LogCaptureResult> {
  const { signal } = options;
  const file = await open(options.path, 'a+');
  try {
    const writer = await LogWriter.open(file, options);
    try {
      for await (const frames of source(writer)) {
        if (signal?.aborted) break;
        if (writer.truncated) continue;
        const at = new Date();
        for (const frame of frames) writer.add(frame, at);
        await writer.flush();
      }
    } catch (err) {
      if (!signal?.aborted) throw err;
    }
    if (!signal?.aborted) writer.end(new Date());
    await writer.flush();
    return { bytesWritten: writer.bytes, truncated: writer.truncated };
  } finally {
    await file.close();
  }
}

/**
 * Turns frame payloads into stamped lines, batched into one write per batch of frames. Each
 * stream keeps its own partial line so stdout and stderr never splice into one line.
 */
class LogWriter {
  truncated = false;
  private readonly partial = new Map<LogFrame['stream'], Buffer>();
  private batch: string[] = [];

  private constructor(
    private readonly file: FileHandle,
    private readonly cap: number,
    private readonly onLine: ((line: string) => void) | undefined,
    private readonly onTruncated: (() => void) | undefined,
    public bytes: number,
  ) {}

  static async open(file: FileHandle, options: LogCaptureOptions): Promise<LogWriter> {
    const cap = options.capBytes ?? DEFAULT_LOG_CAP_BYTES;
    const size = (await file.stat()).size;
    const writer = new LogWriter(file, cap, options.onLine, options.onTruncated, size);
    if (size > 0) {
      const last = Buffer.alloc(1);
      await file.read(last, 0, 1, size - 1);
      // A line cut short by a crash mid-write is closed so the next one starts cleanly.
      if (last[0] !== NEWLINE) writer.write('\n');
      if (await wasTruncated(options)) {
        writer.truncated = true;
        writer.onTruncated?.();
      } else if (size >= cap) writer.truncate(new Date());
    }
    return writer;
  }

  add(frame: LogFrame, at: Date): void {
    const prior = this.partial.get(frame.stream);
    let buf = prior ? Buffer.concat([prior, frame.payload]) : frame.payload;
    let nl: number;
    while (!this.truncated && (nl = buf.indexOf(NEWLINE)) >= 0) {
      this.line(buf.subarray(0, nl), at);
      buf = buf.subarray(nl + 1);
    }
    if (this.truncated) return;
    // A partial line that can no longer fit under the cap will never be written: truncate now
    // rather than buffer an endless line.
    if (buf.length > this.cap - this.bytes) this.truncate(at);
    else this.partial.set(frame.stream, Buffer.from(buf));
  }

  /** Writes out partial lines left when the output ends. */
  end(at: Date): void {
    for (const buf of this.partial.values()) {
      if (!this.truncated && buf.length > 0) this.line(buf, at);
    }
    this.partial.clear();
  }

  async flush(): Promise<void> {
    if (this.batch.length === 0) return;
    const data = this.batch.join('');
    this.batch = [];
    await this.file.write(data);
  }

  private line(text: Buffer, at: Date): void {
    const line = `[${formatLogTime(at)}] ${text.toString('utf8')}`;
    const size = Buffer.byteLength(line) + 1;
    if (this.bytes + size > this.cap) return this.truncate(at);
    this.write(`${line}\n`);
    this.onLine?.(line);
  }

  private truncate(at: Date): void {
    const marker = truncationMarker(at, this.cap);
    this.write(`${marker}\n`);
    this.truncated = true;
    this.partial.clear();
    this.onLine?.(marker);
    this.onTruncated?.();
  }

  private write(data: string): void {
    this.batch.push(data);
    this.bytes += Buffer.byteLength(data);
  }
}
