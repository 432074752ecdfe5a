/**
 * @module cli/commands/kill
 * `flashpods kill <id>`: cancels a job (DELETE /jobs/:id). The container gets the kill grace
 * period to stop; the job is `cancelled` at once.
 */
import { clientFromEnv } from '../client.ts';
import { print, printJson } from '../format.ts';
import { jobId, parse, type Command } from './common.ts';

export const kill: Command = {
  name: 'kill',
  usage: 'kill <id>',
  summary: 'cancel a pending or running job',
  details: 'The job is cancelled at once; its container gets the kill grace period to stop.',
  async run(args) {
    const parsed = parse(this, args, {}, ['id']);
    if (!parsed) return 0;
    const id = jobId(parsed.positionals[0]!);
    const body = await clientFromEnv().json<{ job_id: string; status: string; message: string }>('DELETE', `/jobs/${id}`);
    if (parsed.values.json) printJson(body);
    else print(`${body.job_id} ${body.status}: ${body.message.replace(/\.?$/, '').toLowerCase()}`);
    return 0;
  },
};
