/**
 * @module cli/commands/download
 * `flashpods download <id> <name> [-o path] [--force]`: streams one artifact to disk (a
 * directory arrives as `<name>.tar`). The bytes go to a hidden partial file next to the target,
 * renamed into place only once every byte has arrived, so a failed or interrupted download never
 * leaves a half file and never clobbers an existing one; an existing target is refused unless
 * `--force`. On a terminal stderr a progress line shows bytes/total and the rate.
 */
import { existsSync, statSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { artifactNameProblem } from '../../actors/contract/artifacts.ts';
import { CliError, clientFromEnv, networkCode, networkReason, UsageError } from '../client.ts';
import { bytes, duration, print, printJson } from '../format.ts';
import { jobId, parse, type Command } from './common.ts';

/** Where the download goes: `-o` as a file, into `-o` when it is a directory, else the cwd. */
function targetPath(output: string | undefined, filename: string): string {
  if (output === undefined) return resolve(filename);
  const path = resolve(output);
  const isDir = output.endsWith('/') || (existsSync(path) && statSync(path).isDirectory());
  return isDir ? join(path, filename) : path;
}

class Progress {
  private readonly started = performance.now();
  private last = 0;
  private readonly total: number | undefined;
  private readonly label: string;
  private readonly enabled: boolean;

  constructor(label: string, total: number | undefined, enabled: boolean) {
    this.label = label;
    this.total = total;
    this.enabled = enabled;
  }

  rate(done: number): string {
    const seconds = (performance.now() - this.started) / 1000;
    return seconds > 0 ? `${bytes(Math.round(done / seconds))}/s` : '-';
  }

  update(done: number, force = false): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (!force && now - this.last < 100) return;
    this.last = now;
    const of = this.total === undefined ? '' : ` / ${bytes(this.total)}  ${this.total > 0 ? Math.floor((done / this.total) * 100) : 100}%`;
    process.stderr.write(`\r\x1b[K${this.label}  ${bytes(done)}${of}  ${this.rate(done)}`);
  }

  clear(): void {
    if (this.enabled) process.stderr.write('\r\x1b[K');
  }

  elapsedSeconds(): number {
    return (performance.now() - this.started) / 1000;
  }
}

export const download: Command = {
  name: 'download',
  usage: 'download <id> <name> [-o path] [--force]',
  summary: 'save one artifact to ./<name> or -o path',
  details: 'A directory artifact arrives as <name>.tar. -o may name a file or an existing directory. An existing file is kept unless --force; a failed or interrupted download leaves nothing behind. Progress shows on stderr when it is a terminal.',
  async run(args) {
    const parsed = parse(this, args, { output: { type: 'string', short: 'o' }, force: { type: 'boolean' } }, ['id', 'name']);
    if (!parsed) return 0;
    const id = jobId(parsed.positionals[0]!);
    const name = parsed.positionals[1]!;
    const problem = artifactNameProblem(name);
    if (problem) throw new UsageError(`${JSON.stringify(name)} is not an artifact name: ${problem} (flashpods artifacts ${id} lists them)`);
    const output = parsed.values.output as string | undefined;
    if (output === '') throw new UsageError('-o needs a path');
    const force = parsed.values.force === true;
    const client = clientFromEnv();

    const abort = new AbortController();
    const onSignal = () => abort.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    let partial: string | undefined;
    let progress: Progress | undefined;
    let res: Response | undefined;
    try {
      res = await client.request('GET', `/jobs/${id}/artifacts/${encodeURIComponent(name)}`, { signal: abort.signal });
      const isTar = res.headers.get('content-type')?.startsWith('application/x-tar') ?? false;
      const target = targetPath(output, isTar ? `${name}.tar` : name);
      if (existsSync(target)) {
        if (statSync(target).isDirectory()) throw new CliError(`${target} is a directory; pass -o with a file name`);
        if (!force) throw new CliError(`${target} already exists; pass --force to overwrite it`);
      }
      if (!existsSync(dirname(target))) throw new CliError(`cannot write ${target}: ${dirname(target)} does not exist`);
      const lengthHeader = res.headers.get('content-length');
      const total = lengthHeader !== null && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;

      partial = join(dirname(target), `.${basename(target)}.${process.pid}.part`);
      const file = await open(partial, 'wx', 0o644).catch((err: NodeJS.ErrnoException) => {
        partial = undefined;
        throw new CliError(`cannot write in ${dirname(target)} (${err.code ?? err.message})`);
      });
      progress = new Progress(basename(target), total, process.stderr.isTTY === true);
      let done = 0;
      try {
        if (res.body) {
          const reader = res.body.getReader();
          try {
            for (;;) {
              const { done: finished, value } = await reader.read();
              if (finished) break;
              await file.write(value);
              done += value.byteLength;
              progress.update(done);
            }
          } catch (err) {
            await reader.cancel().catch(() => undefined);
            throw err;
          }
        }
      } finally {
        await file.close();
      }
      if (total !== undefined && done !== total) throw new CliError(`the download of ${name} broke off after ${done} of ${total} bytes; removed the partial file`);
      progress.update(done, true);
      progress.clear();
      if (!force && existsSync(target)) throw new CliError(`${target} appeared while downloading; pass --force to overwrite it`);
      await rename(partial, target);
      partial = undefined;

      const took = progress.elapsedSeconds();
      if (parsed.values.json) printJson({ job_id: id, name, path: target, size_bytes: done });
      else print(`saved ${target} (${bytes(done)} in ${took < 10 ? `${took.toFixed(1)}s` : duration(took)}, ${progress.rate(done)})`);
      return 0;
    } catch (err) {
      progress?.clear();
      if (res?.body && !res.bodyUsed) await res.body.cancel().catch(() => undefined);
      if (abort.signal.aborted) throw new CliError(`download of ${name} interrupted${partial ? '; removed the partial file' : ''}`, 130);
      if (err instanceof CliError) throw err;
      const reason = networkCode(err) ? networkReason(err) : ((err as NodeJS.ErrnoException).code ?? (err as Error).message);
      throw new CliError(`the download of ${name} failed (${reason})${partial ? '; removed the partial file' : ''}`);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      if (partial) await unlink(partial).catch(() => undefined);
    }
  },
};
