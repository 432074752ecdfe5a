/**
 * @module cli/unix-fetch
 * `fetch` over a unix socket (node:http with socketPath), answering a standard Response, so the
 * CLI can use the API's host-local socket (FLASHPODS_URL=unix:/run/flashpods/api.sock) exactly
 * as it uses TCP.
 */
import { request } from 'node:http';
import { Readable } from 'node:stream';

export function unixFetch(socketPath: string, url: string, init: { method: string; headers: Record<string, string>; signal?: AbortSignal | null }): Promise<Response> {
  const { pathname, search } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: pathname + search, method: init.method, headers: init.headers, signal: init.signal ?? undefined }, (res) => {
      const headers = new Headers();
      for (const [name, value] of Object.entries(res.headers)) {
        if (Array.isArray(value)) for (const v of value) headers.append(name, v);
        else if (value !== undefined) headers.set(name, value);
      }
      const status = res.statusCode ?? 502;
      const body = status === 204 || status === 304 ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
      resolve(new Response(body, { status, headers }));
    });
    req.on('error', (err) => reject(Object.assign(new TypeError('fetch failed'), { cause: err })));
    req.end();
  });
}
