import { describe, it, expect } from 'vitest';
import { appendFileSync, chmodSync, chownSync, linkSync, mkdirSync, renameSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import {
  conmonLogConfig,
  openConmonLog,
  parseConmonRecord,
  prepareConmonLogDir,
  type ConmonBatch,
  type ConmonLine,
  type ConmonLog,
  type FollowOptions,
} from '../../../actors/containers/conmon-log.ts';
import { conmonRecord as rec, MIXED, MIXED_LINES, T0 } from './conmon-fixtures.ts';
import { tempDir } from './helpers.ts';

const ROOT = 0;

async function opened(path: string): Promise<ConmonLog> {
  const result = await openConmonLog(path, ROOT);
  if (!result.readable) throw new Error(result.why);
  return result.log;
}

async function collect(log: ConmonLog, options: FollowOptions): Promise<ConmonBatch[]> {
  const batches: ConmonBatch[] = [];
  for await (const batch of log.follow(options)) batches.push(batch);
  return batches;
}

const texts = (lines: ConmonLine[]) => lines.map((l) => `${l.stream}:${l.text.toString()}`);
const allLines = (batches: ConmonBatch[]) => batches.flatMap((b) => b.lines);

describe('parseConmonRecord', () => {
  it('reads the time to the millisecond with its offset, the stream, F/P and the text (empty included)', () => {
    const full = parseConmonRecord(Buffer.from('2026-11-29T13:13:20.706517490+00:00 stdout F hi there'));
    expect(full).toEqual({ stream: 'stdout', timestampMs: Date.parse('2026-11-29T13:13:20.706Z'), full: true, text: Buffer.from('hi there') });
    const piece = parseConmonRecord(Buffer.from('2026-11-29T14:13:20.5+01:00 stderr P '));
    expect(piece).toEqual({ stream: 'stderr', timestampMs: Date.parse('2026-11-29T13:13:20.500Z'), full: false, text: Buffer.alloc(0) });
  });

  it('refuses what conmon does not write', () => {
    for (const bad of ['', 'hello world', '2026-11-29T13:13:20.1+00:00 stdin F x', '2026-11-29T13:13:20.1+00:00 stdout X x', 'not-a-time stdout F x', '2026-11-29T13:13:20.1+00:00 stdout F']) {
      expect(parseConmonRecord(Buffer.from(bad)), bad).toBeUndefined();
    }
  });
});

describe('conmonLogConfig', () => {
  it('asks for k8s-file at our path, bounded at 3 × the job log cap in bytes', () => {
    expect(conmonLogConfig('/x/job_1.ctr.log', 50 * 1024 * 1024)).toEqual({ Type: 'k8s-file', Config: { path: '/x/job_1.ctr.log', 'max-size': '157286400' } });
  });
});

describe('prepareConmonLogDir', () => {
  it('makes the directory 0700, and refuses one others could plant a link in, naming every problem', async () => {
    const base = tempDir('conmon-dir');
    const made = join(base, 'made');
    await prepareConmonLogDir(made, ROOT);
    expect(statSync(made).mode & 0o777).toBe(0o700);

    const open = join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o755);
    chownSync(open, 1001, 1001);
    await expect(prepareConmonLogDir(open, ROOT)).rejects.toThrow(`${open} belongs to uid 1001, not the Podman user (uid 0), is open to others (mode 755): make it a directory of uid 0 with mode 0700`);
    const link = join(base, 'link');
    symlinkSync(made, link);
    await expect(prepareConmonLogDir(link, ROOT)).rejects.toThrow(`${link} is not a directory`);
  });
});

