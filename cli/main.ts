/**
 * @module cli/main
 * Dispatches `flashpods <command>`. Errors a user can fix print one clear message and exit 2;
 * nothing prints a stack trace unless it is a bug.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../actors/contract/config.ts';
import { DEFAULT_ACTORS } from './actors.ts';
import { serve, StartupError } from './serve.ts';

const USAGE = `usage: flashpods <command>

  serve [--actors api,scheduler,...] [--pretty]   run actors under the supervisor (default: the API unit)

Configuration comes from FLASHPODS_* environment variables and the JSON file named by FLASHPODS_CONFIG.`;

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
    case undefined:
    case 'help':
    case '--help':
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
      throw new StartupError(`unknown command "${command}"\n${USAGE}`);
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
