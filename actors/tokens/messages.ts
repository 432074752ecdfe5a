/**
 * @module tokens/messages
 * The token actor serves containers over its unix socket (HTTP `GET /tokens`, `GET /health`);
 * peers and the supervisor may only ask how it is doing — no secret ever crosses a channel.
 */
export type TokensProtocol = {
  status: { req: Record<string, never>; res: TokensStatus };
};

export interface TokensStatus {
  socket: string;
  /** Keys in the flashpods.local JWT bundle right now, and when it last changed. */
  bundleKeys: number;
  bundleUpdatedAt: string | null;
  /** The Workload API stream is currently broken (the last bundle stays in force). */
  bundleStreamError: string | null;
  secrets: 'ok' | 'unavailable';
  exchanges: { granted: number; refused: number };
}
