/**
 * @module containers/kubernetes-executor
 * The JobExecutor over a Kubernetes API server (issue 16), with @kubernetes/client-node: a job
 * is the Pod of pod-spec.ts (whose header says why three containers and two emptyDirs), and the
 * container id the lifecycle holds is the Pod's name. Files move only through the API server.
 *
 * - create: the Pod (409 = made before an answer was lost: taken as it is), then, with an
 *   upload, the sealed upload directory streamed as a tar into the `upload` init container's
 *   stdin (pods/attach), ended with the Pod's marker. The tar is built from the host directory
 *   without following a link: files are opened O_NOFOLLOW, symlinks go in as symlinks.
 * - start: the kubelet starts the job container itself once the upload is in, so start waits
 *   for it to run (or to have run) and returns the log capture (kubernetes-log.ts). A Pod still
 *   not running FLASHPODS_KUBERNETES_PENDING_TIMEOUT_SECONDS after its creation, or one the
 *   cluster failed before the job ran (upload cut off, deadline, eviction), is a start failure
 *   whose message says what the cluster said.
 * - waitForExit / inspect: the job container's terminated state (exit code; reason OOMKilled is
 *   the backend's OOM flag). Before either reports an exit, /artifacts is copied out of the
 *   `artifacts` holder (pods/exec `tar -c`) into the job's host artifact directory
 *   (kubernetes-artifacts.ts), once per Pod and process, so the artifacts actor indexes it as on
 *   Podman. A copy made again after a restart replaces the same entries.
 * - kill: pod-spec.ts's kill through the holder (TERM to every process of the job, its main
 *   process last, as on Podman; KILL to all of them after the grace), which keeps the Pod and so
 *   the artifacts (jobs.md); a Pod
 *   whose holder is gone is deleted with the grace period instead. remove: delete the Pod (grace
 *   0) and wait until it is gone. listByLabel: the label selector `flashpods-job=true`.
 * - footprint: undefined. The job writes on the node, not on this host: /work and /artifacts are
 *   emptyDirs with a sizeLimit (the disk budget), past which the kubelet evicts the Pod; there is
 *   nothing on this host to measure.
 * - Polling, not watches: one GET of the Pod every POLL_MS per waiting job. A watch needs
 *   resourceVersion bookkeeping and re-listing after "410 Gone" for a gain of < POLL_MS per
 *   transition; the API server takes thousands of GETs a second.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { Attach, CoreV1Api, Exec, KubeConfig, VersionApi, type V1Pod, type V1Status } from '@kubernetes/client-node';
import tar from 'tar-stream';
import type { JobContainerSpec } from './container-spec.ts';
import { INSTANCE_LABEL, JOB_ID_LABEL } from './container-spec.ts';
import type { ContainerState, CreateOptions, Exit, JobExecutor, JobLogOptions, KillOutcome, LabelledContainer, StartOptions, WritableFootprint } from './executor.ts';
import { unpackArtifacts } from './kubernetes-artifacts.ts';
import { capturePodLog, podLogStatePath } from './kubernetes-log.ts';
import type { LogCapture } from './log-capture.ts';
import {
  ARTIFACTS_COPY_COMMAND, jobPod, jobPodName, jobPodSelector, killJobCommand, nodeSilence, podJobState, POD_CONTAINERS, storageEviction, UPLOAD_END_MARKER_PREFIX, uploadEndMarker,
  type KubernetesPodSettings, type PodJobState,
} from './pod-spec.ts';

const POLL_MS = 200;
/** The attach stream's send buffer is kept under this (the client's stdin handler does not wait). */
const UPLOAD_SEND_BUFFER = 4 * 1024 * 1024;
const REMOVE_WAIT_MS = 60_000;
/** How long a Pod may wait for an upload this process is not sending before its start fails. */
const ORPHANED_UPLOAD_MS = 10_000;

