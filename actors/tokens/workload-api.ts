/**
 * @module tokens/workload-api
 * A small client of the SPIFFE Workload API (the SPIRE agent's unix socket): gRPC over HTTP/2
 * with node:http2 and hand-written protobuf codecs, so it needs no gRPC dependency.
 *
 * - `fetchJWTSVID(socket, audience)` — unary FetchJWTSVID: the caller's JWT-SVIDs.
 * - `fetchJWTBundles(socket)` — the first message of the FetchJWTBundles stream.
 * - `JwtBundleWatcher` — keeps the latest JWT bundles of a FetchJWTBundles stream (the agent
 *   pushes a new message when keys rotate) and reconnects with backoff when the stream ends.
 *
 * Used by the token actor, `flashpods validate` and Workload API clients of the agent image.
 * Facts (field numbers, the security header, error codes): shared/notes/spire.md.
 */
import { connect as connectHttp2, constants as h2, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { connect as connectNet } from 'node:net';
import { EventEmitter } from 'node:events';
import { bytesField, bytesOf, readFields, stringOf } from './protobuf.ts';

/** gRPC status codes the Workload API answers with (subset). */
export const GrpcStatus = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, INTERNAL: 13, UNAVAILABLE: 14,
} as const;
const STATUS_NAMES = Object.fromEntries(Object.entries(GrpcStatus).map(([k, v]) => [v, k])) as Record<number, string>;

export class WorkloadApiError extends Error {
  override name = 'WorkloadApiError';
  /** gRPC status code; UNAVAILABLE also for "cannot connect to the socket". */
  readonly code: number;
  /** The server's grpc-message (e.g. "no identity issued"), or the transport error. */
  readonly detail: string;
  constructor(method: string, code: number, detail: string) {
    super(`Workload API ${method}: ${STATUS_NAMES[code] ?? `status ${code}`}: ${detail}`);
    this.code = code;
    this.detail = detail;
  }
}

export interface JwtSvid {
  spiffeId: string;
  /** The compact JWS. A bearer credential: never log it. */
  svid: string;
  hint: string;
}

/** A JSON Web Key as the Workload API serves it (no `use` field; look keys up by `kid`). */
export interface Jwk {
  kty: string;
  kid?: string;
  [member: string]: unknown;
}
export interface Jwks {
  keys: Jwk[];
}
/** Trust-domain ID (`spiffe://flashpods.local`) → that domain's JWT bundle. */
export type JwtBundles = Map<string, Jwks>;

const SERVICE = 'SpiffeWorkloadAPI';
const DEFAULT_TIMEOUT_MS = 10_000;

/** Accepts `/path/agent.sock` or `unix:///path/agent.sock` (SPIFFE_ENDPOINT_SOCKET style). */
export function socketPathOf(endpoint: string): string {
  if (endpoint.startsWith('unix://')) return endpoint.slice('unix://'.length);
  if (endpoint.startsWith('unix:')) return endpoint.slice('unix:'.length);
  return endpoint;
}

function openSession(socketPath: string): ClientHttp2Session {
  const path = socketPathOf(socketPath);
  // h2c with prior knowledge over the unix socket, which is what gRPC servers speak there.
  return connectHttp2('http://localhost', { createConnection: () => connectNet(path) });
}

function frame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(0, 0); // not compressed
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

