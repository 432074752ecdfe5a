/**
 * @module auth
 * Bearer-token auth for every route but /health. The expected token is read from the token file
 * (and re-read when the file changes, so rotation is "replace the file"). Comparison hashes both
 * sides to fixed-length digests and uses timingSafeEqual, so neither the token's content nor its
 * length leaks through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { apiError } from '../contract/errors.ts';

const digest = (value: string) => createHash('sha256').update(value).digest();

export function tokensEqual(presented: string, expected: Buffer): boolean {
  return timingSafeEqual(digest(presented), expected);
}

/** Holds the digest of the expected token; reloads it when the file's mtime or size changes. */
export class TokenFile {
  private readonly path: string;
  private expected: Buffer;
  private stamp: string;

  constructor(path: string) {
    this.path = path;
    this.stamp = this.currentStamp();
    this.expected = this.read();
  }

  private currentStamp(): string {
    const st = statSync(this.path);
    return `${st.mtimeMs}:${st.size}:${st.ino}`;
  }

  private read(): Buffer {
    const token = readFileSync(this.path, 'utf8').trim();
    if (!/^[0-9a-f]{64}$/i.test(token)) throw new Error(`${this.path} must hold the API token: 64 hex characters (e.g. from "openssl rand -hex 32")`);
    return digest(token);
  }

  /** The current expected digest; a file that turned unreadable or invalid keeps the last good token. */
  current(): Buffer {
    try {
      const stamp = this.currentStamp();
      if (stamp !== this.stamp) {
        this.expected = this.read();
        this.stamp = stamp;
      }
    } catch {
      // Mid-rotation (file briefly missing or half-written): keep serving with the last good token.
    }
    return this.expected;
  }
}

/** Checks an Authorization header value; throws the contract's 401 errors. */
export function checkAuthorization(header: string | undefined, tokens: TokenFile): void {
  if (header === undefined || header.trim() === '') throw apiError('missing_authorization');
  const match = header.trim().match(/^Bearer ([^\s]+)$/);
  if (!match) throw apiError('malformed_authorization');
  if (!tokensEqual(match[1]!, tokens.current())) throw apiError('invalid_token');
}
