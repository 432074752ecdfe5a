/**
 * @module bench/throughput
 * Job throughput: N trivial worker jobs through the Flashpods HTTP API to `completed`, beside the
 * same N containers run directly through the Podman API with the same create options, in the
 * same run, on the same Podman service. The two paths alternate for several rounds so that load
 * drifting on the machine hits both alike. Prints a table and a final JSON line.
 *
 *   node --import tsx bench/throughput.ts [--jobs 50] [--concurrency 4] [--rounds 3] [--network slirp4netns]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { jobContainerOptions, type JobContainerSpec } from '../actors/containers/container-spec.ts';
import { startPodmanService, TEST_IMAGE } from '../test/support/podman.ts';
import { startServer } from '../test/support/server.ts';
import { testEnv } from '../test/support/stack.ts';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '50' },
    concurrency: { type: 'string', default: '4' },
    network: { type: 'string', default: 'slirp4netns' },
    rounds: { type: 'string', default: '3' },
  },
});
const N = Number(values.jobs);
const C = Number(values.concurrency);
const NETWORK = values.network!;
const ROUNDS = Number(values.rounds);
const COMMAND = 'echo hello';

interface Run {
  label: string;
  seconds: number;
  latenciesMs: number[];
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

/** Runs `one` N times with at most C in flight; returns wall time and per-item latency. */
async function pool(label: string, one: (i: number) => Promise<void>): Promise<Run> {
  const latenciesMs: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: C }, async () => {
    while (next < N) {
      const i = next++;
      const t = performance.now();
      await one(i);
      latenciesMs.push(performance.now() - t);
    }
  }));
  return { label, seconds: (performance.now() - started) / 1000, latenciesMs: latenciesMs.sort((a, b) => a - b) };
}

/**
 * The same containers straight through the Podman API. With `attach`, each also attaches to its
 * output before start, as Flashpods must to capture every log line: the floor for any service
 * that keeps job logs.
 */
async function rawPodman(docker: Docker, artifactsRoot: string, attach: boolean): Promise<Run> {
  return pool(attach ? 'raw Podman + attach' : 'raw Podman API', async (i) => {
    const spec: JobContainerSpec = {
      jobId: `job_benchraw${attach ? 'a' : 'p'}${String(i).padStart(7, '0')}`, jobType: 'worker', image: TEST_IMAGE, command: COMMAND,
      cpus: 1, memoryGb: 1, artifactsDir: mkdtempSync(join(artifactsRoot, 'a-')), socketMounts: [], rootless: false, networkMode: NETWORK,
      instanceId: 'bench-raw',
    };
    const container = await docker.createContainer(jobContainerOptions(spec));
    if (attach) (await container.attach({ stream: true, stdout: true, stderr: true, hijack: true })).resume();
    await container.start();
    await container.wait();
    await container.remove({ force: true });
  });
}

async function flashpods(server: Awaited<ReturnType<typeof startServer>>): Promise<Run> {
  return pool('Flashpods HTTP API', async () => {
    const res = await server.fetch('/jobs', { method: 'POST', body: JSON.stringify({ type: 'worker', command: COMMAND, cpus: 1, memory_gb: 1 }) });
    if (res.status !== 201) throw new Error(`POST /jobs answered ${res.status}: ${await res.text()}`);
    const { job_id: id } = (await res.json()) as { job_id: string };
    for (;;) {
      const job = (await (await server.fetch(`/jobs/${id}?wait=60`)).json()) as { status: string };
      if (job.status === 'completed') return;
      if (['failed', 'timed_out', 'cancelled'].includes(job.status)) throw new Error(`job ${id} ended ${job.status}`);
    }
  });
}

function row(run: Run): string {
  const l = run.latenciesMs;
  return `| ${run.label.padEnd(20)} | ${(N / run.seconds).toFixed(2).padStart(7)} | ${percentile(l, 50).toFixed(0).padStart(8)} | ${percentile(l, 99).toFixed(0).padStart(8)} | ${run.seconds.toFixed(2).padStart(7)} |`;
}

