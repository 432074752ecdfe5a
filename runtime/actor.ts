/**
 * @module actor
 * What an actor module sees: `defineActor` to declare its typed request handlers and lifecycle,
 * and the `ActorContext` it is started with (typed refs to peers, events, logging, config).
 * An actor module's default export is the value returned by `defineActor`; it runs on its own
 * worker thread (see actor-host.ts), so nothing here is shared memory.
 */
import type { ErrorCodeOf, FAULT_CRASH, FaultCrash, Protocol } from './envelope.ts';
import { CodedError } from './errors.ts';

/** The request type of a protocol as a discriminated union, e.g. for logging or validation. */
export type RequestOf<P extends Protocol> = { [K in keyof P & string]: { type: K; payload: P[K]['req'] } }[keyof P & string];

export type Handlers<P extends Protocol> = {
  [K in keyof P]: (payload: P[K]['req'], from: string) => P[K]['res'] | Promise<P[K]['res']>;
};

export interface CallOptions {
  /** Per-call timeout; the default is the runtime's (5 s). */
  timeoutMs?: number;
}

/** What a call to an actor of protocol `P` rejects with: a code its protocol declares, or the runtime's. */
export type CallError<P extends Protocol> = CodedError<ErrorCodeOf<P>>;

/** Narrows a caught error to the CallError of `P`, so comparing its code against a literal is type-checked. */
export function isCallError<P extends Protocol>(err: unknown): err is CallError<P> {
  return err instanceof CodedError;
}

export interface ActorRef<P extends Protocol> {
  readonly name: string;
  /**
   * Rejects with a CallError<P>: at once with ActorUnavailable when the actor is down or dies
   * mid-call, or with one of the codes the request declares.
   */
  call<K extends keyof P & string>(type: K, payload: P[K]['req'], options?: CallOptions): Promise<P[K]['res']>;
  /** Whether a live channel to the actor exists right now. */
  readonly available: boolean;
}

export interface ActorLog {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Lifecycle states the supervisor reports for each actor (pushed as the `actor-states` event). */
export type ActorState = 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped' | 'failed';

/** Events published by the runtime itself; actors add their own topics. */
export interface RuntimeEvents {
  'actor-states': Record<string, ActorState>;
  /** Restarts of each actor since the supervisor started. */
  'actor-restarts': Record<string, number>;
}

/**
 * What an application's actors may name, so that a wrong peer, request, topic or payload is a
 * compile error: each actor name with its protocol, each topic with its payload. The runtime
 * knows no actor; an application declares its own (actors/registry.ts) and passes it to
 * defineActor. The default, for tests and loose use, accepts any name.
 */
export interface Registry {
  peers: Record<string, Protocol>;
  topics: Record<string, unknown>;
}

/** Requests every actor answers, whatever its protocol (the runtime handles them). */
export type RuntimeRequests = Record<typeof FAULT_CRASH, { req: FaultCrash; res: void }>;

export interface ActorContext<Config = unknown, R extends Registry = Registry> {
  readonly name: string;
  readonly config: Config;
  readonly log: ActorLog;
  peer<N extends keyof R['peers'] & string>(name: N): ActorRef<R['peers'][N] & RuntimeRequests>;
  /** One-way event to every peer (and the supervisor). */
  publish<T extends keyof R['topics'] & string>(topic: T, payload: R['topics'][T]): void;
  /** Events from peers and the supervisor; returns an unsubscribe function. */
  subscribe<T extends keyof (R['topics'] & RuntimeEvents) & string>(topic: T, handler: (payload: (R['topics'] & RuntimeEvents)[T], from: string) => void): () => void;
}

export interface ActorDefinition<P extends Protocol, Config, R extends Registry = Registry> {
  /**
   * The domain error codes its handlers may throw (every code the protocol's requests declare);
   * none when absent. A CodedError with any other code is a bug: the caller gets internal_error
   * and the log says so.
   */
  errors?: ReadonlyArray<ErrorCodeOf<P>>;
  /** Runs once per thread start; resolves with the handlers. A throw here is a crash. */
  start(ctx: ActorContext<Config, R>): Handlers<P> | Promise<Handlers<P>>;
  /** Graceful stop: finish in-flight work within `graceMs`, release resources. */
  stop?(graceMs: number): void | Promise<void>;
}

export function defineActor<P extends Protocol, Config = unknown, R extends Registry = Registry>(def: ActorDefinition<P, Config, R>): ActorDefinition<P, Config, R> {
  return def;
}
