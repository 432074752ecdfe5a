/**
 * @module test/support/rsyncd
 * A real rsync daemon for tests: `rsync --daemon --no-detach` on a free loopback port, with a
 * config rendered from scripts/rsyncd/rsyncd.conf.template whose `uploads` module points at the
 * given directory (a test stack's `<home>/uploads`) and allows only 127.0.0.1. Its transfer
 * register (scripts/rsyncd/transfer-hook.sh) is `transfersDir`: give the same directory to the
 * server as FLASHPODS_RSYNC_TRANSFERS_DIR.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RSYNCD_TEMPLATE = fileURLToPath(new URL('../../scripts/rsyncd/rsyncd.conf.template', import.meta.url));
export const TRANSFER_HOOK = fileURLToPath(new URL('../../scripts/rsyncd/transfer-hook.sh', import.meta.url));

export interface RsyncDaemon {
  host: string;
  port: number;
  uploadsDir: string;
  transfersDir: string;
  configPath: string;
  /** The daemon's log so far. */
  log(): string;
  stop(): Promise<void>;
}

export interface RsyncDaemonOptions {
  uploadsDir: string;
  /** The transfer register; default: `transfers` in the daemon's own temp directory. */
  transfersDir?: string;
  hostsAllow?: string;
  /** Extra lines for the [uploads] module (e.g. "max connections = 1"). */
  moduleExtra?: string[];
}

export function renderRsyncdConf(values: Record<string, string>, extra: string[] = []): string {
  let text = readFileSync(RSYNCD_TEMPLATE, 'utf8').replace(/@([A-Z_]+)@/g, (whole, name: string) => values[name] ?? whole);
  const left = text.split('\n').filter((l) => !l.trimStart().startsWith('#') && /@[A-Z_]+@/.test(l));
  if (left.length > 0) throw new Error(`rsyncd template: no value for ${left.join(', ')}`);
  if (extra.length > 0) text += extra.map((l) => `    ${l}\n`).join('');
  return text;
}

/** A loopback port nothing listens on (now). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const accepts = (port: number) => new Promise<boolean>((resolve) => {
  const socket = connect({ host: '127.0.0.1', port });
  socket.once('connect', () => { socket.destroy(); resolve(true); });
  socket.once('error', () => resolve(false));
});

export async function startRsyncDaemon(options: RsyncDaemonOptions): Promise<RsyncDaemon> {
  mkdirSync(options.uploadsDir, { recursive: true });
  const runDir = mkdtempSync(join(tmpdir(), 'fp-rsyncd-'));
  const root = process.getuid?.() === 0;
  const transfersDir = options.transfersDir ?? join(runDir, 'transfers');
  for (let tries = 1; ; tries++) {
    const port = await freePort();
    const configPath = join(runDir, 'rsyncd.conf');
    const logFile = join(runDir, 'rsyncd.log');
    writeFileSync(configPath, renderRsyncdConf({
      ADDRESS: '127.0.0.1',
      PORT: String(port),
      HOSTS_ALLOW: options.hostsAllow ?? '127.0.0.1',
      UPLOADS_DIR: options.uploadsDir,
      UID: String(process.getuid?.() ?? 0),
      GID: String(process.getgid?.() ?? 0),
      // chroot needs a root daemon; an unprivileged run (a developer's laptop) goes without.
      USE_CHROOT: root ? 'yes' : 'no',
      RUN_DIR: runDir,
      LOG_FILE: logFile,
      TRANSFER_HOOK: TRANSFER_HOOK,
      TRANSFERS_DIR: transfersDir,
    }, options.moduleExtra));
    const child: ChildProcess = spawn('rsync', ['--daemon', '--no-detach', `--config=${configPath}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const endOnExit = () => child.kill('SIGKILL');
    process.once('exit', endOnExit);
    const deadline = Date.now() + 5000;
    let up = false;
    while (Date.now() < deadline && child.exitCode === null) {
      if (await accepts(port)) { up = true; break; }
      await new Promise((r) => setTimeout(r, 25));
    }
    if (!up) {
      child.kill('SIGKILL');
      await exited;
      process.off('exit', endOnExit);
      const log = (() => { try { return readFileSync(logFile, 'utf8'); } catch { return ''; } })();
      if (tries < 3 && /Address already in use/.test(stderr + log)) continue;
      rmSync(runDir, { recursive: true, force: true });
      throw new Error(`rsync daemon did not start: ${stderr.trim()} ${log.trim()}`);
    }
    return {
      host: '127.0.0.1', port, uploadsDir: options.uploadsDir, transfersDir, configPath,
      log: () => { try { return readFileSync(logFile, 'utf8'); } catch { return ''; } },
      async stop() {
        process.off('exit', endOnExit);
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          await exited;
        }
        rmSync(runDir, { recursive: true, force: true });
      },
    };
  }
}
