/**
 * @module config
 * The one place Flashpods settings are declared: each has a default (dev and production
 * profiles), a `FLASHPODS_*` environment variable and a key in the optional JSON config file.
 * Precedence: defaults < config file < environment. Every bad value is reported at once, each
 * with the variable or key that holds it, and startup stops.
 *
 * The config holds paths, never secrets: actors read the token and secrets files themselves.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { isAbsolute, resolve } from 'node:path';

export type Profile = 'dev' | 'production';

export interface FlashpodsConfig {
  profile: Profile;
  paths: {
    db: string;
    uploads: string;
    sealedUploads: string;
    rsyncTransfers: string;
    artifacts: string;
    logs: string;
    containerLogs: string;
    apiTokenFile: string;
    apiSocket: string;
    podmanSocket: string;
    secretsFile: string;
    tokenSocket: string;
    spireSocket: string;
  };
  listen: { host: string; port: number };
  log: { format: 'json' | 'pretty'; level: 'debug' | 'info' | 'warn' | 'error' };
  capacity: { cpus: number; memoryGb: number };
  queue: { maxLength: number; startupAllowanceMs: number };
  limits: {
    bodyMaxBytes: number;
    uploadMaxBytes: number;
    uploadsTotalBytes: number;
    logCapBytes: number;
    logsTotalBytes: number;
    artifactFileMaxBytes: number;
    artifactJobMaxBytes: number;
    artifactMaxFiles: number;
    pidsMax: number;
    jobDiskMultiple: number;
  };
  ttl: { uploadUnfinalizedMs: number; uploadFinalizedMs: number; logMs: number; artifactMs: number };
  timing: { artifactIndexBudgetMs: number; killGraceMs: number; diskCheckIntervalMs: number; timeoutMinuteMs: number; cleanupIntervalMs: number; reconcileIntervalMs: number; shutdownGraceMs: number; longPollMaxMs: number; actorStartMs: number };
  rateLimit: { perSecond: number; burst: number };
  podman: { rootless: boolean; networkMode: string; agentImage: string; defaultImage: string };
  /** Which backend runs the job containers (issue 16): Podman on this host, or Pods on a cluster. */
  executor: 'podman' | 'kubernetes';
  kubernetes: {
    /** Credentials and server: a kubeconfig file (its current context). */
    kubeconfig: string;
    /** Overrides the kubeconfig's server when not empty. */
    apiUrl: string;
    namespace: string;
    nodeSelector: Record<string, string>;
    helperImage: string;
    imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
    runAsUser: number;
    /** A job's Pod not running by then (unschedulable, image missing) fails its start. */
    pendingTimeoutMs: number;
    /** A running job's Pod on a node silent this long (pod-spec.ts nodeSilence) fails as container_lost. */
    nodeLostMs: number;
  };
  faultInjection: boolean;
}

/** Dotted paths to every value of T, objects included: 'paths' | 'paths.db' | 'listen' | … */
type PathOf<T> = { [K in keyof T & string]: T[K] extends object ? K | `${K}.${PathOf<T[K]>}` : K }[keyof T & string];
/** Dotted paths to the leaves of T only. */
type LeafOf<T> = { [K in keyof T & string]: T[K] extends object ? `${K}.${LeafOf<T[K]>}` : K }[keyof T & string];
type ValueAt<T, P extends string> = P extends `${infer K}.${infer Rest}` ? (K extends keyof T ? ValueAt<T[K], Rest> : never) : P extends keyof T ? T[P] : never;
/** `profile` comes from FLASHPODS_PROFILE, before any setting: it picks the defaults. */
type SettingKey = Exclude<PathOf<FlashpodsConfig>, 'profile'>;

/**
 * One row of SETTINGS. A key that is not a path of FlashpodsConfig, or a parser that yields
 * another type than the config holds there, is a compile error.
 */
export type Setting = {
  [K in SettingKey]: { key: K; env: string; parse: (raw: unknown) => ValueAt<FlashpodsConfig, K>; dev: (home: string) => unknown; production: unknown };
}[SettingKey];

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

class BadValue extends Error {}

