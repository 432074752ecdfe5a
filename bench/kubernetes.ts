/**
 * @module bench/kubernetes
 * `bench/throughput.ts --executor kubernetes` (issue 16): N trivial worker jobs (`echo hello`)
 * through Flashpods with FLASHPODS_EXECUTOR=kubernetes, beside the same Pods created straight
 * through the same API server, in the same run, on the real single-node cluster of
 * test/support/kubernetes.ts. The paths alternate for several rounds; jobs/s is N over the mean
 * round time, latency is per job from its submission to its answer.
 *
 * The raw path is what a client of the cluster does for the same result: create the Pod
 * Flashpods would send (pod-spec.ts's jobPod with the server's own settings, upload-less), poll
 * it until the job container has exited (every POLL_MS, as the executor does), read the job
 * container's log once, delete the Pod (grace 0). Flashpods does that and more per job: its
 * admission and queue, the log followed while the job runs, /artifacts copied out through exec,
 * the index, and the long-poll answer.
 *
 * Both paths run C jobs at a time from the client's side. The node has 2 cpus and a job Pod
 * needs 1.2 (1 for the job, 0.1 for each helper, HELPER_RESOURCES), so the node holds one job at
 * a time: Flashpods is configured with that capacity (1 cpu) and queues the rest; the raw
 * client's extra Pod waits Pending in the cluster's scheduler until the node has room.
 */
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { diskBudget } from '../actors/containers/disk-watch.ts';
import { jobPod, jobPodName, podJobState, POD_CONTAINERS } from '../actors/containers/pod-spec.ts';
import { loadConfig } from '../actors/contract/config.ts';
import { TIMEOUT_MINUTES } from '../actors/contract/jobs.ts';
import { startKubernetesCluster } from '../test/support/kubernetes.ts';
import { TEST_IMAGE } from '../test/support/podman.ts';
import { startStack } from '../test/support/stack.ts';
import { percentile, pool, type Run } from './job-pool.ts';

const POLL_MS = 200;
const COMMAND = 'echo hello';
/** What Flashpods runs with on this node (see the module note). */
const CAPACITY = { cpus: 1, memoryGb: 2 };

export interface KubernetesBenchOptions {
  jobs: number;
  concurrency: number;
  rounds: number;
}

