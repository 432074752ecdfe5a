/**
 * @module containers/podman-exits
 * Learns of container exits as soon as they happen rather than from a wait per container (Podman
 * 4.3's wait polls: it answers up to a second late): conmon writes the exit code to
 * `<exit dir>/<container id>` the moment the container's process ends; the directory
 * (`--exit-dir` on conmon's command line) is watched with inotify — ~1 ms after the exit here
 * (bench/README.md). It is only a shortcut: each watch keeps its wait, so an exit is never
 * missed where the directory cannot be found or read.
 *
 * Decision: no `GET /events` stream beside it. While the API held one open, rootless Podman 4.3
 * on the VM host twice dropped every request in flight at once ("socket hang up"), once leaving
 * crun state behind ("container … already exists"), 2026-11-29 — not proven the cause, but the
 * stream is the one new long-lived connection, and with the exit file first it added nothing to
 * the delay.
 */
import { constants, watch, type FSWatcher } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type Docker from 'dockerode';

/** Learning the exit directory is not waited for longer: the wait beside it decides. */
const WATCH_SETUP_WAIT_MS = 1000;

export class PodmanExits {
  private readonly waiting = new Map<string, Set<(exitCode: number) => void>>();
  private closed = false;
  private exitDirWatcher: FSWatcher | undefined;
  private exitDir: string | undefined;
  /** The exit directory could not be learnt or watched: only the waits remain. */
  private exitDirUnusable = false;

  constructor(private readonly docker: Docker) {}

  /**
   * `exit` resolves with the container's exit code when conmon writes its exit file, or at once
   * when the container had already exited by the time the directory was watched (a short job
   * often has: Podman's wait would only say so at its next poll). Never rejects; the signal ends
   * the wait unresolved.
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
    const sources = this.watchExitDir(containerId).catch(() => undefined);
    await Promise.race([sources, new Promise((r) => (timer = setTimeout(r, WATCH_SETUP_WAIT_MS)))]);
    clearTimeout(timer);
    // After the watch is set: an exit from here on is a file event; one before it is in conmon's
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

}
