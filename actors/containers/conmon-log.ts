/**
 * @module actors/containers/conmon-log
 * A job container's own output record: the `k8s-file` log conmon writes beside the container,
 * followed from the host. One record per line of the file, as seen on Podman 4.3 / conmon 2.1.6:
 *
 *   2026-11-29T13:15:12.902566964+00:00 stdout F <text>
 *
 * — the time conmon read the bytes (RFC 3339, nanoseconds, host offset), the stream, `F` for a
 * full line or `P` for a piece of one continued by a later record of the same stream (conmon cuts
 * lines at 8192 bytes, and writes output without a newline as `P`; the last piece of a job that
 * ends without a newline stays `P` for good). The follower joins the pieces of each stream into
 * whole lines and yields them in the order their last piece was written, which is the order of
 * arrival, each stamped with that last piece's time (so stamps never go backwards in the log).
 *
 * Where the file lives: Flashpods names it (`LogConfig.Config.path`, see conmonLogConfig) in a
 * directory of its own. Podman's default place, `<storage>/{overlay,vfs}-containers/<id>/userdata/
 * ctr.log`, cannot be read by the API's user under rootless Podman: with `--userns=keep-id`,
 * `userdata` belongs to the container's root (a subordinate uid, 100000 here), mode 0700. Podman's
 * `rm` leaves a file at a chosen path alone, so the capture can also finish after the removal;
 * deleting it is the caller's job.
 *
 * Size bound: conmon replaces the file by an empty one (a new inode, renamed over the old) once
 * it would grow past `max-size`; what was not read from the old one by then is gone. The bound
 * is CONMON_SIZE_FACTOR × the job log cap: a conmon record is at most 46 bytes longer than the
 * text, a job log line 16 bytes longer, so a file that fills up has produced more than a full job
 * log and the job log is truncated by then. A follower that was down during such a replacement
 * is told (a gap); one that is up finishes the old file first.
 *
 * Never follows links: the file is opened with O_NOFOLLOW and must be a regular file with one
 * link, owned by the user Podman runs as (a hard link planted there would have two). Rootless,
 * that user is the API's own; rootful it is root, so the API must run as root to use the file
 * (otherwise openConmonLog says why, and the caller falls back to the attach).
 */
import { constants, watch, type FSWatcher } from 'node:fs';
import { lstat, mkdir, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { containerLogName } from '../contract/job-paths.ts';

export type ConmonStream = 'stdout' | 'stderr';

/** Where to resume: a position in one file (by inode) that is always just after a record. */
export interface ConmonCursor {
  inode: number;
  /** Start of the earliest line still incomplete here (or deliveredOffset when none is). */
  resumeOffset: number;
  /** End of the record that completed the last line delivered: lines ending up to here are not repeated. */
  deliveredOffset: number;
}

export interface ConmonLine {
  stream: ConmonStream;
  /** When conmon read the line's last piece (ms since the epoch). */
  timestampMs: number;
  text: Buffer;
  /**
   * The line grew longer than `maxLineBytes`: `text` is its beginning, delivered when it grew too
   * long (its rest is dropped; after a resume from this cursor the rest would come as a line).
   */
  cut: boolean;
  /** Resuming from here continues right after this line. */
  cursor: ConmonCursor;
}

export interface ConmonBatch {
  lines: ConmonLine[];
  /**
   * Set when output was lost: the file was replaced or cut shorter while nobody read it (the
   * cursor's inode is gone, or its offsets lie past the end). Reading went on from the start of
   * the file now there.
   */
  gap?: string;
}

export interface FollowOptions {
  /** Where a previous follower stopped; from the start of the file without it. */
  from?: ConmonCursor;
  /**
   * Resolves once the container has exited: the rest is read, incomplete lines are ended, and
   * following stops. A rejection (Podman's API went away: nobody knows) stops like the signal.
   */
  exited: Promise<unknown>;
  /** Stops at once, leaving incomplete lines unread (a later follower resumes from the last cursor). */
  signal?: AbortSignal;
  /** Longest line kept whole (asked each time a line grows); longer ones are cut. */
  maxLineBytes?: () => number;
  /** Re-check of the file when no change was signalled (file events are the fast path). */
  pollMs?: number;
}

export type OpenResult = { readable: true; log: ConmonLog } | { readable: false; why: string };

/**
 * Bytes of conmon's file per byte of job log allowed before it is replaced (module note): the
 * worst case, empty lines, is 46 bytes of record per 16 bytes of log.
 */
export const CONMON_SIZE_FACTOR = 3;
const READ_BYTES = 256 * 1024;
/** conmon writes a record (≤ 8192 bytes of text) in one go; more without a newline is not conmon's. */
const MAX_RECORD_BYTES = 64 * 1024;
const DEFAULT_POLL_MS = 250;
const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;
const NEWLINE = 0x0a;
const SPACE = 0x20;
const RECORD = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d) (stdout|stderr) ([FP]) $/;

