/**
 * @module contract/api-schemas
 * The job answers of the HTTP API as zod schemas: the one source of their shape. From them come
 * the OpenAPI components (api/openapi.ts, through z.toJSONSchema), the types the API's views
 * build (api/views.ts), and the types the MCP shim and the CLI read the answers as
 * (mcp/tools.ts, cli/commands/job*.ts). Which field a job shows in which state is api.md's rule,
 * applied by views.ts.
 */
import { z } from 'zod';
import { JOB_STATES, JOB_TYPES } from './jobs.ts';

/** ISO 8601 in UTC, whole seconds (views.ts isoTime). */
const time = z.string().meta({ format: 'date-time' });
const count = z.int().min(0);

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
export function openApiComponent(schema: z.ZodType): object {
  const { $schema: _dialect, ...component } = z.toJSONSchema(schema, { io: 'output' }) as Record<string, unknown>;
  return component;
}
