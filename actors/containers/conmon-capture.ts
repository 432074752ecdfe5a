/**
 * @module containers/conmon-capture
 * The job log captured from the container's own record of its output (conmon's `k8s-file`,
 * conmon-log.ts) through the exact-once writer (job-log-writer.ts), as the LogCapture the
 * containers actor follows. This is the Podman executor's log source: no attach on the job's
 * critical path, per-line times from conmon, and a resume that neither loses nor repeats a line.
 */
import { rm } from 'node:fs/promises';
import { conmonLogConfig, conmonLogPath, createConmonLog, openConmonLog, prepareConmonLogDir, type ConmonLog, type OpenResult } from './conmon-log.ts';
import { captureConmonLog, captureStatePath, JobLogWriter } from './job-log-writer.ts';
import type { LogCapture, LogCaptureOptions } from './log-capture.ts';

/** Where conmon writes the job containers' files, and the user they must belong to (Podman's). */
export interface ConmonPlace {
  dir: string;
  /** Rootless: the API's own uid; rootful: root. */
  ownerUid: number;
}

const OPEN_RETRY_MS = 20;

export function conmonFiles(place: ConmonPlace, jobId: string): { conmon: string; state: string } {
  return { conmon: conmonLogPath(place.dir, jobId), state: captureStatePath(place.dir, jobId) };
}

/** `HostConfig.LogConfig` naming the job's file in the place, bounded by the job log cap. */
export function jobLogConfig(place: ConmonPlace, jobId: string, jobLogCapBytes: number): ReturnType<typeof conmonLogConfig> {
  return conmonLogConfig(conmonFiles(place, jobId).conmon, jobLogCapBytes);
}

export function preparePlace(place: ConmonPlace): Promise<void> {
  return prepareConmonLogDir(place.dir, place.ownerUid);
}

/**
 * Deletes the job's conmon file and capture state: before its container is made (conmon appends
 * to a file left by an earlier container of the job) and once it is removed.
 */
export async function forgetJobFiles(place: ConmonPlace, jobId: string): Promise<void> {
  const { conmon, state } = conmonFiles(place, jobId);
  await Promise.all([rm(conmon, { force: true }), rm(state, { force: true })]);
}

export type ConmonCaptureStart = { capture: LogCapture } | { unreadable: string };

/** The job's conmon file, made and opened before its container starts (createConmonLog says why). */
export function openBeforeStart(place: ConmonPlace, jobId: string): Promise<OpenResult> {
  return createConmonLog(conmonFiles(place, jobId).conmon, place.ownerUid);
}

/**
 * Follows the job's conmon file into its log until `exited` settles (or the signal stops it),
 * from where the last capture of this job stopped; a file still missing is waited for up to
 * `waitForFileMs`. Unreadable (no file, a link, another owner): why, for the caller to fall back
 * to another source.
 */
export async function captureFromConmon(
  place: ConmonPlace,
  jobId: string,
  options: LogCaptureOptions,
  exited: Promise<unknown>,
  source: { waitForFileMs: number } | { opened: ConmonLog },
): Promise<ConmonCaptureStart> {
  const files = conmonFiles(place, jobId);
  let log: ConmonLog;
  if ('opened' in source) {
    log = source.opened;
  } else {
    // conmon makes the file when the container is initialised, which a start that returned has done.
    const giveUpAt = Date.now() + source.waitForFileMs;
    let opened = await openConmonLog(files.conmon, place.ownerUid);
    while (!opened.readable && /does not exist/.test(opened.why) && Date.now() < giveUpAt) {
      await new Promise((r) => setTimeout(r, OPEN_RETRY_MS));
      opened = await openConmonLog(files.conmon, place.ownerUid);
    }
    if (!opened.readable) return { unreadable: opened.why };
    log = opened.log;
  }
  let writer: JobLogWriter;
  try {
    writer = await JobLogWriter.open({ logPath: options.path, statePath: files.state, capBytes: options.capBytes, onLine: options.onLine });
  } catch (err) {
    await log.close();
    throw err;
  }
  // A state that says truncated is reported again unless the job's record already says so: the
  // capture that truncated may have died before its report was taken.
  const recorded = options.alreadyTruncated === true;
  let exitUnknown = false;
  exited.catch(() => (exitUnknown = true));
  const done = (async () => {
    try {
      const result = await captureConmonLog(log, writer, { exited, signal: options.signal, onGap: options.onGap });
      if (result.truncated && !recorded) options.onTruncated?.();
      // Stopped because nobody could say the container had exited (its wait failed): the log may
      // lack its end. Not complete, so the caller resumes from the saved state.
      if (!result.truncated && exitUnknown && !options.signal?.aborted) throw new Error('the container\'s exit could not be confirmed; the capture resumes from where it stopped');
      return result;
    } finally {
      await writer.close();
      await log.close();
    }
  })();
  return { capture: { done } };
}
