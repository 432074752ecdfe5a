/**
 * @module cli/commands/common
 * What every client command shares: the command shape, argument parsing with `--json` and
 * `--help` built in (bad arguments are UsageErrors, exit 2), and checks of ids and numbers
 * against the contract.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ID_PATTERNS } from '../../actors/contract/jobs.ts';
import { UsageError } from '../client.ts';

export interface Command {
  name: string;
  /** One usage line without the common `[--json]`, e.g. `logs <id> [-f] [--tail n]`. */
  usage: string;
  /** One short line for `flashpods help`. */
  summary: string;
  /** More for `flashpods <name> --help`. */
  details?: string;
  /** Runs the command; resolves with the exit code. */
  run(args: string[]): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | undefined> & { json?: boolean };
  positionals: string[];
}

/**
 * Parses `args` for `command`; undefined when `--help` was asked for (and printed). Checks the
 * number of positional arguments, naming what is missing.
 */
export function parse(command: Pick<Command, 'usage' | 'summary' | 'details'>, args: string[], options: Options, positionals: string[]): Parsed | undefined {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...options, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (err) {
    const message = (err as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(`${message}\nusage: flashpods ${command.usage}`);
  }
  if (parsed.values.help) {
    process.stdout.write(`usage: flashpods ${command.usage} [--json]\n\n${command.summary}.${command.details ? `\n${command.details}` : ''}\n`);
    return undefined;
  }
  if (parsed.positionals.length < positionals.length) {
    throw new UsageError(`missing ${positionals.slice(parsed.positionals.length).map((p) => `<${p}>`).join(' ')}\nusage: flashpods ${command.usage}`);
  }
  if (parsed.positionals.length > positionals.length) {
    throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[positionals.length])}\nusage: flashpods ${command.usage}`);
  }
  return parsed as unknown as Parsed;
}

export function jobId(raw: string): string {
  if (!ID_PATTERNS.job.test(raw)) throw new UsageError(`${JSON.stringify(raw)} is not a job id; job ids look like job_ followed by 16 lowercase letters or digits (flashpods jobs lists them)`);
  return raw;
}

/** A whole number option of at least `min`, or `fallback` when absent. */
export function wholeNumber(raw: string | boolean | undefined, name: string, min: number, fallback?: number): number | undefined {
  if (raw === undefined || typeof raw === 'boolean') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min) throw new UsageError(`${name} must be a whole number of at least ${min} (got ${JSON.stringify(raw)})`);
  return Number(raw);
}