describe('openConmonLog', () => {
  it('refuses a link, a hard link, a FIFO, another owner and a missing file, saying why', async () => {
    const dir = tempDir('conmon-open');
    const real = join(dir, 'real.log');
    writeFileSync(real, rec(T0, 'stdout', 'F', 'x'));
    const link = join(dir, 'link.log');
    symlinkSync(real, link);
    const hard = join(dir, 'hard.log');
    writeFileSync(hard, '');
    linkSync(hard, join(dir, 'hard2.log'));
    const fifo = join(dir, 'fifo.log');
    execFileSync('mkfifo', [fifo]);
    const foreign = join(dir, 'foreign.log');
    writeFileSync(foreign, '');
    chownSync(foreign, 1001, 1001);

    const why = async (path: string) => {
      const result = await openConmonLog(path, ROOT);
      return result.readable ? 'readable' : result.why;
    };
    expect(await why(link)).toBe(`${link} is a symbolic link`);
    expect(await why(hard)).toBe(`${hard} has 2 links`);
    expect(await why(fifo)).toBe(`${fifo} is not a regular file`);
    expect(await why(foreign)).toBe(`${foreign} belongs to uid 1001, not 0`);
    expect(await why(join(dir, 'none.log'))).toMatch(/does not exist \(is the container's log driver k8s-file/);
    const ok = await openConmonLog(real, ROOT);
    expect(ok.readable).toBe(true);
    if (ok.readable) await ok.log.close();
  });
});

describe('ConmonLog.follow', () => {
  it('joins pieces per stream, keeps stdout and stderr apart, stamps each line with its last piece, and ends open lines at the exit', async () => {
    const path = join(tempDir('conmon'), 'ctr.log');
    writeFileSync(path, MIXED);
    const log = await opened(path);
    const lines = allLines(await collect(log, { exited: Promise.resolve() }));
    await log.close();

    expect(texts(lines)).toEqual(MIXED_LINES);
    expect(lines.map((l) => l.timestampMs - T0)).toEqual([0, 3, 5, 6, 7, 8, 9]);
    expect(lines.every((l) => !l.cut)).toBe(true);
    const end = statSync(path).size;
    expect(lines.at(-1)!.cursor).toEqual({ inode: statSync(path).ino, resumeOffset: end, deliveredOffset: MIXED.indexOf(rec(T0 + 8, 'stderr', 'P', 'err-tail')) });
  });

  it('resumed from the cursor of any line, yields exactly the lines after it', async () => {
    const path = join(tempDir('conmon'), 'ctr.log');
    writeFileSync(path, MIXED);
    const first = await opened(path);
    const lines = allLines(await collect(first, { exited: Promise.resolve() }));
    await first.close();
    expect(lines).toHaveLength(MIXED_LINES.length);

    for (let i = 0; i < lines.length; i++) {
      const log = await opened(path);
      const batches = await collect(log, { from: lines[i]!.cursor, exited: Promise.resolve() });
      await log.close();
      expect(batches.some((b) => b.gap), `from line ${i}`).toBe(false);
      expect(texts(allLines(batches)), `from line ${i}`).toEqual(MIXED_LINES.slice(i + 1));
    }
  });

  it('follows a growing file, never yielding half a record, woken by the write (not the poll)', async () => {
    const path = join(tempDir('conmon'), 'ctr.log');
    writeFileSync(path, '');
    const log = await opened(path);
    let exit!: () => void;
    const exited = new Promise<void>((r) => { exit = r; });
    const seen: Array<{ text: string; at: number }> = [];
    const following = (async () => {
      for await (const batch of log.follow({ exited, pollMs: 60_000 })) {
        for (const l of batch.lines) seen.push({ text: l.text.toString(), at: performance.now() });
      }
    })();
    const whole = rec(T0, 'stdout', 'F', 'complete line');
    appendFileSync(path, whole.slice(0, 20));
    await new Promise((r) => setTimeout(r, 200));
    expect(seen).toEqual([]);
    const wrote = performance.now();
    appendFileSync(path, whole.slice(20));
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.map((s) => s.text)).toEqual(['complete line']);
    const delayMs = seen[0]!.at - wrote;
    expect(delayMs).toBeGreaterThanOrEqual(0);
    expect(delayMs).toBeLessThan(100);
    appendFileSync(path, rec(T0 + 1, 'stdout', 'F', 'last'));
    exit();
    await following;
    await log.close();
    expect(seen.map((s) => s.text)).toEqual(['complete line', 'last']);
  });

  it('finishes the old file when conmon replaces it (its size bound), then reads the new one from its start', async () => {
    const dir = tempDir('conmon');
    const path = join(dir, 'ctr.log');
    writeFileSync(path, rec(T0, 'stdout', 'F', 'a') + rec(T0 + 1, 'stdout', 'P', 'b-'));
    const log = await opened(path);
    let exit!: () => void;
    const exited = new Promise<void>((r) => { exit = r; });
    const batches: ConmonBatch[] = [];
    const following = (async () => {
      for await (const batch of log.follow({ exited, pollMs: 20 })) batches.push(batch);
    })();
    await new Promise((r) => setTimeout(r, 100));
    // As conmon does: last record to the old file, then a fresh file renamed over it.
    appendFileSync(path, rec(T0 + 2, 'stdout', 'F', 'in-old'));
    writeFileSync(`${path}.tmp`, rec(T0 + 3, 'stdout', 'F', 'in-new'));
    renameSync(`${path}.tmp`, path);
    await new Promise((r) => setTimeout(r, 100));
    appendFileSync(path, rec(T0 + 4, 'stderr', 'F', 'later'));
    exit();
    await following;
    await log.close();

    expect(batches.some((b) => b.gap)).toBe(false);
    const lines = allLines(batches);
    expect(texts(lines)).toEqual(['stdout:a', 'stdout:b-in-old', 'stdout:in-new', 'stderr:later']);
    expect(lines.at(-1)!.cursor.inode).toBe(statSync(path).ino);
  });

  it('reports a gap when its file was replaced or cut while nobody followed it, and reads what is there from the start', async () => {
    const dir = tempDir('conmon');
    const path = join(dir, 'ctr.log');
    writeFileSync(path, rec(T0, 'stdout', 'F', 'a') + rec(T0 + 1, 'stdout', 'F', 'b'));
    const first = await opened(path);
    const before = allLines(await collect(first, { exited: Promise.resolve() }));
    await first.close();
    const cursor = before.at(-1)!.cursor;

    writeFileSync(`${path}.tmp`, rec(T0 + 2, 'stdout', 'F', 'ccc'));
    renameSync(`${path}.tmp`, path);
    const replaced = await opened(path);
    const afterReplace = await collect(replaced, { from: cursor, exited: Promise.resolve() });
    await replaced.close();
    expect(afterReplace[0]).toEqual({ lines: [], gap: 'conmon replaced its log file (size bound) while nobody followed it' });
    expect(texts(allLines(afterReplace))).toEqual(['stdout:ccc']);

    // Cut in place (same inode) to less than was read; then rewritten so no record ends there.
    const cursorC = allLines(afterReplace).at(-1)!.cursor;
    truncateSync(path, 0);
    appendFileSync(path, rec(T0 + 3, 'stdout', 'F', 'd'));
    const cut = await opened(path);
    const afterCut = await collect(cut, { from: cursorC, exited: Promise.resolve() });
    await cut.close();
    expect(afterCut[0]).toEqual({ lines: [], gap: `conmon's log file is shorter (${statSync(path).size} bytes) than what was read of it` });
    expect(texts(allLines(afterCut))).toEqual(['stdout:d']);

    truncateSync(path, 0);
    appendFileSync(path, rec(T0 + 4, 'stdout', 'F', 'a much longer line than before'));
    const rewritten = await opened(path);
    const afterRewrite = await collect(rewritten, { from: cursorC, exited: Promise.resolve() });
    await rewritten.close();
    expect(afterRewrite[0]).toEqual({ lines: [], gap: "conmon's log file has no record boundary where reading stopped" });
    expect(texts(allLines(afterRewrite))).toEqual(['stdout:a much longer line than before']);
  });

  it('cuts a line longer than maxLineBytes and drops its rest', async () => {
    const path = join(tempDir('conmon'), 'ctr.log');
    writeFileSync(path, rec(T0, 'stdout', 'P', 'x'.repeat(8)) + rec(T0 + 1, 'stdout', 'P', 'y'.repeat(8)) + rec(T0 + 2, 'stdout', 'F', 'z') + rec(T0 + 3, 'stdout', 'F', 'next')
      + rec(T0 + 4, 'stderr', 'P', 'e'.repeat(13)) + rec(T0 + 5, 'stderr', 'P', 'never-ended'));
    const log = await opened(path);
    const lines = allLines(await collect(log, { exited: Promise.resolve(), maxLineBytes: () => 12 }));
    await log.close();
    // Delivered when it grows too long, stamped with that piece.
    expect(lines.map((l) => [l.text.toString(), l.cut, l.timestampMs - T0])).toEqual([['xxxxxxxxyyyy', true, 1], ['next', false, 3], ['eeeeeeeeeeee', true, 4]]);
  });

  it('stops like the signal when the exit is unknown (the wait failed), ending no open line', async () => {
    const path = join(tempDir('conmon'), 'ctr.log');
    writeFileSync(path, rec(T0, 'stdout', 'P', 'open-'));
    const log = await opened(path);
    const lines = allLines(await collect(log, { exited: Promise.reject(new Error('Podman went away')) }));
    await log.close();
    expect(lines).toEqual([]);
  });

  it('stopped by its signal, leaves open lines for a resume instead of ending them', async () => {
    const path = join(tempDir('conmon'), 'ctr.log');
    writeFileSync(path, rec(T0, 'stdout', 'F', 'a') + rec(T0 + 1, 'stdout', 'P', 'open-'));
    const log = await opened(path);
    const stop = new AbortController();
    const batches: ConmonBatch[] = [];
    const following = (async () => {
      for await (const batch of log.follow({ exited: new Promise(() => undefined), signal: stop.signal, pollMs: 60_000 })) batches.push(batch);
    })();
    await new Promise((r) => setTimeout(r, 100));
    const stoppedAt = performance.now();
    stop.abort();
    await following;
    expect(performance.now() - stoppedAt).toBeLessThan(100);
    expect(texts(allLines(batches))).toEqual(['stdout:a']);
    appendFileSync(path, rec(T0 + 2, 'stdout', 'F', 'closed'));
    const resumed = allLines(await collect(log, { from: allLines(batches)[0]!.cursor, exited: Promise.resolve() }));
    await log.close();
    expect(texts(resumed)).toEqual(['stdout:open-closed']);
  });
});
