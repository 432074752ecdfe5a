/**
 * @module containers/messages
 * The containers actor is an executor: the scheduler commands it (each command carries all it
 * needs — the full container spec, every path) and it reports what happened as facts
 * (scheduler `report`). It decides nothing about a job's state. Every command is answered at
 * once with `accepted` and is idempotent per job: a command repeated while the same one is in
 * flight is absorbed.
 */
import type { Accepted } from '../contract/commands.ts';
import type { Command } from '../scheduler/lifecycle.ts';

type Payload<T extends Command['type']> = Extract<Command, { type: T }>;

export type ContainersProtocol = {
  createContainer: { req: Payload<'createContainer'>; res: Accepted };
  startContainer: { req: Payload<'startContainer'>; res: Accepted };
  killContainer: { req: Payload<'killContainer'>; res: Accepted };
  removeContainer: { req: Payload<'removeContainer'>; res: Accepted };
  status: { req: Record<string, never>; res: { podmanReachable: boolean; watchedJobs: string[] } };
  /** Runs one reconcile pass now and says what it saw (tests and operators use it). */
  reconcile: { req: Record<string, never>; res: ReconcileReport };
};

export interface ReconcileReport {
  podmanReachable: boolean;
  /** Unsettled jobs whose container was reported on. */
  observed: number;
  /** Labelled containers no unsettled job accounts for, reported as strays. */
  strays: number;
}
