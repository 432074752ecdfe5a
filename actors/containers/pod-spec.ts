/**
 * @module actors/containers/pod-spec
 * A job as a Kubernetes Pod (issue 16): the Pod object, the commands Flashpods runs in it through
 * the API server, and what the Pod's status says about the job. The Pod counterpart of
 * container-spec.ts, whose labels, command and environment it reuses. Pure: no I/O.
 *
 * ## Files in and out without a network path from the Pod to the host
 * Everything moves through the API server's streams (pods/attach, pods/exec), so a job needs no
 * route to Flashpods and Flashpods none to the node. Three containers share two emptyDirs:
 *
 *   upload     init container (only with an upload), helper image, `stdin` + `stdinOnce`: runs
 *              `tar -x` into the `work` emptyDir from its own stdin. Flashpods attaches once and
 *              streams the upload as a tar ending with a per-job marker entry
 *              (uploadEndMarker); the container then checks the marker arrived and removes it.
 *   job        the job: image, args and environment exactly as on Podman; `/work` (read-only
 *              for workers) and `/artifacts` mounted from the emptyDirs.
 *   artifacts  helper image, holds the `artifacts` emptyDir open after the job ends: Flashpods
 *              reads it back with `exec tar -c` (ARTIFACTS_COPY_COMMAND), then deletes the Pod.
 *
 * Why attach for the upload and not exec into a waiting init container: with `stdinOnce` the
 * container's stdin closes when the one attach session ends, however it ends, so the tar process
 * itself is the transfer's end: a finished stream lets it exit and the job start, a cut one
 * (Flashpods killed, connection lost) ends it too. Busybox and GNU tar both exit 0 at an EOF that
 * falls between two entries, so completeness is proven by the marker, whose name carries a nonce
 * the upload (finalized before the Pod exists) cannot anticipate; a missing marker fails the init
 * container, the Pod fails (restartPolicy Never) and its status says why. No polling loop, no
 * second exec, and no init container left waiting forever after a crash. An exec-based receiver
 * would need both, and an exec session's stdin half-close only exists in the v5 stream protocol.
 *
 * Why a holder container and not a native sidecar: a sidecar (init container with
 * restartPolicy Always) is stopped by the kubelet as soon as the job container ends, taking the
 * only way into the emptyDir with it. The holder keeps the Pod Running after the job exits (the
 * job's own state is read from its container status, podJobState) until Flashpods has copied the
 * artifacts and deletes the Pod. The emptyDir lives on the node, so nothing is copied unless
 * Flashpods asks for it, and deleting the Pod removes it.
 *
 * Kill keeps the artifacts (jobs.md: a cancelled or timed-out job keeps them): deleting the Pod
 * would kill the holder too. So the Pod shares one process namespace (which also gives the job
 * what `--init` gives it on Podman: a PID 1, the pause process, that reaps zombies), and a kill
 * is an exec in the holder (killJobCommand): SIGTERM to every process of the job container, its
 * main process last, and after the grace SIGKILL to every one left. The price: a job can
 * see and signal the holder (same uid); a job that kills it loses only its own artifacts
 * (`artifact_copy_container_gone`, storage.md). Pod deletion with the grace period stays the
 * final removal and the fallback kill when the holder is gone.
 *
 * activeDeadlineSeconds is the cluster's backstop for a Pod Flashpods has abandoned (crashed, or
 * lost the cluster): the contract's timeout runs from the job container's start (jobs.md), which
 * a Pod-wide deadline that also counts the upload cannot express, so Flashpods' own clock kills
 * on time and the deadline is the timeout plus BACKSTOP_MARGIN_SECONDS for upload, grace and copy.
 *
 * Host side (the integration's part, same rules as actors/artifacts): the copy-out tar is hostile.
 * ArtifactUnpack below is the interface it gets.
 */
import type { V1Container, V1EnvVar, V1Pod, V1PodStatus, V1ResourceRequirements, V1SecurityContext } from '@kubernetes/client-node';
import { INSTANCE_LABEL, JOB_ID_LABEL, JOB_LABEL, JOB_TYPE_LABEL, jobContainerOptions, type JobContainerSpec } from './container-spec.ts';
import { thenTermMain } from './term-every-process.ts';

/** The Pod's containers, by role. */
export const POD_CONTAINERS = { upload: 'upload', job: 'job', artifacts: 'artifacts' } as const;

export const WORK_DIR = '/work';
export const ARTIFACTS_DIR = '/artifacts';

/** Added to the timeout for activeDeadlineSeconds: upload, kill grace and artifact copy. */
export const BACKSTOP_MARGIN_SECONDS = 15 * 60;

