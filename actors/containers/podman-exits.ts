/**
 * @module containers/podman-exits
 * Learns of container exits as soon as they happen rather than from a wait per container (Podman
 * 4.3's wait polls: it answers up to a second late). Two sources, the first to speak wins:
 * - conmon's exit file: conmon writes the exit code to `<exit dir>/<container id>` the moment the
 *   container's process ends; the directory (`--exit-dir` on conmon's command line) is watched
 *   with inotify. Measured here: ~1 ms after the exit (bench/README.md).
 * - Podman's event stream (`die`, with the exit code): 30–130 ms late here, since Podman's events
 *   backend is a file it polls; it serves where the exit directory cannot be found or read.
 * Both are shortcuts: each watch keeps its wait, so an exit is never missed while a source is
 * down, reconnecting or unreadable.
 */
import { constants, watch, type FSWatcher } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type Docker from 'dockerode';

const RECONNECT_MS = 500;
/** A stream that has not answered by then is not waited for: the wait beside it decides. */
const CONNECT_WAIT_MS = 1000;

export class PodmanExits {
  private readonly waiting = new Map<string, Set<(exitCode: number) => void>>();
  private connected: Promise<void> | undefined;
  private stream: (NodeJS.ReadableStream & { destroy(): void }) | undefined;
  private closed = false;
  private exitDirWatcher: FSWatcher | undefined;
  private exitDir: string | undefined;
  /** The exit directory could not be learnt or watched: only events and waits remain. */
  private exitDirUnusable = false;

  constructor(private readonly docker: Docker) {}

  /**
   * `exit` resolves with the container's exit code at its `die` event, or at once when the
   * container had already exited by the time the stream was open (a short job often has: Podman's
   * wait would only say so at its next poll). Never rejects; the signal ends the wait unresolved.
   */
  async next(containerId: string, signal: AbortSignal): Promise<{ exit: Promise<number> }> {
    const exit = new Promise<number>((resolve) => {
      const listeners = this.waiting.get(containerId) ?? new Set();
      const done = (code: number): void => {
        listeners.delete(done);
        if (listeners.size === 0) this.waiting.delete(containerId);
        resolve(code);
      };
      listeners.add(done);
      this.waiting.set(containerId, listeners);
      signal.addEventListener('abort', () => {
        listeners.delete(done);
        if (listeners.size === 0) this.waiting.delete(containerId);
      }, { once: true });
    });
    let timer: NodeJS.Timeout | undefined;
    const sources = Promise.all([this.connect().catch(() => undefined), this.watchExitDir(containerId).catch(() => undefined)]);
    await Promise.race([sources, new Promise((r) => (timer = setTimeout(r, CONNECT_WAIT_MS)))]);
    clearTimeout(timer);
    // After the subscriptions: an exit from here on is an event; one before them is in conmon's
    // exit file already (Podman's own state says so only once its cleanup has run, ~100 ms later).
    if (this.exitDir) await this.readExitFile(this.exitDir, containerId);
    const state = await this.docker.getContainer(containerId).inspect().then((info) => info.State, () => undefined);
    if (state && (state.Status === 'exited' || state.Status === 'stopped')) {
      for (const done of [...(this.waiting.get(containerId) ?? [])]) done(state.ExitCode);
    }
    return { exit };
  }

  close(): void {
    this.closed = true;
    this.stream?.destroy();
    this.exitDirWatcher?.close();
  }

  /**
   * Watches conmon's exit directory, learnt once from a running container's conmon (libpod's
   * inspect names its pid; its command line names the directory). A container already gone
   * teaches nothing: the next one is asked.
   */
  private async watchExitDir(containerId: string): Promise<void> {
    if (this.exitDirWatcher || this.exitDirUnusable || this.closed) return;
    const conmonPid = await new Promise<number>((resolve, reject) => {
      this.docker.modem.dial({ path: `/v4.0.0/libpod/containers/${containerId}/json`, method: 'GET', statusCodes: { 200: true } },
        (err, data) => (err ? reject(err) : resolve(Number((data as { State?: { ConmonPid?: number } }).State?.ConmonPid ?? 0))));
    });
    if (!(conmonPid > 0) || this.exitDirWatcher) return;
    const argv = (await readFile(`/proc/${conmonPid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    const at = argv.indexOf('--exit-dir');
    if (at < 0 || !argv[at + 1]) {
      // conmon was there but names no exit directory: this Podman works another way.
      if (argv.length > 1) this.exitDirUnusable = true;
      return;
    }
    const dir = argv[at + 1]!;
    try {
      this.exitDirWatcher = watch(dir, (_kind, name) => {
        if (typeof name === 'string' && this.waiting.has(name)) void this.readExitFile(dir, name);
      });
      this.exitDir = dir;
      this.exitDirWatcher.on('error', () => {
        this.exitDirWatcher?.close();
        this.exitDirWatcher = undefined;
        this.exitDir = undefined;
      });
    } catch {
      this.exitDirUnusable = true;
    }
  }

  /** The exit code conmon wrote; a file still empty (created, not yet written) waits for its next event. */
  private async readExitFile(dir: string, containerId: string): Promise<void> {
    let text: string;
    try {
      const file = await open(join(dir, containerId), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        text = (await file.readFile({ encoding: 'utf8' })).trim();
      } finally {
        await file.close();
      }
    } catch {
      return;
    }
    if (!/^\d{1,3}$/.test(text)) return;
    for (const done of [...(this.waiting.get(containerId) ?? [])]) done(Number(text));
  }

  private connect(): Promise<void> {
    this.connected ??= this.open().catch((err) => {
      this.connected = undefined;
      throw err;
    });
    return this.connected;
  }

  private async open(): Promise<void> {
    // Podman 4.3 filters events by its own names ("died"), Docker by "die": take all of the
    // containers' (a handful per job) and pick the die events here.
    const stream = (await this.docker.getEvents({ filters: { type: ['container'] } })) as NodeJS.ReadableStream & { destroy(): void };
    if (this.closed) return stream.destroy();
    this.stream = stream;
    let buffered = '';
    stream.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        this.deliver(line);
      }
    });
    const lost = (): void => {
      stream.destroy();
      this.connected = undefined;
      // The waits beside each watch cover the gap; reconnect while anyone listens.
      if (!this.closed && this.waiting.size > 0) setTimeout(() => void this.connect().catch(() => undefined), RECONNECT_MS).unref();
    };
    stream.on('end', lost);
    stream.on('error', lost);
  }

  private deliver(line: string): void {
    let event: { Action?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
    try {
      event = JSON.parse(line);
    } catch {
      return;
    }
    const id = event.Actor?.ID;
    const code = Number(event.Actor?.Attributes?.exitCode ?? event.Actor?.Attributes?.containerExitCode);
    if (event.Action !== 'die' || !id || !Number.isInteger(code)) return;
    for (const done of [...(this.waiting.get(id) ?? [])]) done(code);
  }
}
