/**
 * @module cli/commands/artifacts
 * `flashpods artifacts <id>`: what a finished job left in /artifacts, with sizes and expiry.
 */
import { clientFromEnv } from '../client.ts';
import { bytes, print, printJson, relative, table } from '../format.ts';
import { jobId, parse, type Command } from './common.ts';

interface Listing {
  artifacts: Array<{ name: string; size_bytes: number; created_at: string | null }>;
  total_size_bytes: number;
  expires_at: string | null;
  copy_in_progress: boolean;
}

export const artifacts: Command = {
  name: 'artifacts',
  usage: 'artifacts <id>',
  summary: "list a finished job's artifacts",
  details: 'Names are what download takes; a directory artifact downloads as a tar. Artifacts are deleted some time after the job ends (the expiry is shown).',
  async run(args) {
    const parsed = parse(this, args, {}, ['id']);
    if (!parsed) return 0;
    const id = jobId(parsed.positionals[0]!);
    const body = await clientFromEnv().json<Listing>('GET', `/jobs/${id}/artifacts`);
    if (parsed.values.json) {
      printJson(body);
      return 0;
    }
    const now = Date.now();
    if (body.artifacts.length > 0) {
      print(
        table(
          body.artifacts,
          [
            { header: 'NAME', value: (a) => a.name },
            { header: 'SIZE', value: (a) => bytes(a.size_bytes), align: 'right' },
            { header: 'CREATED', value: (a) => relative(a.created_at, now) },
          ],
        ),
      );
    }
    const count = `${body.artifacts.length} artifact${body.artifacts.length === 1 ? '' : 's'}`;
    const due = body.expires_at ? relative(body.expires_at, now) : undefined;
    const expiry = due ? `; ${due.startsWith('in ') ? 'deleted' : 'due for deletion'} ${due} (${body.expires_at})` : '';
    print(`${count}, ${bytes(body.total_size_bytes)} in total${expiry}`);
    if (body.copy_in_progress) print('(still being indexed; the list may grow — run this again in a few seconds)');
    return 0;
  },
};