/**
 * Requests = limits of each helper container (tar and sleep). They add to the job's own figures
 * in the scheduler's view, so the Pod stays in the Guaranteed QoS class; admission must count them.
 */
export const HELPER_RESOURCES = { cpu: '100m', memory: '64Mi' } as const;

/** The upload's end marker: `.flashpods-upload-end-<nonce>`, a top-level entry of the tar. */
export const UPLOAD_END_MARKER_PREFIX = '.flashpods-upload-end-';

export interface KubernetesPodSettings {
  namespace: string;
  /** Nodes the job may run on (FLASHPODS_KUBERNETES_NODE_SELECTOR); empty = any node. */
  nodeSelector: Record<string, string>;
  /** The uid (and gid) every container runs as: never 0. */
  runAsUser: number;
  /** Image of the upload and artifacts helpers: needs `sh`, `tar`, `sleep`, `cat`, `kill`, `chmod`. */
  helperImage: string;
  /** `IfNotPresent` in production; `Never` where images are imported into the node (tests). */
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
}

export type JobPodSpec = Pick<JobContainerSpec,
  'jobId' | 'jobType' | 'image' | 'command' | 'task' | 'context' | 'gitBranch' | 'cpus' | 'memoryGb' | 'needGithubToken' | 'instanceId'> & {
  timeoutSeconds: number;
  /** terminationGracePeriodSeconds: what a delete with the grace period gives the job. */
  killGraceSeconds: number;
  /** Present when the job has an upload: then /work exists, filled by the `upload` init container. */
  upload?: {
    /** Random, per job, [a-z0-9]{16,64}: names the end marker (uploadEndMarker). */
    nonce: string;
    /** sizeLimit of the `work` emptyDir (the upload, plus what an agent may add). */
    sizeLimitBytes: number;
  };
  /** sizeLimit of the `artifacts` emptyDir: past it the kubelet evicts the Pod. */
  artifactsSizeLimitBytes: number;
  settings: KubernetesPodSettings;
};

const GIB = 1024 ** 3;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const NONCE = /^[a-z0-9]{16,64}$/;

/** `job-<id>`: Pod names are DNS labels (no `_`); the job id itself is in a label. */
export function jobPodName(jobId: string): string {
  const name = `job-${(jobId.startsWith('job_') ? jobId.slice(4) : jobId).replaceAll('_', '-')}`;
  if (!DNS_LABEL.test(name)) throw new Error(`job id ${jobId} gives no valid Pod name (${name})`);
  return name;
}

export function uploadEndMarker(nonce: string): string {
  if (!NONCE.test(nonce)) throw new Error('the upload nonce must be 16 to 64 characters of [a-z0-9]');
  return `${UPLOAD_END_MARKER_PREFIX}${nonce}`;
}

/** Label selector of every Pod of this Flashpods instance (reconciliation), or of all Flashpods Pods. */
export function jobPodSelector(instanceId?: string): string {
  return instanceId ? `${JOB_LABEL}=true,${INSTANCE_LABEL}=${instanceId}` : `${JOB_LABEL}=true`;
}

