/**
 * Per-job bounds on real Podman (rootful, where this cgroup v1 host enforces limits): the pids
 * limit of config in the container's pids cgroup, and the disk watch killing a job that writes
 * past its budget into /artifacts or its container filesystem while leaving one below it alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJob, json, startStack, waitForJob, type Stack } from '../support/stack.ts';

const MIB = 1024 ** 2;
const PIDS_MAX = 64;
const CHECK_INTERVAL_MS = 200;

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({
    FLASHPODS_PIDS_MAX: String(PIDS_MAX),
    // Budget: 3 × 1 MiB.
    FLASHPODS_ARTIFACT_JOB_MAX_BYTES: String(MIB),
    FLASHPODS_JOB_DISK_MULTIPLE: '3',
    FLASHPODS_DISK_CHECK_INTERVAL_SECONDS: String(CHECK_INTERVAL_MS / 1000),
  });
});
afterAll(async () => {
  await stack?.stop();
});

/** Runs a worker to its end; `elapsedMs` runs from the POST to the final status. */
async function runToEnd(command: string): Promise<{ job: any; elapsedMs: number; log: string }> {
  const { server } = stack;
  const posted = Date.now();
  const created = await createJob(server, { type: 'worker', command, cpus: 1, memory_gb: 1, timeout_minutes: 5 });
  expect(created.status).toBe(201);
  const job = await waitForJob(server, created.body.job_id, { exitCode: true, timeoutMs: 30_000 });
  const elapsedMs = Date.now() - posted;
  const { output } = await json(await server.fetch(`/jobs/${job.id}/output`));
  return { job, elapsedMs, log: output };
}

describe('the pids limit', () => {
  it('is the configured number, in force in the container: a fork bomb stops there', async () => {
    // Builtins only once the bomb has gone off: nothing else can fork then. The subshell forks
    // sleeps until the kernel refuses, then dies; its sleeps live on under the init.
    const { job, log } = await runToEnd(
      'read max < /sys/fs/cgroup/pids/pids.max; ( while :; do sleep 30 & done ) 2>/dev/null; '
      + 'read cur < /sys/fs/cgroup/pids/pids.current; read refused < /sys/fs/cgroup/pids/pids.events; set -- /proc/[0-9]*; '
      + 'echo "max=$max current=$cur processes=$# $refused"',
    );
    expect(job).toMatchObject({ status: 'completed', exit_code: 0 });
    // The init, the shell and 61 sleeps: 64 with the subshell that hit the limit and exited.
    expect(log).toContain(`max=${PIDS_MAX} current=${PIDS_MAX - 1} processes=${PIDS_MAX - 1} max 1`);
  });
});

describe('the disk watch', () => {
  it('leaves a job below its budget alone', async () => {
    // 2 MiB of 3, across both places, held for ten checks.
    const { job } = await runToEnd(`dd if=/dev/zero of=/artifacts/a bs=1M count=1 && dd if=/dev/zero of=/tmp/b bs=1M count=1 && sleep ${(10 * CHECK_INTERVAL_MS) / 1000}`);
    expect(job).toMatchObject({ status: 'completed', exit_code: 0 });
    expect(job).not.toHaveProperty('error');
  });

  const overBudget = [
    ['/artifacts', 'dd if=/dev/zero of=/artifacts/big bs=1M count=4'],
    ['its container filesystem', 'dd if=/dev/zero of=/tmp/big bs=1M count=4'],
    // No name ever points at the data: only the open descriptor shows it.
    ['a file it deleted but keeps open', 'exec 3>/tmp/held && rm /tmp/held && dd if=/dev/zero bs=1M count=4 >&3'],
  ] as const;
  for (const [where, write] of overBudget) {
    it(`kills a job writing past its budget into ${where}, at the next check, with an error that says so`, async () => {
      const { job, elapsedMs, log } = await runToEnd(`sleep 1; ${write} && echo written; sleep 60`);
      expect(log).toContain('written');
      expect(job).toMatchObject({ status: 'failed', exit_code: 137 });
      const held = /^disk_limit_exceeded: the job held ([\d.]+) MB in \/artifacts and its container filesystem, over its 3 MB disk budget \(3× the 1 MB per-job artifact limit\); it was killed\. Write less there, or ask the operator to raise FLASHPODS_JOB_DISK_MULTIPLE\.$/.exec(job.error);
      expect(held, job.error).not.toBeNull();
      expect(Number(held![1])).toBeGreaterThan(3);
      expect(Number(held![1])).toBeLessThanOrEqual(4.1);
      // Killed after the write (≥ 1 s in) and within a few checks of it (plus the container's
      // start), not after the 60 s sleep.
      expect(elapsedMs).toBeGreaterThanOrEqual(1_000);
      expect(elapsedMs).toBeLessThan(10_000);
      const events = stack.server.logLines().filter((l) => l.event === 'job_disk_exceeded' && l.job_id === job.id);
      expect(events).toHaveLength(1);
      expect(events[0]!.bytes).toBeGreaterThan(3 * MIB);
    });
  }
});
