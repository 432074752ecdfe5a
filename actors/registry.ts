/**
 * @module registry
 * Flashpods' actors and topics for the runtime's typed context (runtime/actor.ts Registry): every
 * `ctx.peer(name)` returns the protocol of the actor of that name, and every `publish`/`subscribe`
 * carries the payload of its topic, so a wrong name, request or payload does not compile. The
 * supervisor's child specs (cli/serve) start the actors these names stand for.
 */
import type { Registry } from '../runtime/actor.ts';
import type { ApiProtocol } from './api/messages.ts';
import type { ArtifactsProtocol } from './artifacts/messages.ts';
import type { ContainersProtocol } from './containers/messages.ts';
import type { JobType } from './contract/jobs.ts';
import type { CleanupReport, JobChanged, SchedulerProtocol } from './scheduler/messages.ts';
import type { TokensProtocol } from './tokens/messages.ts';

export interface FlashpodsRegistry extends Registry {
  peers: {
    scheduler: SchedulerProtocol;
    containers: ContainersProtocol;
    artifacts: ArtifactsProtocol;
    api: ApiProtocol;
    tokens: TokensProtocol;
  };
  topics: {
    'job-changed': JobChanged;
    'cleanup-done': CleanupReport;
    'admission-rejected': { type: JobType };
  };
}

export type ActorName = keyof FlashpodsRegistry['peers'];

const ACTOR_NAMES: Record<ActorName, true> = { scheduler: true, containers: true, artifacts: true, api: true, tokens: true };

export function isActorName(name: string): name is ActorName {
  return Object.hasOwn(ACTOR_NAMES, name);
}
