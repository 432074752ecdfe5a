/**
 * @module contract/api-schemas
 * The job requests and answers of the HTTP API as zod schemas: the one source of their shape.
 * From them come the OpenAPI components (api/openapi.ts, through z.toJSONSchema), the rules
 * POST /jobs checks each field by (scheduler/job-request.ts, which adds the contract's error code
 * and message per field and the rules between fields), the types the API's views build
 * (api/views.ts), and the types the MCP shim and the CLI send and read (mcp/tools.ts,
 * cli/commands/job*.ts). Which field a job shows in which state is api.md's rule, applied by
 * views.ts.
 */
import { z } from 'zod';
import {
  ID_PATTERNS, JOB_STATES, JOB_TYPES, MAX_COMMAND_CHARS, MAX_CONTEXT_CHARS, MAX_IMAGE_CHARS, MAX_TASK_CHARS, QUEUE_TIMEOUT_MINUTES, TIMEOUT_MINUTES, TYPE_LIMITS,
} from './jobs.ts';

/** ISO 8601 in UTC, whole seconds (views.ts isoTime). */
const time = z.string().meta({ format: 'date-time' });
const count = z.int().min(0);

/** Either case (the key is compared case-insensitively); no `i` flag, which a JSON Schema pattern cannot carry. */
export const UUID_V4 = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$/;
/** `[registry/]name[:tag]`. */
export const IMAGE_REFERENCE = /^(?:[a-zA-Z0-9][a-zA-Z0-9.-]*(?::[0-9]+)?\/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$/;
const { worker, agent } = TYPE_LIMITS;

/**
 * POST /jobs. Which fields a type needs, and the git ref rules, are checked by job-request.ts.
 * Loose: a field this version does not know is ignored, as before (a newer client stays usable).
 */
export const CreateJobSchema = z.looseObject({
  client_job_id: z.string().max(36).regex(UUID_V4).optional().describe('UUID v4; retries with the same id return the same job.'),
  type: z.enum(JOB_TYPES),
  command: z.string().max(MAX_COMMAND_CHARS).optional().describe('Worker: run as /bin/sh -c COMMAND.'),
  task: z.string().max(MAX_TASK_CHARS).optional().describe('Agent: what the coding agent should do.'),
  context: z.string().max(MAX_CONTEXT_CHARS).optional(),
  git_branch: z.string().max(255).optional().describe('Agent: a valid git ref name.'),
  files_id: z.string().regex(ID_PATTERNS.upload).optional().describe('A finalized upload, mounted at /work.'),
  image: z.string().max(MAX_IMAGE_CHARS).regex(IMAGE_REFERENCE).optional(),
  cpus: z.int().min(1).optional().describe(`Clamped to the type maximum (worker ${worker.maxCpus}, agent ${agent.maxCpus}).`),
  memory_gb: z.int().min(1).optional().describe(`Clamped to the type maximum (worker ${worker.maxMemoryGb}, agent ${agent.maxMemoryGb}).`),
  timeout_minutes: z.int().min(TIMEOUT_MINUTES.min).max(TIMEOUT_MINUTES.max).optional(),
  queue: z.boolean().default(false)
    .describe('When the host is full: wait in the queue (201, status queued, queue_position) instead of a 429. FIFO, with backfill that can never delay the head.'),
  queue_timeout_minutes: z.int().min(QUEUE_TIMEOUT_MINUTES.min).max(QUEUE_TIMEOUT_MINUTES.max).default(QUEUE_TIMEOUT_MINUTES.default)
    .describe('A queued job still waiting after this long ends expired.'),
  need_github_token: z.boolean().default(false).describe(
    'Worker: the container gets the SPIRE and token sockets and FLASHPODS_NEED_GITHUB_TOKEN=true; an image whose entrypoint is flashpods-tokens (images/worker) '
    + 'trades its SPIRE identity for GITHUB_TOKEN before the command. Without it a worker gets neither socket and no way to any secret. Ignored for agents, which always get their tokens.',
  ),
});
/** What a client sends (defaults may be left out). */
export type CreateJobBody = z.input<typeof CreateJobSchema>;

export const JobSchema = z.object({
  id: z.string(),
  type: z.enum(JOB_TYPES),
  status: z.enum(JOB_STATES),
  image: z.string(),
  cpus: z.int(),
  memory_gb: z.int(),
  timeout_minutes: z.int(),
  created_at: time,
  /** Worker. */
  command: z.string().optional(),
  /** Agent. */
  task: z.string().optional(),
  git_branch: z.string().optional(),
  files_id: z.string().optional(),
  started_at: time.optional(),
  /** While running. */
  elapsed_seconds: count.optional(),
  /** Once terminal. */
  exit_code: z.int().nullable().optional(),
  completed_at: time.nullable().optional(),
  duration_seconds: count.optional(),
  error: z.string().optional(),
  actual_runtime_seconds: count.optional(),
  /** A job that queued: since when, how long it waited (so far, while still queued), its limit. */
  queued_at: time.optional(),
  queue_wait_seconds: count.optional(),
  queue_timeout_minutes: z.int().optional(),
  /** While queued: its place, from 1. */
  queue_position: z.int().min(1).optional(),
  /** Started ahead of a waiting queue head by a backfill that could not delay it. */
  backfilled: z.literal(true).optional(),
});
export type JobResponse = z.infer<typeof JobSchema>;

export const JobListItemSchema = z.object({
  id: z.string(),
  type: z.enum(JOB_TYPES),
  status: z.enum(JOB_STATES),
  command: z.string().nullable(),
  exit_code: z.int().nullable(),
  created_at: time,
  completed_at: time.nullable(),
  queue_position: z.int().min(1).optional(),
});
export type JobListItemResponse = z.infer<typeof JobListItemSchema>;

export const JobListSchema = z.object({ jobs: z.array(JobListItemSchema), total: count });
export type JobListResponse = z.infer<typeof JobListSchema>;

export const JobCreatedSchema = z.object({
  job_id: z.string(),
  status: z.enum(JOB_STATES),
  created: z.boolean(),
  message: z.string().optional(),
  /** The fields clamped to the type's maximum, with the value used. */
  clamped: z.partialRecord(z.enum(['cpus', 'memory_gb']), z.int()).optional(),
  queue_position: z.int().min(1).optional(),
});
export type JobCreatedResponse = z.infer<typeof JobCreatedSchema>;

/** GET /jobs/:id/output: the last lines of the job log. */
export const OutputSchema = z.object({ output: z.string(), lines: count, truncated: z.boolean(), total_bytes: count });
export type OutputResponse = z.infer<typeof OutputSchema>;

/** GET /jobs/:id/artifacts. */
export const ArtifactListSchema = z.object({
  artifacts: z.array(z.object({ name: z.string(), size_bytes: count, created_at: time })),
  total_size_bytes: count,
  expires_at: time.nullable(),
  /** The job's /artifacts is not indexed yet. */
  copy_in_progress: z.boolean(),
});
export type ArtifactListResponse = z.infer<typeof ArtifactListSchema>;

/** A schema as an OpenAPI 3.1 (JSON Schema 2020-12) component. */
export function openApiComponent(schema: z.ZodType, io: 'input' | 'output' = 'output'): object {
  const { $schema: _dialect, ...component } = z.toJSONSchema(schema, { io }) as Record<string, unknown>;
  return component;
}
