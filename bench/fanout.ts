/**
 * @module bench/fanout
 * An agent's fan-out on a small host (issue 15): N jobs submitted at once with `"queue": true`
 * to a host with capacity for C of them, each sleeping a known time (1–3 s, a fixed mix). Reports
 * the total time against the ideal — the sum of the job times over C, which no scheduler can beat
 * — and the wait each job saw in the queue (queued_at → admitted_at, from the database, in ms).
 * Beside it, in the same run, the same jobs through the raw Podman API by a client that keeps C
 * in flight itself (what an agent would otherwise have to script), as a ratio.
 *
 *   node --import tsx bench/fanout.ts [--jobs 40] [--capacity 4]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { jobContainerOptions } from '../actors/containers/container-spec.ts';
import { loadConfig } from '../actors/contract/config.ts';
import { openDatabase } from '../actors/store/database.ts';
import { startPodmanService, TEST_IMAGE } from '../test/support/podman.ts';
import { startServer } from '../test/support/server.ts';
import { testEnv } from '../test/support/stack.ts';
import { percentile } from './job-pool.ts';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '40' }, capacity: { type: 'string', default: '4' } } });
const N = Number(values.jobs);
const C = Number(values.capacity);
/** Seconds each job sleeps: a fixed mix of 1, 2 and 3 s, the same on both paths. */
const SLEEPS = Array.from({ length: N }, (_, i) => [1, 3, 2, 1, 2, 3, 1, 2][i % 8]!);
const IDEAL_S = SLEEPS.reduce((a, b) => a + b, 0) / C;
const PIDS_LIMIT = loadConfig({ env: {} }).limits.pidsMax;


async function flashpods(): Promise<{ seconds: number; waitsMs: number[]; backfilled: number }> {
  const home = mkdtempSync(join(tmpdir(), 'fp-fanout-'));
  const server = await startServer(testEnv(home, podman.socketPath, { FLASHPODS_CAPACITY_CPUS: String(C), FLASHPODS_CAPACITY_MEMORY_GB: String(4 * C), FLASHPODS_LOG_LEVEL: 'info' }), home);
  try {
    const started = performance.now();
    const ids: string[] = [];
    for (const sleep of SLEEPS) {
      const res = await server.fetch('/jobs', { method: 'POST', body: JSON.stringify({ type: 'worker', command: `sleep ${sleep}`, cpus: 1, memory_gb: 1, queue: true }) });
      if (res.status !== 201) throw new Error(`POST /jobs answered ${res.status}: ${await res.text()}`);
      ids.push(((await res.json()) as { job_id: string }).job_id);
    }
    await Promise.all(ids.map(async (id) => {
      for (;;) {
        const job = (await (await server.fetch(`/jobs/${id}?wait=60`)).json()) as { status: string };
        if (job.status === 'completed') return;
        if (!['queued', 'pending', 'starting', 'running'].includes(job.status)) throw new Error(`job ${id} ended ${job.status}`);
      }
    }));
    const seconds = (performance.now() - started) / 1000;
    const db = openDatabase(join(home, 'db', 'flashpods.db'), { readonly: true });
    const rows = db.prepare('SELECT queued_at, admitted_at, created_at, backfilled FROM jobs').all() as Array<{ queued_at: number | null; admitted_at: number | null; created_at: number; backfilled: number }>;
    db.close();
    return {
      seconds,
      waitsMs: rows.map((r) => (r.queued_at === null ? 0 : r.admitted_at! - r.queued_at)).sort((a, b) => a - b),
      backfilled: rows.filter((r) => r.backfilled === 1).length,
    };
  } finally {
    await server.stop();
  }
}

/** The same jobs straight through Podman, C in flight at a time, in submission order. */
async function rawPodman(): Promise<{ seconds: number }> {
  const docker = new Docker({ socketPath: podman.socketPath });
  const artifacts = mkdtempSync(join(tmpdir(), 'fp-fanout-raw-'));
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: C }, async () => {
    while (next < N) {
      const i = next++;
      const c = await docker.createContainer(jobContainerOptions({
        jobId: `job_fanout${String(i).padStart(10, '0')}`, jobType: 'worker', image: TEST_IMAGE, command: `sleep ${SLEEPS[i]}`, cpus: 1, memoryGb: 1,
        pidsLimit: PIDS_LIMIT, artifactsDir: mkdtempSync(join(artifacts, 'a-')), rootless: false, networkMode: 'none', instanceId: 'bench-fanout',
      }));
      await c.start();
      await c.wait();
      await c.remove({ force: true });
    }
  }));
  return { seconds: (performance.now() - started) / 1000 };
}

const podman = await startPodmanService();
try {
  process.stderr.write(`fan-out: ${N} jobs (sleep 1–3 s) on capacity ${C}; ideal ${IDEAL_S.toFixed(1)} s\n`);
  const raw = await rawPodman();
  const fp = await flashpods();
  const w = fp.waitsMs;
  console.log('\n| path                                   | total s | ÷ ideal | queue wait p50 / p99 / max s |');
  console.log('|----------------------------------------|---------|---------|------------------------------|');
  console.log(`| raw Podman API, client keeps ${C} in flight | ${raw.seconds.toFixed(1).padStart(7)} | ${(raw.seconds / IDEAL_S).toFixed(2).padStart(7)} | – |`);
  console.log(`| Flashpods, all ${N} submitted with queue  | ${fp.seconds.toFixed(1).padStart(7)} | ${(fp.seconds / IDEAL_S).toFixed(2).padStart(7)} | ${[50, 99, 100].map((p) => (percentile(w, p) / 1000).toFixed(1)).join(' / ')} |`);
  console.log(`\nFlashpods / raw total time = ${(fp.seconds / raw.seconds).toFixed(3)}; ${fp.backfilled} jobs backfilled`);
  console.log(JSON.stringify({
    bench: 'fanout', jobs: N, capacity: C, ideal_s: IDEAL_S, raw_s: raw.seconds, flashpods_s: fp.seconds,
    wait_p50_s: percentile(w, 50) / 1000, wait_p99_s: percentile(w, 99) / 1000, wait_max_s: percentile(w, 100) / 1000, backfilled: fp.backfilled,
  }));
} finally {
  await podman.stop();
}
