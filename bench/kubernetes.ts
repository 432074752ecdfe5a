/**
 * @module bench/kubernetes
 * Job throughput on the Kubernetes executor (issue 16): N trivial worker jobs (`echo hello`)
 * through Flashpods with FLASHPODS_EXECUTOR=kubernetes, beside the same Pods (pod-spec.ts's
 * jobPod, the same spec Flashpods sends) created straight through the same API server by a
 * client that polls each Pod until its job container has exited, then deletes it — in the same
 * run, on the real single-node cluster of test/support/kubernetes.ts. The paths alternate for
 * several rounds; jobs/s is N over the mean round time.
 *
 *   node --import tsx bench/kubernetes.ts [--jobs 10] [--concurrency 2] [--rounds 2]
 */
import { parseArgs } from 'node:util';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { diskBudget } from '../actors/containers/disk-watch.ts';
import { jobPod, jobPodName, podJobState } from '../actors/containers/pod-spec.ts';
import { loadConfig } from '../actors/contract/config.ts';
import { TIMEOUT_MINUTES } from '../actors/contract/jobs.ts';
import { startKubernetesCluster } from '../test/support/kubernetes.ts';
import { TEST_IMAGE } from '../test/support/podman.ts';
import { startStack } from '../test/support/stack.ts';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '10' }, concurrency: { type: 'string', default: '2' }, rounds: { type: 'string', default: '2' } } });
const N = Number(values.jobs);
const C = Number(values.concurrency);
const ROUNDS = Number(values.rounds);
const POLL_MS = 100;
/** The settings Flashpods runs with here, so the raw Pods are the ones it would send. */
const defaults = loadConfig({ env: {} });

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

interface Run {
  seconds: number;
  latenciesMs: number[];
}

async function pool(one: (i: number) => Promise<void>): Promise<Run> {
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
  return { seconds: (performance.now() - started) / 1000, latenciesMs: latenciesMs.sort((a, b) => a - b) };
}

const cluster = await startKubernetesCluster();
const stack = await startStack({
  FLASHPODS_EXECUTOR: 'kubernetes',
  FLASHPODS_KUBERNETES_KUBECONFIG: cluster.flashpodsKubeconfig,
  FLASHPODS_KUBERNETES_NAMESPACE: cluster.namespace,
  FLASHPODS_KUBERNETES_HELPER_IMAGE: TEST_IMAGE,
  FLASHPODS_KUBERNETES_IMAGE_PULL_POLICY: 'Never',
  FLASHPODS_CAPACITY_CPUS: String(C),
  FLASHPODS_CAPACITY_MEMORY_GB: String(C),
  FLASHPODS_LOG_LEVEL: 'info',
});
const kubeconfig = new KubeConfig();
kubeconfig.loadFromFile(cluster.adminKubeconfig);
const api = kubeconfig.makeApiClient(CoreV1Api);
const namespace = cluster.namespace;

/** The Pod Flashpods would send for the job, created, followed to the job's exit, deleted. */
async function rawPod(tag: string, i: number): Promise<void> {
  const jobId = `job_kbench${tag}${String(i).padStart(8, '0')}`;
  await api.createNamespacedPod({
    namespace,
    body: jobPod({
      jobId, jobType: 'worker', image: TEST_IMAGE, command: 'echo hello', cpus: 1, memoryGb: 1, instanceId: 'bench-raw',
      timeoutSeconds: TIMEOUT_MINUTES.max * 60, killGraceSeconds: Math.ceil(defaults.timing.killGraceMs / 1000), artifactsSizeLimitBytes: diskBudget(defaults.limits).bytes,
      settings: { namespace, nodeSelector: {}, runAsUser: 1000, helperImage: TEST_IMAGE, imagePullPolicy: 'Never' },
    }),
  });
  for (;;) {
    const pod = await api.readNamespacedPod({ name: jobPodName(jobId), namespace });
    if (podJobState(pod.status).phase === 'exited') break;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  await api.deleteNamespacedPod({ name: jobPodName(jobId), namespace, gracePeriodSeconds: 0 });
}

async function flashpodsJob(): Promise<void> {
  const res = await stack.server.fetch('/jobs', { method: 'POST', body: JSON.stringify({ type: 'worker', command: 'echo hello', cpus: 1, memory_gb: 1, queue: true }) });
  if (res.status !== 201) throw new Error(`POST /jobs answered ${res.status}: ${await res.text()}`);
  const { job_id: id } = (await res.json()) as { job_id: string };
  for (;;) {
    const job = (await (await stack.server.fetch(`/jobs/${id}?wait=60`)).json()) as { status: string };
    if (job.status === 'completed') return;
    if (!['queued', 'pending', 'starting', 'running'].includes(job.status)) throw new Error(`job ${id} ended ${job.status}`);
  }
}

try {
  process.stderr.write(`kubernetes: ${N} jobs per path per round, ${C} at a time, ${ROUNDS} rounds (cluster up in ${cluster.timings.totalMs} ms)\n`);
  const raw: Run[] = [];
  const fp: Run[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    raw.push(await pool((i) => rawPod(`r${r}`, i)));
    fp.push(await pool(() => flashpodsJob()));
    process.stderr.write(`  round ${r + 1}: raw Pods ${(N / raw.at(-1)!.seconds).toFixed(2)}, Flashpods ${(N / fp.at(-1)!.seconds).toFixed(2)} jobs/s\n`);
  }
  const mean = (runs: Run[]) => runs.reduce((a, r) => a + r.seconds, 0) / runs.length;
  const all = (runs: Run[]) => runs.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
  const [rawS, fpS] = [mean(raw), mean(fp)];
  console.log('\n| path | jobs/s | p50 ms | p99 ms |\n| --- | --: | --: | --: |');
  console.log(`| raw Pods through the API server | ${(N / rawS).toFixed(2)} | ${percentile(all(raw), 50).toFixed(0)} | ${percentile(all(raw), 99).toFixed(0)} |`);
  console.log(`| Flashpods, executor kubernetes | ${(N / fpS).toFixed(2)} | ${percentile(all(fp), 50).toFixed(0)} | ${percentile(all(fp), 99).toFixed(0)} |`);
  console.log(`\nFlashpods ÷ raw Pods = ${((rawS / fpS) * 100).toFixed(1)} %`);
  console.log(JSON.stringify({ bench: 'kubernetes', jobs: N, concurrency: C, rounds: ROUNDS, raw_jobs_per_s: N / rawS, flashpods_jobs_per_s: N / fpS, ratio: rawS / fpS }));
} finally {
  await stack.stop();
  await cluster.stop();
}
