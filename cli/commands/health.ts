/**
 * @module cli/commands/health
 * `flashpods health`: GET /health (no token needed). Exit 0 when healthy, 1 when degraded (an
 * actor is not running) or unreachable.
 */
import { clientFromEnv } from '../client.ts';
import { duration, keyValues, print, printJson } from '../format.ts';
import { parse, type Command } from './common.ts';

interface Health {
  status: string;
  version: string;
  uptime_seconds: number;
  actors?: Record<string, string>;
}

export const health: Command = {
  name: 'health',
  usage: 'health',
  summary: 'check the server and its actors (no token needed)',
  details: 'Exits 0 when every actor runs, 1 when the server is degraded or unreachable.',
  async run(args) {
    const parsed = parse(this, args, {}, []);
    if (!parsed) return 0;
    const client = clientFromEnv({ token: false });
    const body = await client.json<Health>('GET', '/health', { auth: false, accept: [503] });
    if (parsed.values.json) printJson(body);
    else {
      const actors = Object.entries(body.actors ?? {}).sort(([a], [b]) => a.localeCompare(b));
      print(
        keyValues([
          ['status', body.status],
          ['server', client.display],
          ['version', body.version],
          ['uptime', duration(body.uptime_seconds)],
          ['actors', actors.length ? actors.map(([name, state]) => `${name} ${state}`).join(', ') : undefined],
        ]),
      );
    }
    return body.status === 'healthy' ? 0 : 1;
  },
};
