/**
 * @module job-request
 * Validates a POST /jobs body into a `JobRequest`, with the contract's codes and its
 * clamp-versus-reject rule: cpus/memory above the type's maximum are clamped; below 1,
 * fractional or not a number are rejected; timeout_minutes is never clamped.
 * The API runs this at the edge, so only valid requests become messages to the scheduler.
 */
import { CreateJobSchema } from '../contract/api-schemas.ts';
import { apiError, type ErrorCode } from '../contract/errors.ts';
import {
  DEFAULT_WORKER_IMAGE, MAX_IMAGE_CHARS, QUEUE_TIMEOUT_MINUTES, TIMEOUT_MINUTES, TYPE_LIMITS, UPLOAD_ID_SHAPE, type JobType,
} from '../contract/jobs.ts';

export interface JobRequest {
  clientJobId: string | undefined;
  type: JobType;
  command: string | undefined;
  task: string | undefined;
  context: string | undefined;
  gitBranch: string | undefined;
  filesId: string | undefined;
  image: string;
  cpus: number;
  memoryGb: number;
  timeoutMinutes: number;
  /** Worker only: exchange a JWT-SVID for GITHUB_TOKEN before the command (FLASHPODS_NEED_GITHUB_TOKEN=true). */
  needGithubToken?: boolean;
  /** POST /jobs `queue`: wait in the queue when it does not fit now, instead of a 429. */
  queue: boolean;
  /** How long it may wait queued before it expires. */
  queueTimeoutMinutes: number;
  /** Fields that were clamped to the type's maximum, so the API can say so. */
  clamped: Array<'cpus' | 'memory_gb'>;
}

/** Whether a field's value meets its rule in the request's schema (contract/api-schemas.ts). */
const accepts = (field: keyof typeof CreateJobSchema.shape, value: unknown) => CreateJobSchema.shape[field].safeParse(value).success;

/** `[registry/]name[:tag]` within the length limit; the MCP shim checks it before uploading. */
export function isValidImage(image: string): boolean {
  return accepts('image', image);
}

/** git check-ref-format rules for a branch name. */
export function isValidGitRef(name: string): boolean {
  if (name.length === 0 || name.length > 255 || name === '@') return false;
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(name)) return false;
  if (name.includes('..') || name.includes('@{') || name.includes('//')) return false;
  if (name.startsWith('/') || name.endsWith('/') || name.endsWith('.') || name.startsWith('-')) return false;
  return name.split('/').every((part) => !part.startsWith('.') && !part.endsWith('.lock'));
}

function text(body: Record<string, unknown>, field: 'command' | 'task' | 'context' | 'git_branch', code: ErrorCode, required: boolean): string | undefined {
  const value = body[field];
  if (value === undefined || value === null) {
    if (required) throw apiError(code, `${field} is required for this job type.`);
    return undefined;
  }
  if (typeof value !== 'string') throw apiError(code, `${field} must be a string.`);
  if (required && value.trim() === '') throw apiError(code, `${field} must not be empty.`);
  if (!accepts(field, value)) throw apiError(code, `${field} is ${value.length} characters; the limit is ${CreateJobSchema.shape[field].unwrap().maxLength}.`);
  return value;
}

function resource(value: unknown, field: 'cpus' | 'memory_gb', fallback: number, max: number, code: 'invalid_cpus' | 'invalid_memory'): { value: number; clamped: boolean } {
  if (value === undefined || value === null) return { value: fallback, clamped: false };
  if (typeof value !== 'number' || !accepts(field, value)) {
    throw apiError(code, `${field} must be a whole number of at least 1 (got ${JSON.stringify(value)}).`);
  }
  return value > max ? { value: max, clamped: true } : { value, clamped: false };
}

