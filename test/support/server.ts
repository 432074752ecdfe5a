/**
 * @module test/support/server
 * Starts a real `flashpods serve` process on an ephemeral port in a fresh FLASHPODS_HOME and
 * exposes what a client and an operator see: the base URL, the API token, the supervisor log.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const cli = new URL('../../cli/flashpods.mjs', import.meta.url).pathname;

export interface RunningServer {
  url: string;
  token: string;
  home: string;
  child: ChildProcess;
  logLines: () => Array<Record<string, unknown>>;
  /** Raw stdout+stderr, for "no secret in any log" checks. */
  rawOutput: () => string;
  fetch: (path: string, init?: RequestInit & { auth?: boolean }) => Promise<Response>;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

export interface RunAs {
  uid: number;
  gid: number;
}

export async function startServer(env: Record<string, string> = {}, home = mkdtempSync(join(tmpdir(), 'fp-home-')), runAs?: RunAs): Promise<RunningServer> {
  const child = spawn(process.execPath, [cli, 'serve'], {
    cwd: home,
    ...(runAs ?? {}),
    env: { ...process.env, FLASHPODS_HOME: home, FLASHPODS_LISTEN: '127.0.0.1:0', FLASHPODS_LOG_LEVEL: 'debug', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const logLines = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const exited = once(child, 'exit');

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}\n${err}`)), 30_000);
    const check = () => {
      const listening = logLines().find((l) => l.event === 'listening');
      if (listening) {
        clearTimeout(timer);
        resolve(Number(listening.port));
      }
    };
    child.stdout!.on('data', check);
    void exited.then(() => reject(new Error(`server exited during start:\n${out}\n${err}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  const token = readFileSync(env.FLASHPODS_API_TOKEN_FILE ?? join(home, 'api-token'), 'utf8').trim();
  return {
    url, token, home, child, logLines,
    rawOutput: () => out + err,
    fetch: (path, init = {}) => {
      const headers = new Headers(init.headers);
      if (init.auth !== false && !headers.has('authorization')) headers.set('authorization', `Bearer ${token}`);
      return fetch(url + path, { ...init, headers });
    },
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null) return child.exitCode;
      child.kill(signal);
      const [code] = await exited;
      return code as number | null;
    },
  };
}
