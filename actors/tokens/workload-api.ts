/**
 * @module tokens/workload-api
 * A client of the SPIFFE Workload API (the SPIRE agent's unix socket) on @grpc/grpc-js, with the
 * messages of our own workload.proto loaded by @grpc/proto-loader.
 *
 * - `fetchJWTSVID(socket, audience)` — unary FetchJWTSVID: the caller's JWT-SVIDs.
 * - `fetchJWTBundles(socket)` — the first message of the FetchJWTBundles stream.
 * - `JwtBundleWatcher` — keeps the latest JWT bundles of a FetchJWTBundles stream (the agent
 *   pushes a new message when keys rotate) and reconnects with backoff when the stream ends.
 *
 * Every call carries the `workload.spiffe.io: true` header (without it SPIRE answers
 * InvalidArgument "security header missing from request"); one-shot calls have a deadline.
 * A failed call rejects with a WorkloadApiError holding the gRPC status and SPIRE's message.
 * Used by the token actor; facts (field numbers, the header, error codes): shared/notes/spire.md.
 */
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Client, credentials, Metadata, status as GrpcStatus, type ChannelOptions, type ClientReadableStream, type StatusObject } from '@grpc/grpc-js';
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';

export { GrpcStatus };

export class WorkloadApiError extends Error {
  override name = 'WorkloadApiError';
  /** gRPC status code; UNAVAILABLE also for "cannot connect to the socket". */
  readonly code: GrpcStatus;
  /** The server's status message (e.g. "no identity issued"), or the transport error. */
  readonly detail: string;
  constructor(method: string, socketPath: string, code: GrpcStatus, detail: string) {
    super(`Workload API ${method} at ${socketPathOf(socketPath)}: ${GrpcStatus[code] ?? `status ${code}`}: ${detail}`);
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

/** workload.proto's messages as proto-loader decodes them (camelCase fields, bytes as Buffer). */
interface JwtSvidRequestMessage {
  audience: string[];
  spiffeId: string;
}
interface JwtSvidResponseMessage {
  svids: JwtSvid[];
}
interface JwtBundlesResponseMessage {
  bundles: Record<string, Buffer>;
}

const protoFile = fileURLToPath(new URL('./workload.proto', import.meta.url));
const service = loadSync(protoFile, { defaults: true }).SpiffeWorkloadAPI as unknown as {
  FetchJWTSVID: MethodDefinition<JwtSvidRequestMessage, JwtSvidResponseMessage>;
  FetchJWTBundles: MethodDefinition<object, JwtBundlesResponseMessage>;
};

const DEFAULT_TIMEOUT_MS = 10_000;

/** Accepts `/path/agent.sock` or `unix:///path/agent.sock` (SPIFFE_ENDPOINT_SOCKET style). */
export function socketPathOf(endpoint: string): string {
  if (endpoint.startsWith('unix://')) return endpoint.slice('unix://'.length);
  if (endpoint.startsWith('unix:')) return endpoint.slice('unix:'.length);
  return endpoint;
}

function openClient(socketPath: string, options: ChannelOptions = {}): Client {
  return new Client(`unix:${socketPathOf(socketPath)}`, credentials.createInsecure(), options);
}

function securityHeader(): Metadata {
  const metadata = new Metadata();
  metadata.set('workload.spiffe.io', 'true');
  return metadata;
}

// grpc-js ends its connection errors with an empty "Resolution note: " (nothing to resolve on a unix path).
const errorOf = (method: string, socketPath: string, s: Pick<StatusObject, 'code' | 'details'>) =>
  new WorkloadApiError(method, socketPath, s.code, s.details.replace(/\.? Resolution note: $/, '') || '(no message)');

/** How a FetchJWTBundles stream ended, as an error: it is meant never to end, so a clean end is UNAVAILABLE too. */
const streamEndError = (socketPath: string, s: StatusObject, cleanEnd: string) => (s.code === GrpcStatus.OK
  ? new WorkloadApiError('FetchJWTBundles', socketPath, GrpcStatus.UNAVAILABLE, cleanEnd)
  : errorOf('FetchJWTBundles', socketPath, s));

/** Parses a JWTBundlesResponse; a bundle that is not a JWKS object makes the message invalid. */
function bundlesOf(message: JwtBundlesResponseMessage): JwtBundles {
  const bundles: JwtBundles = new Map();
  for (const [trustDomain, value] of Object.entries(message.bundles)) {
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

/**
 * A FetchJWTBundles stream whose messages arrive as JwtBundles. A message that does not parse
 * ends the call with INTERNAL (grpc-js turns a throwing deserializer into that status).
 */
function bundleStream(client: Client, deadline?: number): ClientReadableStream<JwtBundles> {
  const method = service.FetchJWTBundles;
  const call = client.makeServerStreamRequest(method.path, method.requestSerialize, (buf: Buffer) => bundlesOf(method.responseDeserialize(buf)),
    {}, securityHeader(), deadline === undefined ? {} : { deadline });
  call.on('error', () => {}); // every ending is handled through 'status'
  return call;
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
  const method = service.FetchJWTSVID;
  const client = openClient(socketPath);
  try {
    return await new Promise<JwtSvid[]>((resolve, reject) => {
      client.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, { audience: audiences, spiffeId: options.spiffeId ?? '' },
        securityHeader(), { deadline: Date.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS) },
        (err, response) => (err ? reject(errorOf('FetchJWTSVID', socketPath, err)) : resolve(response!.svids.map(({ spiffeId, svid, hint }) => ({ spiffeId, svid, hint })))));
    });
  } finally {
    client.close();
  }
}

/** The first message of FetchJWTBundles: every JWT bundle the agent hands this caller. */
export async function fetchJWTBundles(socketPath: string, options: FetchOptions = {}): Promise<JwtBundles> {
  const client = openClient(socketPath);
  try {
    return await new Promise<JwtBundles>((resolve, reject) => {
      const call = bundleStream(client, Date.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS));
      call.once('data', (bundles: JwtBundles) => {
        resolve(bundles);
        call.cancel();
      });
      call.on('status', (s: StatusObject) => reject(streamEndError(socketPath, s, 'the stream ended before any bundle')));
    });
  } finally {
    client.close();
  }
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
  private readonly client: Client;
  private readonly retryMs: number;
  private readonly maxRetryMs: number;
  private readonly resubscribeTimer: NodeJS.Timeout | undefined;
  private readonly emitter = new EventEmitter();
  private call: ClientReadableStream<JwtBundles> | undefined;
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
    // The channel's own reconnect backoff (grpc-js default: up to 2 min) must not outlast ours,
    // or a re-subscription after an agent restart would fail fast until the channel retries.
    this.client = openClient(socketPath, { 'grpc.initial_reconnect_backoff_ms': this.retryMs, 'grpc.max_reconnect_backoff_ms': this.maxRetryMs });
    this.emitter.on('error', () => {}); // errors are reported to listeners, never thrown
    const every = options.resubscribeMs ?? 300_000;
    if (every > 0) {
      this.resubscribeTimer = setInterval(() => {
        if (this.call) this.resubscribe();
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
      if (this.call) this.resubscribe();
      else if (!this.timer) this.start();
    });
  }

  private resubscribe(): void {
    const old = this.call;
    this.connect();
    old?.cancel();
  }

  on<E extends keyof JwtBundleWatcherEvents>(event: E, listener: JwtBundleWatcherEvents[E]): () => void {
    this.emitter.on(event, listener);
    return () => this.emitter.off(event, listener);
  }

  start(): this {
    if (!this.call && !this.timer && !this.closed) this.connect();
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
    const call = this.call;
    this.call = undefined;
    call?.cancel();
    this.client.close();
  }

  private connect(): void {
    this.timer = undefined;
    if (this.closed) return;
    const call = bundleStream(this.client);
    this.call = call;
    call.on('data', (bundles: JwtBundles) => {
      if (this.call !== call) return; // a stream being replaced
      this.latest = bundles;
      this.updatedAt = Date.now();
      this.lastErrorValue = undefined;
      this.delay = this.retryMs;
      this.emitter.emit('update', bundles);
    });
    call.on('status', (s: StatusObject) => {
      if (this.call !== call) return;
      this.retry(streamEndError(this.socketPath, s, 'the stream ended'));
    });
  }

  private retry(err: Error): void {
    if (this.closed) return;
    this.call = undefined;
    this.lastErrorValue = err;
    this.emitter.emit('error', err);
    this.timer = setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, this.maxRetryMs);
  }
}