export interface KubernetesExecutorOptions {
  kubeConfig: KubeConfig;
  settings: KubernetesPodSettings;
  /** activeDeadlineSeconds' base: the longest timeout a job can have (the lifecycle kills on time itself). */
  maxTimeoutSeconds: number;
  killGraceSeconds: number;
  pendingTimeoutMs: number;
  /** How long a Pod's node may stay silent (pod-spec.ts nodeSilence) before its job is lost. */
  nodeLostMs: number;
  /** sizeLimit of each emptyDir, and the copy-out's byte cap: the job's disk budget. */
  diskBudgetBytes: number;
  maxArtifactEntries: number;
  /** Where the log capture states live (paths.containerLogs). */
  stateDir: string;
  /** The job's host artifact directory (job-paths.ts). */
  artifactsDir: (jobId: string) => string;
  warn: (message: string, fields: Record<string, unknown>) => void;
}

export class KubernetesExecutor implements JobExecutor {
  private readonly core: CoreV1Api;
  private readonly copies = new Map<string, Promise<void>>();
  /** Pods whose upload this process is sending or has sent. */
  private readonly uploads = new Set<string>();
  /** When this process first saw each Pod's node silent (a restart counts afresh: it waits longer, never less). */
  private readonly silentSince = new Map<string, number>();
  private readonly evictionsSaid = new Set<string>();

  private constructor(private readonly options: KubernetesExecutorOptions) {
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
  }

  static open(kubeconfigPath: string, apiUrl: string, options: Omit<KubernetesExecutorOptions, 'kubeConfig'>): KubernetesExecutor {
    return new KubernetesExecutor({ ...options, kubeConfig: loadKubeConfig(kubeconfigPath, apiUrl) });
  }

  get apiUrl(): string {
    return this.options.kubeConfig.getCurrentCluster()!.server;
  }

  async create(spec: JobContainerSpec, { beforeCreate }: CreateOptions): Promise<string> {
    const { settings } = this.options;
    const name = jobPodName(spec.jobId);
    const pod = jobPod({
      ...spec,
      timeoutSeconds: this.options.maxTimeoutSeconds,
      killGraceSeconds: this.options.killGraceSeconds,
      ...(spec.uploadDir ? { upload: { nonce: randomBytes(16).toString('hex'), sizeLimitBytes: this.options.diskBudgetBytes } } : {}),
      artifactsSizeLimitBytes: this.options.diskBudgetBytes,
      settings,
    });
    beforeCreate?.();
    try {
      await this.core.createNamespacedPod({ namespace: settings.namespace, body: pod });
    } catch (err) {
      if (httpStatus(err) !== 409) throw err;
    }
    if (spec.uploadDir) await this.upload(name, spec.uploadDir);
    return name;
  }

  async start(podName: string, { capture }: StartOptions): Promise<LogCapture> {
    await this.until(podName, (s) => s.phase === 'running' || s.phase === 'exited');
    return this.captureLog(podName, capture);
  }

  async kill(podName: string, graceMs: number): Promise<KillOutcome> {
    const state = await this.state(podName);
    if (state?.phase !== 'running') return 'not-running';
    if (graceMs > 0) {
      const term = await this.exec(podName, killJobCommand('TERM')).catch((err: Error) => err);
      if (term instanceof Error) return this.deleteWithGrace(podName, graceMs, term);
      const deadline = Date.now() + graceMs;
      while (Date.now() < deadline) {
        if ((await this.state(podName))?.phase !== 'running') return 'exited-on-sigterm';
        await sleep(POLL_MS);
      }
    }
    const kill = await this.exec(podName, killJobCommand('KILL')).catch((err: Error) => err);
    if (kill instanceof Error) return this.deleteWithGrace(podName, 0, kill);
    return 'sigkilled';
  }

  async inspect(podName: string): Promise<ContainerState | undefined> {
    const pod = await this.read(podName);
    if (!pod) return undefined;
    const state = podJobState(pod.status);
    switch (state.phase) {
      case 'running': {
        const lost = this.lostReason(pod);
        if (lost) return { phase: 'lost', reason: lost };
        return { phase: 'running', startedAt: state.startedAt?.getTime() ?? Date.now() };
      }
      case 'exited':
        await this.copyOut(pod);
        return { phase: 'exited', exitCode: state.exitCode, stateOomKilled: state.oomKilled, ...this.eviction(pod, state.evicted) };
      default:
        // Pending, uploading, or failed before the job ran: start says which, as its failure.
        return { phase: 'created' };
    }
  }

