/**
 * @module envelope
 * The wire format of every message that crosses a thread boundary in the runtime: requests and
 * replies (correlated by id), one-way events, and the supervisor's control messages. Actors never
 * see envelopes; they see typed calls and events (see channel.ts and actor.ts).
 */
import type { MessagePort } from 'node:worker_threads';

/**
 * A protocol maps each request type to its payload, its reply, and the codes of the domain
 * errors it may answer with (`errors`, a union of string literals; none when absent).
 */
export type Protocol = Record<string, { req: unknown; res: unknown; errors?: string }>;

/** What any call can fail with, whatever the protocol: the runtime's own codes. */
export type RuntimeErrorCode = 'actor_unavailable' | 'actor_timeout' | 'internal_error' | 'unknown_request';
export const RUNTIME_ERROR_CODES: readonly RuntimeErrorCode[] = ['actor_unavailable', 'actor_timeout', 'internal_error', 'unknown_request'];

/** Every code a call to an actor of protocol `P` can fail with: what its requests declare, and the runtime's. */
export type ErrorCodeOf<P extends Protocol> = { [K in keyof P]: P[K] extends { errors: infer E extends string } ? E : never }[keyof P] | RuntimeErrorCode;

/**
 * An error as it travels between threads: plain data, never a stack. `C` is the union of codes
 * of the protocol it answers for (ErrorCodeOf); on the wire itself any string travels.
 */
export interface WireError<C extends string = string> {
  /** `actor_unavailable`, `actor_timeout`, or a domain code the protocol declares, such as `job_not_found`. */
  code: C;
  message: string;
  status?: number;
  details?: Record<string, unknown>;
}

export type Envelope =
  | { kind: 'request'; id: number; type: string; payload: unknown }
  | { kind: 'reply'; id: number; ok: true; value: unknown }
  | { kind: 'reply'; id: number; ok: false; error: WireError }
  | { kind: 'event'; topic: string; payload: unknown };

/** Supervisor → actor. */
export type ControlToActor =
  | { kind: 'peer-up'; name: string; port: MessagePort }
  | { kind: 'peer-down'; name: string }
  | { kind: 'stop'; graceMs: number };

/** Actor → supervisor. */
export type ControlFromActor =
  | { kind: 'ready' }
  | { kind: 'stopped' }
  | { kind: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; msg: string; fields?: Record<string, unknown> };

/** What the supervisor hands a worker thread at start. */
export interface ActorBoot {
  name: string;
  module: string;
  config: unknown;
  peers: Record<string, MessagePort>;
  /** Fault injection for tests: the actor answers FAULT_CRASH requests by dying. */
  faultInjection: boolean;
  /** The supervisor log's level: lines below it are dropped in the actor, not sent across. */
  logLevel: string;
}

/** The request that makes an actor die on purpose (only when fault injection is on). */
export const FAULT_CRASH = '__fault_crash';
export type FaultCrash = { how: 'throw' | 'exit' };

export function isControlToActor(msg: unknown): msg is ControlToActor {
  const kind = (msg as { kind?: unknown } | null)?.kind;
  return kind === 'peer-up' || kind === 'peer-down' || kind === 'stop';
}

export function isControlFromActor(msg: unknown): msg is ControlFromActor {
  const kind = (msg as { kind?: unknown } | null)?.kind;
  return kind === 'ready' || kind === 'stopped' || kind === 'log';
}
