import { describe, it, expect } from 'vitest';
import { readFileSync, statSync, writeFileSync, truncateSync, appendFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import {
  captureContainerLogs,
  captureLogStream,
  readLogTail,
  startLogCapture,
  type LogCapture,
  type LogCaptureOptions,
} from '../../../actors/containers/log-capture.ts';
import type { JobContainerSpec } from '../../../actors/containers/container-spec.ts';
import { createAndStart, waitForExit } from '../../../actors/containers/podman-client.ts';
import { startPodmanService } from '../../support/podman.ts';
import { podmanForFile, tempDir, workerSpec } from './helpers.ts';

const LINE = /^\[(\d\d):(\d\d):(\d\d)\.(\d{3})\] (.*)$/;
const MiB = 1024 * 1024;
const DAY = 86_400_000;

const pod = podmanForFile(startPodmanService);
const { cleanup } = pod;

/** The fresh-job flow: capture attached before the container starts. */
async function runCaptured(spec: JobContainerSpec, options: LogCaptureOptions): Promise<{ id: string; capture: LogCapture }> {
  let capture: LogCapture | undefined;
  const id = cleanup.container(await createAndStart(pod.docker, spec, async (created) => {
    capture = await startLogCapture(pod.docker, created, options);
  }));
  return { id, capture: capture! };
}

function lines(path: string): string[] {
  return readFileSync(path, 'utf8').split('\n').slice(0, -1);
}

function frame(stream: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

describe('startLogCapture (attached before start)', () => {
  it('writes stdout and stderr lines stamped [HH:MM:SS.mmm] (UTC) and reports each', async () => {
    const path = join(tempDir('logs'), 'job.log');
    const spec = workerSpec({ command: 'echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three; printf partial' });
    const seen: string[] = [];
    const before = Date.now();
    const { capture } = await runCaptured(spec, { path, onLine: (l) => seen.push(l) });
    const result = await capture.done;
    const after = Date.now();

    const written = lines(path);
    expect(written.map((l) => LINE.exec(l)?.[5])).toEqual(['one', 'two', 'three', 'partial']);
    expect(seen).toEqual(written);
    expect(result).toEqual({ bytesWritten: statSync(path).size, truncated: false });
    for (const l of written) {
      const [, h, m, s, ms] = LINE.exec(l)!.map(Number);
      const stamped = ((h! * 60 + m!) * 60 + s!) * 1000 + ms!;
      // Time of day, so compare modulo a day (a run may straddle midnight UTC).
      const sinceBefore = (stamped - (before % DAY) + DAY) % DAY;
      expect(sinceBefore).toBeLessThanOrEqual(after - before);
    }
  });

  it('stops at the cap with one marker while the job keeps running', async () => {
    const path = join(tempDir('logs'), 'job.log');
    const spec = workerSpec({
      command: 'yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 3000000; echo past-the-cap; echo alive > /artifacts/alive; exit 7',
    });
    const seen: string[] = [];
    const { id, capture } = await runCaptured(spec, { path, capBytes: MiB, onLine: (l) => seen.push(l) });
    const exit = await waitForExit(pod.docker, id);
    const result = await capture.done;

    expect(exit.exitCode).toBe(7);
    expect(readFileSync(join(spec.artifactsDir, 'alive'), 'utf8')).toBe('alive\n');
    const written = lines(path);
    const markers = written.filter((l) => l.includes('TRUNCATED'));
    expect(markers).toHaveLength(1);
    expect(written.at(-1)).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] \[TRUNCATED - log exceeded 1 MB limit\]$/);
    expect(written.slice(0, -1).every((l) => /^\[\d\d:\d\d:\d\d\.\d{3}\] 0123456789abcdefghijklmnopqrstuvwxyz$/.test(l))).toBe(true);
    expect(written.some((l) => l.includes('past-the-cap'))).toBe(false);
    const size = statSync(path).size;
    expect(size - Buffer.byteLength(written.at(-1)! + '\n')).toBeLessThanOrEqual(MiB);
    expect(size).toBeGreaterThan(MiB - 100);
    expect(result).toEqual({ bytesWritten: size, truncated: true });
    expect(seen.at(-1)).toBe(written.at(-1));
  });

  it('loses no line of heavy output', async () => {
    const path = join(tempDir('logs'), 'job.log');
    const { capture } = await runCaptured(workerSpec({ command: 'seq 1 200000' }), { path });
    await capture.done;
    expect(lines(path).map((l) => Number(l.slice(15)))).toEqual(Array.from({ length: 200000 }, (_, i) => i + 1));
  });
});

