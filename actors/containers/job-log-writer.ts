/**
 * @module actors/containers/job-log-writer
 * The job log (spec/storage.md "Logs") written from conmon's record of the job's output
 * (conmon-log.ts), exactly once per line across crashes: `[HH:MM:SS.mmm] <text>` stamped with the
 * time conmon read the line, capped with one truncation marker, the job never held up.
 *
 * Exactness rests on one piece of state, `{source cursor, bytes written, truncated}`, kept in a
 * small file beside conmon's file and rewritten after every append to the log: whatever the log
 * holds past `bytesWritten` was appended after the last state the disk knows of, so a resume
 * cuts the log back to `bytesWritten` and reads conmon's file again from the cursor. The lines
 * it writes again are the very same bytes (their stamps come from conmon, not from the clock),
 * so the log ends up as if nothing had happened: nothing lost, nothing twice.
 *
 * Decisions:
 * - The state is a file, not a database fact: it changes with every append, it lives exactly as
 *   long as conmon's file (both go when the capture is over), and a process that only has the
 *   two files can resume without the scheduler.
 * - It is one record of STATE_BYTES at offset 0, rewritten in place by a single write, not a
 *   temporary file renamed over it: on ext4 here that costs ~1.9 ms per append (the rename and
 *   the truncating open each force the data out, `auto_da_alloc`) against ~30 µs. A write that
 *   lies within one page is never split by a signal (the kernel checks for a fatal signal
 *   between pages only), so after a SIGKILL the file holds the old record or the new one.
 * - No fsync. The crashes to survive are of Flashpods' processes (SIGKILL, OOM, a thread
 *   dying); the page cache outlives them, and the order of the two writes is what the next
 *   reader sees. A host that loses power loses its containers too.
 * - The state is written once before any line (with the log's size then: Flashpods' own lines
 *   such as image pull progress), so a crash before the first append cannot repeat lines.
 * - Lines Flashpods adds while the capture runs must go through this writer (none do today).
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { captureStateName } from '../contract/job-paths.ts';
import type { ConmonCursor, ConmonLine, ConmonLog } from './conmon-log.ts';
import { DEFAULT_LOG_CAP_BYTES, formatLogTime, truncationMarker, type LogCaptureResult } from './log-capture.ts';

export interface CaptureState {
  /** Where conmon's file is to be read from next; null: from its start. */
  source: ConmonCursor | null;
  /** The log's length when this state was written: anything past it is cut on resume. */
  bytesWritten: number;
  truncated: boolean;
}

export interface JobLogWriterOptions {
  logPath: string;
  /** The state file (captureStatePath). */
  statePath: string;
  capBytes?: number;
  /** Called with every line once it is in the file (without its newline), the marker included. */
  onLine?: (line: string) => void;
}

export interface CaptureOptions {
  /** Settles once the container has exited. */
  exited: Promise<unknown>;
  /** Stops without ending incomplete lines (runtime shutdown); a later capture resumes. */
  signal?: AbortSignal;
  pollMs?: number;
  /** Told why output was lost (conmon's file replaced or cut while nobody read it). */
  onGap?: (why: string) => void;
}

/** Beside the job's conmon file, in the same directory (conmonLogPath); both go when the capture is over. */
export function captureStatePath(dir: string, jobId: string): string {
  return join(dir, captureStateName(jobId));
}

const NEWLINE = 0x0a;
/** `[HH:MM:SS.mmm] ` and the newline. */
const LINE_OVERHEAD = 16;
/** The state record: JSON padded with spaces (≤ 150 bytes used), far below a page. */
const STATE_BYTES = 512;

/**
 * Follows `log` into the job log until the container has exited and its last line is written,
 * the log is truncated, or the signal stops it.
 */
export async function captureConmonLog(log: ConmonLog, writer: JobLogWriter, options: CaptureOptions): Promise<LogCaptureResult> {
  if (!writer.truncated) {
    const batches = log.follow({
      from: writer.resumeFrom,
      exited: options.exited,
      signal: options.signal,
      pollMs: options.pollMs,
      maxLineBytes: () => writer.lineRoom,
    });
    for await (const batch of batches) {
      if (batch.gap) {
        options.onGap?.(batch.gap);
        await writer.lost();
      }
      await writer.append(batch.lines);
      if (writer.truncated) break;
    }
  }
  return { bytesWritten: writer.bytesWritten, truncated: writer.truncated };
}

export class JobLogWriter {
  private constructor(
    private readonly file: FileHandle,
    private readonly stateFile: FileHandle,
    private readonly options: JobLogWriterOptions,
    private readonly cap: number,
    private state: CaptureState,
  ) {}

