/**
 * @module cli/validate/unix-http
 * Minimal HTTP over a unix socket for `flashpods validate`: the API socket (the host's own TCP
 * connections to the API port are dropped by the firewall) and the token socket. Bodies are
 * returned to the caller and never logged or put into error messages: the token socket answers
 * with secrets, and requests carry the API token or a JWT-SVID.
 */
import { request } from 'node:http';

export interface UnixResponse {
  status: number;
  body: Buffer;
}

/** One request; rejects with the socket error (ENOENT, ECONNREFUSED, EACCES…) or a timeout. */
export function unixRequest(
  socketPath: string,
  method: string,
  path: string,
  { headers = {}, body, timeoutMs = 10_000 }: { headers?: Record<string, string>; body?: string; timeoutMs?: number } = {},
): Promise<UnixResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      // No keep-alive pool: nothing lingers once the command is done.
      { socketPath, method, path, agent: false, headers: { host: 'localhost', ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs / 1000} s`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(body);
  });
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