export function parseJobRequest(body: Record<string, unknown>, agentImage: string, defaultImage = DEFAULT_WORKER_IMAGE): JobRequest {
  const type = body.type;
  if (!accepts('type', type)) {
    throw apiError('invalid_job_type', `type must be "worker" or "agent" (got ${JSON.stringify(type ?? null)}).`);
  }
  const jobType = type as JobType;

  let clientJobId: string | undefined;
  if (body.client_job_id !== undefined && body.client_job_id !== null) {
    const raw = body.client_job_id;
    if (typeof raw !== 'string' || !accepts('client_job_id', raw)) {
      throw apiError('invalid_client_job_id', `client_job_id must be a UUID v4 such as 6f1c3c6e-2f4b-4e8e-9a55-0c7a3f7d2a10 (got ${JSON.stringify(raw)}).`);
    }
    clientJobId = raw.toLowerCase();
  }

  const isWorker = jobType === 'worker';
  const command = isWorker ? text(body, 'command', 'missing_command', true) : undefined;
  const task = isWorker ? undefined : text(body, 'task', 'missing_task', true);
  let context: string | undefined;
  let gitBranch: string | undefined;
  if (isWorker) {
    if (body.context !== undefined && body.context !== null) throw apiError('invalid_context', 'context is only for agent jobs; put what a worker needs in its command or upload.');
  } else {
    context = text(body, 'context', 'invalid_context', false);
    gitBranch = text(body, 'git_branch', 'missing_git_branch', true);
    if (!isValidGitRef(gitBranch!)) throw apiError('missing_git_branch', `git_branch ${JSON.stringify(gitBranch)} is not a valid git ref name.`);
  }

  let filesId: string | undefined;
  if (body.files_id !== undefined && body.files_id !== null) {
    if (typeof body.files_id !== 'string' || !accepts('files_id', body.files_id)) {
      throw apiError('upload_not_found', `files_id ${JSON.stringify(body.files_id)} names no upload; upload ids look like ${UPLOAD_ID_SHAPE}.`);
    }
    filesId = body.files_id;
  }

  let image = isWorker ? defaultImage : agentImage;
  if (body.image !== undefined && body.image !== null) {
    const raw = body.image;
    if (typeof raw !== 'string' || !isValidImage(raw)) {
      throw apiError('invalid_image', `image must look like [registry/]name[:tag], at most ${MAX_IMAGE_CHARS} characters (got ${JSON.stringify(raw)}).`);
    }
    // Agent jobs always run the agent image; a requested image is validated but not used.
    if (isWorker) image = raw;
  }

  const limits = TYPE_LIMITS[jobType];
  const cpus = resource(body.cpus, 'cpus', limits.defaultCpus, limits.maxCpus, 'invalid_cpus');
  const memory = resource(body.memory_gb, 'memory_gb', limits.defaultMemoryGb, limits.maxMemoryGb, 'invalid_memory');

  let timeoutMinutes = limits.defaultTimeoutMinutes;
  if (body.timeout_minutes !== undefined && body.timeout_minutes !== null) {
    const t = body.timeout_minutes;
    if (typeof t !== 'number' || !accepts('timeout_minutes', t)) {
      throw apiError('invalid_timeout', `timeout_minutes must be a whole number from ${TIMEOUT_MINUTES.min} to ${TIMEOUT_MINUTES.max} (got ${JSON.stringify(t)}).`);
    }
    timeoutMinutes = t;
  }

  // Agents always get their tokens; for them the flag is validated but means nothing.
  const needGithubToken = body.need_github_token ?? false;
  if (typeof needGithubToken !== 'boolean' || !accepts('need_github_token', needGithubToken)) {
    throw apiError('invalid_json', `need_github_token must be true or false (got ${JSON.stringify(needGithubToken)}).`);
  }

  const queue = body.queue ?? false;
  if (typeof queue !== 'boolean' || !accepts('queue', queue)) throw apiError('invalid_json', `queue must be true or false (got ${JSON.stringify(queue)}).`);
  let queueTimeoutMinutes: number = QUEUE_TIMEOUT_MINUTES.default;
  if (body.queue_timeout_minutes !== undefined && body.queue_timeout_minutes !== null) {
    const t = body.queue_timeout_minutes;
    if (typeof t !== 'number' || !accepts('queue_timeout_minutes', t)) {
      throw apiError('invalid_queue_timeout', `queue_timeout_minutes must be a whole number from ${QUEUE_TIMEOUT_MINUTES.min} to ${QUEUE_TIMEOUT_MINUTES.max} (got ${JSON.stringify(t)}).`);
    }
    queueTimeoutMinutes = t;
  }

  const clamped: JobRequest['clamped'] = [];
  if (cpus.clamped) clamped.push('cpus');
  if (memory.clamped) clamped.push('memory_gb');
  return { clientJobId, type: jobType, command, task, context, gitBranch, filesId, image, cpus: cpus.value, memoryGb: memory.value, timeoutMinutes, needGithubToken: isWorker && needGithubToken, queue, queueTimeoutMinutes, clamped };
}
