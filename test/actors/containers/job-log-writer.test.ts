import { describe, it, expect } from 'vitest';
import { readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openConmonLog, type ConmonLine, type ConmonLog } from '../../../actors/containers/conmon-log.ts';
import { captureConmonLog, captureStatePath, JobLogWriter, type CaptureState } from '../../../actors/containers/job-log-writer.ts';
import { conmonRecord as rec, MIXED, T0 } from './conmon-fixtures.ts';
import { tempDir } from './helpers.ts';

const ROOT = 0;
/** MIXED as the job log has it: `[HH:MM:SS.mmm] text`, stamped with conmon's time of each line's last piece. */
const MIXED_LOG = [
  '[13:15:12.000] one', '[13:15:12.003] err-a err-b', '[13:15:12.005] ', '[13:15:12.006] two-a two-b two-c',
  '[13:15:12.007] three', '[13:15:12.008] err-tail', '[13:15:12.009] out-tail',
].map((l) => `${l}\n`).join('');

interface Place {
  conmon: string;
  logPath: string;
  statePath: string;
}

function place(conmonText: string): Place {
  const dir = tempDir('job-log');
  const conmon = join(dir, 'job_1.ctr.log');
  writeFileSync(conmon, conmonText);
  return { conmon, logPath: join(dir, 'job_1.log'), statePath: captureStatePath(dir, 'job_1') };
}

async function opened(path: string): Promise<ConmonLog> {
  const result = await openConmonLog(path, ROOT);
  if (!result.readable) throw new Error(result.why);
  return result.log;
}

/** A whole capture of an exited container's file, as a fresh process would run it. */
async function capture(p: Place, capBytes?: number, onLine?: (line: string) => void) {
  const log = await opened(p.conmon);
  const writer = await JobLogWriter.open({ logPath: p.logPath, statePath: p.statePath, capBytes, onLine });
  try {
    return await captureConmonLog(log, writer, { exited: Promise.resolve() });
  } finally {
    await writer.close();
    await log.close();
  }
}

const state = (p: Place): CaptureState => JSON.parse(readFileSync(p.statePath, 'utf8')) as CaptureState;