  async remove(podName: string, jobId: string): Promise<void> {
    const { namespace } = this.options.settings;
    try {
      await this.core.deleteNamespacedPod({ name: podName, namespace, gracePeriodSeconds: 0 });
    } catch (err) {
      if (httpStatus(err) !== 404) throw err;
    }
    const deadline = Date.now() + REMOVE_WAIT_MS;
    while (await this.read(podName)) {
      if (Date.now() > deadline) throw new Error(`Pod ${podName} is still there ${REMOVE_WAIT_MS / 1000} s after its deletion`);
      await sleep(POLL_MS);
    }
    this.copies.delete(podName);
    this.uploads.delete(podName);
    this.silentSince.delete(podName);
    this.evictionsSaid.delete(podName);
    await rm(podLogStatePath(this.options.stateDir, jobId), { force: true });
  }

  async listByLabel(): Promise<LabelledContainer[]> {
    const pods = await this.core.listNamespacedPod({ namespace: this.options.settings.namespace, labelSelector: jobPodSelector() });
    return pods.items.map((p) => ({
      id: p.metadata!.name!,
      name: p.metadata!.name!,
      jobId: p.metadata?.labels?.[JOB_ID_LABEL] ?? '',
      instanceId: p.metadata?.labels?.[INSTANCE_LABEL],
    }));
  }

  captureLog(podName: string, options: JobLogOptions): Promise<LogCapture> {
    const source = {
      kubeConfig: this.options.kubeConfig,
      namespace: this.options.settings.namespace,
      pod: podName,
      container: POD_CONTAINERS.job,
      exited: async () => {
        const state = await this.state(podName);
        if (!state) throw new Error(`Pod ${podName} is gone`);
        return state.phase !== 'running' && state.phase !== 'pending' && state.phase !== 'uploading';
      },
    };
    return capturePodLog(source, podLogStatePath(this.options.stateDir, options.jobId), options);
  }

  /** See the module note: the node's disk is not this host's. */
  async footprint(): Promise<WritableFootprint | undefined> {
    return undefined;
  }

  async waitForExit(podName: string, signal: AbortSignal): Promise<Exit> {
    for (;;) {
      if (signal.aborted) throw new Error('stopped');
      const pod = await this.read(podName);
      if (!pod) throw new Error(`Pod ${podName} is gone`);
      const state = podJobState(pod.status);
      if (state.phase === 'exited') {
        await this.copyOut(pod);
        return { exitCode: state.exitCode, stateOomKilled: state.oomKilled, cgroupEvidence: false, ...this.eviction(pod, state.evicted) };
      }
      if (state.phase === 'gone' || state.phase === 'upload-failed') throw new Error(`Pod ${podName} ended before its job container ran: ${describe(state)}`);
      // The reconcile pass's inspect reports it as lost.
      const lost = this.lostReason(pod);
      if (lost) throw new Error(`Pod ${podName}: ${lost}`);
      await sleep(POLL_MS);
    }
  }

  async reachable(): Promise<boolean> {
    return this.options.kubeConfig.makeApiClient(VersionApi).getCode().then(() => true, () => false);
  }

  lostConnection(err: unknown): boolean {
    const e = (err ?? {}) as { code?: unknown; message?: string; cause?: { code?: string } };
    const code = typeof e.code === 'string' ? e.code : e.cause?.code;
    return ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EPIPE'].includes(code ?? '')
      || /ECONNREFUSED|ECONNRESET|socket hang up|ETIMEDOUT|EHOSTUNREACH/.test(e.message ?? '');
  }

  close(): void {}

  // ---- Internals ----

  private async read(podName: string): Promise<V1Pod | undefined> {
    try {
      return await this.core.readNamespacedPod({ name: podName, namespace: this.options.settings.namespace });
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw err;
    }
  }

