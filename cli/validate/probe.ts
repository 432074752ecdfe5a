/**
 * @module cli/validate/probe
 * Short-lived probe containers for `flashpods validate`, created the way Flashpods creates job
 * containers (same Podman socket, network mode, user namespace, dropped capabilities,
 * no-new-privileges) so what they see is what a job sees.
 *
 * - Named `flashpods-validate-<run>-<what>` and labelled ONLY `flashpods-job-type=<type>` (what
 *   SPIRE's attestor matches): never `flashpods-job=true`, which the running Flashpods would take
 *   for an orphan job container and remove.
 * - Log driver `none`, output read from an attach stream opened before start: what a probe prints
 *   (a JWT-SVID, for the SPIRE probes) exists only in this process's memory, never in Podman's
 *   container log on disk.
 * - Always removed: after each run, on a deadline, and on SIGINT/SIGTERM (`removeAll`).
 */
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import type { FlashpodsConfig } from '../../actors/contract/config.ts';

export const PROBE_PREFIX = 'flashpods-validate-';
/** The one label probes carry (spec/identity.md's selector key). */
export const JOB_TYPE_LABEL = 'flashpods-job-type';
const OUTPUT_CAP = 256 * 1024;

export interface ProbeSpec {
  /** Part of the container name: flashpods-validate-<run>-<what>. */
  what: string;
  jobType: 'worker' | 'agent';
  /** argv; the first element becomes the entrypoint (an image's own ENTRYPOINT never runs). */
  argv: string[];
  binds?: string[];
  timeoutMs: number;
}

export interface ProbeRun {
  exitCode: number;
  /** In memory only; callers decide what (if anything) of it is shown. */
  stdout: string;
  stderr: string;
  ms: number;
}

const DROPPED = new Set(['ECONNRESET', 'EPIPE', 'ECONNREFUSED']);

export class ProbeError extends Error {
  constructor(message: string, readonly kind: 'podman' | 'image' | 'create' | 'timeout') {
    super(message);
    this.name = 'ProbeError';
  }
}

export class Prober {
  readonly docker: Docker;
  readonly runId = randomBytes(3).toString('hex');
  private readonly live = new Set<string>();
  private ping?: Promise<void>;
  private imageCheck?: Promise<void>;

  constructor(private readonly config: FlashpodsConfig, readonly image: string) {
    // An idle-socket limit on every Podman request, above any probe's own deadline: a stuck
    // Podman fails the checks instead of hanging the command.
    this.docker = new Docker({ socketPath: config.paths.podmanSocket, timeout: 60_000 });
  }

  /** Podman answers and the probe image is present (both checked once per run). */
  async ready(): Promise<void> {
    this.ping ??= Promise.race([
      this.docker.ping(),
      new Promise((_, reject) => setTimeout(() => reject(Object.assign(new Error('no answer within 10 s'), { code: 'ETIMEDOUT' })), 10_000).unref()),
    ]).then(
      () => undefined,
      (err: NodeJS.ErrnoException) => {
        throw new ProbeError(`Podman API not answering at ${this.config.paths.podmanSocket} (${err.code ?? err.message})`, 'podman');
      },
    );
    await this.ping;
    this.imageCheck ??= this.docker.getImage(this.image).inspect().then(
      () => undefined,
      (err: { statusCode?: number; message: string }) => {
        throw new ProbeError(err.statusCode === 404 ? `image ${this.image} is not in Podman's storage` : `cannot inspect image ${this.image}: ${err.message}`, 'image');
      },
    );
    await this.imageCheck;
  }

