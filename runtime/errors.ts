/**
 * @module errors
 * Errors that cross actor boundaries. A handler that throws a `CodedError` has its code, status
 * and details delivered to the caller intact; anything else arrives as `internal_error` with its
 * message only (never a stack), so a bug in one actor cannot leak internals through another.
 */
import type { WireError } from './envelope.ts';

export class CodedError<C extends string = string> extends Error {
  readonly code: C;
  readonly status: number | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: C, message: string, status?: number, details?: Record<string, unknown>) {
    super(message);
    this.name = 'CodedError';
    this.code = code;
    this.status = status;
    this.details = details;
  }

  toWire(): WireError<C> {
    const wire: WireError<C> = { code: this.code, message: this.message };
    if (this.status !== undefined) wire.status = this.status;
    if (this.details !== undefined) wire.details = this.details;
    return wire;
  }
}

/** The actor that owns the answer is down or restarting; the API maps it to 503. */
export class ActorUnavailable extends CodedError<'actor_unavailable'> {
  constructor(actor: string, reason: string) {
    super('actor_unavailable', `actor "${actor}" is unavailable: ${reason}`, 503, { actor });
    this.name = 'ActorUnavailable';
  }
}

/** The actor is up but did not answer within the call's timeout. */
export class ActorTimeout extends CodedError<'actor_timeout'> {
  constructor(actor: string, type: string, timeoutMs: number) {
    super('actor_timeout', `actor "${actor}" did not answer "${type}" within ${timeoutMs} ms`, 503, { actor });
    this.name = 'ActorTimeout';
  }
}

export function toWireError(err: unknown): WireError {
  if (err instanceof CodedError) return err.toWire();
  const message = err instanceof Error ? err.message : String(err);
  return { code: 'internal_error', message, status: 500 };
}

export function fromWireError(wire: WireError, actor: string): CodedError {
  if (wire.code === 'actor_unavailable') return new ActorUnavailable(String(wire.details?.actor ?? actor), wire.message);
  return new CodedError(wire.code, wire.message, wire.status, wire.details);
}