function decodeGrpcMessage(raw: unknown): string {
  if (typeof raw !== 'string') return '';
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

interface CallHandle {
  /** Settles when the call ends: resolves on status OK, rejects with WorkloadApiError otherwise. */
  done: Promise<void>;
  cancel(): void;
}

/**
 * One gRPC call (unary or server-streaming) on its own HTTP/2 session. `onMessage` gets each
 * response message; the session is closed when the call ends or is cancelled.
 */
function call(socketPath: string, method: string, request: Buffer, onMessage: (msg: Buffer) => void, timeoutMs?: number): CallHandle {
  let session: ClientHttp2Session | undefined;
  let stream: ClientHttp2Stream | undefined;
  let settled = false;
  let cancelled = false;
  let resolveDone!: () => void;
  let rejectDone!: (err: Error) => void;
  const done = new Promise<void>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  let timer: NodeJS.Timeout | undefined;

  const finish = (err?: WorkloadApiError): void => {
    if (settled) return;
    settled = true;
    if (timer) clearTimeout(timer);
    if (stream && !stream.closed) stream.close(h2.NGHTTP2_CANCEL);
    session?.close();
    session?.destroy();
    if (err) rejectDone(err);
    else resolveDone();
  };
  const fail = (code: number, detail: string): void => finish(new WorkloadApiError(method, code, detail));

  if (timeoutMs !== undefined) timer = setTimeout(() => fail(GrpcStatus.DEADLINE_EXCEEDED, `no answer within ${timeoutMs} ms`), timeoutMs);

  session = openSession(socketPath);
  session.on('error', (err: NodeJS.ErrnoException) => {
    const where = `cannot talk to the SPIRE agent at ${socketPathOf(socketPath)}`;
    fail(GrpcStatus.UNAVAILABLE, `${where}: ${err.code ?? ''} ${err.message}`.trim());
  });
  stream = session.request({
    [h2.HTTP2_HEADER_METHOD]: 'POST',
    [h2.HTTP2_HEADER_PATH]: `/${SERVICE}/${method}`,
    [h2.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
    te: 'trailers',
    // Without it SPIRE answers InvalidArgument "security header missing from request".
    'workload.spiffe.io': 'true',
  });
  let buffered: Buffer = Buffer.alloc(0);
  let status: { code: number; message: string } | undefined;
  const takeStatus = (headers: Record<string, unknown>): void => {
    const raw = headers['grpc-status'];
    if (raw === undefined) return;
    status = { code: Number(raw), message: decodeGrpcMessage(headers['grpc-message']) };
  };
  stream.on('response', (headers) => {
    const httpStatus = Number(headers[h2.HTTP2_HEADER_STATUS]);
    if (httpStatus !== 200) fail(GrpcStatus.UNKNOWN, `HTTP status ${httpStatus}`);
    takeStatus(headers); // trailers-only responses carry the status here
  });
  stream.on('trailers', (headers) => takeStatus(headers));
  stream.on('data', (chunk: Buffer) => {
    buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
    while (buffered.length >= 5) {
      const compressed = buffered.readUInt8(0);
      const length = buffered.readUInt32BE(1);
      if (buffered.length < 5 + length) break;
      const message = buffered.subarray(5, 5 + length);
      buffered = buffered.subarray(5 + length);
      if (compressed) return fail(GrpcStatus.INTERNAL, 'compressed message (none was negotiated)');
      try {
        onMessage(message);
      } catch (err) {
        return fail(GrpcStatus.INTERNAL, `cannot decode the response: ${(err as Error).message}`);
      }
    }
  });
  stream.on('error', (err) => fail(GrpcStatus.UNAVAILABLE, err.message));
  stream.on('close', () => {
    if (cancelled) return finish();
    if (!status) return fail(GrpcStatus.UNAVAILABLE, 'the stream closed without a gRPC status');
    if (status.code !== GrpcStatus.OK) return fail(status.code, status.message || '(no message)');
    finish();
  });
  stream.end(frame(request));

  return {
    done,
    cancel() {
      cancelled = true;
      finish();
    },
  };
}

function decodeJwtSvidResponse(message: Buffer): JwtSvid[] {
  return bytesOf(readFields(message), 1).map((svid) => {
    const f = readFields(svid);
    return { spiffeId: stringOf(f, 1), svid: stringOf(f, 2), hint: stringOf(f, 3) };
  });
}

/** Parses a JWTBundlesResponse; a bundle that is not a JWKS object makes the message invalid. */
export function decodeJwtBundlesResponse(message: Buffer): JwtBundles {
  const bundles: JwtBundles = new Map();
  for (const entry of bytesOf(readFields(message), 1)) {
    const f = readFields(entry);
    const trustDomain = stringOf(f, 1);
    const value = bytesOf(f, 2).at(-1) ?? Buffer.alloc(0);
    let parsed: unknown;
    try {
      parsed = JSON.parse(value.toString('utf8'));
    } catch {
      throw new Error(`the JWT bundle of ${trustDomain} is not JSON`);
    }
    const keys = (parsed as { keys?: unknown } | null)?.keys ?? [];
    if (!Array.isArray(keys)) throw new Error(`the JWT bundle of ${trustDomain} has no "keys" array`);
    bundles.set(trustDomain, { keys: keys.filter((k): k is Jwk => !!k && typeof k === 'object' && typeof (k as Jwk).kty === 'string') });
  }
  return bundles;
}

export interface FetchOptions {
  /** Default 10 s. */
  timeoutMs?: number;
}

/**
 * FetchJWTSVID for `audience`: the caller's JWT-SVIDs (one per matching registration entry, or
 * the one of `spiffeId`). PermissionDenied "no identity issued" when no entry matches the caller.
 */
export async function fetchJWTSVID(socketPath: string, audience: string | string[], options: FetchOptions & { spiffeId?: string } = {}): Promise<JwtSvid[]> {
  const audiences = Array.isArray(audience) ? audience : [audience];
  if (audiences.length === 0) throw new Error('fetchJWTSVID: at least one audience is required');
  const request = Buffer.concat([...audiences.map((a) => bytesField(1, a)), ...(options.spiffeId ? [bytesField(2, options.spiffeId)] : [])]);
  let svids: JwtSvid[] = [];
  await call(socketPath, 'FetchJWTSVID', request, (msg) => (svids = decodeJwtSvidResponse(msg)), options.timeoutMs ?? DEFAULT_TIMEOUT_MS).done;
  return svids;
}

/** The first message of FetchJWTBundles: every JWT bundle the agent hands this caller. */
export async function fetchJWTBundles(socketPath: string, options: FetchOptions = {}): Promise<JwtBundles> {
  let handle: CallHandle | undefined;
  const first = new Promise<JwtBundles>((resolve, reject) => {
    handle = call(socketPath, 'FetchJWTBundles', Buffer.alloc(0), (msg) => {
      resolve(decodeJwtBundlesResponse(msg));
      handle?.cancel();
    }, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    handle.done.then(() => reject(new WorkloadApiError('FetchJWTBundles', GrpcStatus.UNAVAILABLE, 'the stream ended before any bundle')), reject);
  });
  return first;
}

export interface JwtBundleWatcherOptions {
  /** First reconnect delay after the stream ends or fails (doubles up to maxRetryMs). */
  retryMs?: number;
  maxRetryMs?: number;
  /**
   * Re-subscribe this often even when the stream is healthy (0 = never; default 5 min). A
   * fallback: SPIRE 1.15 pushes bundle changes only to callers that have selectors (see
   * scripts/spire/agent.conf, the `unix` attestor), so a caller without any would otherwise
   * keep its first bundle forever.
   */
  resubscribeMs?: number;
}

export interface JwtBundleWatcherEvents {
  update: (bundles: JwtBundles) => void;
  /** A failed or ended stream; the watcher reconnects by itself. */
  error: (err: Error) => void;
}

/**
 * Follows the FetchJWTBundles stream: keeps the latest bundles, replaces them on every push,
 * reconnects (with backoff) when the agent restarts or the stream fails. The last good bundles
 * stay in force while disconnected.
 */
export class JwtBundleWatcher {
  private readonly socketPath: string;
  private readonly retryMs: number;
  private readonly maxRetryMs: number;
  private readonly resubscribeTimer: NodeJS.Timeout | undefined;
  private readonly emitter = new EventEmitter();
  private handle: CallHandle | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private delay: number;
  private latest: JwtBundles | undefined;
  private updatedAt: number | undefined;
  private lastErrorValue: Error | undefined;

  constructor(socketPath: string, options: JwtBundleWatcherOptions = {}) {
    this.socketPath = socketPath;
    this.retryMs = options.retryMs ?? 250;
    this.maxRetryMs = options.maxRetryMs ?? 5_000;
    this.delay = this.retryMs;
    this.emitter.on('error', () => {}); // errors are reported to listeners, never thrown
    const every = options.resubscribeMs ?? 300_000;
    if (every > 0) {
      this.resubscribeTimer = setInterval(() => {
        if (this.handle) this.resubscribe();
      }, every);
      this.resubscribeTimer.unref();
    }
  }

  /**
   * Opens a fresh stream now (its first message is a full snapshot) and resolves with the next
   * bundles, or with the current ones after timeoutMs. The old stream is dropped once the new
   * one is asked for; the last bundles stay in force meanwhile.
   */
  refresh(timeoutMs: number): Promise<JwtBundles | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        off();
        resolve(this.latest);
      }, timeoutMs);
      const off = this.on('update', (b) => {
        clearTimeout(timer);
        off();
        resolve(b);
      });
      if (this.handle) this.resubscribe();
      else if (!this.timer) this.start();
    });
  }

  private resubscribe(): void {
    const old = this.handle;
    this.connect();
    old?.cancel();
  }

  on<E extends keyof JwtBundleWatcherEvents>(event: E, listener: JwtBundleWatcherEvents[E]): () => void {
    this.emitter.on(event, listener);
    return () => this.emitter.off(event, listener);
  }

  start(): this {
    if (!this.handle && !this.timer && !this.closed) this.connect();
    return this;
  }

  /** The latest bundles, or undefined before the first message. */
  get bundles(): JwtBundles | undefined {
    return this.latest;
  }

  /** When the latest bundles arrived (ms since epoch). */
  get lastUpdate(): number | undefined {
    return this.updatedAt;
  }

  get lastError(): Error | undefined {
    return this.lastErrorValue;
  }

  bundle(trustDomainId: string): Jwks | undefined {
    return this.latest?.get(trustDomainId);
  }

  /** Resolves with the first bundles (at once if already there); rejects after timeoutMs. */
  ready(timeoutMs: number, predicate: (b: JwtBundles) => boolean = () => true): Promise<JwtBundles> {
    this.start();
    if (this.latest && predicate(this.latest)) return Promise.resolve(this.latest);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        const why = this.lastErrorValue?.message ?? (this.latest ? 'the bundles received do not include the one needed' : 'no answer');
        reject(new Error(`no JWT bundle from the SPIRE agent at ${socketPathOf(this.socketPath)} within ${timeoutMs} ms: ${why}`));
      }, timeoutMs);
      const off = this.on('update', (b) => {
        if (!predicate(b)) return;
        clearTimeout(timer);
        off();
        resolve(b);
      });
    });
  }

  close(): void {
    this.closed = true;
    if (this.resubscribeTimer) clearInterval(this.resubscribeTimer);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.handle?.cancel();
    this.handle = undefined;
  }

  private connect(): void {
    this.timer = undefined;
    if (this.closed) return;
    const handle: CallHandle = call(this.socketPath, 'FetchJWTBundles', Buffer.alloc(0), (msg) => {
      if (this.handle !== handle) return; // a stream being replaced
      const bundles = decodeJwtBundlesResponse(msg);
      this.latest = bundles;
      this.updatedAt = Date.now();
      this.lastErrorValue = undefined;
      this.delay = this.retryMs;
      this.emitter.emit('update', bundles);
    });
    this.handle = handle;
    handle.done.then(
      () => this.handle === handle && this.retry(new WorkloadApiError('FetchJWTBundles', GrpcStatus.UNAVAILABLE, 'the stream ended')),
      (err: Error) => this.handle === handle && this.retry(err),
    );
  }

  private retry(err: Error): void {
    if (this.closed) return;
    this.handle = undefined;
    this.lastErrorValue = err;
    this.emitter.emit('error', err);
    this.timer = setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, this.maxRetryMs);
  }
}