  /** A disk eviction as the exit's overDiskBudget; another eviction (the node's own pressure) is said, once per Pod. */
  private eviction(pod: V1Pod, evicted: string | undefined): Pick<Exit, 'overDiskBudget'> {
    if (evicted === undefined) return {};
    if (storageEviction(evicted)) return { overDiskBudget: evicted };
    const name = pod.metadata!.name!;
    if (!this.evictionsSaid.has(name)) {
      this.evictionsSaid.add(name);
      this.options.warn(`Pod ${name}: the cluster evicted it (${evicted}); the job's exit code is the kill's`, {
        event: 'pod_evicted', pod: name, job_id: pod.metadata?.labels?.[JOB_ID_LABEL],
      });
    }
    return {};
  }

  /** Why the Pod's job is lost: its node has been silent for longer than nodeLostMs. */
  private lostReason(pod: V1Pod): string | undefined {
    const name = pod.metadata!.name!;
    const silence = nodeSilence(pod);
    if (!silence) {
      this.silentSince.delete(name);
      return undefined;
    }
    const since = this.silentSince.get(name) ?? Date.now();
    this.silentSince.set(name, since);
    const silentMs = Date.now() - since;
    if (silentMs < this.options.nodeLostMs) return undefined;
    return `${silence} for ${Math.round(silentMs / 1000)} s (FLASHPODS_KUBERNETES_NODE_LOST_SECONDS ${Math.round(this.options.nodeLostMs / 1000)}); `
      + 'what the job did after that is unknown, and what it wrote to /artifacts stays on that node';
  }

  private async state(podName: string): Promise<PodJobState | undefined> {
    const pod = await this.read(podName);
    return pod ? podJobState(pod.status) : undefined;
  }

  /**
   * Polls the Pod until `reached` holds for its state; a Pod the cluster failed, or still pending
   * past the deadline (counted from its creation), is an error that says why.
   */
  private async until(podName: string, reached: (s: PodJobState) => boolean): Promise<PodJobState> {
    let uploadOrphanedSince: number | undefined;
    for (;;) {
      const pod = await this.read(podName);
      if (!pod) throw new Error(`Pod ${podName} was deleted before its job ran`);
      const state = podJobState(pod.status);
      if (reached(state)) return state;
      if (state.phase === 'gone' || state.phase === 'upload-failed') throw new Error(`Pod ${podName} ended before its job container ran: ${describe(state)}`);
      if (state.phase === 'uploading' && !this.uploads.has(podName)) {
        // Its receiver waits for a stream nobody will send (Flashpods restarted before or while
        // sending it); one that just got all of it ends within moments.
        uploadOrphanedSince ??= Date.now();
        if (Date.now() - uploadOrphanedSince > ORPHANED_UPLOAD_MS) {
          throw new Error(`Pod ${podName} still waits for its upload, which Flashpods stopped sending (it restarted); create the job again`);
        }
      }
      const created = pod.metadata?.creationTimestamp ? new Date(pod.metadata.creationTimestamp).getTime() : Date.now();
      if (state.phase === 'pending' && Date.now() - created > this.options.pendingTimeoutMs) {
        const why = [state.reason, state.message].filter(Boolean).join(': ') || 'no reason given';
        throw new Error(`Pod ${podName} was still Pending ${Math.round(this.options.pendingTimeoutMs / 1000)} s after its creation (${why}); `
          + `check that a node matches FLASHPODS_KUBERNETES_NODE_SELECTOR with room for the job's cpus/memory, and that the image can be pulled`);
      }
      await sleep(POLL_MS);
    }
  }