/** The job's conmon log in Flashpods' directory for them (prepareConmonLogDir). */
export function conmonLogPath(dir: string, jobId: string): string {
  return join(dir, containerLogName(jobId));
}

/**
 * Makes (0700) or checks the directory conmon writes the job logs into. conmon opens its path
 * following links, and rootful it runs as root: only the Podman user may be able to put anything
 * there. Every problem is reported at once, with what to do.
 */
export async function prepareConmonLogDir(dir: string, ownerUid: number): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await lstat(dir);
  const problems = [
    ...(info.isSymbolicLink() || !info.isDirectory() ? ['is not a directory'] : []),
    ...(info.uid !== ownerUid ? [`belongs to uid ${info.uid}, not the Podman user (uid ${ownerUid})`] : []),
    ...((info.mode & 0o077) !== 0 ? [`is open to others (mode ${(info.mode & 0o777).toString(8)})`] : []),
  ];
  if (problems.length) throw new Error(`${dir} ${problems.join(', ')}: make it a directory of uid ${ownerUid} with mode 0700`);
}

/**
 * `HostConfig.LogConfig` for the create options. Podman 4.3's compat API takes `k8s-file` with
 * `max-size` (decimal units; a plain number is bytes) and `path` — checked in libpod's inspect,
 * where it shows as `Path` and `Size`. The compat inspect reports the type as `json-file`
 * whatever it is, so ask libpod when checking.
 */
export function conmonLogConfig(path: string, jobLogCapBytes: number): { Type: 'k8s-file'; Config: Record<string, string> } {
  return { Type: 'k8s-file', Config: { path, 'max-size': String(CONMON_SIZE_FACTOR * jobLogCapBytes) } };
}

interface ParsedRecord {
  stream: ConmonStream;
  timestampMs: number;
  full: boolean;
  text: Buffer;
}

let lastStamp = '';
let lastStampMs = 0;

/** One record without its newline, or undefined when it is not in conmon's format. */
export function parseConmonRecord(line: Buffer): ParsedRecord | undefined {
  // `<time> <stream> <tag> ` is at most 35 + 1 + 6 + 1 + 1 + 1 bytes; the text follows.
  const first = line.indexOf(SPACE);
  const second = first < 0 ? -1 : line.indexOf(SPACE, first + 1);
  const third = second < 0 ? -1 : line.indexOf(SPACE, second + 1);
  if (third < 0 || third > 64) return undefined;
  const head = line.toString('latin1', 0, third + 1).match(RECORD);
  if (!head) return undefined;
  const stamp = line.toString('latin1', 0, first);
  if (stamp !== lastStamp) {
    const ms = Date.parse(`${head[1]}.${(head[2] ?? '').padEnd(3, '0').slice(0, 3)}${head[3]}`);
    if (Number.isNaN(ms)) return undefined;
    lastStamp = stamp;
    lastStampMs = ms;
  }
  return { stream: head[4] as ConmonStream, timestampMs: lastStampMs, full: head[5] === 'F', text: line.subarray(third + 1) };
}

/**
 * Opens the file without following a link and checks it is conmon's: a regular file with one
 * link, owned by `ownerUid` (the user Podman runs as: ours when rootless, root when rootful).
 * Anything else is `readable: false` with the reason, for the caller to fall back to the attach.
 */
export async function openConmonLog(path: string, ownerUid: number): Promise<OpenResult> {
  const opened = await openChecked(path, ownerUid);
  return typeof opened === 'string' ? { readable: false, why: opened } : { readable: true, log: new ConmonLog(path, ownerUid, opened) };
}

/**
 * Makes the file before conmon does, open, so that nothing conmon writes can be missed: conmon
 * appends to a file it finds (O_APPEND), and when it replaces the file at its size bound, this
 * handle still reads the old one to its end. A capture that opened the file only after the start
 * could find it replaced already by a job that printed more than the bound at once (all of its
 * beginning lost, and no way to tell). Only where this process is the user conmon runs as (the
 * file must be that user's); elsewhere, and when the file exists already, it is opened as
 * openConmonLog does.
 */
export async function createConmonLog(path: string, ownerUid: number): Promise<OpenResult> {
  const opened = await openChecked(path, ownerUid, ownerUid === process.geteuid?.());
  return typeof opened === 'string' ? { readable: false, why: opened } : { readable: true, log: new ConmonLog(path, ownerUid, opened) };
}