const parsers = {
  path: (raw: unknown) => {
    if (typeof raw !== 'string' || raw === '') throw new BadValue('must be a non-empty path');
    return resolve(raw);
  },
  int: (min: number, max = Number.MAX_SAFE_INTEGER) => (raw: unknown) => {
    const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) throw new BadValue(`must be a whole number from ${min} to ${max}`);
    return n;
  },
  /** Seconds in the env and file (what operators think in), milliseconds inside. */
  seconds: (min: number) => (raw: unknown) => {
    const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
    if (typeof n !== 'number' || !Number.isFinite(n) || n < min) throw new BadValue(`must be a number of seconds ≥ ${min}`);
    return Math.round(n * 1000);
  },
  oneOf: <const V extends string>(...values: V[]) => (raw: unknown): V => {
    if (typeof raw !== 'string' || !(values as string[]).includes(raw)) throw new BadValue(`must be one of ${values.join(', ')}`);
    return raw as V;
  },
  bool: (raw: unknown) => {
    if (raw === true || raw === 'true' || raw === '1') return true;
    if (raw === false || raw === 'false' || raw === '0') return false;
    throw new BadValue('must be true or false');
  },
  text: (raw: unknown) => {
    if (typeof raw !== 'string' || raw === '') throw new BadValue('must be a non-empty string');
    return raw;
  },
  /** Empty allowed: the setting is off. */
  optionalText: (raw: unknown) => {
    if (typeof raw !== 'string') throw new BadValue('must be a string (empty: not set)');
    return raw;
  },
  /** `key=value,key=value` (env) or an object of strings (file): Kubernetes label pairs. */
  labels: (raw: unknown): Record<string, string> => {
    const pairs = typeof raw === 'string' ? raw.split(',').filter((p) => p.trim() !== '').map((p) => p.split('=')) : raw && typeof raw === 'object' ? Object.entries(raw) : undefined;
    const label = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
    const value = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
    if (!pairs || pairs.some((p) => p.length !== 2 || typeof p[1] !== 'string' || !label.test(String(p[0]).trim()) || !value.test(String(p[1]).trim()))) {
      throw new BadValue('must be label pairs key=value separated by commas (e.g. pool=jobs,zone=a), or empty');
    }
    return Object.fromEntries(pairs.map(([k, v]) => [String(k).trim(), String(v).trim()]));
  },
  hostPort: (raw: unknown) => {
    const m = typeof raw === 'string' ? raw.match(/^(\[[0-9a-fA-F:]+\]|[\w.-]+):(\d{1,5})$/) : null;
    const port = Number(m?.[2]);
    if (!m || port > 65535) throw new BadValue('must be host:port, e.g. 10.0.0.1:8080 (port 0 picks a free one)');
    return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
  },
};

const detectedMemoryGb = Math.floor(totalmem() / GIB);

