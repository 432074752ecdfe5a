/**
 * @module mcp/progress
 * MCP progress notifications for one tool call. They are sent only when the client asked for
 * them (a `progressToken` in the request's `_meta`); `progress` strictly increases as the
 * protocol requires, and bursts (rsync prints many lines a second) are thinned out.
 */
import type { Log } from './log.ts';

/** The part of the SDK's RequestHandlerExtra a tool uses. */
export interface ToolExtra {
  signal: AbortSignal;
  _meta?: { progressToken?: string | number; [key: string]: unknown } | undefined;
  sendNotification: (notification: { method: 'notifications/progress'; params: { progressToken: string | number; progress: number; total?: number; message?: string } }) => Promise<void>;
}

export const MAX_PROGRESS_MESSAGE = 4000;

export class Progress {
  private readonly token: string | number | undefined;
  private readonly extra: ToolExtra | undefined;
  private readonly log: Log | undefined;
  private readonly minIntervalMs: number;
  private last = -Infinity;
  private lastSentAt = 0;
  sent = 0;
  private readonly pending = new Set<Promise<void>>();

  constructor(extra: ToolExtra | undefined, log?: Log, minIntervalMs = 200) {
    this.extra = extra;
    this.token = extra?._meta?.progressToken;
    this.log = log;
    this.minIntervalMs = minIntervalMs;
  }

  get enabled(): boolean {
    return this.token !== undefined;
  }

  /**
   * Sends `progress` (of `total`) with `message`. Unless `force`, a report within the minimum
   * interval of the previous one is dropped. A value that does not exceed the last one sent is
   * nudged just above it.
   */
  report(progress: number, total: number | undefined, message: string, force = false): void {
    if (this.token === undefined || !this.extra) return;
    const now = Date.now();
    if (!force && now - this.lastSentAt < this.minIntervalMs) return;
    const rounded = Math.round(progress * 1000) / 1000;
    const value = rounded > this.last ? rounded : Math.round((this.last + 0.001) * 1000) / 1000;
    this.last = value;
    this.lastSentAt = now;
    this.sent++;
    const params: { progressToken: string | number; progress: number; total?: number; message?: string } = {
      progressToken: this.token,
      progress: value,
      message: message.length > MAX_PROGRESS_MESSAGE ? `…${message.slice(-(MAX_PROGRESS_MESSAGE - 1))}` : message,
    };
    if (total !== undefined) params.total = total;
    const sending = this.extra.sendNotification({ method: 'notifications/progress', params }).catch((err: unknown) => {
      this.log?.debug('progress notification not sent', { err: String(err) });
    });
    this.pending.add(sending);
    void sending.finally(() => this.pending.delete(sending));
  }

  /** Resolves once every notification sent so far is out, so none can trail the tool's result. */
  async flush(): Promise<void> {
    await Promise.all([...this.pending]);
  }
}
