/**
 * @module actors/containers/container-spec
 * The Docker-compatible create options of a job container, exactly as fixed by
 * spec/containers.md: name, labels, limits, user namespace, network, hardening, init, mounts,
 * command and environment. Pure: no I/O.
 */
import type { ContainerCreateOptions } from 'dockerode';

export type JobType = 'worker' | 'agent';

export const JOB_LABEL = 'flashpods-job';
export const JOB_ID_LABEL = 'flashpods-job-id';
export const JOB_TYPE_LABEL = 'flashpods-job-type';
/**
 * A fourth label beyond the contract's three: which Flashpods database owns the container. Two
 * instances sharing one Podman (a dev server beside a test run) must never take each other's
 * containers for orphans; a `flashpods-job=true` container without it is treated as ours.
 */
export const INSTANCE_LABEL = 'flashpods-instance';

/** A host socket mounted read-only into the container (same path in production). */
export interface SocketMount {
  host: string;
  container: string;
}

export interface JobContainerSpec {
  jobId: string;
  jobType: JobType;
  /** Worker: as requested. Agent: the caller passes `flashpods/agent:latest`. */
  image: string;
  /** Worker only: run as `/bin/sh -c <command>`. */
  command?: string;
  task?: string;
  context?: string;
  gitBranch?: string;
  cpus: number;
  /** GiB. The API only admits integers; fractions are accepted here so tests can use small limits. */
  memoryGb: number;
  /** Host directory mounted at /work (ro for workers, rw for agents); no /work mount without it. */
  uploadDir?: string;
  /** Host directory mounted rw at /artifacts. */
  artifactsDir: string;
  /** The SPIRE and token sockets (createAndStart skips ones absent on the host). */
  socketMounts: SocketMount[];
  /** Rootless Podman: run with `--userns=keep-id` so the container uid is the host `flashpods`. */
  rootless: boolean;
  /** `slirp4netns` in production; tests may choose another mode. */
  networkMode: string;
  /** Non-secret flags such as `FLASHPODS_NEED_GITHUB_TOKEN=true`. */
  extraEnv?: Record<string, string>;
  /** The Flashpods instance (its database) that owns the container; see INSTANCE_LABEL. */
  instanceId?: string;
}

const GIB = 1024 ** 3;

/** `job_<job_id>`; job ids already start with `job_`, which is not doubled. */
export function jobContainerName(jobId: string): string {
  return jobId.startsWith('job_') ? jobId : `job_${jobId}`;
}

export function jobContainerOptions(spec: JobContainerSpec): ContainerCreateOptions {
  const memory = Math.round(spec.memoryGb * GIB);
  const binds = [
    ...(spec.uploadDir ? [`${spec.uploadDir}:/work:${spec.jobType === 'agent' ? 'rw' : 'ro'}`] : []),
    `${spec.artifactsDir}:/artifacts:rw`,
    ...spec.socketMounts.map((m) => `${m.host}:${m.container}:ro`),
  ];
  const env = { ...(spec.jobType === 'agent' ? agentEnv(spec) : {}), ...spec.extraEnv };
  return {
    name: jobContainerName(spec.jobId),
    Image: spec.image,
    Cmd: spec.jobType === 'agent' ? ['/entrypoint.sh'] : ['/bin/sh', '-c', requireCommand(spec)],
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: {
      [JOB_LABEL]: 'true',
      [JOB_ID_LABEL]: spec.jobId,
      [JOB_TYPE_LABEL]: spec.jobType,
      ...(spec.instanceId ? { [INSTANCE_LABEL]: spec.instanceId } : {}),
    },
    HostConfig: {
      NanoCpus: Math.round(spec.cpus * 1e9),
      Memory: memory,
      // Equal to Memory: no swap on top of the limit.
      MemorySwap: memory,
      // The compat API passes this through to Podman's --userns parser.
      ...(spec.rootless ? { UsernsMode: 'keep-id' } : {}),
      NetworkMode: spec.networkMode,
      SecurityOpt: ['no-new-privileges'],
      CapDrop: ['ALL'],
      Init: true,
      Binds: binds,
    },
  };
}

function agentEnv(spec: JobContainerSpec): Record<string, string> {
  return {
    FLASHPODS_TASK: spec.task ?? '',
    FLASHPODS_CONTEXT: spec.context ?? '',
    FLASHPODS_GIT_BRANCH: spec.gitBranch ?? '',
    FLASHPODS_JOB_ID: spec.jobId,
  };
}

function requireCommand(spec: JobContainerSpec): string {
  if (spec.command === undefined) throw new Error(`worker job ${spec.jobId} has no command`);
  return spec.command;
}
