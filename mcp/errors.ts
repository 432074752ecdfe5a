/**
 * @module mcp/errors
 * Every failure a tool reports: the API's contract codes (actors/contract/errors.ts) plus the
 * few that only the shim can produce (local files, rsync, the network, the local disk). A tool
 * never throws to the SDK: it returns `{ error, message }` with `isError: true`.
 */
import type { ErrorCode } from '../actors/contract/errors.ts';

/** Codes that exist only on the laptop side; mcp.md names the first two. */
export const SHIM_ERRORS = {
  upload_disk_full: 'The host ran out of disk space while rsync was writing the upload.',
  upload_failed: 'rsync could not upload the directory.',
  local_path_not_found: 'files.local_path does not exist on this machine.',
  local_path_not_directory: 'files.local_path is not a directory; upload a directory.',
  server_unreachable: 'The Flashpods API could not be reached.',
  invalid_save_to: 'save_to must stay inside the download directory.',
  file_exists: 'The destination file exists; pass overwrite: true to replace it.',
  download_failed: 'The artifact download failed; no partial file was left behind.',
  invalid_argument: 'A tool argument is invalid.',
  invalid_response: 'The Flashpods API answered with something the shim did not understand.',
  unknown_tool: 'No such tool.',
  cancelled: 'The tool call was cancelled by the client.',
} as const;

export type ShimErrorCode = keyof typeof SHIM_ERRORS;
export type ToolErrorCode = ErrorCode | ShimErrorCode;

/** A failure to report to the agent as a tool error. */
export class ToolFailure extends Error {
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ToolErrorCode | (string & {}), message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'ToolFailure';
    this.code = code;
    this.details = details;
  }
}

export interface ToolErrorBody {
  error: string;
  message: string;
  details?: Record<string, unknown>;
}

/** Anything thrown inside a tool → the body the agent sees; never a stack trace. */
export function toErrorBody(err: unknown): ToolErrorBody {
  if (err instanceof ToolFailure) {
    const body: ToolErrorBody = { error: err.code, message: err.message };
    if (err.details && Object.keys(err.details).length > 0) body.details = err.details;
    return body;
  }
  const message = err instanceof Error ? err.message : String(err);
  return { error: 'internal_error', message: `The Flashpods MCP shim failed unexpectedly: ${message.split('\n')[0]}` };
}
