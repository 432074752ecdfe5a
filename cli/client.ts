/**
 * @module cli/client
 * The HTTP client behind the human commands: where the server is (FLASHPODS_URL), which token
 * to send (FLASHPODS_API_TOKEN, the file named by FLASHPODS_API_TOKEN_FILE, the dev profile's
 * token file, then the production one), the API's `{error, message}` turned into one printable
 * error, a short retry on `rate_limited` / `service_unavailable` / `copy_in_progress`, and a
 * server-sent-events reader for the live log. The token is never part of any message.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { SETTINGS } from '../actors/contract/config.ts';
import { unixFetch } from './unix-fetch.ts';

export const DEFAULT_URL = 'http://127.0.0.1:8080';
/** The variables the client commands read (FLASHPODS_PROFILE and FLASHPODS_HOME too, as the server does). */
export const CLIENT_ENV: readonly string[] = ['FLASHPODS_URL', 'FLASHPODS_API_TOKEN', 'FLASHPODS_API_TOKEN_FILE'];

/** A failure the user sees as `flashpods: <message>`; exit 1 unless said otherwise. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** Bad arguments or setup the user must fix before anything is sent: exit 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'UsageError';
  }
}

/** An error answer of the API, printed as `<message> (<code>)`. */
export class ApiError extends CliError {
  readonly code: string;
  readonly status: number;
  readonly body: Record<string, unknown> | undefined;
  readonly retryAfterSeconds: number | undefined;
  constructor(code: string, message: string, status: number, body?: Record<string, unknown>, retryAfterSeconds?: number, hint?: string) {
    super(`${message} (${code})${hint ? `\n  ${hint}` : ''}`);
    this.name = 'ApiError';
    this.code = code;
    this.status = status;
    this.body = body;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

type Env = Record<string, string | undefined>;

interface Token {
  value: string;
  /** Where it came from, for messages (never the token itself). */
  from: string;
}

/** The token files tried when neither FLASHPODS_API_TOKEN nor FLASHPODS_API_TOKEN_FILE is set. */
export function defaultTokenFiles(env: Env = process.env, cwd = process.cwd()): string[] {
  const setting = SETTINGS.find((s) => s.key === 'paths.apiTokenFile')!;
  const production = String(setting.production);
  if (env.FLASHPODS_PROFILE === 'production') return [production];
  const homeRaw = env.FLASHPODS_HOME || '.flashpods';
  const home = isAbsolute(homeRaw) ? homeRaw : resolve(cwd, homeRaw);
  return [resolve(String(setting.dev(home))), production];
}

function checked(value: string, from: string): Token {
  if (value === '') throw new UsageError(`the API token from ${from} is empty`);
  // Anything else would make fetch throw a message that quotes the header, token included.
  if (!/^[\x21-\x7e]+$/.test(value)) throw new UsageError(`the API token from ${from} contains spaces or control characters; it should be the 64 hex characters of the token file`);
  return { value, from };
}

function readTokenFile(path: string, from: string): Token {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    const hint = code === 'EACCES' ? '; run as a user who may read it, or set FLASHPODS_API_TOKEN' : '';
    throw new UsageError(`cannot read the API token file ${path} (${code})${hint}`);
  }
  return checked(text.trim(), from);
}

export function findToken(env: Env = process.env, cwd = process.cwd()): Token {
  const inline = env.FLASHPODS_API_TOKEN?.trim();
  if (inline) return checked(inline, 'FLASHPODS_API_TOKEN');
  if (env.FLASHPODS_API_TOKEN_FILE) {
    const path = resolve(cwd, env.FLASHPODS_API_TOKEN_FILE);
    return readTokenFile(path, `FLASHPODS_API_TOKEN_FILE=${path}`);
  }
  const candidates = defaultTokenFiles(env, cwd);
  for (const path of candidates) if (existsSync(path)) return readTokenFile(path, path);
  throw new UsageError(`no API token: set FLASHPODS_API_TOKEN, or FLASHPODS_API_TOKEN_FILE to the token file (looked for ${candidates.join(' and ')})`);
}

export function parseBaseUrl(raw: string | undefined): URL {
  const text = raw?.trim() || DEFAULT_URL;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`FLASHPODS_URL=${text} is not a URL; it should look like ${DEFAULT_URL}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:' && url.protocol !== 'unix:') {
    throw new UsageError(`FLASHPODS_URL=${text} must be an http:// or https:// URL, or unix:/path/to/api.sock on the host`);
  }
  url.search = '';
  url.hash = '';
  return url;
}

const RETRYABLE = new Set(['rate_limited', 'service_unavailable', 'copy_in_progress']);
const MAX_ATTEMPTS = 4;

const NETWORK_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'name lookup failed',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
  UND_ERR_SOCKET: 'connection closed',
};

