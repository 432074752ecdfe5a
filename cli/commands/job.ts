/**
 * @module cli/commands/job
 * `flashpods job <id> [--wait [seconds]]`: one job's details. `--wait` long-polls until the job
 * is terminal (for at most `seconds` when given) and then shows it; the exit code is 0 whenever
 * the job could be shown, whatever its outcome (the status is in the output).
 */
import { isTerminal, type JobState } from '../../actors/contract/jobs.ts';
import { clientFromEnv, UsageError } from '../client.ts';
import { clean, duration, keyValues, print, printJson, when } from '../format.ts';
import type { JobResponse } from '../../actors/contract/api-schemas.ts';
import { jobId, parse, type Command } from './common.ts';

/** GET /jobs/:id's answer (contract/api-schemas.ts). */
export type JobView = JobResponse;

/** Each long-poll asks for at most this long (well under the HTTP client's header timeout). */
const POLL_SECONDS = 60;

/** `--wait`, `--wait N` and `--wait=N` out of `args` (parseArgs has no optional values). */
export function takeWait(args: string[]): { rest: string[]; wait: number | undefined } {
  const rest: string[] = [];
  let wait: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const inline = /^--wait=(.*)$/.exec(arg);
    if (inline || arg === '--wait') {
      const raw = inline ? inline[1]! : /^\d+(\.\d+)?$/.test(args[i + 1] ?? '') ? args[++i]! : undefined;
      if (raw === undefined) wait = Infinity;
      else if (/^\d+(\.\d+)?$/.test(raw)) wait = Number(raw);
      else throw new UsageError(`--wait takes a number of seconds (got ${JSON.stringify(raw)})`);
      continue;
    }
    if (arg === '--') {
      rest.push(...args.slice(i));
      break;
    }
    rest.push(arg);
  }
  return { rest, wait };
}

function statusText(job: JobView): string {
  if (job.exit_code !== undefined && job.exit_code !== null) return `${job.status} (exit ${job.exit_code})`;
  return job.status;
}

export function describeJob(job: JobView, now = Date.now()): string {
  const resources = `${job.cpus} cpu${job.cpus === 1 ? '' : 's'}, ${job.memory_gb} GB memory, timeout ${job.timeout_minutes} min`;
  return keyValues([
    ['id', job.id],
    ['type', job.type],
    ['status', statusText(job)],
    ['error', job.error === undefined ? undefined : clean(job.error)],
    ['command', job.command === undefined ? undefined : clean(job.command)],
    ['task', job.task === undefined ? undefined : job.task.split('\n').map(clean).join('\n')],
    ['branch', job.git_branch === undefined ? undefined : clean(job.git_branch)],
    ['files', job.files_id],
    ['image', job.image],
    ['resources', resources],
    ['created', when(job.created_at, now)],
    ['queue', job.queue_position === undefined ? undefined : `position ${job.queue_position}`],
    ['queued for', job.queue_wait_seconds === undefined ? undefined : `${duration(job.queue_wait_seconds)}${job.backfilled ? ' (then started ahead of the queue by backfill)' : ''}`],
    ['started', when(job.started_at, now)],
    ['elapsed', job.elapsed_seconds === undefined ? undefined : duration(job.elapsed_seconds)],
    ['completed', when(job.completed_at, now)],
    ['duration', job.duration_seconds === undefined ? undefined : duration(job.duration_seconds)],
    ['ran for', job.actual_runtime_seconds === undefined ? undefined : duration(job.actual_runtime_seconds)],
  ]);
}

export const job: Command = {
  name: 'job',
  usage: 'job <id> [--wait [seconds]]',
  summary: "show a job's details",
  details: 'With --wait, waits until the job has finished (for at most the given seconds, if any), then shows it. Exits 0 whenever the job was shown, whatever its outcome.',
  async run(args) {
    const { rest, wait } = takeWait(args);
    const parsed = parse(this, rest, {}, ['id']);
    if (!parsed) return 0;
    const id = jobId(parsed.positionals[0]!);
    const client = clientFromEnv();

    let view = await client.json<JobView>('GET', `/jobs/${id}`);
    if (wait !== undefined && !isTerminal(view.status)) {
      const deadline = Date.now() + wait * 1000;
      const showProgress = process.stderr.isTTY && !parsed.values.json;
      if (showProgress) process.stderr.write(`waiting for ${id} (${view.status})…`);
      while (!isTerminal(view.status) && Date.now() < deadline) {
        const seconds = Math.min(POLL_SECONDS, Math.ceil((deadline - Date.now()) / 1000));
        view = await client.json<JobView>('GET', `/jobs/${id}`, { query: { wait: seconds } });
        if (showProgress) process.stderr.write(`\r\x1b[Kwaiting for ${id} (${view.status})…`);
      }
      if (showProgress) process.stderr.write('\r\x1b[K');
    }
    if (parsed.values.json) printJson(view);
    else print(describeJob(view));
    return 0;
  },
};
