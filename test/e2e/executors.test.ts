/**
 * The end-to-end job cases run the same, with the same assertions, on both executors (issue 16):
 * a Flashpods server with FLASHPODS_EXECUTOR=podman against real rootful Podman, and one with
 * FLASHPODS_EXECUTOR=kubernetes against the real single-node cluster of test/support/kubernetes.ts,
 * driven with the credentials of deploy/kubernetes/flashpods-rbac.yaml's ServiceAccount only.
 * Pick one with TEST_EXECUTOR=podman|kubernetes (default: both, one after the other).
 * Three cases exist on Kubernetes only, for what only a cluster can do: no node can hold the job,
 * the job's node goes silent (its kubelet SIGKILLed, then started again), and `flashpods validate`'s
 * checks of the credentials' rights.
 * Timings (create→running, exit→answer) are printed per executor at the end.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api, type V1PolicyRule } from '@kubernetes/client-node';
import { jobPodName } from '../../actors/containers/pod-spec.ts';
import { NODE_MONITOR_GRACE_SECONDS, startKubernetesCluster, type KubernetesCluster } from '../support/kubernetes.ts';
import { TEST_IMAGE } from '../support/podman.ts';
import { createJob, json, makeUpload, stackContainers, startStack, until, waitForJob, type Stack } from '../support/stack.ts';

type ExecutorName = 'podman' | 'kubernetes';
const chosen = process.env.TEST_EXECUTOR;
if (chosen !== undefined && chosen !== 'podman' && chosen !== 'kubernetes') throw new Error(`TEST_EXECUTOR=${chosen}: must be podman or kubernetes`);
const EXECUTORS: ExecutorName[] = chosen ? [chosen] : ['podman', 'kubernetes'];

const LOG_LINE = /^\[\d\d:\d\d:\d\d\.\d{3}\] /;
const lineTexts = (output: string) => output.split('\n').filter(Boolean).map((l) => l.replace(LOG_LINE, ''));
const PENDING_TIMEOUT_SECONDS = 20;
const NODE_LOST_SECONDS = 5;
const CLI = fileURLToPath(new URL('../../cli/flashpods.mjs', import.meta.url));
/** A disk budget of 3 × 16 MiB = 48 MiB, so the budget case writes 100 MB, not gigabytes. */
const STACK_ENV = {
  FLASHPODS_TIMEOUT_MINUTE_SECONDS: '3', FLASHPODS_CAPACITY_CPUS: '8', FLASHPODS_CAPACITY_MEMORY_GB: '8',
  FLASHPODS_ARTIFACT_JOB_MAX_BYTES: String(16 * 1024 * 1024), FLASHPODS_JOB_DISK_MULTIPLE: '3',
};