  /** The upload, once: only while the receiver waits for it (a cut one has failed the Pod). */
  private async upload(podName: string, dir: string): Promise<void> {
    const state = await this.until(podName, (s) => s.phase !== 'pending');
    if (state.phase !== 'uploading') return;
    const pod = (await this.read(podName))!;
    const script = pod.spec?.initContainers?.find((c) => c.name === POD_CONTAINERS.upload)?.command?.join(' ') ?? '';
    const nonce = new RegExp(`${UPLOAD_END_MARKER_PREFIX.replaceAll('.', '\\.')}([a-z0-9]+)`).exec(script)?.[1];
    if (!nonce) throw new Error(`Pod ${podName}'s upload container names no end marker`);
    if (this.uploads.has(podName)) return;
    this.uploads.add(podName);
    const pack = tar.pack();
    const packed = packDirectory(pack, dir, uploadEndMarker(nonce)).catch((err: Error) => {
      pack.destroy(err);
      throw err;
    });
    const stdin = new PassThrough();
    const ws = await new Attach(this.options.kubeConfig).attach(this.options.settings.namespace, podName, POD_CONTAINERS.upload, null, null, stdin, false);
    const closed = new Promise<void>((resolve) => (ws.readyState === ws.CLOSED ? resolve() : ws.once('close', () => resolve())));
    try {
      for await (const chunk of pack) {
        stdin.write(chunk);
        while (ws.bufferedAmount > UPLOAD_SEND_BUFFER && ws.readyState === ws.OPEN) await sleep(5);
        if (ws.readyState !== ws.OPEN) throw new Error(`the upload stream to Pod ${podName} closed before the upload was sent`);
      }
      await packed;
    } catch (err) {
      ws.close();
      throw err;
    }
    stdin.end();
    await closed;
  }

  /** exec in the holder; resolves with stdout when the command succeeded. */
  private exec(podName: string, command: string[], stdout: Writable = collect()): Promise<Writable> {
    return new Promise((resolve, reject) => {
      const stderr = collect();
      let settled = false;
      new Exec(this.options.kubeConfig).exec(this.options.settings.namespace, podName, POD_CONTAINERS.artifacts, command, stdout, stderr, null, false, (status: V1Status) => {
        settled = true;
        if (status.status === 'Success') resolve(stdout);
        else reject(new Error(`${command.at(-1)!.split('\n')[0]} in Pod ${podName}: ${status.message ?? status.status} ${(stderr as Collector).text()}`.trim()));
      }).then((ws) => {
        holdBack(stdout, ws);
        ws.on('close', () => { if (!settled) reject(new Error(`the exec stream to Pod ${podName} closed without a status`)); });
      }, reject);
    });
  }

  private async deleteWithGrace(podName: string, graceMs: number, why: Error): Promise<KillOutcome> {
    this.options.warn(`Pod ${podName}: the kill through its artifacts container failed (${why.message}); deleting the Pod with the grace period, its artifacts are lost`, {
      event: 'pod_kill_by_delete', pod: podName,
    });
    try {
      await this.core.deleteNamespacedPod({ name: podName, namespace: this.options.settings.namespace, gracePeriodSeconds: Math.ceil(graceMs / 1000) });
    } catch (err) {
      if (httpStatus(err) !== 404) throw err;
    }
    return 'sigkilled';
  }

  /** /artifacts out of the holder into the job's host directory, once per Pod. */
  private copyOut(pod: V1Pod): Promise<void> {
    const name = pod.metadata!.name!;
    let copy = this.copies.get(name);
    if (!copy) {
      copy = this.copyArtifacts(pod);
      copy.catch(() => this.copies.delete(name));
      this.copies.set(name, copy);
    }
    return copy;
  }

  private async copyArtifacts(pod: V1Pod): Promise<void> {
    const name = pod.metadata!.name!;
    const jobId = pod.metadata?.labels?.[JOB_ID_LABEL];
    if (!jobId) throw new Error(`Pod ${name} has no ${JOB_ID_LABEL} label`);
    const holder = pod.status?.containerStatuses?.find((c) => c.name === POD_CONTAINERS.artifacts);
    if (!holder?.state?.running) {
      this.options.warn(`job ${jobId}: its artifacts cannot be copied: the artifacts container of Pod ${name} is not running (artifact_copy_container_gone)`, {
        event: 'artifact_copy_container_gone', job_id: jobId,
      });
      return;
    }
    const target = this.options.artifactsDir(jobId);
    await mkdir(target, { recursive: true, mode: 0o755 });
    const dir = await open(target, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      const tarStream = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
      const unpacked = unpackArtifacts(tarStream, { targetDirFd: dir.fd, maxBytes: this.options.diskBudgetBytes, maxEntries: this.options.maxArtifactEntries });
      const copied = this.exec(name, ARTIFACTS_COPY_COMMAND, tarStream).then(() => tarStream.end(), (err: Error) => {
        tarStream.destroy(err);
        throw err;
      });
      const [result] = await Promise.all([unpacked, copied]);
      if (result.dropped.length > 0 || result.truncated) {
        this.options.warn(`job ${jobId}: ${result.dropped.length} artifact entries were not copied (${result.dropped.slice(0, 5).map((d) => `${d.name}: ${d.reason}`).join('; ')})`, {
          event: 'artifact_copy_dropped', job_id: jobId, dropped: result.dropped.length, truncated: result.truncated,
        });
      }
    } finally {
      await dir.close();
    }
  }
}