export function jobPod(spec: JobPodSpec): V1Pod {
  const { settings } = spec;
  if (!Number.isInteger(settings.runAsUser) || settings.runAsUser <= 0) throw new Error(`runAsUser must be a uid above 0 (got ${settings.runAsUser})`);
  const { Cmd, Env } = dockerCommandAndEnv(spec);
  const hasUpload = spec.upload !== undefined;
  const job: V1Container = {
    name: POD_CONTAINERS.job,
    image: spec.image,
    imagePullPolicy: settings.imagePullPolicy,
    // Docker's Cmd is Kubernetes' args: the image's ENTRYPOINT stays, as on Podman.
    args: Cmd,
    env: Env.map(toEnvVar),
    resources: withEphemeralStorage(guaranteed(`${Math.round(spec.cpus * 1000)}m`, String(Math.round(spec.memoryGb * GIB))),
      spec.artifactsSizeLimitBytes + (spec.upload?.sizeLimitBytes ?? 0)),
    securityContext: HARDENED,
    volumeMounts: [
      ...(hasUpload ? [{ name: 'work', mountPath: WORK_DIR, readOnly: spec.jobType === 'worker' }] : []),
      { name: 'artifacts', mountPath: ARTIFACTS_DIR },
    ],
  };
  const holder: V1Container = {
    name: POD_CONTAINERS.artifacts,
    image: settings.helperImage,
    imagePullPolicy: settings.imagePullPolicy,
    command: ['/bin/sh', '-c', 'exec sleep 2147483647'],
    resources: guaranteed(HELPER_RESOURCES.cpu, HELPER_RESOURCES.memory),
    securityContext: HARDENED,
    volumeMounts: [{ name: 'artifacts', mountPath: ARTIFACTS_DIR }],
  };
  const receiver: V1Container[] = spec.upload ? [{
    name: POD_CONTAINERS.upload,
    image: settings.helperImage,
    imagePullPolicy: settings.imagePullPolicy,
    command: ['/bin/sh', '-c', receiveUploadScript(uploadEndMarker(spec.upload.nonce))],
    stdin: true,
    stdinOnce: true,
    // The script's complaint becomes the terminated state's message.
    terminationMessagePolicy: 'FallbackToLogsOnError',
    resources: guaranteed(HELPER_RESOURCES.cpu, HELPER_RESOURCES.memory),
    securityContext: HARDENED,
    volumeMounts: [{ name: 'work', mountPath: WORK_DIR }],
  }] : [];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: jobPodName(spec.jobId),
      namespace: settings.namespace,
      labels: {
        [JOB_LABEL]: 'true',
        [JOB_ID_LABEL]: spec.jobId,
        [JOB_TYPE_LABEL]: spec.jobType,
        ...(spec.instanceId ? { [INSTANCE_LABEL]: spec.instanceId } : {}),
      },
    },
    spec: {
      restartPolicy: 'Never',
      activeDeadlineSeconds: spec.timeoutSeconds + BACKSTOP_MARGIN_SECONDS,
      terminationGracePeriodSeconds: spec.killGraceSeconds,
      automountServiceAccountToken: false,
      // No service environment variables: a job learns nothing about the cluster's services.
      enableServiceLinks: false,
      shareProcessNamespace: true,
      ...(Object.keys(settings.nodeSelector).length > 0 ? { nodeSelector: settings.nodeSelector } : {}),
      securityContext: {
        runAsNonRoot: true,
        runAsUser: settings.runAsUser,
        runAsGroup: settings.runAsUser,
        seccompProfile: { type: 'RuntimeDefault' },
      },
      ...(receiver.length > 0 ? { initContainers: receiver } : {}),
      containers: [job, holder],
      volumes: [
        ...(spec.upload ? [{ name: 'work', emptyDir: { sizeLimit: String(spec.upload.sizeLimitBytes) } }] : []),
        { name: 'artifacts', emptyDir: { sizeLimit: String(spec.artifactsSizeLimitBytes) } },
      ],
    },
  };
}

/** Per container: containers.md's hardening (runAsNonRoot and seccomp are set for the whole Pod). */
const HARDENED: V1SecurityContext = { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } };

function guaranteed(cpu: string, memory: string): V1ResourceRequirements {
  return { requests: { cpu, memory }, limits: { cpu, memory } };
}

/**
 * The disk budget on the node. The kubelet counts against a container's ephemeral-storage limit
 * its writable layer and its log, and against the Pod's (the sum of its containers' limits: only
 * the job's has one) those plus the emptyDirs; past either it evicts the Pod (storageEviction).
 * The job's limit is its budget plus the upload's room, so the Pod-wide check has the same room
 * as /artifacts' and /work's own sizeLimits. Request = limit: the scheduler places the job only
 * where that much disk is, as admission does for cpus and memory.
 */
function withEphemeralStorage(resources: V1ResourceRequirements, bytes: number): V1ResourceRequirements {
  const storage = { 'ephemeral-storage': String(bytes) };
  return { requests: { ...resources.requests, ...storage }, limits: { ...resources.limits, ...storage } };
}

/**
 * The job's command and environment from container-spec.ts, the one source of truth for both
 * executors. Until the JobExecutor refactor exports them on their own, they are read off the
 * Docker options; the Podman-only fields given here do not influence Cmd or Env.
 */
function dockerCommandAndEnv(spec: JobPodSpec): { Cmd: string[]; Env: string[] } {
  const o = jobContainerOptions({ ...spec, pidsLimit: 0, artifactsDir: ARTIFACTS_DIR, rootless: false, networkMode: 'none' });
  return { Cmd: o.Cmd as string[], Env: o.Env ?? [] };
}

function toEnvVar(entry: string): V1EnvVar {
  const eq = entry.indexOf('=');
  return { name: entry.slice(0, eq), value: entry.slice(eq + 1) };
}

/** The init container's script: unpack stdin into /work; the marker proves the stream was whole. */
function receiveUploadScript(marker: string): string {
  return [
    `tar -x -f - -C ${WORK_DIR} || { echo "upload: tar failed: the upload stream was not a whole tar" >&2; exit 1; }`,
    `[ -f ${WORK_DIR}/${marker} ] || { echo "upload: the stream ended before its end marker: the upload was cut off" >&2; exit 1; }`,
    `rm ${WORK_DIR}/${marker}`,
  ].join('\n');
}

