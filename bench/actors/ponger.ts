/**
 * @module bench/actors/ponger
 * Bench actor: answers `ping` with the sequence number it was sent. The handler is exported on
 * its own so the bench's same-thread baseline awaits the very same function.
 */
import { defineActor } from '../../runtime/actor.ts';
import { pinFromConfig } from './pin.ts';

export type PingRequest = { seq: number };
export type PingReply = { seq: number };

export type PongerProtocol = {
  ping: { req: PingRequest; res: PingReply };
};

export function ping(payload: PingRequest): PingReply {
  return { seq: payload.seq };
}

export default defineActor<PongerProtocol>({
  start(ctx) {
    pinFromConfig(ctx.name, ctx.config);
    return { ping };
  },
});
