/**
 * @module cli/main
 * Dispatches `flashpods <command>`. Errors a user can fix print one clear message and exit 2;
 * nothing prints a stack trace unless it is a bug.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../actors/contract/config.ts';
import { DEFAULT_ACTORS } from './actors.ts';
import { DEFAULT_URL } from './client.ts';
import { commandUsage, COMMANDS, runCommand } from './commands/index.ts';
import { serve, StartupError } from './serve.ts';

const USAGE = `usage: flashpods <command>

  serve [--actors api,scheduler,...] [--pretty]   run actors under the supervisor (default: the API unit)
  validate [--offline] [--json] [--only ids]      run the host checklist (shared/spec/host.md) on the host, as root

${commandUsage()}

The server's configuration comes from FLASHPODS_* environment variables and the JSON file named by FLASHPODS_CONFIG.
The other commands talk to FLASHPODS_URL (default ${DEFAULT_URL}) with the token in FLASHPODS_API_TOKEN,
or in the file named by FLASHPODS_API_TOKEN_FILE (default: ./.flashpods/api-token, then /etc/flashpods/api-token).
Every one takes --json for machine output and --help; errors exit 1, usage errors 2.`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve': {
      const { values } = parseArgs({ args: rest, options: { actors: { type: 'string' }, pretty: { type: 'boolean' } } });
      const config = loadConfig();
      if (values.pretty) config.log.format = 'pretty';
      const actors = values.actors ? values.actors.split(',').map((s) => s.trim()).filter(Boolean) : DEFAULT_ACTORS;
      await serve(config, actors);
      return;
    }
    case 'validate': {
      // Loaded only here: its Kubernetes checks pull in the cluster client, a second of start-up
      // every other command would pay for nothing.
      const { runValidate } = await import('./commands/validate.ts');
      process.exitCode = await runValidate(rest);
      return;
    }
    case undefined:
    case 'help':
    case '--help':
      process.stdout.write(`${USAGE}\n`);
      return;
    default: {
      const client = COMMANDS.get(command);
      if (client) {
        process.exitCode = await runCommand(client, rest);
        return;
      }
      throw new StartupError(`unknown command "${command}"\n${USAGE}`);
    }
  }
}

try {
  await main(process.argv.slice(2));
} catch (err) {
  if (err instanceof ConfigError || err instanceof StartupError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(`flashpods: ${(err as Error).message}\n`);
    process.exit(2);
  }
  throw err;
}