/** `create`: make the file (mode 0640, as conmon does) when it is not there yet. */
async function openChecked(path: string, ownerUid: number, create = false): Promise<{ handle: FileHandle; inode: number } | string> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | (create ? constants.O_CREAT : 0), 0o640);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return `${path} is a symbolic link`;
    if (code === 'ENOENT') return `${path} does not exist (is the container's log driver k8s-file with this path?)`;
    return `${path} cannot be opened (${code ?? (err as Error).message})`;
  }
  const info = await handle.stat();
  const problem = !info.isFile() ? 'is not a regular file'
    : info.nlink !== 1 ? `has ${info.nlink} links`
    : info.uid !== ownerUid ? `belongs to uid ${info.uid}, not ${ownerUid}`
    : undefined;
  if (problem) {
    await handle.close();
    return `${path} ${problem}`;
  }
  return { handle, inode: info.ino };
}

/** Pieces of a line read so far. */
interface Pending {
  start: number;
  /** Time of its latest piece. */
  lastMs: number;
  parts: Buffer[];
  bytes: number;
  cut: boolean;
}

export class ConmonLog {
  constructor(
    readonly path: string,
    private readonly ownerUid: number,
    private current: { handle: FileHandle; inode: number },
  ) {}

  async close(): Promise<void> {
    await this.current.handle.close();
  }

  /** Yields the lines as they are written, in batches (one per read), until the exit or the signal. */
  async *follow(options: FollowOptions): AsyncGenerator<ConmonBatch> {
    const { from, signal } = options;
    const maxLineBytes = options.maxLineBytes ?? (() => DEFAULT_MAX_LINE_BYTES);
    let wake: () => void = () => undefined;
    let exited = false;
    let unknown = false;
    void options.exited.then(() => { exited = true; wake(); }, () => { unknown = true; wake(); });
    const onAbort = (): void => wake();
    signal?.addEventListener('abort', onAbort, { once: true });
    let watcher: FSWatcher | undefined;
    const watchCurrent = (): void => {
      watcher?.close();
      // On the opened inode itself (through /proc/self/fd), not on a path: a write, or the
      // file's replacement (its link count drops), signals it.
      watcher = watch(`/proc/self/fd/${this.current.handle.fd}`, () => wake());
      watcher.on('error', () => undefined);
    };

    const pending = new Map<ConmonStream, Pending>();
    let position = 0;
    /** End of the last line delivered (by this follower or the one `from` came from). */
    let delivered = 0;
    let gap = from ? await this.gapSince(from) : undefined;
    if (from && !gap) {
      position = from.resumeOffset;
      delivered = from.deliveredOffset;
    }
    const resumeOffset = (end: number): number => Math.min(end, ...[...pending.values()].filter((p) => !p.cut).map((p) => p.start));
    const deliver = (stream: ConmonStream, p: Pending, end: number): ConmonLine | undefined => {
      // Ends only grow through the file: one ending by `delivered` was delivered before a resume.
      if (end <= delivered) return undefined;
      delivered = end;
      return { ...lineOf(stream, p), cursor: { inode: this.current.inode, resumeOffset: resumeOffset(end), deliveredOffset: end } };
    };
    let lastMs = 0;
    /** One record, `end` just past its newline: the line it completes (or cuts), if a new one. */
    const take = (raw: Buffer, start: number, end: number): ConmonLine | undefined => {
      const record = parseConmonRecord(raw) ?? { stream: 'stdout' as const, timestampMs: lastMs || Date.now(), full: true, text: raw };
      lastMs = record.timestampMs;
      const p = pending.get(record.stream) ?? { start, lastMs: 0, parts: [], bytes: 0, cut: false };
      pending.set(record.stream, p);
      if (record.full) pending.delete(record.stream);
      if (p.cut) return undefined;
      p.lastMs = record.timestampMs;
      const room = maxLineBytes() - p.bytes;
      // Copied: the read buffer is reused.
      p.parts.push(Buffer.from(record.text.length > room ? record.text.subarray(0, Math.max(room, 0)) : record.text));
      p.bytes += record.text.length;
      // A line too long to keep is delivered at once, cut; the rest of it is dropped as it comes.
      p.cut = record.text.length > room;
      return record.full || p.cut ? deliver(record.stream, p, end) : undefined;
    };

    const buffer = Buffer.alloc(READ_BYTES);
    let carry = Buffer.alloc(0);
    /** Records the current file holds past `position`; undefined when it holds nothing new. */
    const readMore = async (): Promise<ConmonLine[] | undefined> => {
      const { bytesRead } = await this.current.handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) return undefined;
      const chunk = carry.length ? Buffer.concat([carry, buffer.subarray(0, bytesRead)]) : buffer.subarray(0, bytesRead);
      let offset = position - carry.length;
      let at = 0;
      const lines: ConmonLine[] = [];
      for (let nl = chunk.indexOf(NEWLINE); nl >= 0; nl = chunk.indexOf(NEWLINE, at)) {
        const line = take(chunk.subarray(at, nl), offset, offset + nl - at + 1);
        if (line) lines.push(line);
        offset += nl - at + 1;
        at = nl + 1;
      }
      carry = Buffer.from(chunk.subarray(at));
      position += bytesRead;
      if (carry.length > MAX_RECORD_BYTES) {
        const line = take(carry, offset, position);
        if (line) lines.push(line);
        carry = Buffer.alloc(0);
      }
      return lines;
    };
    const restart = (): void => {
      carry = Buffer.alloc(0);
      position = 0;
      delivered = 0;
      watchCurrent();
    };