  async run(spec: ProbeSpec): Promise<ProbeRun> {
    await this.ready();
    const t0 = Date.now();
    const [entry, ...args] = spec.argv;
    let container: Docker.Container;
    const name = `${PROBE_PREFIX}${this.runId}-${spec.what}`;
    const create = () => this.docker.createContainer({
      name,
      Image: this.image,
      Entrypoint: [entry!],
      Cmd: args,
      Labels: { [JOB_TYPE_LABEL]: spec.jobType },
      HostConfig: {
        NetworkMode: this.config.podman.networkMode,
        ...(this.config.podman.rootless ? { UsernsMode: 'keep-id' } : {}),
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        LogConfig: { Type: 'none', Config: {} },
        Binds: spec.binds ?? [],
      },
    });
    try {
      // Two transient answers of rootless Podman 4.3 to several creates at once are tried once
      // more, both seen on the VM host: a connection dropped without an answer ("socket hang
      // up"), and "keep-id requires additional UIDs or GIDs" while the ids are there (also in
      // bench/README.md). Any other refusal is final. A dropped create may have happened: then
      // the container of that name is the one.
      container = await create().catch(async (err: NodeJS.ErrnoException) => {
        if (!DROPPED.has(err.code ?? '') && !/socket hang up|keep-id requires additional UIDs/.test(err.message)) throw err;
        await new Promise((r) => setTimeout(r, 500));
        return create().catch((again: { statusCode?: number }) => {
          if (again.statusCode === 409) return this.docker.getContainer(name);
          throw again;
        });
      });
    } catch (err) {
      throw new ProbeError(`Podman refused the probe container: ${(err as Error).message}`, 'create');
    }
    this.live.add(container.id);
    try {
      const stdout = new Collector();
      const stderr = new Collector();
      const stream = (await container.attach({ stream: true, stdout: true, stderr: true })) as NodeJS.ReadableStream;
      const ended = new Promise<void>((resolve) => {
        stream.once('end', resolve);
        stream.once('close', resolve);
        stream.once('error', () => resolve());
      });
      this.docker.modem.demuxStream(stream, stdout.sink, stderr.sink);
      try {
        await container.start();
      } catch (err) {
        (stream as unknown as { destroy?: () => void }).destroy?.();
        throw new ProbeError(`the probe container did not start: ${(err as Error).message}`, 'create');
      }
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ProbeError(`the probe container did not finish within ${spec.timeoutMs / 1000} s`, 'timeout')), spec.timeoutMs);
      });
      try {
        const { StatusCode } = (await Promise.race([container.wait(), deadline])) as { StatusCode: number };
        // The attach stream ends right after the exit; do not wait on it forever.
        await Promise.race([ended, new Promise((r) => setTimeout(r, 2_000).unref())]);
        return { exitCode: StatusCode, stdout: stdout.text(), stderr: stderr.text(), ms: Date.now() - t0 };
      } finally {
        clearTimeout(timer);
        (stream as unknown as { destroy?: () => void }).destroy?.();
      }
    } finally {
      await this.remove(container.id);
    }
  }

  private async remove(id: string): Promise<void> {
    await this.docker.getContainer(id).remove({ force: true }).catch(() => undefined);
    this.live.delete(id);
  }

  /** Removes every probe container of this run still present (signal handlers call this). */
  async removeAll(): Promise<void> {
    await Promise.all([...this.live].map((id) => this.remove(id)));
  }

  /** Probe containers of earlier runs that were killed before their cleanup (older than 10 min). */
  async removeStale(maxAgeMs = 10 * 60_000): Promise<number> {
    const found = await this.docker.listContainers({ all: true, filters: { name: [PROBE_PREFIX] } }).catch(() => []);
    const stale = found.filter((c) => c.Names.some((n) => n.replace(/^\//, '').startsWith(PROBE_PREFIX)) && Date.now() - c.Created * 1000 > maxAgeMs);
    await Promise.all(stale.map((c) => this.docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
    return stale.length;
  }
}

class Collector {
  readonly sink = new PassThrough();
  private chunks: Buffer[] = [];
  private size = 0;
  constructor() {
    this.sink.on('data', (d: Buffer) => {
      if (this.size >= OUTPUT_CAP) return;
      this.chunks.push(d);
      this.size += d.length;
    });
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}