describe.each(EXECUTORS)('jobs end to end, executor %s', (executor) => {
  let stack: Stack;
  let cluster: KubernetesCluster | undefined;
  const figures: Record<string, number[]> = { createToRunningMs: [], exitToAnswerMs: [] };

  beforeAll(async () => {
    if (executor === 'kubernetes') {
      cluster = await startKubernetesCluster();
      stack = await startStack({
        ...STACK_ENV,
        FLASHPODS_EXECUTOR: 'kubernetes',
        FLASHPODS_KUBERNETES_KUBECONFIG: cluster.flashpodsKubeconfig,
        FLASHPODS_KUBERNETES_NAMESPACE: cluster.namespace,
        FLASHPODS_KUBERNETES_HELPER_IMAGE: TEST_IMAGE,
        FLASHPODS_KUBERNETES_IMAGE_PULL_POLICY: 'Never',
        FLASHPODS_KUBERNETES_PENDING_TIMEOUT_SECONDS: String(PENDING_TIMEOUT_SECONDS),
        FLASHPODS_KUBERNETES_NODE_LOST_SECONDS: String(NODE_LOST_SECONDS),
      });
    } else {
      stack = await startStack(STACK_ENV);
    }
  }, 600_000);

  afterAll(async () => {
    if (stack) writeFileSync(join(stack.home, 'server-output.log'), stack.server.rawOutput());
    await stack?.stop();
    await cluster?.stop();
    console.log(`executor ${executor} timings`, JSON.stringify(figures));
  }, 180_000);

  /** A job until it runs; the time from POST /jobs to `running` is recorded. */
  async function runningJob(body: Record<string, unknown>): Promise<string> {
    const t0 = Date.now();
    const created = await createJob(stack.server, { type: 'worker', cpus: 1, memory_gb: 1, ...body });
    expect(created.status).toBe(201);
    await until(async () => (await json(await stack.server.fetch(`/jobs/${created.body.job_id}`))).status === 'running', 60_000, 'job running');
    figures.createToRunningMs!.push(Date.now() - t0);
    return created.body.job_id;
  }

  it('logs the server\'s choice of executor once at start', () => {
    const lines = stack.server.logLines().filter((l) => l.event === 'executor');
    expect(lines.map((l) => l.executor)).toEqual([executor]);
    // What a job cannot do on Kubernetes yet is said at start, as a warning (README "Running on a cluster").
    const noTokens = stack.server.logLines().filter((l) => l.event === 'executor_no_tokens');
    expect(noTokens.map((l) => l.level)).toEqual(executor === 'kubernetes' ? [40] : []);
  });

  it('records exit codes 0, 3 and 127 with the right states', async () => {
    const jobs = [];
    for (const command of ['exit 0', 'exit 3', 'no-such-command-here']) {
      const created = await createJob(stack.server, { type: 'worker', command, cpus: 1, memory_gb: 1 });
      jobs.push(await waitForJob(stack.server, created.body.job_id, { timeoutMs: 90_000 }));
    }
    expect(jobs.map((j) => [j.status, j.exit_code, j.error ?? null])).toEqual([
      ['completed', 0, null], ['failed', 3, 'Process exited with code 3'], ['failed', 127, 'Process exited with code 127'],
    ]);
  }, 300_000);

  it('answers the exit within 3 s of it', async () => {
    // The job's last line is stamped the moment it exits; the answer is when waitForJob sees it terminal.
    const id = await runningJob({ command: 'sleep 2; echo bye' });
    const job = await waitForJob(stack.server, id, { timeoutMs: 60_000 });
    const answeredAt = Date.now();
    expect(job).toMatchObject({ status: 'completed', exit_code: 0 });
    const stamp = ((await json(await stack.server.fetch(`/jobs/${id}/output`))).output as string).slice(1, 13);
    const printedAt = Date.parse(`${new Date(answeredAt).toISOString().slice(0, 10)}T${stamp}Z`);
    figures.exitToAnswerMs!.push(answeredAt - printedAt);
    expect(answeredAt - printedAt).toBeGreaterThanOrEqual(0);
    expect(answeredAt - printedAt).toBeLessThan(3_000);
  }, 120_000);

  it('cancels a running job: cancelled, 143 on SIGTERM, and keeps what it wrote to /artifacts', async () => {
    const id = await runningJob({ command: 'echo partial > /artifacts/p.txt; exec sleep 300' });
    await new Promise((r) => setTimeout(r, 1_000));
    const res = await stack.server.fetch(`/jobs/${id}`, { method: 'DELETE' });
    expect(res.status).toBe(200);
    const job = await waitForJob(stack.server, id, { exitCode: true, timeoutMs: 60_000 });
    expect(job).toMatchObject({ status: 'cancelled', exit_code: 143 });
    await until(async () => (await json(await stack.server.fetch(`/jobs/${id}/artifacts`))).copy_in_progress === false, 30_000, 'artifacts indexed');
    expect(await (await stack.server.fetch(`/jobs/${id}/artifacts/p.txt`)).text()).toBe('partial\n');
  }, 120_000);

  it('gives every process SIGTERM on cancel: a child that traps it cleans up before the main process ends (143)', async () => {
    const id = await runningJob({ command: `sh -c 'trap "echo cleaned > /artifacts/child-marker; exit 0" TERM; echo > /artifacts/child-ready; while :; do sleep 0.1; done' & wait` });
    // The child is ready once its marker is in /artifacts: on Kubernetes that is read only at the
    // end, so the child's start is given a moment instead.
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await stack.server.fetch(`/jobs/${id}`, { method: 'DELETE' })).status).toBe(200);
    const job = await waitForJob(stack.server, id, { timeoutMs: 60_000, exitCode: true });
    expect(job).toMatchObject({ status: 'cancelled', exit_code: 143 });
    const marker = await stack.server.fetch(`/jobs/${id}/artifacts/child-marker`);
    expect([marker.status, await marker.text()]).toEqual([200, 'cleaned\n']);
  }, 120_000);

  it('times a job out: SIGTERM, grace, SIGKILL → timed_out 137', async () => {
    // One timeout minute lasts 3 s here; the grace is 2 s.
    const created = await createJob(stack.server, { type: 'worker', command: "trap '' TERM; while :; do sleep 1; done", cpus: 1, memory_gb: 1, timeout_minutes: 1 });
    const job = await waitForJob(stack.server, created.body.job_id, { timeoutMs: 60_000 });
    expect(job).toMatchObject({ status: 'timed_out', exit_code: 137, error: 'Job exceeded timeout limit' });
    expect(job.actual_runtime_seconds).toBeGreaterThanOrEqual(5);
    expect(job.actual_runtime_seconds).toBeLessThan(20);
  }, 120_000);

  it('fails a job that breaches its memory limit with oom_killed', async () => {
    const created = await createJob(stack.server, { type: 'worker', command: 'exec dd if=/dev/zero of=/dev/null bs=1500M count=1', cpus: 1, memory_gb: 1 });
    const job = await waitForJob(stack.server, created.body.job_id, { timeoutMs: 120_000 });
    expect(job).toMatchObject({ status: 'failed', exit_code: 137, error: 'oom_killed' });
  }, 180_000);

  it('keeps the log exact, ordered and stamped', async () => {
    // stdout and stderr are two pipes the runtime reads side by side (conmon; containerd): lines
    // written to both within the same instant may arrive in either order, so stderr waits a moment.
    const created = await createJob(stack.server, { type: 'worker', command: 'for i in $(seq 1 500); do echo line-$i; done; sleep 0.3; echo err >&2; sleep 0.3; printf no-newline', cpus: 1, memory_gb: 1 });
    const job = await waitForJob(stack.server, created.body.job_id, { timeoutMs: 60_000 });
    expect(job.status).toBe('completed');
    const output = await json(await stack.server.fetch(`/jobs/${job.id}/output?tail=10000`));
    const raw = (output.output as string).split('\n').filter(Boolean);
    expect(raw.every((l) => LOG_LINE.test(l))).toBe(true);
    expect(lineTexts(output.output)).toEqual([...Array.from({ length: 500 }, (_, i) => `line-${i + 1}`), 'err', 'no-newline']);
    const stamps = raw.map((l) => l.slice(1, 13));
    expect([...stamps].sort()).toEqual(stamps);
  }, 120_000);

  it('fails a job that writes past its disk budget with disk_limit_exceeded, saying what to do', async () => {
    const t0 = Date.now();
    const id = await runningJob({ command: 'dd if=/dev/zero of=/tmp/fill bs=1M count=100; echo written; sleep 300' });
    const job = await waitForJob(stack.server, id, { timeoutMs: 120_000 });
    // Podman: Flashpods' disk watch measures and SIGKILLs. Kubernetes: the kubelet evicts for the
    // job container's ephemeral-storage limit (pod-spec.ts), its kill without a grace ending the
    // shell with 143 or 137; Flashpods says why in its own words.
    expect(job.status).toBe('failed');
    expect(executor === 'podman' ? [137] : [137, 143]).toContain(job.exit_code);
    expect(job.error).toMatch(executor === 'podman'
      ? /^disk_limit_exceeded: the job held [\d.]+ MB in \/artifacts and its container filesystem, over its 48 MB disk budget \(3× the 16 MB per-job artifact limit\); it was killed\./
      : /^disk_limit_exceeded: it was killed for its disk use \("(Container job exceeded its local ephemeral storage limit|Pod ephemeral local storage usage exceeds the total limit of containers) [^"]+"\); its disk budget is 48 MB \(3× the 16 MB per-job artifact limit\)/);
    expect(job.error).toMatch(/Write less there, or ask the operator to raise FLASHPODS_JOB_DISK_MULTIPLE\.$/);
    expect(Date.now() - t0).toBeLessThan(90_000);
  }, 150_000);

  it('lists a file written to /artifacts and downloads it', async () => {
    const created = await createJob(stack.server, { type: 'worker', command: 'echo the report > /artifacts/report.txt; mkdir /artifacts/tree; echo x > /artifacts/tree/a', cpus: 1, memory_gb: 1 });
    const job = await waitForJob(stack.server, created.body.job_id, { timeoutMs: 60_000 });
    expect(job).toMatchObject({ status: 'completed', exit_code: 0 });
    await until(async () => (await json(await stack.server.fetch(`/jobs/${job.id}/artifacts`))).copy_in_progress === false, 30_000, 'artifacts indexed');
    const listing = await json(await stack.server.fetch(`/jobs/${job.id}/artifacts`));
    expect(listing.artifacts.map((a: any) => [a.name, a.size_bytes])).toEqual([['report.txt', 11], ['tree', 2]]);
    expect(await (await stack.server.fetch(`/jobs/${job.id}/artifacts/report.txt`)).text()).toBe('the report\n');
  }, 120_000);

  it('puts the upload at /work: read-only for a worker, read-write for an agent', async () => {
    const workerUpload = makeUpload(stack.home, { f: 'from the laptop\n', 'nested/y': 'deep\n' });
    expect((await stack.server.fetch(`/uploads/${workerUpload}/finalize`, { method: 'POST' })).status).toBe(200);
    const worker = await createJob(stack.server, { type: 'worker', command: 'cat /work/f /work/nested/y; echo changed > /work/f', files_id: workerUpload, cpus: 1, memory_gb: 1 });
    const workerJob = await waitForJob(stack.server, worker.body.job_id, { timeoutMs: 60_000 });
    expect(workerJob.status).toBe('failed');
    expect(workerJob.exit_code).toBeGreaterThan(0);
    const workerLog = lineTexts((await json(await stack.server.fetch(`/jobs/${workerJob.id}/output`))).output);
    // stdout in its order; the shell's complaint on stderr may be read before it (Kubernetes'
    // runtime reads the two pipes side by side), so it is looked for, not placed.
    expect(workerLog.filter((l) => !/Read-only file system/.test(l))).toEqual(['from the laptop', 'deep']);
    expect(workerLog.filter((l) => /^\/bin\/sh: can't create \/work\/f: Read-only file system$/.test(l))).toHaveLength(1);

    const agentUpload = makeUpload(stack.home, { f: 'a' });
    expect((await stack.server.fetch(`/uploads/${agentUpload}/finalize`, { method: 'POST' })).status).toBe(200);
    const agent = await createJob(stack.server, { type: 'agent', task: 'echo changed > /work/f && cat /work/f', git_branch: 'main', files_id: agentUpload, cpus: 1, memory_gb: 1 });
    const agentJob = await waitForJob(stack.server, agent.body.job_id, { timeoutMs: 60_000 });
    expect(agentJob).toMatchObject({ status: 'completed', exit_code: 0 });
    expect(lineTexts((await json(await stack.server.fetch(`/jobs/${agentJob.id}/output`))).output)).toContain('changed');
  }, 180_000);

  it('fails a job whose image is missing with container_start_failed naming the image', async () => {
    // Podman: its pull fails. Kubernetes: the Pod stays Pending (ErrImageNeverPull) past the pending timeout.
    const t0 = Date.now();
    const created = await createJob(stack.server, { type: 'worker', command: 'true', image: 'localhost/flashpods-missing:1', cpus: 1, memory_gb: 1 });
    const job = await waitForJob(stack.server, created.body.job_id, { timeoutMs: 90_000 });
    expect(job.status).toBe('failed');
    expect(job.error).toMatch(/^container_start_failed: .*localhost\/flashpods-missing:1/);
    expect(Date.now() - t0).toBeLessThan((PENDING_TIMEOUT_SECONDS + 15) * 1000);
  }, 120_000);

  it('recovers after kill -9 of Flashpods: the job completes and its log has every line once', async () => {
    const id = await runningJob({ command: 'for i in $(seq 1 150); do echo tick-$i; sleep 0.1; done' });
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await stack.server.stop('SIGKILL')).toBe(null);
    await new Promise((r) => setTimeout(r, 1_500));
    const restarted = await stack.restartServer();
    const job = await waitForJob(restarted, id, { timeoutMs: 90_000 });
    expect(job).toMatchObject({ status: 'completed', exit_code: 0 });
    expect(lineTexts((await json(await restarted.fetch(`/jobs/${id}/output?tail=1000`))).output)).toEqual(Array.from({ length: 150 }, (_, i) => `tick-${i + 1}`));
  }, 180_000);

  it('fails a running job whose container is deleted behind Flashpods\' back: lost, or killed (137) when its exit was seen first', async () => {
    const id = await runningJob({ command: 'sleep 300' });
    const t0 = Date.now();
    await deleteBehindOurBack(id);
    const job = await waitForJob(stack.server, id, { timeoutMs: 60_000 });
    // `podman rm -f` kills, then removes: the exit watch may read the SIGKILL's 137 before the
    // container is gone (then that is the job's end), or find it gone already.
    const ends = [
      { status: 'failed', exit_code: null, error: 'container_lost_on_recovery' },
      { status: 'failed', exit_code: 137, error: 'Process exited with code 137' },
    ];
    expect(ends).toContainEqual({ status: job.status, exit_code: job.exit_code, error: job.error });
    expect(Date.now() - t0).toBeLessThan(30_000);
  }, 120_000);

  // What only a cluster can do to a job: have no node for it, or lose the node it runs on.
  if (executor === 'kubernetes') {
    it('fails a job no node can hold (more cpus than the node has) with container_start_failed saying why, after the pending timeout', async () => {
      const t0 = Date.now();
      // Admission here allows 8 cpus; the node has 2.
      const created = await createJob(stack.server, { type: 'worker', command: 'true', cpus: 4, memory_gb: 1 });
      expect(created.status).toBe(201);
      const job = await waitForJob(stack.server, created.body.job_id, { timeoutMs: 90_000 });
      const took = Date.now() - t0;
      expect([job.status, job.exit_code]).toEqual(['failed', null]);
      expect(job.error).toMatch(new RegExp(`^container_start_failed: Pod job-\\S+ was still Pending ${PENDING_TIMEOUT_SECONDS} s after its creation \\(Unschedulable: 0/1 nodes are available: 1 Insufficient cpu`));
      expect(job.error).toContain('check that a node matches FLASHPODS_KUBERNETES_NODE_SELECTOR with room for the job\'s cpus/memory');
      // Counted from the Pod's creationTimestamp, which has whole seconds (rounded down).
      expect(took).toBeGreaterThanOrEqual((PENDING_TIMEOUT_SECONDS - 1) * 1000);
      expect(took).toBeLessThan((PENDING_TIMEOUT_SECONDS + 15) * 1000);
    }, 120_000);

    it('fails a running job whose node goes silent with container_lost naming the node, after the cluster\'s grace and its own; the log up to then is kept', async () => {
      const id = await runningJob({ command: 'echo started; while :; do sleep 1; done' });
      const output = async () => lineTexts((await json(await stack.server.fetch(`/jobs/${id}/output`))).output);
      await until(async () => (await output()).includes('started'), 20_000, 'the first line');
      const t0 = Date.now();
      await cluster!.killKubelet();
      let job: Awaited<ReturnType<typeof waitForJob>>;
      try {
        job = await waitForJob(stack.server, id, { timeoutMs: 120_000 });
      } finally {
        await cluster!.startKubelet();
      }
      const took = Date.now() - t0;
      expect([job.status, job.exit_code]).toEqual(['failed', null]);
      expect(job.error).toMatch(new RegExp(`^container_lost: its node ${cluster!.nodeName} stopped reporting to the cluster \\(.*\\) for \\d+ s \\(FLASHPODS_KUBERNETES_NODE_LOST_SECONDS ${NODE_LOST_SECONDS}\\); `
        + 'what the job did after that is unknown, and what it wrote to /artifacts stays on that node$'));
      // The node's last heartbeat was at most 2 s (its status period) before the kill.
      expect(took).toBeGreaterThanOrEqual((NODE_MONITOR_GRACE_SECONDS - 2 + NODE_LOST_SECONDS) * 1000);
      expect(took).toBeLessThan((NODE_MONITOR_GRACE_SECONDS + NODE_LOST_SECONDS + 20) * 1000);
      expect(await output()).toEqual(['started']);
      // Deleted: the kubelet, back, stops what was left of it.
      await until(async () => (await remaining()) === 0, 30_000, 'the lost job\'s Pod deleted');
    }, 240_000);

    it('flashpods validate checks the API server and the credentials\' rights: exactly the Role\'s verbs pass, one missing or one more fails with a hint', async () => {
      const roles = new KubeConfig();
      roles.loadFromFile(cluster!.adminKubeconfig);
      const rbac = roles.makeApiClient(RbacAuthorizationV1Api);
      const role = await rbac.readNamespacedRole({ name: 'flashpods-jobs', namespace: cluster!.namespace });
      const withRules = (rules: V1PolicyRule[]) => rbac.replaceNamespacedRole({ name: 'flashpods-jobs', namespace: cluster!.namespace, body: { ...role, metadata: { ...role.metadata, resourceVersion: undefined }, rules } });
      const checks = async () => {
        const run = await validateKubernetes();
        return Object.fromEntries(run.report.checks.map((c) => [c.id, c]));
      };

      const good = await checks();
      expect(Object.keys(good)).toEqual(['kubernetes-api', 'kubernetes-role']);
      expect(good['kubernetes-api']).toMatchObject({ status: 'pass', detail: expect.stringMatching(new RegExp(`^${cluster!.apiUrl.replaceAll('.', '\\.')} answers, Kubernetes 1\\.37`)) });
      expect(good['kubernetes-role']).toMatchObject({ status: 'pass', detail: 'in namespace flashpods: pods create get list delete; pods/log get; pods/attach get create; pods/exec get create; nothing more' });
      try {
        await withRules(role.rules!.map((r) => ({ ...r, resources: r.resources!.filter((x) => x !== 'pods/exec') })));
        // RBAC changes reach the authorizer through its informer: within moments, not at once.
        await until(async () => (await checks())['kubernetes-role']!.status === 'fail', 15_000, 'the narrowed Role seen');
        expect((await checks())['kubernetes-role']).toMatchObject({
          status: 'fail', detail: 'in namespace flashpods these credentials may not: pods/exec get; pods/exec create',
          hint: 'kubectl apply -f deploy/kubernetes/flashpods-rbac.yaml and use a token of its ServiceAccount (kubectl -n flashpods create token flashpods)',
        });
        await withRules([...role.rules!, { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list'] }]);
        await until(async () => /may also/.test((await checks())['kubernetes-role']!.detail), 15_000, 'the widened Role seen');
        expect((await checks())['kubernetes-role']).toMatchObject({
          status: 'fail', detail: 'in namespace flashpods these credentials may also: secrets get; secrets list',
          hint: 'give Flashpods credentials bound to the Role of deploy/kubernetes/flashpods-rbac.yaml only (least privilege: a job host needs no more)',
        });
      } finally {
        await withRules(role.rules!);
      }
      await until(async () => (await checks())['kubernetes-role']!.status === 'pass', 15_000, 'the Role restored');
    }, 120_000);
  }

  it('leaves no job container behind once the jobs are done', async () => {
    await until(async () => (await remaining()) === 0, 60_000, 'job containers removed');
    expect(await remaining()).toBe(0);
  }, 90_000);

  /** `podman rm -f` / `kubectl delete pod --grace-period=0`, as an operator would. */
  async function deleteBehindOurBack(jobId: string): Promise<void> {
    if (executor === 'podman') {
      const [c] = await stack.docker.listContainers({ filters: { label: [`flashpods-job-id=${jobId}`] } });
      await stack.docker.getContainer(c!.Id).remove({ force: true });
      return;
    }
    await admin().deleteNamespacedPod({ name: jobPodName(jobId), namespace: cluster!.namespace, gracePeriodSeconds: 0 });
  }

  /** `flashpods validate --only kubernetes --json` with the server's own environment. */
  async function validateKubernetes(): Promise<{ code: number; report: { checks: Array<{ id: string; status: string; detail: string; hint?: string }> } }> {
    const { stdout, code } = await new Promise<{ stdout: string; code: number }>((resolve) => {
      execFile(process.execPath, [CLI, 'validate', '--only', 'kubernetes', '--json'], { env: { ...process.env, ...stack.env }, timeout: 60_000 }, (err, out) => {
        resolve({ stdout: out, code: err ? Number((err as { code?: number }).code ?? 1) : 0 });
      });
    });
    return { code, report: JSON.parse(stdout) };
  }

  function admin(): CoreV1Api {
    const kc = new KubeConfig();
    kc.loadFromFile(cluster!.adminKubeconfig);
    return kc.makeApiClient(CoreV1Api);
  }

  async function remaining(): Promise<number> {
    if (executor === 'podman') return (await stackContainers(stack)).length;
    return (await admin().listNamespacedPod({ namespace: cluster!.namespace, labelSelector: 'flashpods-job=true' })).items.length;
  }
});
