/**
 * @module cli/commands
 * The client commands of `flashpods`, by name, in the order the usage text lists them.
 */
import { CliError } from '../client.ts';
import { artifacts } from './artifacts.ts';
import { dbCommand } from './db.ts';
import type { Command } from './common.ts';
import { download } from './download.ts';
import { health } from './health.ts';
import { job } from './job.ts';
import { jobs } from './jobs.ts';
import { kill } from './kill.ts';
import { logs } from './logs.ts';

export type { Command } from './common.ts';

export const COMMANDS: ReadonlyMap<string, Command> = new Map([jobs, job, logs, artifacts, download, kill, health, dbCommand].map((c) => [c.name, c]));

/** Usage lines for `flashpods help`, aligned like the `serve` line. */
export function commandUsage(width = 45): string {
  return [...COMMANDS.values()].map((c) => `  ${c.usage.padEnd(width)}   ${c.summary}`).join('\n');
}

/** Runs a client command: its CliErrors print as `flashpods: <message>`; resolves with the exit code. */
export async function runCommand(command: Command, args: string[]): Promise<number> {
  // `flashpods logs -f | head` closes stdout early: stop quietly instead of with a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  try {
    return await command.run(args);
  } catch (err) {
    if (err instanceof CliError) {
      process.stderr.write(`flashpods: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
}
