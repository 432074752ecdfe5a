/**
 * @module fault-routes
 * Fault injection, mounted only when FLASHPODS_FAULT_INJECTION=true (refused in production):
 * POST /_faults/crash/:actor?how=throw|exit kills that actor's thread, so tests can prove
 * that no state is lost when an actor crashes. Not part of the API contract.
 */
import type { Hono } from 'hono';
import type { ActorContext } from '../../runtime/actor.ts';
import { isActorName, type FlashpodsRegistry } from '../registry.ts';
import { FAULT_CRASH, type FaultCrash } from '../../runtime/envelope.ts';
import type { AppEnv } from './app.ts';

export function faultRoutes(ctx: ActorContext<unknown, FlashpodsRegistry>) {
  return (app: Hono<AppEnv>) => {
    app.post('/_faults/crash/:actor', async (c) => {
      const actor = c.req.param('actor');
      if (!isActorName(actor)) return c.json({ error: 'not_found', message: `No actor ${actor}.` }, 404);
      const how: FaultCrash['how'] = c.req.query('how') === 'exit' ? 'exit' : 'throw';
      if (actor === ctx.name) {
        setTimeout(() => {
          if (how === 'exit') process.exit(70);
          throw new Error('fault injection: crash requested');
        }, 50);
      } else {
        await ctx.peer(actor).call(FAULT_CRASH, { how });
      }
      return c.json({ crashing: actor, how }, 202);
    });
  };
}