    try {
      if (gap) yield { lines: [], gap };
      watchCurrent();
      for (;;) {
        if (signal?.aborted || unknown) return;
        // An exit seen before a read that finds nothing new means everything has been read.
        const sawExit = exited;
        const lines = await readMore();
        if (lines) {
          if (lines.length) yield { lines };
          continue;
        }
        const size = (await this.current.handle.stat()).size;
        if (size < position) {
          gap = `conmon's log file was cut from ${position} to ${size} bytes`;
          pending.clear();
          restart();
          yield { lines: [], gap };
          continue;
        }
        const next = await this.replacement();
        if (next) {
          // Replaced means final: conmon wrote its last bytes to the old file before the rename.
          for (let more = await readMore(); more; more = await readMore()) if (more.length) yield { lines: more };
          await this.current.handle.close();
          this.current = next;
          // A line begun in the old file goes on in the new one; a resume can only start there.
          for (const p of pending.values()) p.start = 0;
          restart();
          continue;
        }
        if (sawExit) break;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, options.pollMs ?? DEFAULT_POLL_MS);
          wake = () => { clearTimeout(timer); resolve(); };
          if (exited || unknown || signal?.aborted) wake();
        });
        wake = () => undefined;
      }
      yield* this.ended(pending, carry, position, delivered, take);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      watcher?.close();
    }
  }

  /**
   * After the exit: a record cut short is taken as it is, and each line left incomplete (output
   * without a final newline) ends, in the order it began. Each one's cursor resumes at the next
   * one's start, so a resume neither repeats nor loses any of them.
   */
  private *ended(
    pending: Map<ConmonStream, Pending>,
    carry: Buffer,
    position: number,
    delivered: number,
    take: (raw: Buffer, start: number, end: number) => ConmonLine | undefined,
  ): Generator<ConmonBatch> {
    const lines: ConmonLine[] = [];
    if (carry.length) {
      const line = take(carry, position - carry.length, position);
      if (line) lines.push(line);
    }
    const left = [...pending].filter(([, p]) => !p.cut).sort((a, b) => a[1].start - b[1].start);
    left.forEach(([stream, p], i) => {
      const resumeOffset = left[i + 1]?.[1].start ?? position;
      lines.push({ ...lineOf(stream, p), cursor: { inode: this.current.inode, resumeOffset, deliveredOffset: delivered } });
    });
    pending.clear();
    if (lines.length) yield { lines };
  }

  /** Why `from` no longer points into the file at the path, or undefined when it still does. */
  private async gapSince(from: ConmonCursor): Promise<string | undefined> {
    if (from.inode !== this.current.inode) return 'conmon replaced its log file (size bound) while nobody followed it';
    const size = (await this.current.handle.stat()).size;
    if (size < from.resumeOffset || size < from.deliveredOffset) return `conmon's log file is shorter (${size} bytes) than what was read of it`;
    if (from.resumeOffset > 0) {
      const before = Buffer.alloc(1);
      await this.current.handle.read(before, 0, 1, from.resumeOffset - 1);
      if (before[0] !== NEWLINE) return 'conmon\'s log file has no record boundary where reading stopped';
    }
    return undefined;
  }

  /** The file now at the path, opened, when it is no longer the one being read (conmon's size bound). */
  private async replacement(): Promise<{ handle: FileHandle; inode: number } | undefined> {
    const atPath = await lstat(this.path).catch(() => undefined);
    if (!atPath || atPath.ino === this.current.inode) return undefined;
    const next = await openChecked(this.path, this.ownerUid);
    return typeof next === 'string' ? undefined : next;
  }
}

function lineOf(stream: ConmonStream, p: Pending): Omit<ConmonLine, 'cursor'> {
  return { stream, timestampMs: p.lastMs, text: p.parts.length === 1 ? p.parts[0]! : Buffer.concat(p.parts), cut: p.cut };
}
