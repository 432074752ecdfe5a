/**
 * @module mcp/config
 * Settings of the laptop-side MCP shim (spec/mcp.md "Configuration"). Precedence: defaults <
 * `~/.config/flashpods/config.json` (or the file named by FLASHPODS_MCP_CONFIG) < environment.
 * Every bad value is reported at once, naming the variable or key that holds it; a missing
 * FLASHPODS_API_TOKEN is an error. The token lives only in the environment, never in the file.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

export const DEFAULT_EXCLUDE = ['.git', 'node_modules', 'target', '__pycache__', '.venv'] as const;

export interface McpConfig {
  apiToken: string;
  apiHost: string;
  apiPort: number;
  rsyncHost: string;
  rsyncPort: number;
  defaultExclude: string[];
  retry: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number };
  /** Per-request timeout for ordinary API calls (long-polls get their wait on top). */
  requestTimeoutMs: number;
  /** download_artifact never writes outside this directory. */
  downloadDir: string;
  /** The config file that was read, if any (for diagnostics). */
  configFile: string | undefined;
}

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Flashpods MCP shim configuration is invalid:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Env = Record<string, string | undefined>;

interface Setting {
  /** Key in config.json. */
  key: string;
  env: string;
  kind: 'host' | 'port' | 'int' | 'list' | 'path';
  min?: number;
}

/** Every setting: its file key and its environment variable. */
export const SETTINGS: readonly Setting[] = [
  { key: 'api_host', env: 'FLASHPODS_HOST', kind: 'host' },
  { key: 'api_port', env: 'FLASHPODS_PORT', kind: 'port' },
  { key: 'rsync_host', env: 'FLASHPODS_RSYNC_HOST', kind: 'host' },
  { key: 'rsync_port', env: 'FLASHPODS_RSYNC_PORT', kind: 'port' },
  { key: 'default_exclude', env: 'FLASHPODS_DEFAULT_EXCLUDE', kind: 'list' },
  { key: 'retry_max_attempts', env: 'FLASHPODS_RETRY_MAX_ATTEMPTS', kind: 'int', min: 1 },
  { key: 'retry_base_delay_ms', env: 'FLASHPODS_RETRY_BASE_DELAY_MS', kind: 'int', min: 0 },
  { key: 'retry_max_delay_ms', env: 'FLASHPODS_RETRY_MAX_DELAY_MS', kind: 'int', min: 0 },
  { key: 'request_timeout_ms', env: 'FLASHPODS_REQUEST_TIMEOUT_MS', kind: 'int', min: 100 },
  { key: 'download_dir', env: 'FLASHPODS_DOWNLOAD_DIR', kind: 'path' },
];

/** Every variable the shim reads: its settings, the token, the config file, main.ts's knobs. */
export const SHIM_ENV: readonly string[] = [...SETTINGS.map((s) => s.env), 'FLASHPODS_API_TOKEN', 'FLASHPODS_MCP_CONFIG', 'FLASHPODS_MCP_LOG_LEVEL', 'FLASHPODS_MCP_WAIT_TICK_MS'];

const DEFAULTS: Record<string, unknown> = {
  api_host: '10.0.0.1',
  api_port: 8080,
  rsync_port: 873,
  default_exclude: [...DEFAULT_EXCLUDE],
  retry_max_attempts: 5,
  retry_base_delay_ms: 1000,
  retry_max_delay_ms: 30_000,
  request_timeout_ms: 30_000,
};

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])$/;

export function defaultConfigFile(env: Env): string {
  return env.FLASHPODS_MCP_CONFIG || join(env.HOME || homedir(), '.config', 'flashpods', 'config.json');
}

