/**
 * @module cli/unix-fetch
 * `fetch` over a unix socket (node:http with socketPath), answering a standard Response, so the
 * CLI can use the API's host-local socket (FLASHPODS_URL=unix:/run/flashpods/api.sock) exactly
 * as it uses TCP; `flashpods validate` uses it for the API and token sockets too.
 * A failure rejects like fetch: a TypeError whose `cause` is the socket error (ENOENT,
 * ECONNREFUSED, EACCES, or ETIMEDOUT after `timeoutMs`).
 */
import { request } from 'node:http';
import { Readable } from 'node:stream';

export interface UnixFetchInit {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal?: AbortSignal | null;
  timeoutMs?: number;
}

export function unixFetch(socketPath: string, url: string, init: UnixFetchInit): Promise<Response> {
  const { pathname, search } = new URL(url);
  const headers: Record<string, string> = { host: 'localhost', ...init.headers };
  if (init.body !== undefined) {
    headers['content-type'] ??= 'application/json';
    headers['content-length'] = String(Buffer.byteLength(init.body));
  }
  return new Promise((resolve, reject) => {
    // No keep-alive pool: nothing lingers once a command is done.
    const req = request({ socketPath, path: pathname + search, method: init.method, headers, agent: false, signal: init.signal ?? undefined }, (res) => {
      const responseHeaders = new Headers();
      for (const [name, value] of Object.entries(res.headers)) {
        if (Array.isArray(value)) for (const v of value) responseHeaders.append(name, v);
        else if (value !== undefined) responseHeaders.set(name, value);
      }
      const status = res.statusCode ?? 502;
      const body = status === 204 || status === 304 ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
      resolve(new Response(body, { status, headers: responseHeaders }));
    });
    if (init.timeoutMs !== undefined) {
      const seconds = init.timeoutMs / 1000;
      req.setTimeout(init.timeoutMs, () => req.destroy(Object.assign(new Error(`no answer within ${seconds} s`), { code: 'ETIMEDOUT' })));
    }
    req.on('error', (err) => reject(Object.assign(new TypeError('fetch failed'), { cause: err })));
    req.end(init.body);
  });
}
