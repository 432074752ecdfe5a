/**
 * @module channel
 * One end of a message channel to a peer (another actor, or the supervisor): request/reply with
 * correlation ids and per-call timeouts, and one-way events. When the peer goes away every
 * pending call is rejected at once with `ActorUnavailable` — callers never wait for a timeout to
 * learn that an actor died.
 */
import type { MessagePort } from 'node:worker_threads';
import type { Envelope } from './envelope.ts';
import { ActorTimeout, ActorUnavailable, fromWireError, toWireError } from './errors.ts';

export type RequestHandler = (type: string, payload: unknown, from: string) => unknown | Promise<unknown>;
export type EventHandler = (topic: string, payload: unknown, from: string) => void;

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class PeerChannel {
  readonly peer: string;
  private readonly port: MessagePort;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closedReason: string | undefined;

  constructor(peer: string, port: MessagePort, onRequest: RequestHandler, onEvent: EventHandler) {
    this.peer = peer;
    this.port = port;
    port.on('message', (msg: Envelope) => this.receive(msg, onRequest, onEvent));
    port.on('close', () => this.close('its thread exited'));
  }

  get isOpen(): boolean {
    return this.closedReason === undefined;
  }

  call(type: string, payload: unknown, timeoutMs: number): Promise<unknown> {
    if (this.closedReason !== undefined) return Promise.reject(new ActorUnavailable(this.peer, this.closedReason));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ActorTimeout(this.peer, type, timeoutMs));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.port.postMessage({ kind: 'request', id, type, payload } satisfies Envelope);
    });
  }

  emit(topic: string, payload: unknown): void {
    if (this.closedReason !== undefined) return;
    this.port.postMessage({ kind: 'event', topic, payload } satisfies Envelope);
  }

  /** Rejects every pending call; later calls fail fast until a new channel replaces this one. */
  close(reason: string): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new ActorUnavailable(this.peer, reason));
    }
    this.port.close();
  }

  private receive(msg: Envelope, onRequest: RequestHandler, onEvent: EventHandler): void {
    switch (msg.kind) {
      case 'request':
        void this.answer(msg.id, msg.type, msg.payload, onRequest);
        return;
      case 'reply': {
        const p = this.pending.get(msg.id);
        if (!p) return; // already timed out
        this.pending.delete(msg.id);
        clearTimeout(p.timer);
        if (msg.ok) p.resolve(msg.value);
        else p.reject(fromWireError(msg.error, this.peer));
        return;
      }
      case 'event':
        onEvent(msg.topic, msg.payload, this.peer);
        return;
    }
  }

  private async answer(id: number, type: string, payload: unknown, onRequest: RequestHandler): Promise<void> {
    let reply: Envelope;
    try {
      reply = { kind: 'reply', id, ok: true, value: await onRequest(type, payload, this.peer) };
    } catch (err) {
      reply = { kind: 'reply', id, ok: false, error: toWireError(err) };
    }
    if (this.closedReason === undefined) this.port.postMessage(reply);
  }
}