describe('JobLogWriter with captureConmonLog', () => {
  it("writes `[HH:MM:SS.mmm] text` lines stamped with conmon's time, reports each once written, and records where it stopped", async () => {
    const p = place(MIXED);
    const seen: string[] = [];
    const result = await capture(p, undefined, (line) => seen.push(`${line}\n`));

    expect(readFileSync(p.logPath, 'utf8')).toBe(MIXED_LOG);
    expect(seen.join('')).toBe(MIXED_LOG);
    expect(result).toEqual({ bytesWritten: Buffer.byteLength(MIXED_LOG), truncated: false });
    const size = statSync(p.conmon).size;
    expect(state(p)).toEqual({
      source: { inode: statSync(p.conmon).ino, resumeOffset: size, deliveredOffset: MIXED.indexOf('2026-11-29T13:15:12.008') },
      bytesWritten: Buffer.byteLength(MIXED_LOG),
      truncated: false,
    });
  });

  it('keeps the lines Flashpods wrote before the capture, closing one cut short', async () => {
    const p = place(MIXED);
    writeFileSync(p.logPath, '[13:15:11.000] Pulling image x\n[13:15:11.500] cut sh');
    await capture(p);
    expect(readFileSync(p.logPath, 'utf8')).toBe(`[13:15:11.000] Pulling image x\n[13:15:11.500] cut sh\n${MIXED_LOG}`);
  });

  it('stops at the cap with one marker stamped with the first line that did not fit; a resume adds nothing', async () => {
    const p = place(MIXED);
    // Room for the first four lines (18 + 27 + 16 + 33 bytes), not the fifth.
    const cap = 100;
    const result = await capture(p, cap);
    const expected = `${MIXED_LOG.split('\n').slice(0, 4).join('\n')}\n[13:15:12.007] [TRUNCATED - log exceeded 0 MB limit]\n`;
    expect(readFileSync(p.logPath, 'utf8')).toBe(expected);
    expect(result).toEqual({ bytesWritten: Buffer.byteLength(expected), truncated: true });
    expect(state(p).truncated).toBe(true);

    expect(await capture(p, cap)).toEqual({ bytesWritten: Buffer.byteLength(expected), truncated: true });
    expect(readFileSync(p.logPath, 'utf8')).toBe(expected);
  });

  it('truncates at a line that can never fit without holding all of it', async () => {
    const p = place(rec(T0, 'stdout', 'F', 'short') + rec(T0 + 1, 'stdout', 'P', 'x'.repeat(60)) + rec(T0 + 2, 'stdout', 'P', 'y'.repeat(60)) + rec(T0 + 3, 'stdout', 'F', 'z'));
    await capture(p, 100);
    expect(readFileSync(p.logPath, 'utf8')).toBe('[13:15:12.000] short\n[13:15:12.002] [TRUNCATED - log exceeded 0 MB limit]\n');
  });

  it('after a crash at any point (any log length from the saved state on), the resumed log equals the uninterrupted one byte for byte', async () => {
    const text = MIXED + rec(T0 + 10, 'stdout', 'F', 'é ünïcode') + MIXED.replaceAll('13:15:12.0', '13:15:13.0');
    const reference = place(text);
    await capture(reference);
    const whole = readFileSync(reference.logPath);

    // Every state the disk can hold: the one written at open, and the one after each line.
    const p = place(text);
    const log = await opened(p.conmon);
    const lines: ConmonLine[] = [];
    for await (const batch of log.follow({ exited: Promise.resolve() })) lines.push(...batch.lines);
    const writer = await JobLogWriter.open({ logPath: p.logPath, statePath: p.statePath });
    const states = [readFileSync(p.statePath, 'utf8')];
    for (const line of lines) {
      await writer.append([line]);
      states.push(readFileSync(p.statePath, 'utf8'));
    }
    await writer.close();
    await log.close();
    expect(readFileSync(p.logPath)).toEqual(whole);

    let cases = 0;
    for (const saved of states) {
      const from = (JSON.parse(saved) as CaptureState).bytesWritten;
      // The log is appended before its state is replaced: after a crash it holds any prefix of
      // the full log at least as long as the saved state says, a line written halfway included.
      for (const length of new Set([from, from + 1, from + 17, Math.floor((from + whole.length) / 2), whole.length])) {
        if (length > whole.length) continue;
        const dir = tempDir('crashed');
        const crashed = { conmon: p.conmon, logPath: join(dir, 'job_1.log'), statePath: captureStatePath(dir, 'job_1') };
        writeFileSync(crashed.logPath, whole.subarray(0, length));
        writeFileSync(crashed.statePath, saved);
        await capture(crashed);
        expect(readFileSync(crashed.logPath, 'utf8'), `state ${saved}, log cut at ${length}`).toBe(whole.toString('utf8'));
        cases++;
      }
    }
    expect(cases).toBeGreaterThan(40);

    // Killed after creating the state file, before its first record: nothing was appended yet.
    const dir = tempDir('crashed');
    const fresh = { conmon: p.conmon, logPath: join(dir, 'job_1.log'), statePath: captureStatePath(dir, 'job_1') };
    writeFileSync(fresh.statePath, '');
    await capture(fresh);
    expect(readFileSync(fresh.logPath)).toEqual(whole);
  });

  it('keeps its state in one fixed-size record, rewritten in place', async () => {
    const p = place(MIXED);
    await capture(p);
    const inode = statSync(p.statePath).ino;
    expect(statSync(p.statePath).size).toBe(512);
    await capture(p);
    expect(statSync(p.statePath)).toMatchObject({ ino: inode, size: 512 });
  });

  it('ends the log with the marker when conmon replaced its file while nobody followed it, and says why', async () => {
    const p = place(rec(T0, 'stdout', 'F', 'before'));
    await capture(p);
    writeFileSync(`${p.conmon}.tmp`, rec(T0 + 1, 'stdout', 'F', 'after'));
    renameSync(`${p.conmon}.tmp`, p.conmon);
    const log = await opened(p.conmon);
    const writer = await JobLogWriter.open({ logPath: p.logPath, statePath: p.statePath });
    const gaps: string[] = [];
    const before = Date.now();
    const result = await captureConmonLog(log, writer, { exited: Promise.resolve(), onGap: (why) => gaps.push(why) });
    await writer.close();
    await log.close();

    expect(gaps).toEqual(['conmon replaced its log file (size bound) while nobody followed it']);
    const written = readFileSync(p.logPath, 'utf8').split('\n');
    expect(written[0]).toBe('[13:15:12.000] before');
    expect(written[1]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] \[TRUNCATED - log exceeded 50 MB limit\]$/);
    expect(written.slice(2)).toEqual(['']);
    expect(result.truncated).toBe(true);
    expect(Date.parse(`${new Date(before).toISOString().slice(0, 11)}${written[1]!.slice(1, 13)}Z`)).toBeGreaterThanOrEqual(before - 1);
  });

  it('refuses a state file that is not one, saying what to do, and never follows a link at the log or state path', async () => {
    const p = place(MIXED);
    writeFileSync(p.statePath, '{"source":null}');
    await expect(JobLogWriter.open({ logPath: p.logPath, statePath: p.statePath })).rejects.toThrow(
      `${p.statePath} is not a log capture state; the capture cannot resume exactly. Delete it to capture the container's output again from its start (lines already in the job log will then appear twice).`,
    );

    const q = place(MIXED);
    const target = join(tempDir('elsewhere'), 'target');
    writeFileSync(target, 'untouched');
    symlinkSync(target, q.logPath);
    await expect(JobLogWriter.open({ logPath: q.logPath, statePath: q.statePath })).rejects.toMatchObject({ code: 'ELOOP' });
    const linkedState = `${q.statePath}.2`;
    symlinkSync(target, linkedState);
    await expect(JobLogWriter.open({ logPath: `${q.logPath}.2`, statePath: linkedState })).rejects.toMatchObject({ code: 'ELOOP' });
    expect(readFileSync(target, 'utf8')).toBe('untouched');
  });
});