/** The settings table; README's configuration section is generated from the same rows. */
export const SETTINGS = [
  { key: 'paths.db', env: 'FLASHPODS_DB', parse: parsers.path, dev: (h) => `${h}/db/flashpods.db`, production: '/var/lib/flashpods/db/flashpods.db' },
  { key: 'paths.uploads', env: 'FLASHPODS_UPLOADS_DIR', parse: parsers.path, dev: (h) => `${h}/uploads`, production: '/tmp/flashpods/uploads' },
  // Finalized uploads move here, out of the rsync module, so nothing can change them afterwards.
  // Keep it on the same filesystem as the uploads root: finalize is a rename.
  { key: 'paths.sealedUploads', env: 'FLASHPODS_SEALED_UPLOADS_DIR', parse: parsers.path, dev: (h) => `${h}/sealed`, production: '/tmp/flashpods/sealed' },
  // The rsync daemon's register of transfers in progress (scripts/rsyncd/transfer-hook.sh): finalize
  // refuses while one may still write into the upload. Written by the daemon (root), read here.
  { key: 'paths.rsyncTransfers', env: 'FLASHPODS_RSYNC_TRANSFERS_DIR', parse: parsers.path, dev: (h) => `${h}/rsync-transfers`, production: '/run/rsyncd/transfers' },
  { key: 'paths.artifacts', env: 'FLASHPODS_ARTIFACTS_DIR', parse: parsers.path, dev: (h) => `${h}/artifacts`, production: '/var/lib/flashpods/artifacts' },
  { key: 'paths.logs', env: 'FLASHPODS_LOGS_DIR', parse: parsers.path, dev: (h) => `${h}/logs`, production: '/var/log/flashpods' },
  // conmon's own record of each running job's output and the capture's resume point beside it
  // (containers/conmon-capture.ts): written by the Podman user, 0700, gone with the container.
  { key: 'paths.containerLogs', env: 'FLASHPODS_CONTAINER_LOGS_DIR', parse: parsers.path, dev: (h) => `${h}/container-logs`, production: '/var/lib/flashpods/container-logs' },
  { key: 'paths.apiTokenFile', env: 'FLASHPODS_API_TOKEN_FILE', parse: parsers.path, dev: (h) => `${h}/api-token`, production: '/etc/flashpods/api-token' },
  { key: 'paths.apiSocket', env: 'FLASHPODS_API_SOCKET', parse: parsers.path, dev: (h) => `${h}/run/api.sock`, production: '/run/flashpods/api.sock' },
  { key: 'paths.podmanSocket', env: 'FLASHPODS_PODMAN_SOCKET', parse: parsers.path, dev: (h) => `${h}/run/podman.sock`, production: '/run/flashpods/podman.sock' },
  { key: 'paths.secretsFile', env: 'FLASHPODS_SECRETS_FILE', parse: parsers.path, dev: (h) => `${h}/secrets.json`, production: '/etc/flashpods/secrets.json' },
  // Not under /run/flashpods: that directory belongs to the API's user, who could replace a socket
  // there. Its own directory, writable by the token service's user only (nix/modules/token-service.nix).
  { key: 'paths.tokenSocket', env: 'FLASHPODS_TOKEN_SOCKET', parse: parsers.path, dev: (h) => `${h}/run/token.sock`, production: '/run/flashpods-tokens/token.sock' },
  { key: 'paths.spireSocket', env: 'FLASHPODS_SPIRE_SOCKET', parse: parsers.path, dev: (h) => `${h}/run/spire-agent.sock`, production: '/run/spire/sockets/agent.sock' },
  { key: 'listen', env: 'FLASHPODS_LISTEN', parse: parsers.hostPort, dev: () => '127.0.0.1:8080', production: '10.0.0.1:8080' },
  { key: 'log.format', env: 'FLASHPODS_LOG_FORMAT', parse: parsers.oneOf('json', 'pretty'), dev: () => 'json', production: 'json' },
  { key: 'log.level', env: 'FLASHPODS_LOG_LEVEL', parse: parsers.oneOf('debug', 'info', 'warn', 'error'), dev: () => 'info', production: 'info' },
  { key: 'capacity.cpus', env: 'FLASHPODS_CAPACITY_CPUS', parse: parsers.int(1), dev: () => availableParallelism(), production: availableParallelism() },
  { key: 'capacity.memoryGb', env: 'FLASHPODS_CAPACITY_MEMORY_GB', parse: parsers.int(1), dev: () => Math.max(1, detectedMemoryGb - 2), production: Math.max(1, detectedMemoryGb - 2) },
  // The job queue (scheduler/admission.ts): how many may wait (more is 429 queue_full), and how
  // long admission assumes a job may take from admission to running (image pull included) when
  // it bounds when running jobs end, for backfill.
  { key: 'queue.maxLength', env: 'FLASHPODS_QUEUE_MAX_LENGTH', parse: parsers.int(0), dev: () => 100, production: 100 },
  { key: 'queue.startupAllowanceMs', env: 'FLASHPODS_QUEUE_STARTUP_ALLOWANCE_SECONDS', parse: parsers.seconds(0), dev: () => 300, production: 300 },
  { key: 'limits.bodyMaxBytes', env: 'FLASHPODS_BODY_MAX_BYTES', parse: parsers.int(1024), dev: () => MIB, production: MIB },
  { key: 'limits.uploadMaxBytes', env: 'FLASHPODS_UPLOAD_MAX_BYTES', parse: parsers.int(1), dev: () => 2 * GIB, production: 2 * GIB },
  { key: 'limits.uploadsTotalBytes', env: 'FLASHPODS_UPLOADS_TOTAL_BYTES', parse: parsers.int(1), dev: () => 10 * GIB, production: 10 * GIB },
  { key: 'limits.logCapBytes', env: 'FLASHPODS_LOG_CAP_BYTES', parse: parsers.int(1024), dev: () => 50 * MIB, production: 50 * MIB },
  { key: 'limits.logsTotalBytes', env: 'FLASHPODS_LOGS_TOTAL_BYTES', parse: parsers.int(1), dev: () => 10 * GIB, production: 10 * GIB },
  { key: 'limits.artifactFileMaxBytes', env: 'FLASHPODS_ARTIFACT_FILE_MAX_BYTES', parse: parsers.int(1), dev: () => GIB, production: GIB },
  { key: 'limits.artifactJobMaxBytes', env: 'FLASHPODS_ARTIFACT_JOB_MAX_BYTES', parse: parsers.int(1), dev: () => 2 * GIB, production: 2 * GIB },
  { key: 'limits.artifactMaxFiles', env: 'FLASHPODS_ARTIFACT_MAX_FILES', parse: parsers.int(1), dev: () => 200, production: 200 },
  // Processes and threads per job container (HostConfig.PidsLimit), so a fork bomb stays inside
  // its job. Set here rather than left to Podman's unseen default (2048 in containers.conf):
  // threads count too, and 1024 is ample for a parallel build, while ten full jobs stay far
  // below a kernel pid_max of 32768.
  { key: 'limits.pidsMax', env: 'FLASHPODS_PIDS_MAX', parse: parsers.int(16, 4_194_304), dev: () => 1024, production: 1024 },
  // A running job is killed once /artifacts and its container filesystem hold more than this
  // many times limits.artifactJobMaxBytes (Podman cannot cap them on overlay without xfs
  // project quotas; docs/operations.md "Threat model"). 5 × 2 GB leaves room for a large build
  // tree in the container filesystem.
  { key: 'limits.jobDiskMultiple', env: 'FLASHPODS_JOB_DISK_MULTIPLE', parse: parsers.int(1, 1000), dev: () => 5, production: 5 },
  { key: 'ttl.uploadUnfinalizedMs', env: 'FLASHPODS_UPLOAD_UNFINALIZED_TTL_SECONDS', parse: parsers.seconds(1), dev: () => 30 * 60, production: 30 * 60 },
  { key: 'ttl.uploadFinalizedMs', env: 'FLASHPODS_UPLOAD_FINALIZED_TTL_SECONDS', parse: parsers.seconds(1), dev: () => 60 * 60, production: 60 * 60 },
  { key: 'ttl.logMs', env: 'FLASHPODS_LOG_TTL_SECONDS', parse: parsers.seconds(1), dev: () => 24 * 3600, production: 24 * 3600 },
  { key: 'ttl.artifactMs', env: 'FLASHPODS_ARTIFACT_TTL_SECONDS', parse: parsers.seconds(1), dev: () => 3600, production: 3600 },
  // How long indexing one job's /artifacts may take; what it has not reached by then is withheld
  // (not listed) with a note, so a job can never hold its reservation by leaving a huge tree.
  { key: 'timing.artifactIndexBudgetMs', env: 'FLASHPODS_ARTIFACT_INDEX_BUDGET_SECONDS', parse: parsers.seconds(0.1), dev: () => 120, production: 120 },
  { key: 'timing.killGraceMs', env: 'FLASHPODS_KILL_GRACE_SECONDS', parse: parsers.seconds(0), dev: () => 10, production: 10 },
  // How often a running job's disk use is measured against limits.jobDiskMultiple.
  { key: 'timing.diskCheckIntervalMs', env: 'FLASHPODS_DISK_CHECK_INTERVAL_SECONDS', parse: parsers.seconds(0.1), dev: () => 10, production: 10 },
  // How long one "minute" of timeout_minutes lasts. Only tests shorten it, to see real timeouts in seconds.
  { key: 'timing.timeoutMinuteMs', env: 'FLASHPODS_TIMEOUT_MINUTE_SECONDS', parse: parsers.seconds(0.1), dev: () => 60, production: 60 },
  { key: 'timing.cleanupIntervalMs', env: 'FLASHPODS_CLEANUP_INTERVAL_SECONDS', parse: parsers.seconds(0.1), dev: () => 60, production: 60 },
  { key: 'timing.reconcileIntervalMs', env: 'FLASHPODS_RECONCILE_INTERVAL_SECONDS', parse: parsers.seconds(0.1), dev: () => 30, production: 30 },
  { key: 'timing.shutdownGraceMs', env: 'FLASHPODS_SHUTDOWN_GRACE_SECONDS', parse: parsers.seconds(0), dev: () => 15, production: 15 },
  { key: 'timing.longPollMaxMs', env: 'FLASHPODS_LONG_POLL_MAX_SECONDS', parse: parsers.seconds(1), dev: () => 300, production: 300 },
  // How long an actor thread may take to load and start before it counts as crashed. A slow host
  // needs more: the emulated (TCG) VM of test/vm loads the modules about ten times slower.
  { key: 'timing.actorStartMs', env: 'FLASHPODS_ACTOR_START_TIMEOUT_SECONDS', parse: parsers.seconds(1), dev: () => 30, production: 30 },
  { key: 'rateLimit.perSecond', env: 'FLASHPODS_RATE_LIMIT_PER_SECOND', parse: parsers.int(1), dev: () => 100, production: 100 },
  { key: 'rateLimit.burst', env: 'FLASHPODS_RATE_LIMIT_BURST', parse: parsers.int(1), dev: () => 10, production: 10 },
  { key: 'podman.rootless', env: 'FLASHPODS_PODMAN_ROOTLESS', parse: parsers.bool, dev: () => process.getuid?.() !== 0, production: true },
  { key: 'podman.networkMode', env: 'FLASHPODS_CONTAINER_NETWORK', parse: parsers.text, dev: () => 'slirp4netns', production: 'slirp4netns' },
  { key: 'podman.agentImage', env: 'FLASHPODS_AGENT_IMAGE', parse: parsers.text, dev: () => 'flashpods/agent:latest', production: 'flashpods/agent:latest' },
  { key: 'podman.defaultImage', env: 'FLASHPODS_DEFAULT_IMAGE', parse: parsers.text, dev: () => 'ubuntu:22.04', production: 'ubuntu:22.04' },
  { key: 'executor', env: 'FLASHPODS_EXECUTOR', parse: parsers.oneOf('podman', 'kubernetes'), dev: () => 'podman', production: 'podman' },
  // The FLASHPODS_KUBERNETES_* settings are read only with FLASHPODS_EXECUTOR=kubernetes (README "Running on a cluster").
  { key: 'kubernetes.kubeconfig', env: 'FLASHPODS_KUBERNETES_KUBECONFIG', parse: parsers.path, dev: (h) => `${h}/kubeconfig`, production: '/etc/flashpods/kubeconfig' },
  { key: 'kubernetes.apiUrl', env: 'FLASHPODS_KUBERNETES_API_URL', parse: parsers.optionalText, dev: () => '', production: '' },
  { key: 'kubernetes.namespace', env: 'FLASHPODS_KUBERNETES_NAMESPACE', parse: parsers.text, dev: () => 'flashpods', production: 'flashpods' },
  { key: 'kubernetes.nodeSelector', env: 'FLASHPODS_KUBERNETES_NODE_SELECTOR', parse: parsers.labels, dev: () => '', production: '' },
  { key: 'kubernetes.helperImage', env: 'FLASHPODS_KUBERNETES_HELPER_IMAGE', parse: parsers.text, dev: () => 'busybox:1.36', production: 'busybox:1.36' },
  { key: 'kubernetes.imagePullPolicy', env: 'FLASHPODS_KUBERNETES_IMAGE_PULL_POLICY', parse: parsers.oneOf('Always', 'IfNotPresent', 'Never'), dev: () => 'IfNotPresent', production: 'IfNotPresent' },
  { key: 'kubernetes.runAsUser', env: 'FLASHPODS_KUBERNETES_RUN_AS_USER', parse: parsers.int(1, 2_147_483_647), dev: () => 1000, production: 1000 },
  { key: 'kubernetes.pendingTimeoutMs', env: 'FLASHPODS_KUBERNETES_PENDING_TIMEOUT_SECONDS', parse: parsers.seconds(1), dev: () => 300, production: 300 },
  // Counted after the cluster's own node-monitor-grace-period (50 s by default) has marked the
  // node's Pods not ready: a kubelet restart never gets that far, a dead node always does.
  { key: 'kubernetes.nodeLostMs', env: 'FLASHPODS_KUBERNETES_NODE_LOST_SECONDS', parse: parsers.seconds(1), dev: () => 60, production: 60 },
  // Tests only: POST /_faults/crash/:actor kills that actor so recovery can be watched. Refused in production.
  { key: 'faultInjection', env: 'FLASHPODS_FAULT_INJECTION', parse: parsers.bool, dev: () => false, production: false },
] satisfies readonly Setting[];

