/**
 * @module tokens/secrets
 * The secrets file (`/etc/flashpods/secrets.json`, root 0600):
 * `{ "anthropic_api_key": "sk-ant-…", "github_token": "ghp_…" }`.
 * Read at start (any problem is fatal) and re-read when its mtime, size, inode or ctime changes,
 * so rotating a secret is "replace the file". Messages name the file and the problem, never a
 * value: a JSON syntax error from V8 quotes the input, so it is not passed on.
 */
import { readFileSync, statSync } from 'node:fs';

export interface Secrets {
  anthropicApiKey: string;
  githubToken: string;
}

export class SecretsError extends Error {
  override name = 'SecretsError';
}

const REQUIRED = [['anthropic_api_key', 'anthropicApiKey'], ['github_token', 'githubToken']] as const;

function stampOf(path: string): string {
  const st = statSync(path);
  return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/** Reads and checks the file; throws SecretsError with a message fit for the operator log. */
export function readSecrets(path: string): Secrets {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new SecretsError(`secrets file ${path} does not exist`);
    if (code === 'EACCES' || code === 'EPERM') throw new SecretsError(`secrets file ${path} is not readable by this process (uid ${process.getuid?.()}): ${code}`);
    if (code === 'EISDIR') throw new SecretsError(`secrets file ${path} is a directory`);
    throw new SecretsError(`secrets file ${path} cannot be read: ${code ?? (err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new SecretsError(`secrets file ${path} is not valid JSON`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new SecretsError(`secrets file ${path} must hold a JSON object with "anthropic_api_key" and "github_token"`);
  }
  const record = parsed as Record<string, unknown>;
  const problems = REQUIRED.filter(([key]) => typeof record[key] !== 'string' || (record[key] as string).trim() === '').map(([key]) => key);
  if (problems.length > 0) {
    throw new SecretsError(`secrets file ${path} lacks ${problems.map((k) => `"${k}"`).join(' and ')} (each must be a non-empty string)`);
  }
  return { anthropicApiKey: (record.anthropic_api_key as string).trim(), githubToken: (record.github_token as string).trim() };
}

export type SecretsState = { ok: true; secrets: Secrets } | { ok: false; problem: string };

/** The secrets file, re-read when it changes. */
export class SecretsFile {
  readonly path: string;
  private stamp: string | undefined;
  private state: SecretsState;
  private readonly onChange: (state: SecretsState) => void;

  /** Throws SecretsError when the file is not usable now (startup is fatal then). */
  constructor(path: string, onChange: (state: SecretsState) => void = () => {}) {
    this.path = path;
    this.onChange = onChange;
    const stamp = this.safeStamp();
    this.state = { ok: true, secrets: readSecrets(path) };
    this.stamp = stamp;
  }

  private safeStamp(): string | undefined {
    try {
      return stampOf(this.path);
    } catch {
      return undefined;
    }
  }

  /** The current secrets, or the problem that makes them unavailable right now. */
  current(): SecretsState {
    const stamp = this.safeStamp();
    if (stamp === undefined || stamp !== this.stamp) {
      const before = this.state;
      try {
        this.state = { ok: true, secrets: readSecrets(this.path) };
      } catch (err) {
        this.state = { ok: false, problem: err instanceof SecretsError ? err.message : `secrets file ${this.path}: ${(err as Error).message}` };
      }
      this.stamp = stamp;
      if (before.ok !== this.state.ok || this.state.ok) this.onChange(this.state);
    }
    return this.state;
  }
}
