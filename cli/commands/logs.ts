/**
 * @module cli/commands/logs
 * `flashpods logs <id> [-f] [--tail n]`: the last lines of a job's log, or with `-f` the live
 * stream (GET /jobs/:id/output/stream) until the job ends. Lines go to stdout as captured; the
 * end of a followed job is noted on stderr. With `--json`, `-f` writes one JSON object a line.
 */
import { OUTPUT_TAIL } from '../../actors/contract/jobs.ts';
import { CliError, clientFromEnv, networkCode, networkReason, sseEvents, type Client } from '../client.ts';
import { printJson } from '../format.ts';
import { jobId, parse, wholeNumber, type Command } from './common.ts';

interface Output {
  output: string;
  lines: number;
  truncated: boolean;
  total_bytes: number;
}

/** Follows the stream; resolves with the `end` event's data. */
async function follow(client: Client, id: string, tail: number, json: boolean): Promise<{ status?: string; exit_code?: number | null }> {
  const write = (text: string) => process.stdout.write(text);
  for (;;) {
    const res = await client.request('GET', `/jobs/${id}/output/stream`, { query: { tail } });
    if (!res.body) throw new CliError(`the log stream of ${id} came back empty`);
    try {
      for await (const event of sseEvents(res.body)) {
        if (event.event === 'line') write(json ? `${JSON.stringify({ event: 'line', data: event.data })}\n` : `${event.data}\n`);
        else if (event.event === 'end') {
          const end = JSON.parse(event.data) as { status?: string; exit_code?: number | null };
          if (json) write(`${JSON.stringify({ event: 'end', ...end })}\n`);
          return end;
        }
      }
    } catch (err) {
      // A job silent for the HTTP client's body timeout (5 min): nothing was missed, so pick up
      // from the current end of the log.
      if (networkCode(err) === 'UND_ERR_BODY_TIMEOUT') {
        tail = 0;
        continue;
      }
      throw new CliError(`the log stream of ${id} broke off (${networkReason(err)}); flashpods logs ${id} shows what was captured`);
    }
    throw new CliError(`the log stream of ${id} ended before the job did; flashpods logs ${id} shows what was captured`);
  }
}

export const logs: Command = {
  name: 'logs',
  usage: 'logs <id> [-f] [--tail n]',
  summary: "print a job's log; -f follows it until the job ends",
  details: `--tail lines from the end (default ${OUTPUT_TAIL.default}, at most ${OUTPUT_TAIL.max}; with -f, 0 shows only new lines). With -f --json, one JSON object a line: {"event":"line","data":…} then {"event":"end",…}.`,
  async run(args) {
    const parsed = parse(this, args, { follow: { type: 'boolean', short: 'f' }, tail: { type: 'string', short: 'n' } }, ['id']);
    if (!parsed) return 0;
    const id = jobId(parsed.positionals[0]!);
    const followMode = parsed.values.follow === true;
    const tail = wholeNumber(parsed.values.tail, '--tail', followMode ? 0 : 1, OUTPUT_TAIL.default)!;
    const client = clientFromEnv();

    if (followMode) {
      const end = await follow(client, id, tail, parsed.values.json === true);
      if (!parsed.values.json) {
        const exit = end.exit_code === null || end.exit_code === undefined ? '' : `, exit ${end.exit_code}`;
        process.stderr.write(`[${id} ${end.status ?? 'ended'}${exit}]\n`);
      }
      return 0;
    }
    const body = await client.json<Output>('GET', `/jobs/${id}/output`, { query: { tail } });
    if (parsed.values.json) {
      printJson(body);
      return 0;
    }
    process.stdout.write(body.output === '' || body.output.endsWith('\n') ? body.output : `${body.output}\n`);
    if (body.output === '' && process.stderr.isTTY) process.stderr.write(`(${id} has no output yet)\n`);
    if (body.truncated) process.stderr.write(`(the log of ${id} reached its size cap; output after that point was not kept)\n`);
    return 0;
  },
};
