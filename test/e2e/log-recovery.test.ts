/**
 * Issue 13's "exact recovery": a job prints while the whole server is killed with SIGKILL, or
 * while its containers actor crashes; the final job log is compared with the job's own record
 * of what it printed and when. The log source is conmon's file (containers/conmon-capture.ts).
 */
import { chmodSync, chownSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectLogIsRecord, fileLines, PRINTING_JOB } from '../support/printing-job.ts';
import { createJob, json, startStack, until, waitForJob, type Stack } from '../support/stack.ts';

/** The capture is down this long each time: a line stamped at its recovery would be this late. */
const OUTAGE_MS = 2000;

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ FLASHPODS_FAULT_INJECTION: 'true' });
});
afterAll(async () => {
  await stack?.stop();
});

const logOf = (id: string) => join(stack.home, 'logs', `${id}.log`);
const recordOf = (id: string) => join(stack.home, 'artifacts', id, 'record');

/** Resolves once the job log has caught up with the job (all but its last few lines) and holds `atLeast` lines. */
async function caughtUp(id: string, atLeast: number): Promise<void> {
  await until(() => {
    const logged = fileLines(logOf(id)).length;
    return logged >= atLeast && logged >= fileLines(recordOf(id)).length - 3;
  }, 30_000, `the log of ${id} caught up with ${atLeast} lines`);
}

describe('the job log after a crash mid-output', () => {
  it('is exactly what the job printed, each line stamped when printed, after SIGKILL of the whole server', async () => {
    const id = (await createJob(stack.server, { type: 'worker', command: PRINTING_JOB, cpus: 1, memory_gb: 1 })).body.job_id;
    await caughtUp(id, 30);
    const from = Date.now();
    expect(await stack.server.stop('SIGKILL')).toBe(null);
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    const restarted = await stack.restartServer();
    const outages = [{ from, to: Date.now() }];
    const job = await waitForJob(restarted, id, { timeoutMs: 60_000 });
    expect(job).toMatchObject({ status: 'completed', exit_code: 0 });
    expect(restarted.logLines().filter((l) => l.event === 'log_source_fallback')).toEqual([]);
    expectLogIsRecord(fileLines(logOf(id)), fileLines(recordOf(id)), outages, 10);
    // The served log is the file: the last line, printed without a newline, ends it.
    const served = (await json(await restarted.fetch(`/jobs/${id}/output?tail=1`))).output as string;
    expect(served).toMatch(/^\[[\d:.]+\] out 300 \d+ final-without-newline\n$/);
  });

  it('is exactly what the job printed after its containers actor crashes', async () => {
    const { server } = stack;
    const id = (await createJob(server, { type: 'worker', command: PRINTING_JOB, cpus: 1, memory_gb: 1 })).body.job_id;
    await caughtUp(id, 30);
    const readyBefore = server.logLines().filter((l) => l.actor === 'containers' && l.event === 'ready').length;
    const from = Date.now();
    expect((await server.fetch('/_faults/crash/containers?how=exit', { method: 'POST' })).status).toBe(202);
    await until(() => server.logLines().filter((l) => l.actor === 'containers' && l.event === 'ready').length > readyBefore, 15_000, 'containers restarted');
    const outages = [{ from, to: Date.now() }];
    const job = await waitForJob(server, id, { timeoutMs: 60_000 });
    expect(job).toMatchObject({ status: 'completed', exit_code: 0 });
    expectLogIsRecord(fileLines(logOf(id)), fileLines(recordOf(id)), outages, 0);
  });
});

describe('a conmon directory Flashpods cannot use', () => {
  let other: Stack;
  afterAll(async () => {
    await other?.stop();
  });

  it('falls back to the attach, says so once, and still logs every job whole', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fp-conmon-foreign-'));
    chownSync(dir, 12345, 12345);
    chmodSync(dir, 0o700);
    other = await startStack({ FLASHPODS_CONTAINER_LOGS_DIR: dir });
    const ids = [];
    for (const n of [1, 2]) ids.push((await createJob(other.server, { type: 'worker', command: `echo job${n}-a; echo job${n}-b >&2`, cpus: 1, memory_gb: 1 })).body.job_id);
    for (const id of ids) expect(await waitForJob(other.server, id)).toMatchObject({ status: 'completed', exit_code: 0 });
    const fallbacks = other.server.logLines().filter((l) => l.event === 'log_source_fallback');
    expect(fallbacks).toHaveLength(1);
    expect(fallbacks[0]!.msg).toContain(`${dir} belongs to uid 12345, not the Podman user (uid 0)`);
    for (const [i, id] of ids.entries()) {
      const texts = fileLines(join(other.home, 'logs', `${id}.log`)).map((l) => l.replace(/^\[[^\]]+\] /, ''));
      expect(texts.sort()).toEqual([`job${i + 1}-a`, `job${i + 1}-b`]);
    }
  });
});