/** Reads the environment and the config file; throws ConfigError listing every problem. */
export function loadConfig(env: Env = process.env, cwd = process.cwd()): McpConfig {
  const problems: string[] = [];
  const path = defaultConfigFile(env);
  let file: Record<string, unknown> = {};
  let configFile: string | undefined;
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' || env.FLASHPODS_MCP_CONFIG) problems.push(`cannot read config file ${path}: ${code ?? (err as Error).message}`);
  }
  if (text !== undefined) {
    configFile = path;
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) problems.push(`${path} must hold a JSON object`);
      else file = parsed as Record<string, unknown>;
    } catch (err) {
      problems.push(`${path} is not valid JSON: ${(err as Error).message}`);
    }
  }
  const known = new Set(SETTINGS.map((s) => s.key));
  for (const key of Object.keys(file)) {
    if (key === 'api_token') problems.push(`${path}: api_token does not belong in the file; set FLASHPODS_API_TOKEN in the environment of the MCP server entry`);
    else if (!known.has(key)) problems.push(`${path}: unknown key "${key}" (known: ${[...known].join(', ')})`);
  }

  const values: Record<string, unknown> = {};
  for (const setting of SETTINGS) {
    const raw = env[setting.env];
    const fromEnv = raw !== undefined && raw !== '';
    const source = fromEnv ? setting.env : `${path}: ${setting.key}`;
    const value: unknown = fromEnv ? raw : file[setting.key];
    if (value === undefined) {
      values[setting.key] = DEFAULTS[setting.key];
      continue;
    }
    const parsed = parseSetting(setting, value, fromEnv, cwd);
    if (typeof parsed === 'string' && parsed.startsWith('!')) problems.push(`${source}: ${parsed.slice(1)}`);
    else values[setting.key] = parsed;
  }

  const apiToken = (env.FLASHPODS_API_TOKEN ?? '').trim();
  if (!apiToken) {
    problems.unshift(
      'FLASHPODS_API_TOKEN is not set. Put the API token (the contents of /etc/flashpods/api-token on the host) ' +
        'in the "env" of the flashpods entry under "mcpServers" in your MCP client configuration.',
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const apiHost = values.api_host as string;
  return {
    apiToken,
    apiHost,
    apiPort: values.api_port as number,
    rsyncHost: (values.rsync_host as string | undefined) ?? apiHost,
    rsyncPort: values.rsync_port as number,
    defaultExclude: values.default_exclude as string[],
    retry: {
      maxAttempts: values.retry_max_attempts as number,
      baseDelayMs: values.retry_base_delay_ms as number,
      maxDelayMs: values.retry_max_delay_ms as number,
    },
    requestTimeoutMs: values.request_timeout_ms as number,
    downloadDir: (values.download_dir as string | undefined) ?? cwd,
    configFile,
  };
}

/** The parsed value, or a string starting with "!" describing the problem. */
function parseSetting(setting: Setting, value: unknown, fromEnv: boolean, cwd: string): unknown {
  switch (setting.kind) {
    case 'host':
      return typeof value === 'string' && HOST.test(value) ? value : `!must be a host name or IP address (got ${JSON.stringify(value)})`;
    case 'port':
    case 'int': {
      const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
      const min = setting.kind === 'port' ? 1 : (setting.min ?? 0);
      const max = setting.kind === 'port' ? 65_535 : Number.MAX_SAFE_INTEGER;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) return `!must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)})`;
      return n;
    }
    case 'list': {
      const list = fromEnv && typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter(Boolean) : value;
      if (!Array.isArray(list) || !list.every((s) => typeof s === 'string' && s.length > 0 && !s.includes('\n'))) {
        return `!must be a list of rsync exclude patterns (${fromEnv ? 'comma-separated' : 'a JSON array of strings'})`;
      }
      return list as string[];
    }
    case 'path':
      if (typeof value !== 'string' || value === '') return '!must be a directory path';
      return isAbsolute(value) ? value : resolve(cwd, value);
  }
}

export function apiBaseUrl(config: McpConfig): string {
  const host = config.apiHost.includes(':') && !config.apiHost.startsWith('[') ? `[${config.apiHost}]` : config.apiHost;
  return `http://${host}:${config.apiPort}`;
}
