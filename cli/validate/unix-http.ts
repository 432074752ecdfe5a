/**
 * @module cli/validate/unix-http
 * Minimal HTTP over a unix socket for `flashpods validate`: the API socket (the host's own TCP
 * connections to the API port are dropped by the firewall) and the token socket. Bodies are
 * returned to the caller and never logged or put into error messages: the token socket answers
 * with secrets, and requests carry the API token or a JWT-SVID.
 */
import { unixFetch } from '../unix-fetch.ts';

export interface UnixResponse {
  status: number;
  body: Buffer;
}

/** One request, body read whole; rejects with the socket error itself (ENOENT, ECONNREFUSED, EACCES, ETIMEDOUT…). */
export async function unixRequest(
  socketPath: string,
  method: string,
  path: string,
  { headers = {}, body, timeoutMs = 10_000 }: { headers?: Record<string, string>; body?: string; timeoutMs?: number } = {},
): Promise<UnixResponse> {
  try {
    const res = await unixFetch(socketPath, `http://localhost${path}`, { method, headers, ...(body !== undefined ? { body } : {}), timeoutMs });
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
  } catch (err) {
    throw (err as { cause?: unknown }).cause ?? err;
  }
}

/** The body as JSON, or undefined when it is not JSON. */
export function jsonOf(res: UnixResponse): unknown {
  try {
    return JSON.parse(res.body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The API's `error` code of an error body (only a code-shaped string, never free text). */
export function errorCode(res: UnixResponse): string | undefined {
  const json = jsonOf(res) as { error?: unknown } | undefined;
  return typeof json?.error === 'string' && /^[a-z_]{1,64}$/.test(json.error) ? json.error : undefined;
}

/** A socket error as a short phrase: `ECONNREFUSED`, `ENOENT`, … */
export function socketProblem(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ?? e.message ?? String(err);
}
