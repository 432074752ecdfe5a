/**
 * @module actor-host
 * The code that runs first on an actor's worker thread: loads the actor module named in the boot
 * data, wires a channel per peer, answers the supervisor's control messages, and reports `ready`.
 * An exception anywhere here is left to crash the thread — the supervisor restarts it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { createNanoEvents } from 'nanoevents';
import type { ActorContext, ActorDefinition, ActorLog, ActorRef, Handlers } from './actor.ts';
import { PeerChannel } from './channel.ts';
import { FAULT_CRASH, RUNTIME_ERROR_CODES, type ActorBoot, type ControlFromActor, type FaultCrash, type Protocol } from './envelope.ts';
import { isControlToActor } from './envelope.ts';
import { ActorUnavailable, CodedError } from './errors.ts';

const DEFAULT_CALL_TIMEOUT_MS = 5_000;

if (!parentPort) throw new Error('actor-host must run on a worker thread');
const control = parentPort;
const boot = workerData as ActorBoot;

function sendControl(msg: ControlFromActor): void {
  control.postMessage(msg);
}

const LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const;
const threshold = LEVELS[boot.logLevel as keyof typeof LEVELS] ?? LEVELS.debug;
const logAt = (level: keyof typeof LEVELS) => (msg: string, fields?: Record<string, unknown>) => {
  // Per-request debug lines would otherwise cross the thread boundary only to be dropped.
  if (LEVELS[level] >= threshold) sendControl({ kind: 'log', level, msg, fields });
};
const log: ActorLog = { debug: logAt('debug'), info: logAt('info'), warn: logAt('warn'), error: logAt('error') };

const events = createNanoEvents<Record<string, (payload: unknown, from: string) => void>>();
const channels = new Map<string, PeerChannel>();
let handlers: Handlers<Protocol> | undefined;

function crashOnPurpose({ how }: FaultCrash): void {
  log.warn(`fault injection: crashing (${how}) as asked`, { event: 'fault_injected', how });
  setImmediate(() => {
    if (how === 'exit') process.exit(70);
    throw new Error('fault injection: crash requested');
  });
}

async function onRequest(type: string, payload: unknown, from: string): Promise<unknown> {
  if (type === FAULT_CRASH && boot.faultInjection) return crashOnPurpose(payload as FaultCrash);
  if (!handlers) throw new ActorUnavailable(boot.name, 'still starting');
  const handler = handlers[type];
  if (!handler) throw new CodedError('unknown_request', `actor "${boot.name}" has no handler for "${type}"`, 500);
  try {
    return await handler(payload, from);
  } catch (err) {
    // Domain errors are answers; anything else is a bug the operator must see.
    if (!(err instanceof CodedError)) log.error('request handler failed', { type, from, err: describe(err) });
    else if (!declared(err.code)) {
      log.error(`request handler failed with "${err.code}", a code the ${boot.name} protocol does not declare`, { type, from, err: describe(err) });
      throw new CodedError('internal_error', err.message, 500);
    }
    throw err;
  }
}

/** A code the actor's protocol declares, or one of the runtime's (e.g. from a call it made). */
function declared(code: string): boolean {
  return (RUNTIME_ERROR_CODES as readonly string[]).includes(code) || ((definition!.errors ?? []) as readonly string[]).includes(code);
}

function describe(err: unknown): Record<string, unknown> {
  return err instanceof Error ? { name: err.name, message: err.message, stack: err.stack } : { message: String(err) };
}

function connect(name: string, port: MessagePort): void {
  channels.get(name)?.close('replaced by a new channel');
  channels.set(name, new PeerChannel(name, port, onRequest, (topic, payload, from) => events.emit(topic, payload, from)));
}

function ref<P extends Protocol>(name: string): ActorRef<P> {
  return {
    name,
    get available() {
      return channels.get(name)?.isOpen ?? false;
    },
    call(type, payload, options) {
      const channel = channels.get(name);
      if (!channel) return Promise.reject(new ActorUnavailable(name, 'not running'));
      return channel.call(type, payload, options?.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS) as Promise<never>;
    },
  };
}

const ctx: ActorContext = {
  name: boot.name,
  config: boot.config,
  log,
  peer: ref,
  publish(topic, payload) {
    for (const channel of channels.values()) channel.emit(topic, payload);
  },
  subscribe(topic, handler) {
    return events.on(topic, handler as (payload: unknown, from: string) => void);
  },
};

for (const [name, port] of Object.entries(boot.peers)) connect(name, port);

const mod = (await import(boot.module)) as { default?: ActorDefinition<Protocol, unknown> };
const definition = mod.default;
if (!definition || typeof definition.start !== 'function') {
  throw new Error(`${boot.module} has no default export made with defineActor()`);
}

control.on('message', (msg: unknown) => {
  if (!isControlToActor(msg)) return;
  switch (msg.kind) {
    case 'peer-up':
      connect(msg.name, msg.port);
      return;
    case 'peer-down':
      channels.get(msg.name)?.close('it crashed or is restarting');
      return;
    case 'stop':
      void stopActor(msg.graceMs);
      return;
  }
});

async function stopActor(graceMs: number): Promise<void> {
  await definition!.stop?.(graceMs);
  sendControl({ kind: 'stopped' });
}

handlers = await definition.start(ctx);
sendControl({ kind: 'ready' });
