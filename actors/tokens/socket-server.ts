/**
 * @module tokens/socket-server
 * A plain node:http server bound to a unix socket only (never TCP). A stale socket file left by
 * a crash is removed first; a live one (another process answering) or a non-socket file at the
 * path is an error, never silently replaced. The socket is chmod 0660. Production runs it as
 * user flashpods-tokens in /run/flashpods-tokens, flashpods-tokens:flashpods 2750
 * (nix/modules/token-service.nix): the setgid bit gives the socket group flashpods (the job
 * containers' and Podman's group), so it is flashpods-tokens:flashpods 0660, and only its owner
 * can remove or replace it — not the API's user. The directory's mode also closes the window
 * between bind and chmod. Running as root (tests), it is chowned to its directory's owner.
 */
import { chmodSync, chownSync, lstatSync, statSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';

export const SOCKET_MODE = 0o660;

function probe(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function clearStale(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  if (await probe(path)) throw new Error(`another process is already serving ${path}`);
  unlinkSync(path);
}

export async function listenOnSocket(path: string, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Server> {
  await clearStale(path);
  const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, handler);
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, SOCKET_MODE);
  if (process.getuid?.() === 0) {
    const dir = statSync(dirname(path));
    if (dir.uid !== 0 || dir.gid !== 0) chownSync(path, dir.uid, dir.gid);
  }
  return server;
}

/** Stops accepting, lets in-flight requests finish within graceMs, then cuts the rest. */
export async function closeServer(server: Server, graceMs: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const deadline = setTimeout(() => {
      server.closeAllConnections();
      resolve();
    }, graceMs);
    server.close(() => {
      clearTimeout(deadline);
      resolve();
    });
    server.closeIdleConnections();
  });
}
