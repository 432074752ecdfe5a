/**
 * @module test/support/podman-proxy
 * A pass-through proxy on a unix socket in front of a real Podman API socket, for tests that
 * need something to happen to Podman at an exact point of Flashpods' conversation with it —
 * e.g. the Podman API service restarting between a container's create and its start, a window
 * of a few milliseconds that no timing from outside can hit. It changes nothing it forwards:
 * plain requests, long responses (wait, logs) and upgraded streams (attach) go through as
 * bytes, and when the upstream socket is gone or drops a connection, so does the proxy, as
 * Podman itself would. The only thing it adds is `before`: a hook run before forwarding the
 * first request that matches.
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PodmanProxy {
  socketPath: string;
  /** Runs `hook` once, before the first request matching method and path is forwarded. */
  before(method: string, path: RegExp, hook: () => Promise<void>): void;
  close(): Promise<void>;
}

interface Hook {
  method: string;
  path: RegExp;
  run: () => Promise<void>;
}

export async function startPodmanProxy(upstream: string): Promise<PodmanProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'fp-podman-proxy-'));
  const socketPath = join(dir, 'podman.sock');
  const hooks: Hook[] = [];
  const open = new Set<Socket>();

  const take = async (req: IncomingMessage): Promise<void> => {
    const i = hooks.findIndex((h) => h.method === req.method && h.path.test(req.url ?? ''));
    if (i < 0) return;
    const [hook] = hooks.splice(i, 1);
    await hook!.run();
  };

  const forward = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    await take(req);
    const out = request({ socketPath: upstream, method: req.method, path: req.url, headers: req.headers, agent: false }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
      answer.pipe(res);
      answer.on('error', () => res.destroy());
      answer.on('aborted', () => res.destroy());
    });
    // Podman unreachable: the client sees its connection drop, as with no proxy at all.
    out.on('error', () => res.socket?.destroy());
    req.pipe(out);
  };

  const server = createServer((req, res) => void forward(req, res));
  server.on('connection', (s: Socket) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  // attach with hijack: after the 101 the connection is a raw stream both ways.
  server.on('upgrade', (req: IncomingMessage, client: Socket, head: Buffer) => {
    void take(req).then(() => {
      const up = connect(upstream);
      up.on('error', () => client.destroy());
      client.on('error', () => up.destroy());
      up.on('connect', () => {
        const lines = [`${req.method} ${req.url} HTTP/1.1`];
        for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
        up.write(`${lines.join('\r\n')}\r\n\r\n`);
        if (head.length > 0) up.write(head);
        up.pipe(client);
        client.pipe(up);
      });
      up.on('close', () => client.destroy());
      client.on('close', () => up.destroy());
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });

  return {
    socketPath,
    before(method, path, run) {
      hooks.push({ method, path, run });
    },
    async close() {
      for (const s of open) s.destroy();
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
