/**
 * @module openapi
 * The OpenAPI 3.1 description of the HTTP API, served at GET /openapi.json. Error codes are
 * taken from the contract module, so a code added there appears here; a test checks every
 * route's real responses against this document.
 */
import { ArtifactListSchema, CreateJobSchema, JobCreatedSchema, JobListSchema, JobSchema, openApiComponent, OutputSchema } from '../contract/api-schemas.ts';
import { ERRORS, type ErrorCode } from '../contract/errors.ts';
import { ID_PATTERNS, JOB_TYPES, LIST_LIMIT, OUTPUT_TAIL, QUEUE_TIMEOUT_MINUTES, STATUS_FILTERS, TIMEOUT_MINUTES } from '../contract/jobs.ts';
import { VERSION } from './app.ts';

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: object) => ({ 'application/json': { schema } });
const time = { type: 'string', format: 'date-time' } as const;
const nullableTime = { type: ['string', 'null'], format: 'date-time' } as const;

/** Responses for the given error codes, grouped by status. */
function errors(...codes: ErrorCode[]): Record<string, object> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of ['missing_authorization', 'malformed_authorization', 'invalid_token', 'rate_limited', 'internal_error', 'database_error', 'service_unavailable', ...codes] as ErrorCode[]) {
    const status = ERRORS[code].status;
    byStatus.set(status, [...new Set([...(byStatus.get(status) ?? []), code])]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, list]) => [
      String(status),
      {
        description: list.join(', '),
        content: json(
          status === 429 && list.includes('insufficient_resources')
            ? { oneOf: [ref('InsufficientResources'), { allOf: [ref('Error'), { properties: { error: { enum: list.filter((c) => c !== 'insufficient_resources' && c !== 'queue_full') } } }] }, ...(list.includes('queue_full') ? [ref('QueueFull')] : [])] }
            : { allOf: [ref('Error'), { properties: { error: { enum: list } } }] },
        ),
      },
    ]),
  );
}

const JOB_LINKS = Object.fromEntries(
  ['getJob', 'cancelJob', 'getJobOutput', 'listArtifacts'].map((operationId) => [operationId, { operationId, parameters: { id: '$response.body#/job_id' } }]),
);

const jobId = { name: 'id', in: 'path', required: true, schema: { type: 'string' }, description: 'A job id (job_…).' };
const uploadId = { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: ID_PATTERNS.upload.source } };