const podman = await startPodmanService();
const docker = new Docker({ socketPath: podman.socketPath });
const home = mkdtempSync(join(tmpdir(), 'fp-bench-'));
const server = await startServer(
  testEnv(home, podman.socketPath, {
    FLASHPODS_CONTAINER_NETWORK: NETWORK, FLASHPODS_CAPACITY_CPUS: String(C), FLASHPODS_CAPACITY_MEMORY_GB: String(C), FLASHPODS_LOG_LEVEL: 'info',
  }),
  home,
);
try {
  process.stderr.write(`warming up (${C} containers each way)…\n`);
  for (let i = 0; i < C; i++) {
    const c = await docker.createContainer(jobContainerOptions({ jobId: `job_benchwarm${i}0000000`, jobType: 'worker', image: TEST_IMAGE, command: 'true', cpus: 1, memoryGb: 1, artifactsDir: mkdtempSync(join(home, 'w-')), socketMounts: [], rootless: false, networkMode: NETWORK, instanceId: 'bench-raw' }));
    await c.start();
    await c.wait();
    await c.remove({ force: true });
  }
  process.stderr.write(`running ${N} jobs each way per round, ${C} at a time, ${ROUNDS} rounds, network ${NETWORK}…\n`);
  const rawRuns: Run[] = [];
  const attachRuns: Run[] = [];
  const fpRuns: Run[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    rawRuns.push(await rawPodman(docker, home, false));
    attachRuns.push(await rawPodman(docker, home, true));
    fpRuns.push(await flashpods(server));
    process.stderr.write(`  round ${r + 1}: raw ${(N / rawRuns.at(-1)!.seconds).toFixed(2)}, raw+attach ${(N / attachRuns.at(-1)!.seconds).toFixed(2)}, flashpods ${(N / fpRuns.at(-1)!.seconds).toFixed(2)} jobs/s\n`);
  }
  const merge = (label: string, runs: Run[]): Run => ({
    label, seconds: runs.reduce((a, r) => a + r.seconds, 0) / runs.length, latenciesMs: runs.flatMap((r) => r.latenciesMs).sort((a, b) => a - b),
  });
  const raw = merge('raw Podman API', rawRuns);
  const attached = merge('raw Podman + attach', attachRuns);
  const fp = merge('Flashpods HTTP API', fpRuns);
  const ratio = raw.seconds / fp.seconds;
  const addedMs = percentile(fp.latenciesMs, 50) - percentile(raw.latenciesMs, 50);
  const attachRatio = attached.seconds / fp.seconds;
  const addedOverAttachMs = percentile(fp.latenciesMs, 50) - percentile(attached.latenciesMs, 50);
  console.log(`\n| path                 |  jobs/s |  p50 ms  |  p99 ms  |  wall s |\n|----------------------|---------|----------|----------|---------|\n${row(raw)}\n${row(attached)}\n${row(fp)}`);
  console.log(`\nFlashpods throughput (mean of rounds) = ${(ratio * 100).toFixed(1)} % of raw Podman (target ≥ 90 %); added p50 latency per job = ${addedMs.toFixed(0)} ms (target ≤ 50 ms)`);
  console.log(`against raw Podman with the log attach: ${(attachRatio * 100).toFixed(1)} % throughput, ${addedOverAttachMs.toFixed(0)} ms added p50`);
  console.log(JSON.stringify({
    bench: 'throughput', jobs: N, concurrency: C, rounds: ROUNDS, network: NETWORK,
    raw: { jobs_per_s: N / raw.seconds, p50_ms: percentile(raw.latenciesMs, 50), p99_ms: percentile(raw.latenciesMs, 99) },
    flashpods: { jobs_per_s: N / fp.seconds, p50_ms: percentile(fp.latenciesMs, 50), p99_ms: percentile(fp.latenciesMs, 99) },
    raw_attach: { jobs_per_s: N / attached.seconds, p50_ms: percentile(attached.latenciesMs, 50), p99_ms: percentile(attached.latenciesMs, 99) },
    throughput_ratio: ratio, added_p50_ms: addedMs, throughput_ratio_vs_attach: attachRatio, added_p50_ms_vs_attach: addedOverAttachMs,
  }));
} finally {
  await server.stop();
  await podman.stop();
}