export async function kubernetesThroughput({ jobs: N, concurrency: C, rounds: ROUNDS }: KubernetesBenchOptions): Promise<void> {
  const t0 = Date.now();
  const cluster = await startKubernetesCluster();
  const stack = await startStack({
    FLASHPODS_EXECUTOR: 'kubernetes',
    FLASHPODS_KUBERNETES_KUBECONFIG: cluster.flashpodsKubeconfig,
    FLASHPODS_KUBERNETES_NAMESPACE: cluster.namespace,
    FLASHPODS_KUBERNETES_HELPER_IMAGE: TEST_IMAGE,
    FLASHPODS_KUBERNETES_IMAGE_PULL_POLICY: 'Never',
    FLASHPODS_CAPACITY_CPUS: String(CAPACITY.cpus),
    FLASHPODS_CAPACITY_MEMORY_GB: String(CAPACITY.memoryGb),
    FLASHPODS_LOG_LEVEL: 'info',
  });
  const server = loadConfig({ env: stack.env });
  const kubeconfig = new KubeConfig();
  kubeconfig.loadFromFile(cluster.flashpodsKubeconfig);
  const api = kubeconfig.makeApiClient(CoreV1Api);
  const namespace = cluster.namespace;

  async function rawPod(tag: string, i: number): Promise<void> {
    const jobId = `job_kbench${tag}${String(i).padStart(8, '0')}`;
    const name = jobPodName(jobId);
    await api.createNamespacedPod({
      namespace,
      body: jobPod({
        jobId, jobType: 'worker', image: TEST_IMAGE, command: COMMAND, cpus: 1, memoryGb: 1, instanceId: 'bench-raw',
        timeoutSeconds: TIMEOUT_MINUTES.max * 60, killGraceSeconds: Math.ceil(server.timing.killGraceMs / 1000),
        artifactsSizeLimitBytes: diskBudget(server.limits).bytes,
        settings: { ...server.kubernetes, namespace, helperImage: TEST_IMAGE, imagePullPolicy: 'Never' },
      }),
    });
    for (;;) {
      const state = podJobState((await api.readNamespacedPod({ name, namespace })).status);
      if (state.phase === 'exited') break;
      if (state.phase === 'gone' || state.phase === 'upload-failed') throw new Error(`raw Pod ${name} failed: ${JSON.stringify(state)}`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    const log = await api.readNamespacedPodLog({ name, namespace, container: POD_CONTAINERS.job });
    if (!log.includes('hello')) throw new Error(`raw Pod ${name} printed ${JSON.stringify(log)}`);
    await api.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 });
  }

  async function flashpodsJob(): Promise<void> {
    const res = await stack.server.fetch('/jobs', { method: 'POST', body: JSON.stringify({ type: 'worker', command: COMMAND, cpus: 1, memory_gb: 1, queue: true }) });
    if (res.status !== 201) throw new Error(`POST /jobs answered ${res.status}: ${await res.text()}`);
    const { job_id: id } = (await res.json()) as { job_id: string };
    for (;;) {
      const job = (await (await stack.server.fetch(`/jobs/${id}?wait=60`)).json()) as { status: string; error?: string };
      if (job.status === 'completed') return;
      if (!['queued', 'pending', 'starting', 'running'].includes(job.status)) throw new Error(`job ${id} ended ${job.status}: ${job.error}`);
    }
  }

  try {
    process.stderr.write(`kubernetes: cluster up in ${Date.now() - t0} ms; ${N} jobs per path per round, ${C} at a time, ${ROUNDS} rounds…\n`);
    // One of each first: the node's first sandbox and the server's first Pod pay for warm caches.
    await rawPod('warm', 0);
    await flashpodsJob();
    const raw: Run[] = [];
    const fp: Run[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      raw.push(await pool('raw Pods', N, C, (i) => rawPod(`r${r}`, i)));
      fp.push(await pool('Flashpods', N, C, () => flashpodsJob()));
      process.stderr.write(`  round ${r + 1}: raw Pods ${(N / raw.at(-1)!.seconds).toFixed(2)}, Flashpods ${(N / fp.at(-1)!.seconds).toFixed(2)} jobs/s\n`);
    }
    const mean = (runs: Run[]) => runs.reduce((a, r) => a + r.seconds, 0) / runs.length;
    const all = (runs: Run[]) => runs.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
    const [rawS, fpS] = [mean(raw), mean(fp)];
    const [rawL, fpL] = [all(raw), all(fp)];
    console.log('\n| path                              | jobs/s | p50 ms | p99 ms |\n|-----------------------------------|--------|--------|--------|');
    console.log(`| raw Pods through the API server   | ${(N / rawS).toFixed(2).padStart(6)} | ${percentile(rawL, 50).toFixed(0).padStart(6)} | ${percentile(rawL, 99).toFixed(0).padStart(6)} |`);
    console.log(`| Flashpods, executor kubernetes    | ${(N / fpS).toFixed(2).padStart(6)} | ${percentile(fpL, 50).toFixed(0).padStart(6)} | ${percentile(fpL, 99).toFixed(0).padStart(6)} |`);
    console.log(`\nFlashpods throughput = ${((rawS / fpS) * 100).toFixed(1)} % of raw Pods; added p50 latency per job = ${(percentile(fpL, 50) - percentile(rawL, 50)).toFixed(0)} ms`);
    console.log(JSON.stringify({
      bench: 'throughput', executor: 'kubernetes', jobs: N, concurrency: C, rounds: ROUNDS,
      raw: { jobs_per_s: N / rawS, p50_ms: percentile(rawL, 50), p99_ms: percentile(rawL, 99) },
      flashpods: { jobs_per_s: N / fpS, p50_ms: percentile(fpL, 50), p99_ms: percentile(fpL, 99) },
      throughput_ratio: rawS / fpS, added_p50_ms: percentile(fpL, 50) - percentile(rawL, 50),
    }));
  } finally {
    await stack.stop();
    await cluster.stop();
  }
}
