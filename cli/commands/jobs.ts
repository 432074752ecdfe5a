/**
 * @module cli/commands/jobs
 * `flashpods jobs [--status s] [--limit n]`: recent jobs, newest first, as a table.
 */
import type { JobListResponse } from '../../actors/contract/api-schemas.ts';
import { LIST_LIMIT, STATUS_FILTERS } from '../../actors/contract/jobs.ts';
import { clientFromEnv, UsageError } from '../client.ts';
import { print, printJson, relative, table, terminalWidth } from '../format.ts';
import { parse, wholeNumber, type Command } from './common.ts';


const STATUSES = Object.keys(STATUS_FILTERS);

export const jobs: Command = {
  name: 'jobs',
  usage: 'jobs [--status s] [--limit n]',
  summary: 'list recent jobs, newest first',
  details: `--status is one of ${STATUSES.join(', ')} (queued lists the queue in order; running also covers pending and starting; failed covers timed_out, cancelled and expired). --limit defaults to ${LIST_LIMIT.default}, at most ${LIST_LIMIT.max}.`,
  async run(args) {
    const parsed = parse(this, args, { status: { type: 'string', short: 's' }, limit: { type: 'string', short: 'n' } }, []);
    if (!parsed) return 0;
    const status = (parsed.values.status as string | undefined) ?? 'all';
    if (!STATUSES.includes(status)) throw new UsageError(`--status must be one of ${STATUSES.join(', ')} (got ${JSON.stringify(status)})`);
    const limit = wholeNumber(parsed.values.limit, '--limit', 1, LIST_LIMIT.default)!;
    if (limit > LIST_LIMIT.max) throw new UsageError(`--limit must be at most ${LIST_LIMIT.max} (got ${limit})`);

    const body = await clientFromEnv().json<JobListResponse>('GET', '/jobs', { query: { status, limit } });
    if (parsed.values.json) {
      printJson(body);
      return 0;
    }
    if (body.jobs.length === 0) {
      print(status === 'all' ? 'no jobs yet' : `no ${status} jobs`);
      return 0;
    }
    const now = Date.now();
    print(
      table(
        body.jobs,
        [
          { header: 'ID', value: (j) => j.id },
          { header: 'TYPE', value: (j) => j.type },
          { header: 'STATUS', value: (j) => (j.queue_position === undefined ? j.status : `queued #${j.queue_position}`) },
          { header: 'EXIT', value: (j) => (j.exit_code === null ? '-' : String(j.exit_code)), align: 'right' },
          { header: 'CREATED', value: (j) => relative(j.created_at, now) },
          { header: 'ENDED', value: (j) => relative(j.completed_at, now) },
          { header: 'COMMAND', value: (j) => j.command ?? '-' },
        ],
        terminalWidth(),
      ),
    );
    if (body.total > body.jobs.length) print(`(${body.jobs.length} of ${body.total}; --limit n shows more)`);
    return 0;
  },
};