/** The code of a fetch failure (undici wraps the socket error in `cause`). */
export function networkCode(err: unknown): string | undefined {
  const cause = (err as { cause?: { code?: unknown } } | undefined)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A short human reason for a network failure: "connection refused", "host not found", … */
export function networkReason(err: unknown): string {
  const code = networkCode(err);
  if (code && NETWORK_REASONS[code]) return NETWORK_REASONS[code];
  if (code) return code;
  const cause = (err as { cause?: { message?: unknown } } | undefined)?.cause;
  return typeof cause?.message === 'string' ? cause.message : (err as Error).message;
}

export interface RequestOptions {
  query?: Record<string, string | number | undefined>;
  /** Send the bearer token (all routes but /health). Default true. */
  auth?: boolean;
  /** Non-2xx statuses to hand back instead of throwing (e.g. 503 from /health). */
  accept?: number[];
  signal?: AbortSignal;
}

export class Client {
  readonly baseUrl: URL;
  private readonly token: Token | undefined;

  constructor(baseUrl: URL, token: Token | undefined) {
    this.baseUrl = baseUrl;
    this.token = token;
  }

  /** The API's unix socket when FLASHPODS_URL is unix:/path (on the host), else undefined. */
  get socketPath(): string | undefined {
    return this.baseUrl.protocol === 'unix:' ? this.baseUrl.pathname : undefined;
  }

  /** The server address as shown to the user (no credentials, no trailing slash). */
  get display(): string {
    if (this.socketPath) return `unix:${this.socketPath}`;
    return `${this.baseUrl.origin}${this.baseUrl.pathname.replace(/\/+$/, '')}`;
  }

  url(path: string, query: RequestOptions['query'] = {}): string {
    const url = new URL((this.socketPath ? 'http://localhost' : this.display) + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    return url.toString();
  }

  /** A request answered 2xx (or with a status in `accept`); otherwise throws ApiError or CliError. */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'flashpods-cli/0.1.0' };
    if (options.auth !== false) {
      if (!this.token) throw new UsageError('no API token');
      headers.authorization = `Bearer ${this.token.value}`;
    }
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      try {
        const init = { method, headers, signal: options.signal ?? null };
        res = this.socketPath ? await unixFetch(this.socketPath, this.url(path, options.query), init) : await fetch(this.url(path, options.query), init);
      } catch (err) {
        if (options.signal?.aborted) throw err;
        throw this.unreachable(err);
      }
      if (res.ok || options.accept?.includes(res.status)) return res;
      const error = await this.errorFrom(res, method, path);
      if (attempt < MAX_ATTEMPTS && RETRYABLE.has(error.code)) {
        await new Promise((r) => setTimeout(r, Math.min(10, Math.max(0.2, error.retryAfterSeconds ?? attempt)) * 1000));
        continue;
      }
      throw error;
    }
  }

  async json<T = Record<string, unknown>>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, options);
    const text = await res.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(`${method} ${path} answered HTTP ${res.status} with a body that is not JSON; is FLASHPODS_URL (${this.display}) the Flashpods API?`);
    }
  }

  unreachable(err: unknown): CliError {
    return new CliError(
      `cannot reach the Flashpods API at ${this.display} (${networkReason(err)})\n` +
        '  Is the server running? (flashpods serve; on the host: systemctl status flashpods)\n' +
        '  Does FLASHPODS_URL name it? From a laptop, is WireGuard up? (wg show)',
    );
  }

  private async errorFrom(res: Response, method: string, path: string): Promise<ApiError> {
    const text = await res.text().catch(() => '');
    let body: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
    } catch {
      /* not JSON: report the status */
    }
    const code = typeof body?.error === 'string' ? body.error : `http_${res.status}`;
    const message = typeof body?.message === 'string' ? body.message : `${method} ${path} answered HTTP ${res.status}${text ? `: ${text.slice(0, 200).trim()}` : ''}`;
    const hint = res.status === 401 && this.token ? `(the token sent came from ${this.token.from})` : undefined;
    const fromBody = body?.retry_after_seconds;
    const header = Number(res.headers.get('retry-after'));
    const retryAfter = typeof fromBody === 'number' ? fromBody : Number.isFinite(header) && header > 0 ? header : undefined;
    return new ApiError(code, message, res.status, body, retryAfter, hint);
  }
}

/** A client for the environment; `token: false` for routes that need none (/health). */
export function clientFromEnv(options: { token?: boolean; env?: Env; cwd?: string } = {}): Client {
  const env = options.env ?? process.env;
  const baseUrl = parseBaseUrl(env.FLASHPODS_URL);
  return new Client(baseUrl, options.token === false ? undefined : findToken(env, options.cwd));
}

export interface SseEvent {
  event: string;
  data: string;
}

/** The events of a text/event-stream body, as they arrive. */
export async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let event = '';
  let data: string[] = [];
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, '');
        buffer = buffer.slice(nl + 1);
        if (line === '') {
          if (data.length > 0 || event) yield { event: event || 'message', data: data.join('\n') };
          event = '';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      if (done) return;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}
