/**
 * @module supervisor
 * Starts actors from child specs, each on its own worker thread, wires a direct message channel
 * between every pair of running actors, and restarts a crashed actor one-for-one with backoff.
 * An actor that crashes more than `maxRestarts` times within `periodMs` makes the supervisor give
 * up: everything is stopped in reverse start order and `onGiveUp` is told why (the CLI exits
 * non-zero so systemd restarts the unit).
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import type { ActorState, ActorRef } from './actor.ts';
import { PeerChannel } from './channel.ts';
import type { ActorBoot, ControlFromActor, ControlToActor, Protocol } from './envelope.ts';
import { isControlFromActor } from './envelope.ts';
import { ActorUnavailable } from './errors.ts';
import type { Logger } from './log.ts';

export type RestartPolicy = 'permanent' | 'transient' | 'temporary';

export interface ChildSpec {
  name: string;
  /** URL (file:) of the module whose default export is made with defineActor(). */
  module: string;
  /** permanent: always restart; transient: only after an abnormal exit; temporary: never. */
  restart: RestartPolicy;
  maxRestarts: number;
  periodMs: number;
  backoff: { initialMs: number; maxMs: number };
  /** A heap larger than this kills the thread (ERR_WORKER_OUT_OF_MEMORY), not the process. */
  maxHeapMb?: number;
  startTimeoutMs?: number;
}

export interface SupervisorOptions {
  logger: Logger;
  /** Handed to every actor as ctx.config. Must be structured-cloneable and hold no secret. */
  config: unknown;
  stopGraceMs: number;
  onGiveUp: (reason: string) => void;
  /** Lets tests kill an actor on demand (FAULT_CRASH); never on in production. */
  faultInjection?: boolean;
}

const SUPERVISOR = 'supervisor';
const DEFAULT_START_TIMEOUT_MS = 30_000;
const CALL_TIMEOUT_MS = 5_000;
const bootUrl = new URL('./worker-boot.mjs', import.meta.url);

interface Child {
  spec: ChildSpec;
  state: ActorState;
  worker: Worker | undefined;
  channel: PeerChannel | undefined;
  restarts: number[];
  lastError: string | undefined;
  lastStack: string | undefined;
  ready: Promise<void> | undefined;
  stopped: (() => void) | undefined;
  restartTimer: NodeJS.Timeout | undefined;
}

export class Supervisor {
  private readonly children: Child[];
  private readonly options: SupervisorOptions;
  private shuttingDown = false;
  private readonly restartTotals = new Map<string, number>();
  private gaveUp = false;

  constructor(specs: ChildSpec[], options: SupervisorOptions) {
    const names = new Set<string>();
    for (const spec of specs) {
      if (names.has(spec.name) || spec.name === SUPERVISOR) throw new Error(`duplicate or reserved actor name "${spec.name}"`);
      names.add(spec.name);
    }
    this.options = options;
    this.children = specs.map((spec) => ({
      spec, state: 'stopped', worker: undefined, channel: undefined, restarts: [], lastError: undefined, lastStack: undefined,
      ready: undefined, stopped: undefined, restartTimer: undefined,
    }));
  }

  /** Starts every actor in spec order, each one ready before the next starts. */
  async start(): Promise<void> {
    for (const child of this.children) {
      this.spawn(child);
      await child.ready;
      if (this.gaveUp) throw new Error('supervisor gave up during start');
    }
  }

  states(): Record<string, ActorState> {
    return Object.fromEntries(this.children.map((c) => [c.spec.name, c.state]));
  }

  /** A typed reference from the main thread (the CLI and tests use it; actors use ctx.peer). */
  ref<P extends Protocol>(name: string): ActorRef<P> {
    const child = this.child(name);
    return {
      name,
      get available() {
        return child.channel?.isOpen ?? false;
      },
      call(type, payload, options) {
        if (!child.channel || child.state !== 'running') return Promise.reject(new ActorUnavailable(name, child.state));
        return child.channel.call(type, payload, options?.timeoutMs ?? CALL_TIMEOUT_MS) as Promise<never>;
      },
    };
  }