/**
 * exec in the `artifacts` container: /artifacts as a tar on stdout. The owner's access comes back
 * first (the holder runs as the job's uid), as actors/artifacts does for a job's `chmod 000`.
 * chmod gets the top-level entries, not /artifacts itself: the emptyDir's root is not the job's,
 * and busybox `chmod -R` does not descend into a directory it failed to change. The globs that
 * match nothing stay literal and fail quietly.
 */
export const ARTIFACTS_COPY_COMMAND = ['/bin/sh', '-c', `cd ${ARTIFACTS_DIR} && chmod -R u+rwX -- * .[!.]* ..?* 2>/dev/null; exec tar -c -f - .`];

/**
 * exec in the `artifacts` container: signal the job container's processes, found in the shared
 * process namespace by the cgroup of its main process. Prints how many processes it signalled.
 *
 * TERM is term-every-process.ts's sequence, as on Podman: the main process is paused (SIGSTOP),
 * every other process gets SIGTERM and SIGCONT, and once they have all exited the main process
 * gets SIGTERM and SIGCONT, so a child's cleanup is not cut short by the container ending with
 * its main process (the runtime then kills what is left in its cgroup). The waiting part runs in
 * the background and the exec returns at once; the caller's KILL at the end of the grace ends
 * it too. Where the main process cannot be paused, SIGTERM goes to every process at once; where
 * there is none (the job has ended), nothing is signalled.
 * KILL goes to every process, repeated until none is left (a fork loop races a single pass).
 */
export function killJobCommand(signal: 'TERM' | 'KILL'): string[] {
  // The main process: PPid 0 (its parent, the shim, is outside the namespace), not pid 1 (the
  // sandbox's), not in this holder's cgroup (its own processes and this exec). The job's
  // processes are those in the main process's cgroup: the sandbox's own children (a pause image
  // may have some) are not.
  const jobProcesses = `self=$(cat /proc/self/cgroup)
main=
job=
for d in /proc/[0-9]*; do
  p=\${d#/proc/}
  [ "$p" = 1 ] && continue
  grep -q '^PPid:[[:space:]]*0$' "$d/status" 2>/dev/null || continue
  c=$(cat "$d/cgroup" 2>/dev/null) || continue
  [ -n "$c" ] && [ "$c" != "$self" ] && { main=$p; job=$c; }
done
[ -n "$main" ] || { echo 0; exit 0; }
job_pids() {
  for d in /proc/[0-9]*; do
    c=$(cat "$d/cgroup" 2>/dev/null) || continue
    [ "$c" = "$job" ] && echo "\${d#/proc/}"
  done
}`;
  const script = signal === 'KILL' ? `${jobProcesses}
total=0
for round in $(seq 1 50); do
  n=0
  for p in $(job_pids); do kill -KILL "$p" 2>/dev/null && n=$((n + 1)); done
  total=$((total + n))
  [ $n = 0 ] && break
  sleep 0.1
done
echo $total` : `${jobProcesses}
if ! kill -STOP "$main" 2>/dev/null; then
  n=0
  for p in $(job_pids); do kill -TERM "$p" 2>/dev/null && n=$((n + 1)); done
  echo $n
  exit 0
fi
n=1
for p in $(job_pids); do
  [ "$p" = "$main" ] && continue
  kill -TERM "$p" 2>/dev/null && kill -CONT "$p" 2>/dev/null && n=$((n + 1))
done
(
${thenTermMain('job_pids', '"$main"')}
) </dev/null >/dev/null 2>&1 &
echo $n`;
  return ['/bin/sh', '-c', script];
}

/** Where a job stands, read from its Pod's status alone. */
export type PodJobState =
  | { phase: 'pending'; reason?: string; message?: string }
  | { phase: 'uploading' }
  | { phase: 'upload-failed'; message: string }
  | { phase: 'running'; startedAt?: Date }
  /** `evicted`: the kubelet's message when it evicted the Pod (its containers killed at once). */
  | { phase: 'exited'; exitCode: number; oomKilled: boolean; finishedAt?: Date; evicted?: string }
  | { phase: 'gone'; reason: string; message: string };

