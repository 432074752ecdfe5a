/**
 * @module mcp/api-client
 * The Flashpods HTTP API as the shim sees it: bearer auth, JSON in and out, and the retry table
 * of spec/mcp.md (mcp/retry.ts) applied to every request. A request's body is built once by the
 * caller, so every retry of a POST /jobs carries the same client_job_id. Whatever cannot be
 * answered ends as a ToolFailure carrying the API's own error code.
 */
import { randomUUID } from 'node:crypto';
import { apiBaseUrl, type McpConfig } from './config.ts';
import { ToolFailure } from './errors.ts';
import { silentLog, type Log } from './log.ts';
import { retryDecision, type Failure } from './retry.ts';

export const USER_AGENT = 'flashpods-mcp/0.1.0';

export interface RetryNotice {
  /** Attempts made so far. */
  attempts: number;
  delayMs: number;
  why: string;
}

export interface CallOptions {
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  /** Per-attempt timeout; defaults to the configured request timeout. */
  timeoutMs?: number;
  /** The tool call's signal: aborting it stops the request and any wait between retries. */
  signal?: AbortSignal | undefined;
  onRetry?: ((notice: RetryNotice) => void) | undefined;
  /** One attempt only (best-effort clean-up calls). */
  noRetry?: boolean;
}

export interface ApiAnswer<T> {
  status: number;
  body: T;
  headers: Headers;
  attempts: number;
}

export interface ConsumeContext {
  /** 1 for the first attempt. */
  attempt: number;
  /** Restarts the idle timeout; call it for every chunk read. */
  touch: () => void;
}

interface ErrorAnswer {
  status: number;
  body: Record<string, unknown> | undefined;
  text: string;
  headers: Headers;
}

export class ApiClient {
  readonly baseUrl: string;
  private readonly config: McpConfig;
  private readonly log: Log;

  constructor(config: McpConfig, log: Log = silentLog) {
    this.config = config;
    this.baseUrl = apiBaseUrl(config);
    this.log = log;
  }

