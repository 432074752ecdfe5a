/**
 * @module errors
 * Every error code of the HTTP contract with its status and a default message that tells a human
 * what to do next. The API, the MCP shim and the tests all read codes from here.
 */
import { CodedError } from '../../runtime/errors.ts';
import { UPLOAD_ID_SHAPE } from './jobs.ts';

export const ERRORS = {
  // Auth and transport
  missing_authorization: { status: 401, message: 'Send "Authorization: Bearer <token>"; the token is in the API token file on the host.' },
  malformed_authorization: { status: 401, message: 'The Authorization header must be "Bearer <token>".' },
  invalid_token: { status: 401, message: 'The bearer token is not valid; check it against the API token file on the host.' },
  rate_limited: { status: 429, message: 'Too many requests; retry after the number of seconds in retry_after_seconds.' },
  invalid_json: { status: 400, message: 'The request body is not valid JSON.' },
  payload_too_large: { status: 413, message: 'The request body is too large.' },
  not_found: { status: 404, message: 'No such route; GET /openapi.json lists every route.' },
  method_not_allowed: { status: 405, message: 'This route does not accept that method.' },
  invalid_query: { status: 400, message: 'A query parameter is invalid.' },
  // Internal
  internal_error: { status: 500, message: 'Internal error; the supervisor log on the host has the details.' },
  database_error: { status: 500, message: 'The database failed; the supervisor log on the host has the details.' },
  container_error: { status: 500, message: 'Podman failed; the supervisor log on the host has the details.' },
  service_unavailable: { status: 503, message: 'A Flashpods component is restarting; retry in a few seconds.' },
  // Uploads
  invalid_upload_id: { status: 400, message: `Upload ids look like ${UPLOAD_ID_SHAPE}.` },
  upload_not_found: { status: 404, message: 'No such upload; rsync the directory to rsync://<host>/uploads/<upload_id>/ first.' },
  upload_not_finalized: { status: 409, message: 'The upload is not finalized; call POST /uploads/{id}/finalize first.' },
  upload_already_finalized: { status: 409, message: 'The upload is already finalized.' },
  upload_already_consumed: { status: 409, message: 'The upload was already used by another job; upload again.' },
  // Not in shared/spec/api.md: finalize while rsync may still write into the upload
  // (docs/operations.md "Uploads: what finalize seals").
  upload_in_progress: { status: 409, message: 'rsync is still writing into this upload; finalize once rsync has exited.' },
  upload_expired: { status: 410, message: 'The upload expired; upload the files again.' },
  insufficient_storage: { status: 507, message: 'Upload storage quota exceeded; wait for older uploads to expire or upload less.' },
  // Job creation
  invalid_job_type: { status: 400, message: 'type must be "worker" or "agent".' },
  missing_command: { status: 400, message: 'A worker job needs a non-empty command of at most 10000 characters.' },
  missing_task: { status: 400, message: 'An agent job needs a non-empty task of at most 100000 characters.' },
  invalid_context: { status: 400, message: 'context is for agent jobs only and must be a string of at most 100000 characters.' },
  missing_git_branch: { status: 400, message: 'An agent job needs git_branch, a valid git ref name.' },
  invalid_image: { status: 400, message: 'image must look like [registry/]name[:tag], at most 255 characters.' },
  invalid_cpus: { status: 400, message: 'cpus must be a whole number of at least 1.' },
  invalid_memory: { status: 400, message: 'memory_gb must be a whole number of at least 1.' },
  invalid_timeout: { status: 400, message: 'timeout_minutes must be a whole number from 1 to 120.' },
  invalid_client_job_id: { status: 400, message: 'client_job_id must be a UUID v4.' },
  insufficient_resources: { status: 429, message: 'Not enough resources to start job' },
  // The queue (issue 15; not in shared/spec/api.md, which predates it).
  invalid_queue_timeout: { status: 400, message: 'queue_timeout_minutes must be a whole number from 1 to 1440.' },
  queue_full: { status: 429, message: 'The queue is full; retry later.' },
  // Jobs
  job_not_found: { status: 404, message: 'No such job.' },
  job_already_terminal: { status: 409, message: 'The job has already finished.' },
  logs_not_available: { status: 404, message: 'The job has no container yet, so no log; retry once it is starting.' },
  logs_deleted: { status: 410, message: 'The job was cleaned up; its log is gone.' },
  artifacts_not_available: { status: 404, message: 'The job has not finished; artifacts are listed once it is terminal.' },
  artifacts_deleted: { status: 410, message: 'The job was cleaned up; its artifacts are gone.' },
  invalid_artifact_name: { status: 400, message: 'Artifact names are file names: no "/", "\\", "..", NUL or surrounding spaces, at most 255 characters.' },
  artifact_not_found: { status: 404, message: 'The job has no artifact with that name; GET /jobs/{id}/artifacts lists them.' },
  range_not_satisfiable: { status: 416, message: 'The requested byte range is outside the file.' },
  copy_in_progress: { status: 503, message: 'Artifacts are still being indexed; retry in a few seconds.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERRORS, code);
}

/** A contract error; `message` overrides the default text with specifics. */
export function apiError(code: ErrorCode, message?: string, details?: Record<string, unknown>): CodedError {
  return new CodedError(code, message ?? ERRORS[code].message, ERRORS[code].status, details);
}