  /**
   * Opens the log for appending where the last state left it: cut back to `bytesWritten` when
   * a crash came between an append and its state. Without a state, the log so far (Flashpods'
   * own lines) is kept and the capture starts at the beginning of conmon's file.
   */
  static async open(options: JobLogWriterOptions): Promise<JobLogWriter> {
    const cap = options.capBytes ?? DEFAULT_LOG_CAP_BYTES;
    const stateFile = await open(options.statePath, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    let file: FileHandle | undefined;
    try {
      const saved = await readState(stateFile, options.statePath);
      file = await open(options.logPath, constants.O_RDWR | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW, 0o644);
      const size = (await file.stat()).size;
      const writer = new JobLogWriter(file, stateFile, options, cap, saved ?? { source: null, bytesWritten: size, truncated: false });
      if (saved && size > saved.bytesWritten) await file.truncate(saved.bytesWritten);
      // Shorter than recorded: someone cut the log; go on from what is there.
      if (saved && size < saved.bytesWritten) writer.state.bytesWritten = size;
      if (!saved) {
        // A line cut short (a note interrupted by a crash) is closed so the next starts cleanly.
        if (size > 0 && !(await endsWithNewline(file, size))) await writer.write('\n');
        if (writer.state.bytesWritten >= cap) await writer.lost();
        else await writer.save();
      }
      return writer;
    } catch (err) {
      await file?.close();
      await stateFile.close();
      throw err;
    }
  }

  get resumeFrom(): ConmonCursor | undefined {
    return this.state.source ?? undefined;
  }

  get truncated(): boolean {
    return this.state.truncated;
  }

  get bytesWritten(): number {
    return this.state.bytesWritten;
  }

  /** The longest text a line may still have: a longer one can never fit under the cap. */
  get lineRoom(): number {
    return Math.max(0, this.cap - this.state.bytesWritten - LINE_OVERHEAD);
  }

  /**
   * Writes the lines (in one write), then the state that includes them. Stops at the first
   * line that does not fit: the marker, stamped with that line's time, replaces it.
   */
  async append(lines: readonly ConmonLine[]): Promise<void> {
    if (this.state.truncated || lines.length === 0) return;
    const out: string[] = [];
    let bytes = this.state.bytesWritten;
    let source = this.state.source;
    for (const line of lines) {
      const at = new Date(line.timestampMs);
      const text = `[${formatLogTime(at)}] ${line.text.toString('utf8')}`;
      const size = Buffer.byteLength(text) + 1;
      if (line.cut || bytes + size > this.cap) {
        out.push(truncationMarker(at, this.cap));
        this.state = { ...this.state, truncated: true };
        break;
      }
      out.push(text);
      bytes += size;
      source = line.cursor;
    }
    await this.writeLines(out);
    this.state = { ...this.state, source };
    await this.save();
  }

  /**
   * Output was lost (conmon-log's gap): the log cannot be whole any more, so it ends with the
   * marker. With conmon's size bound at CONMON_SIZE_FACTOR × the cap, a replaced file held more
   * output than the cap allows, so the marker tells the truth.
   */
  async lost(): Promise<void> {
    if (this.state.truncated) return;
    this.state = { ...this.state, truncated: true };
    await this.writeLines([truncationMarker(new Date(), this.cap)]);
    await this.save();
  }

  async close(): Promise<void> {
    await this.file.close();
    await this.stateFile.close();
  }

  private async writeLines(lines: string[]): Promise<void> {
    if (lines.length === 0) return;
    await this.write(`${lines.join('\n')}\n`);
    for (const line of lines) this.options.onLine?.(line);
  }

  private async write(data: string): Promise<void> {
    const buf = Buffer.from(data);
    let done = 0;
    while (done < buf.length) done += (await this.file.write(buf, done, buf.length - done)).bytesWritten;
    this.state = { ...this.state, bytesWritten: this.state.bytesWritten + buf.length };
  }

  /** One write at offset 0 (see the module note): the file always holds one whole state. */
  private async save(): Promise<void> {
    const record = Buffer.alloc(STATE_BYTES, ' ');
    record.write(JSON.stringify(this.state));
    record[STATE_BYTES - 1] = NEWLINE;
    await this.stateFile.write(record, 0, STATE_BYTES, 0);
  }
}

/** The saved state; undefined when none was written yet (a new capture, or a crash before its first save). */
async function readState(file: FileHandle, path: string): Promise<CaptureState | undefined> {
  const raw = (await file.readFile('utf8')).trim();
  if (raw === '') return undefined;
  const state = parseState(raw);
  if (!state) throw new Error(`${path} is not a log capture state; the capture cannot resume exactly. Delete it to capture the container's output again from its start (lines already in the job log will then appear twice).`);
  return state;
}

function parseState(raw: string): CaptureState | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  const v = value as Partial<CaptureState> | null;
  const count = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
  const source = v?.source;
  const sourceOk = source === null || (typeof source === 'object' && source !== undefined && count(source.inode) && count(source.resumeOffset) && count(source.deliveredOffset));
  if (!v || !sourceOk || !count(v.bytesWritten) || typeof v.truncated !== 'boolean') return undefined;
  return { source: source ?? null, bytesWritten: v.bytesWritten, truncated: v.truncated };
}

async function endsWithNewline(file: FileHandle, size: number): Promise<boolean> {
  const last = Buffer.alloc(1);
  await file.read(last, 0, 1, size - 1);
  return last[0] === NEWLINE;
}