/** The kubeconfig's current context, its server replaced by `apiUrl` when that is set. */
export function loadKubeConfig(kubeconfigPath: string, apiUrl: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(kubeconfigPath);
  } catch (err) {
    throw new Error(`cannot read the kubeconfig ${kubeconfigPath} (FLASHPODS_KUBERNETES_KUBECONFIG): ${(err as Error).message}`);
  }
  const current = kc.getCurrentCluster();
  if (!current) throw new Error(`the kubeconfig ${kubeconfigPath} has no current context with a cluster; set current-context`);
  if (apiUrl) {
    const clusters = kc.clusters.map((c) => (c.name === current.name ? { ...c, server: apiUrl } : c));
    kc.loadFromOptions({ clusters, users: kc.users, contexts: kc.contexts, currentContext: kc.currentContext });
  }
  return kc;
}

/** The upload directory as tar entries, then the end marker; never through a link. */
async function packDirectory(pack: tar.Pack, root: string, marker: string): Promise<void> {
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(root, rel))).sort();
    for (const n of names) {
      const relName = rel ? `${rel}/${n}` : n;
      const path = join(root, relName);
      const info = await lstat(path);
      if (info.isSymbolicLink()) {
        await entry(pack, { name: relName, type: 'symlink', linkname: await readlink(path), mode: info.mode & 0o777 });
      } else if (info.isDirectory()) {
        await entry(pack, { name: `${relName}/`, type: 'directory', mode: info.mode & 0o777 });
        await walk(relName);
      } else if (info.isFile()) {
        const file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
        try {
          const size = (await file.stat()).size;
          let finished!: (err?: Error | null) => void;
          const done = new Promise<void>((resolve, reject) => (finished = (err) => (err ? reject(err) : resolve())));
          const body = pack.entry({ name: relName, type: 'file', size, mode: info.mode & 0o777 }, finished);
          for await (const chunk of file.createReadStream({ autoClose: false })) {
            if (!body.write(chunk)) await new Promise<void>((r) => body.once('drain', () => r()));
          }
          body.end(undefined);
          await done;
        } finally {
          await file.close();
        }
      }
    }
  };
  await walk('');
  await entry(pack, { name: marker, type: 'file', mode: 0o600 }, '');
  pack.finalize();
}

/** An entry without a body (directory, symlink), or with a small one given whole. */
function entry(pack: tar.Pack, header: Parameters<tar.Pack['entry']>[0], body?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    if (body === undefined) pack.entry(header, done);
    else pack.entry(header, body, done);
  });
}

interface Collector extends Writable { text(): string }

function collect(): Collector {
  const chunks: Buffer[] = [];
  const w = new Writable({ write(chunk: Buffer, _e, cb) { chunks.push(chunk); cb(); } }) as Collector;
  w.text = () => Buffer.concat(chunks).toString();
  return w;
}

/** The client writes exec output without waiting: the socket is paused while `out` is full. */
function holdBack(out: Writable, ws: { pause?: () => void; resume?: () => void }): void {
  const original = out.write.bind(out);
  out.write = ((chunk: Buffer, ...rest: unknown[]) => {
    const ok = (original as (c: Buffer, ...r: unknown[]) => boolean)(chunk, ...rest);
    if (!ok) ws.pause?.();
    return ok;
  }) as Writable['write'];
  out.on('drain', () => ws.resume?.());
}

function describe(state: PodJobState): string {
  if (state.phase === 'upload-failed') return state.message;
  if (state.phase === 'gone') return `${state.reason}: ${state.message}`;
  return state.phase;
}

function httpStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
