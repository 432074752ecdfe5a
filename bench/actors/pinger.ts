/**
 * @module bench/actors/pinger
 * Bench actor: on `run`, performs `ping` round trips to the ponger actor (another worker thread)
 * for the requested time, timing each call on this thread with performance.now().
 */
import { defineActor } from '../../runtime/actor.ts';
import { measure, type MeasureOptions, type MeasureResult } from '../measure.ts';
import { pinFromConfig } from './pin.ts';
import type { PongerProtocol } from './ponger.ts';

export type PingerProtocol = {
  run: { req: MeasureOptions; res: MeasureResult };
};

interface PingerRegistry {
  peers: { ponger: PongerProtocol };
  topics: Record<never, never>;
}

export default defineActor<PingerProtocol, unknown, PingerRegistry>({
  start(ctx) {
    pinFromConfig(ctx.name, ctx.config);
    const ponger = ctx.peer('ponger');
    return {
      run: (options) => measure((seq) => ponger.call('ping', { seq }), options),
    };
  },
});
