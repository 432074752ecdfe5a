/**
 * @module actors/containers/log-sources
 * Where a job's output is read from, as batches of Docker log frames (stdout/stderr payloads in
 * arrival order). Measured on Podman 4.3 (notes in log-capture.ts):
 * - attach, made before the container starts: complete, ordered and live;
 * - logs `follow=true`: drops lines under heavy output and at exit, so it is not used;
 * - logs without follow, polled: complete; used when the container is already running.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';

export interface LogFrame {
  stream: 'stdout' | 'stderr';
  payload: Buffer;
}

const HEADER_BYTES = 8;
const STDERR = 2;
const SPACE = 0x20;

/** Splits a multiplexed stream (8-byte frame headers) into frames, one batch per chunk read. */
export async function* decodeFrames(stream: AsyncIterable<Buffer | string>): AsyncGenerator<LogFrame[]> {
  let pending = Buffer.alloc(0);
  for await (const chunk of stream) {
    let buf = Buffer.concat([pending, typeof chunk === 'string' ? Buffer.from(chunk) : chunk]);
    const batch: LogFrame[] = [];
    while (buf.length >= HEADER_BYTES) {
      const size = buf.readUInt32BE(4);
      if (buf.length < HEADER_BYTES + size) break;
      batch.push({ stream: buf[0] === STDERR ? 'stderr' : 'stdout', payload: buf.subarray(HEADER_BYTES, HEADER_BYTES + size) });
      buf = buf.subarray(HEADER_BYTES + size);
    }
    pending = Buffer.from(buf);
    if (batch.length) yield batch;
  }
}

/**
 * The output stream of a container that has not started yet; it ends when the container exits.
 * Only for `created` containers: Podman's compat attach re-initialises an exited container,
 * wiping its exit code, so attaching to one that may have exited is never safe.
 */
export async function attachOutput(docker: Docker, containerId: string): Promise<NodeJS.ReadWriteStream> {
  return await docker.getContainer(containerId).attach({ stream: true, stdout: true, stderr: true, hijack: true });
}

export interface PollOptions {
  /** Whole unix seconds: lines logged from this second on. */
  sinceSeconds: number;
  intervalMs: number;
  /** Checked between batches: true once nothing more is wanted (log truncated). */
  stop: () => boolean;
  signal?: AbortSignal;
}

/**
 * Reads the container's logs repeatedly until it has exited. Each read starts at the second of
 * the last line seen (the API's `since` and timestamps are whole seconds here) and skips the
 * lines of that second already delivered, so every line comes exactly once.
 */
export async function* pollLogFrames(docker: Docker, containerId: string, options: PollOptions): AsyncGenerator<LogFrame[]> {
  const container = docker.getContainer(containerId);
  let second = options.sinceSeconds;
  let seenInSecond = 0;
  for (;;) {
    const { State } = await container.inspect();
    const body = await logsSince(docker, containerId, second);
    const abort = (): void => { body.destroy(); };
    options.signal?.addEventListener('abort', abort, { once: true });
    let skip = seenInSecond;
    const skipSecond = second;
    try {
      for await (const frames of decodeFrames(body)) {
        const batch: LogFrame[] = [];
        for (const frame of frames) {
          const { at, payload } = splitTimestamp(frame.payload, second);
          if (at === skipSecond && skip > 0) { skip--; continue; }
          seenInSecond = at === second ? seenInSecond + 1 : 1;
          second = at;
          batch.push({ stream: frame.stream, payload });
        }
        if (batch.length) yield batch;
        if (options.stop()) return;
      }
    } finally {
      options.signal?.removeEventListener('abort', abort);
      body.destroy();
    }
    // A read that began after the container stopped has seen everything.
    if (!State.Running || options.signal?.aborted) return;
    await sleep(options.intervalMs, undefined, { signal: options.signal }).catch(() => {});
    if (options.signal?.aborted) return;
  }
}

/** `GET /containers/{id}/logs` without follow, as a stream (dockerode would buffer it whole). */
function logsSince(docker: Docker, containerId: string, sinceSeconds: number): Promise<NodeJS.ReadableStream & { destroy(): void }> {
  return new Promise((resolve, reject) => {
    docker.modem.dial(
      {
        path: `/containers/${encodeURIComponent(containerId)}/logs?`,
        method: 'GET',
        options: { stdout: true, stderr: true, follow: false, timestamps: true, since: sinceSeconds },
        isStream: true,
        statusCodes: { 200: true, 404: 'no such container', 500: 'server error' },
      },
      (err, stream) => (err ? reject(err) : resolve(stream as NodeJS.ReadableStream & { destroy(): void })),
    );
  });
}

/** `<timestamp> <text>` → the timestamp's whole unix second (else `fallback`) and the text. */
function splitTimestamp(payload: Buffer, fallback: number): { at: number; payload: Buffer } {
  const space = payload.indexOf(SPACE);
  const ms = Date.parse(payload.subarray(0, Math.max(space, 0)).toString('latin1'));
  return { at: Number.isNaN(ms) ? fallback : Math.floor(ms / 1000), payload: payload.subarray(space + 1) };
}