  /** A JSON request; resolves with a 2xx answer, otherwise throws a ToolFailure. */
  async json<T>(method: string, path: string, options: CallOptions = {}): Promise<ApiAnswer<T>> {
    return this.send(method, path, options, async (res) => {
      const text = await res.text();
      if (text === '') return undefined as T;
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new ToolFailure('invalid_response', `${method} ${path} answered HTTP ${res.status} with a body that is not JSON.`);
      }
    });
  }

  /**
   * A request whose 2xx body the caller streams. `consume` runs inside the retry loop: a network
   * error while it reads counts as a failed attempt (so it must be safe to call again). The
   * timeout is an idle timeout: `ctx.touch()` restarts it.
   */
  async stream<T>(method: string, path: string, options: CallOptions, consume: (res: Response, ctx: ConsumeContext) => Promise<T>): Promise<ApiAnswer<T>> {
    return this.send(method, path, options, consume);
  }

  private url(path: string, query: CallOptions['query']): string {
    const url = new URL(path, this.baseUrl);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    return url.toString();
  }

  private async send<T>(method: string, path: string, options: CallOptions, consume: (res: Response, ctx: ConsumeContext) => Promise<T>): Promise<ApiAnswer<T>> {
    const url = this.url(path, options.query);
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    for (let attempts = 1; ; attempts++) {
      checkNotCancelled(options.signal);
      const timeoutMs = options.timeoutMs ?? this.config.requestTimeoutMs;
      // An idle timer rather than AbortSignal.timeout: a streaming consumer calls touch() on
      // every chunk, so a long download only fails when it stalls.
      const timeout = new AbortController();
      let timer = setTimeout(() => timeout.abort(), timeoutMs);
      const touch = () => {
        clearTimeout(timer);
        timer = setTimeout(() => timeout.abort(), timeoutMs);
      };
      const signal = options.signal ? AbortSignal.any([options.signal, timeout.signal]) : timeout.signal;
      const headers: Record<string, string> = {
        authorization: `Bearer ${this.config.apiToken}`,
        accept: 'application/json',
        'user-agent': USER_AGENT,
        'x-request-id': randomUUID(),
        ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
        ...options.headers,
      };
      let failure: Failure;
      let answer: ErrorAnswer | undefined;
      try {
        const res = await fetch(url, { method, headers, body: payload, signal });
        if (res.ok) {
          const body = await consume(res, { attempt: attempts, touch });
          return { status: res.status, body, headers: res.headers, attempts };
        }
        answer = await readError(res);
        const code = typeof answer.body?.error === 'string' ? answer.body.error : undefined;
        failure = { kind: 'http', status: res.status, code, retryAfterSeconds: retryAfter(answer) };
      } catch (err) {
        if (err instanceof ToolFailure) throw err;
        checkNotCancelled(options.signal);
        failure = { kind: 'network', reason: timeout.signal.aborted ? `no answer within ${Math.round(timeoutMs / 100) / 10} s` : networkReason(err) };
      } finally {
        clearTimeout(timer);
      }
      const decision = options.noRetry ? { retry: false as const, why: 'a single attempt was asked for' } : retryDecision(failure, attempts, this.config.retry);
      this.log.info(decision.retry ? 'request failed, will retry' : 'request failed', {
        method, path, attempt: attempts, failure, ...(decision.retry ? { delay_ms: decision.delayMs } : { why: decision.why }),
      });
      if (!decision.retry) throw this.failureFor(method, path, failure, answer, attempts);
      options.onRetry?.({ attempts, delayMs: decision.delayMs, why: decision.why });
      await sleep(decision.delayMs, options.signal);
    }
  }

  private failureFor(method: string, path: string, failure: Failure, answer: ErrorAnswer | undefined, attempts: number): ToolFailure {
    const tries = attempts > 1 ? ` (gave up after ${attempts} attempts)` : '';
    if (failure.kind === 'network') {
      return new ToolFailure(
        'server_unreachable',
        `Cannot reach the Flashpods API at ${this.baseUrl} (${failure.reason})${tries}. Check that WireGuard is up (\`wg show\`), ` +
          `that FLASHPODS_HOST/FLASHPODS_PORT name the API (now ${this.config.apiHost}:${this.config.apiPort}), and that the flashpods service runs on the host.`,
        { attempts, url: `${this.baseUrl}${path}`, method },
      );
    }
    const body = answer?.body ?? {};
    const { error, message, details, ...extra } = body as { error?: unknown; message?: unknown; details?: unknown };
    const code = typeof error === 'string' ? error : failure.status >= 500 ? 'internal_error' : 'invalid_response';
    const text = typeof message === 'string' ? message : `${method} ${path} answered HTTP ${failure.status}${answer?.text ? `: ${answer.text.slice(0, 200)}` : ''}`;
    const info: Record<string, unknown> = { http_status: failure.status, ...extra };
    if (details && typeof details === 'object') Object.assign(info, details);
    if (attempts > 1) info.attempts = attempts;
    const requestId = answer?.headers.get('x-request-id');
    if (requestId) info.request_id = requestId;
    return new ToolFailure(code, `${text}${tries}`, info);
  }
}

async function readError(res: Response): Promise<ErrorAnswer> {
  let text = '';
  try {
    text = await res.text();
  } catch {
    /* the body broke off; the status is enough */
  }
  let body: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body, text, headers: res.headers };
}

function retryAfter(answer: ErrorAnswer): number | undefined {
  const fromBody = answer.body?.retry_after_seconds;
  if (typeof fromBody === 'number' && Number.isFinite(fromBody) && fromBody >= 0) return fromBody;
  const header = answer.headers.get('retry-after');
  if (header && /^\d+$/.test(header.trim())) return Number(header);
  return undefined;
}

function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  if (cause?.code) return cause.code;
  if (cause?.message) return cause.message;
  return err instanceof Error ? err.message : String(err);
}

export function checkNotCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new ToolFailure('cancelled', 'The client cancelled the tool call.');
}

/** Waits `ms`, or rejects with `cancelled` as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new ToolFailure('cancelled', 'The client cancelled the tool call.'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new ToolFailure('cancelled', 'The client cancelled the tool call.'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