export function podJobState(status: V1PodStatus | undefined): PodJobState {
  const job = status?.containerStatuses?.find((c) => c.name === POD_CONTAINERS.job);
  const terminated = job?.state?.terminated;
  if (terminated) {
    return {
      phase: 'exited', exitCode: terminated.exitCode, oomKilled: terminated.reason === 'OOMKilled',
      ...(terminated.finishedAt ? { finishedAt: new Date(terminated.finishedAt) } : {}),
      ...(status?.reason === 'Evicted' ? { evicted: (status.message ?? '').trim() || 'no message given' } : {}),
    };
  }
  if (job?.state?.running) return { phase: 'running', ...(job.state.running.startedAt ? { startedAt: new Date(job.state.running.startedAt) } : {}) };
  if (status?.phase === 'Failed' || status?.phase === 'Succeeded') {
    const upload = status.initContainerStatuses?.find((c) => c.name === POD_CONTAINERS.upload)?.state?.terminated;
    if (upload && upload.exitCode !== 0) return { phase: 'upload-failed', message: (upload.message ?? '').trim() || `the upload container exited ${upload.exitCode}` };
    return { phase: 'gone', reason: status.reason ?? status.phase, message: status.message ?? `the Pod ${status.phase.toLowerCase()} before the job container started` };
  }
  const upload = status?.initContainerStatuses?.find((c) => c.name === POD_CONTAINERS.upload);
  if (upload?.state?.running) return { phase: 'uploading' };
  const waiting = job?.state?.waiting;
  const unscheduled = status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  const reason = waiting?.reason ?? unscheduled?.reason;
  const message = waiting?.message ?? unscheduled?.message;
  return { phase: 'pending', ...(reason ? { reason } : {}), ...(message ? { message } : {}) };
}

/**
 * What the host-side unpacker of ARTIFACTS_COPY_COMMAND's tar gets (the integration implements
 * it beside actors/artifacts): entries are created relative to an open directory descriptor
 * (dir-fd.ts), never through a link; a name is kept only if every path component passes
 * artifactNameProblem (contract/artifacts.ts); symlinks are created as symlinks, unresolved
 * (the indexer then applies storage.md's rule to them); hard links, devices, fifos and
 * absolute or `..` paths are dropped and reported. The byte and entry caps bound what reaches
 * the host disk while streaming, so a Pod cannot fill it: past them the copy stops and the
 * indexer's limits decide what stays.
 */
export interface ArtifactUnpack {
  /** The job's artifact directory, open with O_DIRECTORY | O_NOFOLLOW. */
  targetDirFd: number;
  /** The disk budget: jobDiskMultiple × artifactJobMaxBytes (disk-watch.ts). */
  maxBytes: number;
  /** disk-watch.ts's MAX_JOB_ENTRIES. */
  maxEntries: number;
}

export interface ArtifactUnpackResult {
  files: number;
  bytes: number;
  /** Entries not written, each with the reason (type, name rule, cap). */
  dropped: Array<{ name: string; reason: string }>;
  /** True when a cap stopped the copy before the tar's end. */
  truncated: boolean;
}

/**
 * Whether the kubelet's eviction message (podJobState's `evicted`) is for disk: the job
 * container's ephemeral-storage limit, the Pod's total, or an emptyDir's sizeLimit — the disk
 * budget. Other evictions are the node's own pressure, not the job's doing.
 */
export function storageEviction(message: string): boolean {
  return /exceeded its local ephemeral storage limit|ephemeral local storage usage exceeds|^Usage of EmptyDir volume/.test(message);
}

/**
 * Why the cluster no longer knows what the Pod's node is doing, or undefined while it does. The
 * node lifecycle controller, once a node has not reported for its node-monitor-grace-period,
 * sets each of its Pods' Ready condition to False and leaves the rest of the status as the
 * kubelet last wrote it; the kubelet itself never sets Ready False without ContainersReady False.
 * So Ready False beside ContainersReady True, on a Pod whose job container was last seen
 * running, means its node went silent (down, cut off, or its kubelet dead): the running state is
 * stale. On a single-node cluster, or when every node of a zone is down, the controller does
 * not evict (it cannot tell a dead cluster network from dead nodes), so Flashpods must decide.
 */
export function nodeSilence(pod: Pick<V1Pod, 'spec' | 'status'>): string | undefined {
  const conditions = pod.status?.conditions ?? [];
  const ready = conditions.find((c) => c.type === 'Ready');
  const containersReady = conditions.find((c) => c.type === 'ContainersReady');
  if (ready?.status !== 'False' || containersReady?.status !== 'True') return undefined;
  if (podJobState(pod.status).phase !== 'running') return undefined;
  return `its node ${pod.spec?.nodeName ?? '(unknown)'} stopped reporting to the cluster (the Pod is marked not ready while its containers were last reported ready)`;
}