  /** Stops actors in reverse start order; each gets `stopGraceMs` to finish in-flight work. */
  async shutdown(reason: string): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.options.logger.info({ event: 'shutdown', reason }, 'supervisor shutting down');
    for (const child of [...this.children].reverse()) await this.stopChild(child);
  }

  private child(name: string): Child {
    const child = this.children.find((c) => c.spec.name === name);
    if (!child) throw new Error(`no actor named "${name}"`);
    return child;
  }

  private spawn(child: Child): void {
    const { spec } = child;
    const peers: Record<string, MessagePort> = {};
    const transfer: MessagePort[] = [];

    const toSupervisor = new MessageChannel();
    peers[SUPERVISOR] = toSupervisor.port2;
    transfer.push(toSupervisor.port2);
    for (const other of this.children) {
      if (other === child || other.state !== 'running' || !other.worker) continue;
      const pair = new MessageChannel();
      peers[other.spec.name] = pair.port1;
      transfer.push(pair.port1);
      this.sendControl(other, { kind: 'peer-up', name: spec.name, port: pair.port2 }, [pair.port2]);
    }

    const boot: ActorBoot = { name: spec.name, module: spec.module, config: this.options.config, peers, faultInjection: this.options.faultInjection ?? false, logLevel: this.options.logger.level };
    const worker = new Worker(bootUrl, {
      workerData: boot,
      transferList: transfer,
      name: `actor:${spec.name}`,
      resourceLimits: spec.maxHeapMb ? { maxOldGenerationSizeMb: spec.maxHeapMb } : undefined,
    });
    child.worker = worker;
    child.lastError = undefined;
    child.channel = new PeerChannel(spec.name, toSupervisor.port1, () => {
      throw new Error('the supervisor answers no requests');
    }, () => undefined);
    this.setState(child, 'starting');
    this.options.logger.info({ actor: spec.name, event: 'started', threadId: worker.threadId }, `actor ${spec.name} started`);

    child.ready = new Promise<void>((resolve) => {
      const timeout = setTimeout(() => {
        child.lastError = `not ready within ${spec.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS} ms`;
        void worker.terminate();
      }, spec.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
      worker.on('message', (msg: unknown) => {
        if (!isControlFromActor(msg)) return;
        this.onControl(child, worker, msg, () => {
          clearTimeout(timeout);
          resolve();
        });
      });
      worker.on('error', (err) => {
        child.lastError = `${(err as NodeJS.ErrnoException).code ?? err.name}: ${err.message}`;
        child.lastStack = err.stack;
      });
      worker.on('exit', (code) => {
        clearTimeout(timeout);
        this.onExit(child, worker, code);
        resolve();
      });
    });
  }

  private onControl(child: Child, worker: Worker, msg: ControlFromActor, markReady: () => void): void {
    if (child.worker !== worker) return;
    switch (msg.kind) {
      case 'ready':
        this.setState(child, 'running');
        this.options.logger.info({ actor: child.spec.name, event: 'ready' }, `actor ${child.spec.name} ready`);
        markReady();
        return;
      case 'stopped':
        child.stopped?.();
        return;
      case 'log':
        this.options.logger[msg.level]({ actor: child.spec.name, ...msg.fields }, msg.msg);
        return;
    }
  }

  private onExit(child: Child, worker: Worker, code: number): void {
    if (child.worker !== worker) return;
    child.worker = undefined;
    child.channel?.close(`exited with code ${code}`);
    child.channel = undefined;
    for (const other of this.children) {
      if (other !== child && other.worker) this.sendControl(other, { kind: 'peer-down', name: child.spec.name });
    }
    if (child.state === 'stopping') {
      child.stopped?.();
      return;
    }

    const reason = child.lastError ?? `thread exited with code ${code}`;
    const abnormal = child.lastError !== undefined || code !== 0;
    this.options.logger.error(
      { actor: child.spec.name, event: 'crashed', exitCode: code, err: { message: reason, stack: child.lastStack } },
      `actor ${child.spec.name} crashed: ${reason}`,
    );
    child.lastStack = undefined;

    const { spec } = child;
    const wantsRestart = spec.restart === 'permanent' || (spec.restart === 'transient' && abnormal);
    if (this.shuttingDown || !wantsRestart) {
      this.setState(child, 'stopped');
      return;
    }

    const now = Date.now();
    child.restarts = child.restarts.filter((t) => now - t < spec.periodMs);
    if (child.restarts.length >= spec.maxRestarts) {
      this.setState(child, 'failed');
      this.giveUp(child, reason);
      return;
    }
    child.restarts.push(now);
    const delay = Math.min(spec.backoff.maxMs, spec.backoff.initialMs * 2 ** (child.restarts.length - 1));
    this.setState(child, 'restarting');
    child.restartTimer = setTimeout(() => {
      child.restartTimer = undefined;
      if (this.shuttingDown) return;
      this.restartTotals.set(spec.name, (this.restartTotals.get(spec.name) ?? 0) + 1);
      this.spawn(child);
      this.options.logger.warn(
        { actor: spec.name, event: 'restarted', attempt: child.restarts.length, backoffMs: delay },
        `actor ${spec.name} restarted (${child.restarts.length} of ${spec.maxRestarts} within ${spec.periodMs} ms)`,
      );
    }, delay);
  }

  private giveUp(child: Child, reason: string): void {
    if (this.gaveUp) return;
    this.gaveUp = true;
    const { spec } = child;
    const why = `actor ${spec.name} crashed ${spec.maxRestarts + 1} times within ${spec.periodMs} ms; last reason: ${reason}`;
    this.options.logger.fatal({ actor: spec.name, event: 'gave_up', reason: why }, `giving up: ${why}`);
    void this.shutdown(why).then(() => this.options.onGiveUp(why));
  }

  private async stopChild(child: Child): Promise<void> {
    if (child.restartTimer) {
      clearTimeout(child.restartTimer);
      child.restartTimer = undefined;
    }
    const worker = child.worker;
    if (!worker) {
      if (child.state !== 'failed') this.setState(child, 'stopped');
      return;
    }
    const { name } = child.spec;
    this.setState(child, 'stopping');
    this.options.logger.info({ actor: name, event: 'stopping' }, `actor ${name} stopping`);
    const grace = this.options.stopGraceMs;
    const finished = new Promise<void>((resolve) => {
      child.stopped = resolve;
    });
    this.sendControl(child, { kind: 'stop', graceMs: grace });
    const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), grace + 1_000).unref());
    const outcome = await Promise.race([finished.then(() => 'done' as const), timer]);
    child.stopped = undefined;
    if (outcome === 'timeout') {
      this.options.logger.warn({ actor: name, event: 'stopping', graceMs: grace }, `actor ${name} did not stop within its grace; terminating`);
    }
    await worker.terminate();
    this.setState(child, 'stopped');
    this.options.logger.info({ actor: name, event: 'stopped' }, `actor ${name} stopped`);
  }

  restarts(): Record<string, number> {
    return Object.fromEntries(this.children.map((c) => [c.spec.name, this.restartTotals.get(c.spec.name) ?? 0]));
  }

  private setState(child: Child, state: ActorState): void {
    child.state = state;
    const states = this.states();
    const restarts = this.restarts();
    for (const other of this.children) {
      other.channel?.emit('actor-states', states);
      other.channel?.emit('actor-restarts', restarts);
    }
  }

  private sendControl(child: Child, msg: ControlToActor, transfer: MessagePort[] = []): void {
    child.worker?.postMessage(msg, transfer);
  }
}
