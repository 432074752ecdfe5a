/**
 * @module mcp/main
 * `flashpods-mcp`: the MCP stdio shim. Reads its configuration (a missing token or a bad value
 * stops it with a message on stderr and exit code 1), then serves MCP on stdin/stdout until
 * stdin closes. stdout carries nothing but protocol.
 */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { ConfigError, loadConfig, type McpConfig } from './config.ts';
import { stderrLog, type LogLevel } from './log.ts';
import { createShimServer } from './server.ts';

const level = (['debug', 'info', 'warn', 'error'] as const).find((l) => l === process.env.FLASHPODS_MCP_LOG_LEVEL) ?? 'info';
const log = stderrLog(level as LogLevel);

let config: McpConfig;
try {
  config = loadConfig();
} catch (err) {
  process.stderr.write(`flashpods-mcp: ${err instanceof ConfigError ? err.message : String(err)}\n`);
  process.exit(1);
}

const tick = process.env.FLASHPODS_MCP_WAIT_TICK_MS;
const { server } = createShimServer({ config, log, ...(tick && /^\d+$/.test(tick) ? { waitTickMs: Number(tick) } : {}) });
const transport = new StdioServerTransport();

process.on('uncaughtException', (err) => log.error('uncaught exception', { err: err.stack ?? String(err) }));
process.on('unhandledRejection', (err) => log.error('unhandled rejection', { err: err instanceof Error ? (err.stack ?? err.message) : String(err) }));
const stop = () => {
  void server.close().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
process.stdin.once('end', stop);

await server.connect(transport);
log.info('flashpods-mcp ready', {
  api: `http://${config.apiHost}:${config.apiPort}`, rsync: `rsync://${config.rsyncHost}:${config.rsyncPort}/uploads/`,
  config_file: config.configFile ?? null, download_dir: config.downloadDir,
});
