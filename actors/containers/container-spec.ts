/**
 * @module actors/containers/container-spec
 * The Docker-compatible create options of a job container, exactly as fixed by
 * spec/containers.md: name, labels, limits, user namespace, network, hardening, init, mounts,
 * command and environment; plus a pids limit, which the contract leaves open. Pure: no I/O.
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

/** Host paths of the identity sockets (spec/identity.md); identityMounts decides who gets which. */
export interface IdentitySockets {
  /** The SPIRE agent's Workload API socket. */
  spire?: string;
  /** The token service's socket. */
  token?: string;
}

/** Where the identity sockets appear inside a container (images/lib/identity.sh dials these). */
export const CONTAINER_SOCKETS = { spire: '/run/spire/sockets/agent.sock', token: '/run/flashpods/token.sock' } as const;

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
  /** Most processes and threads the container may hold at once (config limits.pidsMax). */
  pidsLimit: number;
  /** Host directory mounted at /work (ro for workers, rw for agents); no /work mount without it. */
  uploadDir?: string;
  /** Host directory mounted rw at /artifacts. */
  artifactsDir: string;
  /** The SPIRE and token sockets on the host (createAndStart leaves out ones absent there). */
  identitySockets?: IdentitySockets;
  /** Worker only: POST /jobs `need_github_token` — the only way a worker gets the identity sockets. */
  needGithubToken?: boolean;
  /** Rootless Podman: run with `--userns=keep-id` so the container uid is the host `flashpods`. */
  rootless: boolean;
  /** `slirp4netns` in production; tests may choose another mode. */
  networkMode: string;
  /** The Flashpods instance (its database) that owns the container; see INSTANCE_LABEL. */
  instanceId?: string;
  /** The container's own log (conmon-log.ts conmonLogConfig); Podman's default without it. */
  logConfig?: { Type: string; Config: Record<string, string> };
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
    ...identityMounts(spec).map(([host, container]) => `${host}:${container}:ro`),
  ];
  const env = spec.jobType === 'agent' ? agentEnv(spec) : workerEnv(spec);
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
      PidsLimit: spec.pidsLimit,
      // The compat API passes this through to Podman's --userns parser.
      ...(spec.rootless ? { UsernsMode: 'keep-id' } : {}),
      NetworkMode: spec.networkMode,
      SecurityOpt: ['no-new-privileges'],
      CapDrop: ['ALL'],
      Init: true,
      Binds: binds,
      ...(spec.logConfig ? { LogConfig: spec.logConfig } : {}),
    },
  };
}

/**
 * [host, container] pairs of the identity sockets this job gets. An agent always exchanges tokens;
 * a worker only when it asked (`need_github_token`), and otherwise gets neither socket: without
 * the token socket it cannot trade an SVID for GITHUB_TOKEN (an `npm install` script included),
 * and nothing in the contract gives a worker any other use for an SVID (the token service is its
 * only relying party), so the SPIRE socket is left out too — least privilege, and no Workload API
 * for arbitrary worker code to talk to.
 */
export function identityMounts(spec: Pick<JobContainerSpec, 'jobType' | 'needGithubToken' | 'identitySockets'>): Array<[string, string]> {
  if (spec.jobType === 'worker' && !spec.needGithubToken) return [];
  const { spire, token } = spec.identitySockets ?? {};
  return [
    ...(spire ? [[spire, CONTAINER_SOCKETS.spire] as [string, string]] : []),
    ...(token ? [[token, CONTAINER_SOCKETS.token] as [string, string]] : []),
  ];
}

/** The worker's flag for its image's entrypoint (images/worker/flashpods-tokens); no secret. */
function workerEnv(spec: JobContainerSpec): Record<string, string> {
  return spec.needGithubToken ? { FLASHPODS_NEED_GITHUB_TOKEN: 'true' } : {};
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
