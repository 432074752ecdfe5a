/**
 * The groundwork of issue 16 on a REAL single-node Kubernetes (test/support/kubernetes.ts):
 * Pods built by actors/containers/pod-spec.ts, driven through @kubernetes/client-node with the
 * credentials of deploy/kubernetes/flashpods-rbac.yaml's ServiceAccount only (not an admin), so
 * every call here proves the Role grants it: create/get/list/delete pods, pods/log,
 * pods/attach (the upload streamed into the `upload` init container), pods/exec (artifacts
 * copied out of the `artifacts` holder; the kill). Timings are printed at the end.
 */
import { PassThrough, Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import tar from 'tar-stream';
import { Attach, CoreV1Api, Exec, KubeConfig, Log, type V1Pod, type V1Status } from '@kubernetes/client-node';
import {
  ARTIFACTS_COPY_COMMAND, jobPod, jobPodName, jobPodSelector, killJobCommand, podJobState, POD_CONTAINERS, uploadEndMarker, type JobPodSpec, type PodJobState,
} from '../../actors/containers/pod-spec.ts';
import { startKubernetesCluster, type KubernetesCluster } from '../support/kubernetes.ts';
import { TEST_IMAGE } from '../support/podman.ts';

const MIB = 1024 ** 2;
const INSTANCE = 'e2ek8s0000000001';
let cluster: KubernetesCluster;
let kc: KubeConfig;
let core: CoreV1Api;
const figures: Record<string, number> = {};
let clusterStopped = false;

beforeAll(async () => {
  const t0 = Date.now();
  cluster = await startKubernetesCluster();
  figures.clusterStartMs = Date.now() - t0;
  Object.assign(figures, cluster.timings);
  kc = new KubeConfig();
  kc.loadFromFile(cluster.flashpodsKubeconfig);
  core = kc.makeApiClient(CoreV1Api);
}, 600_000);

// A failed test must not leave its Pods holding the node's CPU for the next ones.
afterEach(async () => {
  if (!core || clusterStopped) return;
  const left = (await core.listNamespacedPod({ namespace: cluster.namespace })).items;
  for (const p of left) await deleteAndWait(p.metadata!.name!, 0);
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
  console.log('kubernetes timings', JSON.stringify(figures));
}, 180_000);

function spec(jobId: string, command: string, extra: Partial<JobPodSpec> = {}): JobPodSpec {
  return {
    jobId, jobType: 'worker', image: TEST_IMAGE, command, cpus: 0.5, memoryGb: 64 / 1024, timeoutSeconds: 300, killGraceSeconds: 3,
    artifactsSizeLimitBytes: 64 * MIB, instanceId: INSTANCE,
    settings: { namespace: cluster.namespace, nodeSelector: {}, runAsUser: 1000, helperImage: TEST_IMAGE, imagePullPolicy: 'Never' },
    ...extra,
  };
}

/** Polls one Pod (the Role's `get`, as the executor does) until `done` holds for its status; resolves with it. */
async function waitForPod(name: string, done: (state: PodJobState, pod: V1Pod) => boolean, timeoutMs = 60_000): Promise<V1Pod> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pod = await core.readNamespacedPod({ name, namespace: cluster.namespace });
    if (done(podJobState(pod.status), pod)) return pod;
    if (Date.now() > deadline) throw new Error(`pod ${name}: condition not reached in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The upload: a tar streamed into the `upload` init container's stdin through pods/attach, with
 * backpressure (the client's stdin handler sends without waiting: the pump watches the socket's
 * bufferedAmount), ended with the per-Pod marker unless `cut`.
 */
async function streamUpload(pod: string, files: Record<string, string>, marker: string | undefined): Promise<void> {
  const pack = tar.pack();
  for (const [name, body] of Object.entries(files)) pack.entry({ name, mode: 0o644, uid: 0, gid: 0 }, body);
  if (marker) pack.entry({ name: marker, mode: 0o600 }, '');
  pack.finalize();
  const stdin = new PassThrough();
  const ws = await new Attach(kc).attach(cluster.namespace, pod, POD_CONTAINERS.upload, null, null, stdin, false);
  for await (const chunk of pack) {
    stdin.write(chunk);
    while (ws.bufferedAmount > 4 * MIB) await new Promise((r) => setTimeout(r, 5));
  }
  stdin.end();
  // v5 protocol: the client half-closes stdin and the server ends the session once the container
  // is done with it; older protocols: the client closes the socket itself.
  await new Promise<void>((resolve) => { if (ws.readyState === ws.CLOSED) resolve(); else ws.once('close', () => resolve()); });
}

/** exec in a container: resolves with stdout, stderr and the exit status once the server says. */
async function execIn(pod: string, container: string, command: string[]): Promise<{ stdout: Buffer; stderr: string; status: V1Status }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const sink = (into: Buffer[]) => new Writable({ write(chunk, _e, cb) { into.push(chunk); cb(); } });
  return new Promise((resolve, reject) => {
    new Exec(kc).exec(cluster.namespace, pod, container, command, sink(out), sink(err), null, false, (status) => {
      resolve({ stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString(), status });
    }).catch(reject);
  });
}

interface TarEntry { name: string; type: string; size: number; uid: number; linkname?: string; body: string }
async function untar(data: Buffer): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  const extract = tar.extract();
  extract.on('entry', (h, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c) => { chunks.push(c as Buffer); });
    stream.on('end', () => {
      entries.push({ name: h.name, type: h.type!, size: h.size ?? 0, uid: h.uid ?? -1, ...(h.linkname ? { linkname: h.linkname } : {}), body: Buffer.concat(chunks).toString() });
      next();
    });
  });
  const done = new Promise<void>((resolve, reject) => { extract.on('finish', () => resolve()); extract.on('error', reject); });
  extract.end(data);
  await done;
  return entries.sort((a, b) => a.name.localeCompare(b.name));
}

async function deleteAndWait(name: string, graceSeconds: number): Promise<number> {
  const t = Date.now();
  await core.deleteNamespacedPod({ name, namespace: cluster.namespace, gracePeriodSeconds: graceSeconds });
  for (;;) {
    const left = await core.listNamespacedPod({ namespace: cluster.namespace, fieldSelector: `metadata.name=${name}` });
    if (left.items.length === 0) return Date.now() - t;
    if (Date.now() - t > 60_000) throw new Error(`pod ${name} still there 60 s after delete`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const jobExited = (s: PodJobState) => s.phase === 'exited' || s.phase === 'gone' || s.phase === 'upload-failed';

describe('a real single-node Kubernetes, driven with the Role of deploy/kubernetes/flashpods-rbac.yaml', () => {
  it('started within bounds and the Flashpods identity is not an admin', async () => {
    expect(figures.clusterStartMs).toBeGreaterThan(1_000);
    expect(figures.clusterStartMs).toBeLessThan(300_000);
    const denied = async (p: Promise<unknown>) => p.then(() => 'allowed', (e: { code?: number }) => e.code);
    expect(await denied(core.listNamespacedPod({ namespace: 'kube-system' }))).toBe(403);
    expect(await denied(core.listNamespacedSecret({ namespace: cluster.namespace }))).toBe(403);
    expect(await denied(core.listNode())).toBe(403);
    expect(await denied(core.listNamespacedPod({ namespace: cluster.namespace }))).toBe('allowed');
  });

  it('runs a worker: the upload streamed in through attach, /work read-only, artifacts copied out through exec, logs, delete', async () => {
    const nonce = 'a1b2c3d4e5f60718';
    const s = spec('job_e2eupload', [
      'cat /work/in/hello.txt', 'ls -A /work', 'cat /work/in/sub/deep.txt',
      'touch /work/x 2>/dev/null && echo writable || echo read-only',
      'echo result > /artifacts/out.txt', 'mkdir /artifacts/d', 'echo nested > /artifacts/d/n.txt', 'ln -s out.txt /artifacts/link',
      'chmod 000 /artifacts/d/n.txt', 'id -u',
    ].join('; '), { upload: { nonce, sizeLimitBytes: 64 * MIB } });
    const name = jobPodName(s.jobId);
    const t0 = Date.now();
    await core.createNamespacedPod({ namespace: cluster.namespace, body: jobPod(s) });
    await waitForPod(name, (st) => st.phase === 'uploading');
    figures.createToUploadingMs = Date.now() - t0;
    await streamUpload(name, { 'in/hello.txt': 'hello from the host\n', 'in/sub/deep.txt': 'deep\n' }, uploadEndMarker(nonce));
    const pod = await waitForPod(name, jobExited);
    figures.createToExitedMs = Date.now() - t0;
    expect(podJobState(pod.status)).toMatchObject({ phase: 'exited', exitCode: 0, oomKilled: false });

    // Reconciliation's view: by label selector, exactly this instance's Pod.
    const mine = await core.listNamespacedPod({ namespace: cluster.namespace, labelSelector: jobPodSelector(INSTANCE) });
    expect(mine.items.map((p) => p.metadata!.labels)).toEqual([{ 'flashpods-job': 'true', 'flashpods-job-id': 'job_e2eupload', 'flashpods-job-type': 'worker', 'flashpods-instance': INSTANCE }]);

    const logText = await readLog(name, {});
    expect(logText.map((l) => l.text)).toEqual(['hello from the host', 'in', 'deep', 'read-only', '1000']);

    const copy = await execIn(name, POD_CONTAINERS.artifacts, ARTIFACTS_COPY_COMMAND);
    expect({ status: copy.status.status, stderr: copy.stderr }).toEqual({ status: 'Success', stderr: '' });
    const entries = await untar(copy.stdout);
    expect(entries.map(({ name: n, type, body, linkname, uid }) => ({ n, type, body, linkname, uid }))).toEqual([
      { n: './', type: 'directory', body: '', linkname: undefined, uid: 0 }, // the emptyDir's root: the kubelet's
      { n: './d/', type: 'directory', body: '', linkname: undefined, uid: 1000 },
      { n: './d/n.txt', type: 'file', body: 'nested\n', linkname: undefined, uid: 1000 },
      { n: './link', type: 'symlink', body: '', linkname: 'out.txt', uid: 1000 },
      { n: './out.txt', type: 'file', body: 'result\n', linkname: undefined, uid: 1000 },
    ]);
    figures.deleteMs = await deleteAndWait(name, 3);
    expect(figures.deleteMs).toBeLessThan(20_000);
  }, 180_000);

  it('fails the Pod with the receiver\'s message when the upload stream ends before its marker', async () => {
    const s = spec('job_e2ecut', 'echo never', { upload: { nonce: 'cafe0000cafe0000', sizeLimitBytes: 64 * MIB } });
    const name = jobPodName(s.jobId);
    await core.createNamespacedPod({ namespace: cluster.namespace, body: jobPod(s) });
    await waitForPod(name, (st) => st.phase === 'uploading');
    await streamUpload(name, { 'a.txt': 'only part of it\n' }, undefined);
    const pod = await waitForPod(name, jobExited);
    expect(podJobState(pod.status)).toEqual({ phase: 'upload-failed', message: 'upload: the stream ended before its end marker: the upload was cut off' });
    expect(pod.status!.phase).toBe('Failed');
    await deleteAndWait(name, 0);
  }, 120_000);

  it('resumes the log with sinceTime after a cut: every line exactly once, in order', async () => {
    const s = spec('job_e2elogs', 'for i in $(seq 1 60); do echo line-$i; sleep 0.05; done');
    const name = jobPodName(s.jobId);
    await core.createNamespacedPod({ namespace: cluster.namespace, body: jobPod(s) });
    await waitForPod(name, (st) => st.phase === 'running' || jobExited(st));
    // A follower that stops (Flashpods killed) after 15 lines, mid-second.
    const first = await readLog(name, { follow: true, stopAfter: 15 });
    expect(first.map((l) => l.text)).toEqual(Array.from({ length: 15 }, (_, i) => `line-${i + 1}`));
    await waitForPod(name, jobExited);
    // Resume: sinceTime has whole seconds only (the API server drops the fraction), so the lines
    // of that second come again and are skipped by timestamp, ties by how many were already seen.
    const last = first.at(-1)!;
    const seenAtLast = first.filter((l) => l.ns === last.ns).length;
    const again = await readLog(name, { sinceTime: new Date(Number(last.ns / 1_000_000n)).toISOString().replace(/\.\d+Z$/, 'Z') });
    expect(again.length).toBeGreaterThan(60 - 15);
    let ties = 0;
    const rest = again.filter((l) => l.ns > last.ns || (l.ns === last.ns && ++ties > seenAtLast));
    expect([...first, ...rest].map((l) => l.text)).toEqual(Array.from({ length: 60 }, (_, i) => `line-${i + 1}`));
    await deleteAndWait(name, 0);
  }, 120_000);

  it('reports OOMKilled from the job container\'s status when it passes its memory limit', async () => {
    // `exec`: the job's main process is the one killed (a shell surviving its OOM-killed child
    // exits 0, and the container status still says OOMKilled: the integration must decide that case).
    const s = spec('job_e2eoom', 'echo start; exec dd if=/dev/zero of=/dev/null bs=128M count=1', { memoryGb: 32 / 1024 });
    const name = jobPodName(s.jobId);
    await core.createNamespacedPod({ namespace: cluster.namespace, body: jobPod(s) });
    const pod = await waitForPod(name, jobExited);
    expect(podJobState(pod.status)).toMatchObject({ phase: 'exited', exitCode: 137, oomKilled: true });
    expect((await readLog(name, {})).map((l) => l.text)).toEqual(['start']);
    await deleteAndWait(name, 0);
  }, 120_000);

  it('kills through the holder and keeps the artifacts: TERM → 143; a job ignoring TERM → KILL → 137', async () => {
    const polite = spec('job_e2eterm', 'echo partial > /artifacts/p.txt; exec sleep 300');
    const stubborn = spec('job_e2ekill', 'trap "" TERM; echo kept > /artifacts/k.txt; while :; do sleep 1; done');
    for (const s of [polite, stubborn]) await core.createNamespacedPod({ namespace: cluster.namespace, body: jobPod(s) });
    for (const s of [polite, stubborn]) await waitForPod(jobPodName(s.jobId), (st) => st.phase === 'running');
    await new Promise((r) => setTimeout(r, 1_000)); // both have written their artifact

    const term = await execIn(jobPodName(polite.jobId), POD_CONTAINERS.artifacts, killJobCommand('TERM'));
    expect(term.stdout.toString().trim()).toBe('1');
    expect(podJobState((await waitForPod(jobPodName(polite.jobId), jobExited, 15_000)).status)).toMatchObject({ phase: 'exited', exitCode: 143, oomKilled: false });

    const ignored = await execIn(jobPodName(stubborn.jobId), POD_CONTAINERS.artifacts, killJobCommand('TERM'));
    // Its shell, and its `sleep 1` when one was running.
    expect(['1', '2']).toContain(ignored.stdout.toString().trim());
    await new Promise((r) => setTimeout(r, 2_000));
    expect(podJobState((await core.readNamespacedPod({ name: jobPodName(stubborn.jobId), namespace: cluster.namespace })).status).phase).toBe('running');
    const kill = await execIn(jobPodName(stubborn.jobId), POD_CONTAINERS.artifacts, killJobCommand('KILL'));
    expect(Number(kill.stdout.toString().trim())).toBeGreaterThanOrEqual(1);
    expect(podJobState((await waitForPod(jobPodName(stubborn.jobId), jobExited, 15_000)).status)).toMatchObject({ phase: 'exited', exitCode: 137, oomKilled: false });

    for (const [s, file, body] of [[polite, './p.txt', 'partial\n'], [stubborn, './k.txt', 'kept\n']] as const) {
      const copy = await execIn(jobPodName(s.jobId), POD_CONTAINERS.artifacts, ARTIFACTS_COPY_COMMAND);
      expect((await untar(copy.stdout)).filter((e) => e.type === 'file').map((e) => [e.name, e.body])).toEqual([[file, body]]);
      await deleteAndWait(jobPodName(s.jobId), 0);
    }
  }, 180_000);

  it('deletes a running Pod with the grace period: a job ignoring TERM is gone after the grace, not before', async () => {
    const s = spec('job_e2egrace', 'trap "" TERM; while :; do sleep 1; done', { killGraceSeconds: 4 });
    const name = jobPodName(s.jobId);
    await core.createNamespacedPod({ namespace: cluster.namespace, body: jobPod(s) });
    await waitForPod(name, (st) => st.phase === 'running');
    figures.graceDeleteMs = await deleteAndWait(name, 4);
    expect(figures.graceDeleteMs).toBeGreaterThanOrEqual(4_000);
    expect(figures.graceDeleteMs).toBeLessThan(20_000);
  }, 120_000);

  it('tears down without leftovers: processes, mounts, cgroups, network namespaces, interfaces, files', async () => {
    const t = Date.now();
    clusterStopped = true;
    await cluster.stop();
    figures.teardownMs = Date.now() - t;
    expect(cluster.leftovers()).toEqual([]);
  }, 180_000);
});

interface LogLine { ns: bigint; text: string }

/** The job container's log with timestamps (`<RFC3339Nano> <text>`), parsed; optionally followed until `stopAfter` lines. */
async function readLog(pod: string, o: { follow?: boolean; stopAfter?: number; sinceTime?: string }): Promise<LogLine[]> {
  const lines: LogLine[] = [];
  let partial = '';
  let abort: AbortController | undefined;
  let stopped = false;
  return new Promise((resolve, reject) => {
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        if (stopped) return cb();
        partial += chunk.toString();
        const parts = partial.split('\n');
        partial = parts.pop()!;
        for (const p of parts) {
          const sp = p.indexOf(' ');
          lines.push({ ns: rfc3339Nanos(p.slice(0, sp)), text: p.slice(sp + 1) });
          if (o.stopAfter && lines.length === o.stopAfter) {
            stopped = true;
            abort?.abort();
            resolve(lines);
            break;
          }
        }
        cb();
      },
      final(cb) { if (!stopped) resolve(lines); cb(); },
    });
    new Log(kc).log(cluster.namespace, pod, POD_CONTAINERS.job, sink, { timestamps: true, follow: o.follow ?? false, ...(o.sinceTime ? { sinceTime: o.sinceTime } : {}) })
      .then((a) => { abort = a; if (stopped) a.abort(); }, reject);
  });
}

/** RFC3339 with 0–9 fraction digits (the kubelet trims trailing zeros) → nanoseconds since the epoch. */
function rfc3339Nanos(ts: string): bigint {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(ts);
  if (!m) throw new Error(`not an RFC3339 timestamp: ${ts}`);
  return BigInt(Date.parse(`${m[1]}${m[3]}`)) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}
