/**
 * @module rate-limit
 * Token-bucket rate limiting per client address: `perSecond` tokens a second, at most `burst`
 * banked. Each decision carries what the X-RateLimit-* headers report.
 */
export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Unix seconds at which the bucket is full again. */
  resetAt: number;
  /** Seconds to wait before a retry can succeed (0 when allowed). */
  retryAfterSeconds: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perSecond: number;
  private readonly burst: number;

  constructor(perSecond: number, burst: number) {
    this.perSecond = perSecond;
    this.burst = burst;
  }

  take(client: string, nowMs = Date.now()): RateDecision {
    const bucket = this.buckets.get(client) ?? { tokens: this.burst, updatedMs: nowMs };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((nowMs - bucket.updatedMs) / 1000) * this.perSecond);
    bucket.updatedMs = nowMs;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    this.buckets.set(client, bucket);
    if (this.buckets.size > 10_000) this.forgetFull(nowMs);
    const secondsToFull = (this.burst - bucket.tokens) / this.perSecond;
    return {
      allowed,
      limit: this.perSecond,
      remaining: Math.floor(bucket.tokens),
      resetAt: Math.ceil(nowMs / 1000 + secondsToFull),
      retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((1 - bucket.tokens) / this.perSecond)),
    };
  }

  /** Buckets that would be full by now carry no information; drop them to bound memory. */
  private forgetFull(nowMs: number): void {
    for (const [client, b] of this.buckets) {
      if (b.tokens + ((nowMs - b.updatedMs) / 1000) * this.perSecond >= this.burst) this.buckets.delete(client);
    }
  }
}