/** FlashpodsConfig values no row of SETTINGS sets (never, or loadConfig stops compiling). */
type WithoutRow = Exclude<Exclude<LeafOf<FlashpodsConfig>, 'profile'>, (typeof SETTINGS)[number]['key'] | `${(typeof SETTINGS)[number]['key']}.${string}`>;

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Flashpods cannot start; fix these settings:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

function lookup(tree: unknown, key: string): unknown {
  return key.split('.').reduce<unknown>((node, part) => (node && typeof node === 'object' ? (node as Record<string, unknown>)[part] : undefined), tree);
}

function assign(tree: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let node = tree;
  for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
  node[parts.at(-1)!] = value;
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** What loadConfig reads besides the SETTINGS rows. */
export const LOADER_ENV = ['FLASHPODS_CONFIG', 'FLASHPODS_PROFILE', 'FLASHPODS_HOME'] as const;

/** Builds the config from defaults, the file named by FLASHPODS_CONFIG, and FLASHPODS_* env. */
export function loadConfig({ env = process.env, cwd = process.cwd() }: LoadOptions = {}): FlashpodsConfig {
  const problems: string[] = [];
  let file: unknown = {};
  const filePath = env.FLASHPODS_CONFIG;
  if (filePath) {
    try {
      file = JSON.parse(readFileSync(resolve(cwd, filePath), 'utf8'));
    } catch (err) {
      problems.push(`FLASHPODS_CONFIG=${filePath}: cannot read it as JSON (${(err as Error).message})`);
    }
  }
  const profileRaw = env.FLASHPODS_PROFILE ?? lookup(file, 'profile') ?? 'dev';
  const profile: Profile = profileRaw === 'production' ? 'production' : 'dev';
  if (profileRaw !== 'dev' && profileRaw !== 'production') problems.push(`FLASHPODS_PROFILE=${String(profileRaw)}: must be dev or production`);
  const homeRaw = env.FLASHPODS_HOME ?? '.flashpods';
  const home = isAbsolute(homeRaw) ? homeRaw : resolve(cwd, homeRaw);

  const config: { profile: Profile } = { profile };
  for (const setting of SETTINGS) {
    const fromEnv = env[setting.env];
    const fromFile = lookup(file, setting.key);
    const [source, raw] = fromEnv !== undefined ? [setting.env, fromEnv] : fromFile !== undefined ? [`${filePath}: ${setting.key}`, fromFile] : [undefined, profile === 'dev' ? setting.dev(home) : setting.production];
    try {
      assign(config, setting.key, setting.parse(raw));
    } catch (err) {
      if (!(err instanceof BadValue)) throw err;
      problems.push(`${source ?? `default of ${setting.key}`}=${JSON.stringify(raw)}: ${err.message}`);
    }
  }
  if (profile === 'production' && lookup(config, 'faultInjection') === true) problems.push('FLASHPODS_FAULT_INJECTION=true: fault injection is for tests and refused in the production profile');
  if (problems.length > 0) throw new ConfigError(problems);
  // Sound: every row's parser yields the type FlashpodsConfig has at its key, and every value has
  // a row (WithoutRow is never; were it not, this type would name the value left without one).
  return config as [WithoutRow] extends [never] ? FlashpodsConfig : { settingMissingFor: WithoutRow };
}