export const OPENAPI = {
  openapi: '3.1.0',
  info: {
    title: 'Flashpods API',
    version: VERSION,
    description: 'Run commands and coding agents in ephemeral, isolated Podman containers. Every route but /health needs `Authorization: Bearer <token>`.',
  },
  servers: [{ url: 'http://10.0.0.1:8080' }],
  security: [{ bearer: [] }],
  paths: {
    '/health': {
      get: {
        operationId: 'getHealth', summary: 'Liveness and the state of each actor', security: [],
        responses: {
          200: { description: 'healthy', content: json(ref('Health')) },
          503: { description: 'an actor is not running', content: json(ref('Health')) },
          429: { description: 'rate_limited', content: json(ref('Error')) },
        },
      },
    },
    '/uploads/{id}/finalize': {
      post: {
        operationId: 'finalizeUpload', summary: 'Finalize an upload written by rsync', parameters: [uploadId],
        responses: { 200: { description: 'finalized', content: json(ref('UploadFinalized')) }, ...errors('invalid_upload_id', 'upload_not_found', 'upload_in_progress', 'upload_already_finalized', 'upload_already_consumed', 'upload_expired', 'insufficient_storage') },
      },
    },
    '/uploads/{id}': {
      get: { operationId: 'getUpload', summary: 'Upload status', parameters: [uploadId], responses: { 200: { description: 'the upload', content: json(ref('Upload')) }, ...errors('invalid_upload_id', 'upload_not_found') } },
      delete: { operationId: 'deleteUpload', summary: 'Cancel and delete an upload', parameters: [uploadId], responses: { 204: { description: 'deleted' }, ...errors('invalid_upload_id', 'upload_not_found', 'upload_already_consumed') } },
    },
    '/jobs': {
      post: {
        operationId: 'createJob', summary: 'Create a job',
        requestBody: { required: true, content: json(ref('CreateJob')) },
        responses: {
          201: { description: 'created', content: json(ref('JobCreated')), links: JOB_LINKS },
          200: { description: 'an existing job for this client_job_id (idempotent)', content: json(ref('JobCreated')), links: JOB_LINKS },
          ...errors('invalid_json', 'payload_too_large', 'invalid_job_type', 'missing_command', 'missing_task', 'invalid_context', 'missing_git_branch', 'invalid_image', 'invalid_cpus', 'invalid_memory', 'invalid_timeout', 'invalid_queue_timeout', 'invalid_client_job_id', 'upload_not_found', 'upload_not_finalized', 'upload_already_consumed', 'upload_expired', 'insufficient_resources', 'queue_full'),
        },
      },
      get: {
        operationId: 'listJobs', summary: 'List jobs, newest first',
        parameters: [
          { name: 'status', in: 'query', schema: { type: 'string', enum: Object.keys(STATUS_FILTERS), default: 'all' }, description: 'queued: the queue in order, first to start first.' },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, default: LIST_LIMIT.default }, description: `Above ${LIST_LIMIT.max} is treated as ${LIST_LIMIT.max}.` },
        ],
        responses: { 200: { description: 'jobs', content: json(ref('JobList')) }, ...errors('invalid_query') },
      },
    },
    '/jobs/{id}': {
      get: {
        operationId: 'getJob', summary: 'Job details; with wait=N, answers when the job is terminal or after N seconds',
        parameters: [jobId, { name: 'wait', in: 'query', schema: { type: 'integer', minimum: 0, default: 0 }, description: 'Long-poll seconds; above the server cap (300 by default) waits the cap.' }],
        responses: { 200: { description: 'the job', content: json(ref('Job')) }, ...errors('job_not_found', 'invalid_query') },
      },
      delete: {
        operationId: 'cancelJob', summary: 'Kill a job (SIGTERM, grace, SIGKILL); answers at once',
        parameters: [jobId],
        responses: { 200: { description: 'termination initiated', content: json(ref('JobCancelled')) }, ...errors('job_not_found', 'job_already_terminal') },
      },
    },
    '/jobs/{id}/output': {
      get: {
        operationId: 'getJobOutput', summary: 'The last lines of the job log',
        parameters: [jobId, { name: 'tail', in: 'query', schema: { type: 'integer', minimum: 1, default: OUTPUT_TAIL.default }, description: `Above ${OUTPUT_TAIL.max} is treated as ${OUTPUT_TAIL.max}.` }],
        responses: { 200: { description: 'log tail', content: json(ref('Output')) }, ...errors('job_not_found', 'logs_not_available', 'logs_deleted', 'invalid_query') },
      },
    },
    '/jobs/{id}/output/stream': {
      get: {
        operationId: 'streamJobOutput', summary: 'Live log as server-sent events (`line` events, then one `end` event)',
        parameters: [jobId, { name: 'tail', in: 'query', schema: { type: 'integer', minimum: 0, default: OUTPUT_TAIL.default } }],
        responses: { 200: { description: 'event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...errors('job_not_found', 'logs_deleted', 'invalid_query') },
      },
    },
    '/jobs/{id}/artifacts': {
      get: {
        operationId: 'listArtifacts', summary: 'List the artifacts of a finished job',
        parameters: [jobId],
        responses: { 200: { description: 'artifacts', content: json(ref('ArtifactList')) }, ...errors('job_not_found', 'artifacts_not_available', 'artifacts_deleted') },
      },
    },
    '/jobs/{id}/artifacts/{name}': {
      get: {
        operationId: 'downloadArtifact', summary: 'Download one artifact (a directory comes as a tar stream); supports Range',
        parameters: [jobId, { name: 'name', in: 'path', required: true, schema: { type: 'string' } }, { name: 'Range', in: 'header', schema: { type: 'string' } }],
        responses: {
          200: { description: 'the file', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } }, 'application/x-tar': { schema: { type: 'string', format: 'binary' } } } },
          206: { description: 'a byte range of the file', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
          ...errors('invalid_artifact_name', 'job_not_found', 'artifacts_not_available', 'artifact_not_found', 'artifacts_deleted', 'copy_in_progress', 'range_not_satisfiable'),
        },
      },
    },
    '/metrics': { get: { operationId: 'getMetrics', summary: 'Prometheus metrics', responses: { 200: { description: 'text format 0.0.4', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errors() } } },
    '/openapi.json': { get: { operationId: 'getOpenApi', summary: 'This document', responses: { 200: { description: 'OpenAPI 3.1', content: json({ type: 'object' }) }, ...errors() } } },
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: '64 hex characters, from the API token file on the host.' } },
    schemas: {
      Error: {
        type: 'object', required: ['error', 'message'],
        properties: { error: { type: 'string', enum: Object.keys(ERRORS) }, message: { type: 'string' }, details: { type: 'object' }, retry_after_seconds: { type: 'integer' } },
      },
      InsufficientResources: {
        type: 'object', required: ['error', 'message', 'requested', 'available', 'host_capacity', 'running_jobs'],
        properties: {
          error: { const: 'insufficient_resources' }, message: { type: 'string' },
          requested: ref('Resources'), available: ref('Resources'), host_capacity: ref('Resources'), running_jobs: { type: 'integer' },
          queued_jobs: { type: 'integer' },
        },
      },
      QueueFull: {
        type: 'object', required: ['error', 'message', 'requested', 'available', 'host_capacity', 'running_jobs', 'queued_jobs', 'max_queue_length'],
        properties: {
          error: { const: 'queue_full' }, message: { type: 'string' },
          requested: ref('Resources'), available: ref('Resources'), host_capacity: ref('Resources'), running_jobs: { type: 'integer' },
          queued_jobs: { type: 'integer' }, max_queue_length: { type: 'integer' },
        },
      },
      Resources: { type: 'object', required: ['cpus', 'memory_gb'], properties: { cpus: { type: 'integer' }, memory_gb: { type: 'integer' } } },
      Health: {
        type: 'object', required: ['status', 'version', 'uptime_seconds', 'actors'],
        properties: { status: { enum: ['healthy', 'degraded'] }, version: { type: 'string' }, uptime_seconds: { type: 'integer' }, actors: { type: 'object', additionalProperties: { enum: ['starting', 'running', 'restarting', 'stopping', 'stopped', 'failed'] } } },
      },
      Upload: {
        type: 'object', required: ['upload_id', 'state', 'size_bytes', 'file_count', 'created_at', 'finalized_at', 'expires_at'],
        properties: {
          upload_id: { type: 'string' }, state: { enum: ['uploading', 'finalized', 'consumed', 'expired'] },
          size_bytes: { type: ['integer', 'null'] }, file_count: { type: ['integer', 'null'] }, created_at: time, finalized_at: nullableTime, expires_at: time,
        },
      },
      UploadFinalized: {
        type: 'object', required: ['upload_id', 'state', 'size_bytes', 'file_count', 'finalized_at', 'expires_at'],
        properties: { upload_id: { type: 'string' }, state: { const: 'finalized' }, size_bytes: { type: 'integer' }, file_count: { type: 'integer' }, finalized_at: time, expires_at: time },
      },
      // A request: defaults may be left out, and nothing else may be sent.
      CreateJob: openApiComponent(CreateJobSchema, 'input'),
      JobCreated: openApiComponent(JobCreatedSchema),
      JobCancelled: {
        type: 'object', required: ['job_id', 'status', 'message'],
        properties: { job_id: { type: 'string' }, status: { const: 'cancelled' }, message: { type: 'string' } },
      },
      Job: openApiComponent(JobSchema),
      JobList: openApiComponent(JobListSchema),
      Output: openApiComponent(OutputSchema),
      ArtifactList: openApiComponent(ArtifactListSchema),
    },
  },
} as const;
