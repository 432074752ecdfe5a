/**
 * @module mcp/retry
 * The retry table of spec/mcp.md as a pure function, so the schedule is testable on its own.
 *
 * | failure                                       | retry | schedule                         | attempts in all          |
 * |-----------------------------------------------|-------|----------------------------------|--------------------------|
 * | 429 / rate_limited / insufficient_resources   | yes   | base × 2^(n−1), capped; honours retry_after_seconds | retry_max_attempts (5) |
 * | 503 / service_unavailable                     | yes   | base × 2^(n−1), capped           | retry_max_attempts (5)   |
 * | 507                                           | no    |                                  | 1                        |
 * | network error (refused, reset, timeout)       | yes   | base × 2^(n−1), capped           | min(3, retry_max_attempts) |
 * | other 4xx                                     | no    |                                  | 1                        |
 * | other 5xx                                     | yes   | base × n (linear), capped        | min(2, retry_max_attempts) |
 *
 * n is the number of attempts made so far (the first retry waits `base`). "max N" in the table
 * is read as N attempts in all, matching the config key `retry_max_attempts` (5). A
 * retry_after_seconds is a floor on the wait; one longer than retry_max_delay_ms is reported to
 * the agent at once instead of being waited out. No jitter: one laptop, one client.
 */
export interface RetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export type Failure =
  | { kind: 'http'; status: number; code?: string | undefined; retryAfterSeconds?: number | undefined }
  | { kind: 'network'; reason: string };

export type RetryDecision = { retry: false; why: string } | { retry: true; delayMs: number; why: string };

export const RETRYABLE_CODES = ['insufficient_resources', 'rate_limited', 'service_unavailable'] as const;
export const PERMANENT_CODES = ['upload_expired', 'logs_deleted', 'artifacts_deleted'] as const;
export const NETWORK_MAX_ATTEMPTS = 3;
export const OTHER_5XX_MAX_ATTEMPTS = 2;

const exponential = (p: RetryPolicy, attempts: number) => Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** (attempts - 1));
const linear = (p: RetryPolicy, attempts: number) => Math.min(p.maxDelayMs, p.baseDelayMs * attempts);

/** Whether to retry after `attempts` attempts (≥1) ended in `failure`, and after how long. */
export function retryDecision(failure: Failure, attempts: number, policy: RetryPolicy): RetryDecision {
  if (failure.kind === 'network') {
    const max = Math.min(NETWORK_MAX_ATTEMPTS, policy.maxAttempts);
    if (attempts >= max) return { retry: false, why: `network error, ${attempts} of ${max} attempts made` };
    return { retry: true, delayMs: exponential(policy, attempts), why: `network error (${failure.reason})` };
  }
  const { status, code } = failure;
  if (code && (PERMANENT_CODES as readonly string[]).includes(code)) return { retry: false, why: `${code} is permanent` };
  const retryableCode = code !== undefined && (RETRYABLE_CODES as readonly string[]).includes(code);
  if (status === 429 || status === 503 || retryableCode) {
    if (attempts >= policy.maxAttempts) return { retry: false, why: `${code ?? status}, ${attempts} of ${policy.maxAttempts} attempts made` };
    let delayMs = exponential(policy, attempts);
    if (failure.retryAfterSeconds !== undefined && failure.retryAfterSeconds > 0) {
      const floor = failure.retryAfterSeconds * 1000;
      if (floor > policy.maxDelayMs) return { retry: false, why: `the server asked to wait ${failure.retryAfterSeconds} s, longer than retry_max_delay_ms` };
      delayMs = Math.max(delayMs, floor);
    }
    return { retry: true, delayMs, why: `${code ?? `HTTP ${status}`}` };
  }
  if (status === 507) return { retry: false, why: 'insufficient storage is not retried' };
  if (status >= 500) {
    const max = Math.min(OTHER_5XX_MAX_ATTEMPTS, policy.maxAttempts);
    if (attempts >= max) return { retry: false, why: `HTTP ${status}, ${attempts} of ${max} attempts made` };
    return { retry: true, delayMs: linear(policy, attempts), why: `${code ?? `HTTP ${status}`}` };
  }
  return { retry: false, why: `HTTP ${status} is not retried` };
}

/** The waits a failure repeated forever would see: the schedule, for docs and tests. */
export function schedule(failure: Failure, policy: RetryPolicy): number[] {
  const waits: number[] = [];
  for (let attempts = 1; ; attempts++) {
    const d = retryDecision(failure, attempts, policy);
    if (!d.retry) return waits;
    waits.push(d.delayMs);
  }
}
