/**
 * @module test/mcp/fault-proxy
 * A small HTTP proxy in front of a real Flashpods server that injects faults into the first
 * matching requests and records every request it sees (method, path, body, time, what it did).
 *
 * Faults: an HTTP error answer (`{ status, body }`), `drop` (close the connection before
 * answering, nothing forwarded) and `lose-response` (forward to the server, then close the
 * connection instead of answering — the "lost response" case idempotency exists for) and
 * `cut-body` (forward, pass the head and the first 64 KiB of the body on, then close).
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault = { status: number; body?: unknown; headers?: Record<string, string> } | 'drop' | 'lose-response' | 'cut-body';

export interface Seen {
  method: string;
  path: string;
  body: string;
  at: number;
  action: 'forwarded' | 'drop' | 'lose-response' | 'cut-body' | `status ${number}`;
}

interface Rule {
  method: string;
  path: RegExp;
  remaining: number;
  fault: Fault;
}

export interface FaultProxy {
  port: number;
  url: string;
  seen: Seen[];
  /** Injects `fault` into the next `times` requests matching method and path (Infinity: all). */
  inject(method: string, path: RegExp, fault: Fault, times?: number): void;
  /** Requests matching method and path seen since the last reset. */
  matching(method: string, path: RegExp): Seen[];
  reset(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  const rules: Rule[] = [];
  const seen: Seen[] = [];

  const forward = (req: IncomingMessage, body: Buffer, res: ServerResponse | undefined, onDone?: () => void, cutAfter?: number) => {
    const out = httpRequest({
      host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host },
    }, (answer) => {
      if (!res) {
        answer.resume();
        answer.on('end', () => onDone?.());
        return;
      }
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      if (cutAfter === undefined) return void answer.pipe(res);
      let sent = 0;
      answer.on('data', (chunk: Buffer) => {
        if (sent >= cutAfter) return;
        const part = chunk.subarray(0, cutAfter - sent);
        sent += part.length;
        res.write(part);
        if (sent >= cutAfter) {
          answer.destroy();
          setTimeout(() => req.socket.destroy(), 20);
        }
      });
    });
    out.on('error', () => res?.destroy());
    out.end(body);
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const path = (req.url ?? '/').split('?')[0]!;
      const rule = rules.find((r) => r.remaining > 0 && r.method === req.method && r.path.test(path));
      const record: Seen = { method: req.method ?? '', path: req.url ?? '', body: body.toString('utf8'), at: performance.now(), action: 'forwarded' };
      seen.push(record);
      if (!rule) return forward(req, body, res);
      rule.remaining--;
      const fault = rule.fault;
      if (fault === 'drop') {
        record.action = 'drop';
        req.socket.destroy();
      } else if (fault === 'cut-body') {
        record.action = 'cut-body';
        forward(req, body, res, undefined, 64 * 1024);
      } else if (fault === 'lose-response') {
        record.action = 'lose-response';
        forward(req, body, undefined, () => req.socket.destroy());
      } else {
        record.action = `status ${fault.status}`;
        res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
        res.end(fault.body === undefined ? '' : JSON.stringify(fault.body));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    seen,
    inject(method, path, fault, times = 1) {
      rules.push({ method, path, fault, remaining: times });
    },
    matching(method, path) {
      return seen.filter((s) => s.method === method && path.test(s.path.split('?')[0]!));
    },
    reset() {
      rules.length = 0;
      seen.length = 0;
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
