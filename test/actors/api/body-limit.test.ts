/**
 * The request body limit against a client that streams a chunked body and never finishes it: the
 * server must answer 413 as soon as the body passes the limit and stop receiving, not wait for
 * (and buffer) the whole body.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../support/server.ts';

const LIMIT = 64 * 1024;

let server: RunningServer;
beforeAll(async () => {
  server = await startServer({ FLASHPODS_BODY_MAX_BYTES: String(LIMIT) });
});
afterAll(async () => {
  await server.stop();
});

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ChunkedPost {
  socket: Socket;
  /** Everything the server sent so far. */
  received: () => string;
  /** Sends `bytes` JSON whitespace as one chunk. */
  send: (bytes: number) => void;
  /** Resolves with the time the server closed the connection. */
  closed: Promise<number>;
}

function chunkedPost(path: string): Promise<ChunkedPost> {
  const { hostname, port } = new URL(server.url);
  const socket = connect(Number(port), hostname);
  let received = '';
  socket.on('data', (d: Buffer) => (received += d.toString()));
  // Writes after the server closed fail (EPIPE/ECONNRESET): expected here, and not the test's subject.
  socket.on('error', () => undefined);
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  return new Promise((resolve) => socket.once('connect', () => {
    socket.write(`POST ${path} HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${server.token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
    resolve({
      socket,
      received: () => received,
      send: (bytes) => {
        if (!socket.destroyed) socket.write(`${bytes.toString(16)}\r\n${' '.repeat(bytes)}\r\n`);
      },
      closed,
    });
  }));
}

describe('the request body limit', () => {
  it('answers 413 the moment a chunked body passes the limit, and stops receiving the rest', async () => {
    const post = await chunkedPost('/jobs');
    for (let sent = 0; sent < LIMIT; sent += 4096) post.send(4096);
    // Exactly at the limit: nothing refused yet, the server waits for more.
    await pause(500);
    expect(post.received()).toBe('');

    post.send(1);
    const passedAt = Date.now();
    for (let i = 0; i < 50 && !post.received().includes('\r\n\r\n{'); i++) await pause(20);
    const answeredMs = Date.now() - passedAt;
    const [head, body] = post.received().split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 413 /);
    expect(head!.toLowerCase()).toContain('connection: close');
    expect(JSON.parse(body!)).toMatchObject({ error: 'payload_too_large', message: `The request body is larger than ${LIMIT} bytes.` });
    expect(answeredMs).toBeLessThan(1_000);

    // The client keeps streaming and never ends the body; the server hangs up all the same.
    const streaming = setInterval(() => post.send(16 * 1024), 10);
    const closedAt = await Promise.race([post.closed, pause(3_000).then(() => undefined)]);
    clearInterval(streaming);
    post.socket.destroy();
    expect(closedAt, 'the server never closed the connection').toBeDefined();
    expect(closedAt! - passedAt).toBeLessThan(1_000);
  });

  it('still reads a chunked body up to the limit whole', async () => {
    const post = await chunkedPost('/jobs');
    for (let sent = 0; sent < LIMIT - 4096; sent += 4096) post.send(4096);
    const json = '{"type":"nonsense"}';
    post.send(4096 - json.length);
    post.socket.write(`${json.length.toString(16)}\r\n${json}\r\n0\r\n\r\n`);
    for (let i = 0; i < 50 && !post.received().includes('\r\n\r\n{'); i++) await pause(20);
    post.socket.destroy();
    const [head, body] = post.received().split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(body!).error).toBe('invalid_job_type');
  });
});