describe('captureContainerLogs (container already started: resume)', () => {
  it('catches up on heavy output exactly once', async () => {
    const path = join(tempDir('logs'), 'job.log');
    const id = cleanup.container(await createAndStart(pod.docker, workerSpec({ command: 'seq 1 50000; sleep 1; seq 50001 100000' })));
    const result = await captureContainerLogs(pod.docker, id, { path });
    expect(lines(path).map((l) => Number(l.slice(15)))).toEqual(Array.from({ length: 100000 }, (_, i) => i + 1));
    expect(result).toEqual({ bytesWritten: statSync(path).size, truncated: false });
  });

  it('resumes an existing file without losing lines, repeating only the overlap', async () => {
    const path = join(tempDir('logs'), 'job.log');
    const spec = workerSpec({ command: 'for i in $(seq 1 12); do echo line$i; sleep 0.3; done' });
    // First capture: stopped as if the runtime went down after line10.
    const stop = new AbortController();
    const { id, capture } = await runCaptured(spec, {
      path,
      signal: stop.signal,
      onLine: (l) => { if (l.endsWith('line10')) stop.abort(); },
    });
    await capture.done;
    const firstSize = statSync(path).size;
    const result = await captureContainerLogs(pod.docker, id, { path });

    const texts = lines(path).map((l) => LINE.exec(l)?.[5]);
    expect([...new Set(texts)]).toEqual(Array.from({ length: 12 }, (_, i) => `line${i + 1}`));
    // The overlap reaches back 1–2 s before the last write: line1..3 are older than that.
    expect(texts.filter((t) => t === 'line1' || t === 'line2' || t === 'line3')).toEqual(['line1', 'line2', 'line3']);
    expect(result.bytesWritten).toBe(statSync(path).size);
    expect(result.bytesWritten).toBeGreaterThan(firstSize);
  });

  it('counts existing bytes toward the cap and leaves a truncated log alone', async () => {
    const path = join(tempDir('logs'), 'job.log');
    writeFileSync(path, 'x'.repeat(MiB - 40) + '\n');
    const spec = workerSpec({ command: 'echo short; echo a-line-that-does-not-fit-any-more' });
    const id = cleanup.container(await createAndStart(pod.docker, spec));
    await waitForExit(pod.docker, id);
    // The file's mtime is older than the container: `since` lets everything through.
    const first = await captureContainerLogs(pod.docker, id, { path, capBytes: MiB });
    expect(first.truncated).toBe(true);
    expect(lines(path).slice(1).map((l) => l.replace(/^\[[^\]]+\] /, ''))).toEqual([
      'short',
      '[TRUNCATED - log exceeded 1 MB limit]',
    ]);
    const size = statSync(path).size;
    expect(await captureContainerLogs(pod.docker, id, { path, capBytes: MiB })).toEqual({ bytesWritten: size, truncated: true });
    expect(statSync(path).size).toBe(size);
  });
});

describe('captureLogStream', () => {
  it('demultiplexes frames split anywhere and keeps stdout and stderr lines apart', async () => {
    const path = join(tempDir('logs'), 'job.log');
    const stream = new PassThrough();
    const done = captureLogStream(stream, { path });
    const bytes = Buffer.concat([frame(1, 'out-a '), frame(2, 'err-1\nerr-2'), frame(1, 'out-b\n'), frame(2, '\n'), frame(1, 'ünï')]);
    for (let i = 0; i < bytes.length; i += 3) stream.write(bytes.subarray(i, i + 3));
    stream.end();
    await done;
    expect(lines(path).map((l) => LINE.exec(l)?.[5])).toEqual(['err-1', 'out-a out-b', 'err-2', 'ünï']);
  });

  it('ends a line a crash left unterminated before appending', async () => {
    const path = join(tempDir('logs'), 'job.log');
    writeFileSync(path, '[00:00:00.000] cut sho');
    const stream = new PassThrough();
    const done = captureLogStream(stream, { path });
    stream.end(frame(1, 'next\n'));
    await done;
    expect(lines(path)).toHaveLength(2);
    expect(lines(path)[1]).toMatch(/\] next$/);
  });
});

describe('readLogTail', () => {
  it('reads the last lines of a huge file without reading all of it', async () => {
    const path = join(tempDir('logs'), 'big.log');
    // 8 GiB sparse prefix: reading the whole file would take far too long (and not fit a Buffer).
    writeFileSync(path, '');
    truncateSync(path, 8 * 1024 ** 3);
    appendFileSync(path, '\n' + Array.from({ length: 5000 }, (_, i) => `[00:00:00.000] line ${i + 1}`).join('\n') + '\n');
    const started = Date.now();
    const tail = await readLogTail(path, 100);
    expect(Date.now() - started).toBeLessThan(1000);
    const got = tail.output.split('\n');
    expect(got.pop()).toBe('');
    expect(got).toHaveLength(100);
    expect(got[0]).toBe('[00:00:00.000] line 4901');
    expect(got[99]).toBe('[00:00:00.000] line 5000');
    expect(tail.lines).toBe(100);
    expect(tail.totalBytes).toBe(statSync(path).size);
  });

  it('handles short files, a missing final newline, empty and missing files', async () => {
    const dir = tempDir('logs');
    writeFileSync(join(dir, 'a.log'), 'one\ntwo\nthree\n');
    expect(await readLogTail(join(dir, 'a.log'), 10, 4)).toEqual({ output: 'one\ntwo\nthree\n', lines: 3, totalBytes: 14 });
    expect(await readLogTail(join(dir, 'a.log'), 2, 4)).toEqual({ output: 'two\nthree\n', lines: 2, totalBytes: 14 });
    writeFileSync(join(dir, 'b.log'), 'one\ntwo');
    expect(await readLogTail(join(dir, 'b.log'), 1)).toEqual({ output: 'two', lines: 1, totalBytes: 7 });
    writeFileSync(join(dir, 'c.log'), '');
    expect(await readLogTail(join(dir, 'c.log'), 5)).toEqual({ output: '', lines: 0, totalBytes: 0 });
    expect(existsSync(join(dir, 'none.log'))).toBe(false);
    expect(await readLogTail(join(dir, 'none.log'), 5)).toEqual({ output: '', lines: 0, totalBytes: 0 });
  });
});
