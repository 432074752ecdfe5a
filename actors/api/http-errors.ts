/**
 * @module http-errors
 * Turns anything thrown while serving a request into the contract's error body
 * `{ error, message, details? }` with the right status. Unknown failures become 500
 * `internal_error` with a generic message; their stack goes to the supervisor log only.
 */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { CodedError } from '../../runtime/errors.ts';
import { ERRORS, isErrorCode, type ErrorCode } from '../contract/errors.ts';

export interface ErrorBody {
  error: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
  [extra: string]: unknown;
}

export function toErrorBody(err: unknown): { status: number; body: ErrorBody; unexpected: boolean } {
  if (err instanceof CodedError) {
    if (err.code === 'actor_unavailable' || err.code === 'actor_timeout') {
      const actor = String(err.details?.actor ?? 'a component');
      return {
        status: 503,
        body: { error: 'service_unavailable', message: `The ${actor} component is restarting or busy; retry in a few seconds.` },
        unexpected: false,
      };
    }
    if (isErrorCode(err.code) && err.code !== 'internal_error') {
      // Some contract bodies (429 insufficient_resources) put their figures at the top level.
      const flat = err.details?.flatten === true;
      const { flatten: _flatten, ...details } = err.details ?? {};
      const body: ErrorBody = { error: err.code, message: err.message };
      if (flat) Object.assign(body, details);
      else if (err.details) body.details = details;
      return { status: err.status ?? ERRORS[err.code].status, body, unexpected: false };
    }
  }
  if (err instanceof Error && err.name === 'SqliteError') {
    return { status: 500, body: { error: 'database_error', message: ERRORS.database_error.message }, unexpected: true };
  }
  return { status: 500, body: { error: 'internal_error', message: ERRORS.internal_error.message }, unexpected: true };
}

export function errorResponse(c: Context, status: number, body: ErrorBody): Response {
  return c.json(body, status as ContentfulStatusCode);
}
