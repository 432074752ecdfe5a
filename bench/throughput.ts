/**
 * @module bench/throughput
 * Job throughput: N trivial worker jobs through the Flashpods HTTP API to `completed`, beside the
 * same N containers run directly through the Podman API with the same create options (the
 * conmon `k8s-file` log config included), with the attach Flashpods uses today, and through
 * `podman run --rm` (the CLI, what a user would otherwise type), in the same run, on the same
 * Podman storage. The paths alternate for several rounds so that load drifting on the machine
 * hits all alike.
 *
 * Then the signals, one job at a time per path (`--signal-jobs`, 0 to skip; each job `echo hello;
 * sleep 0.3`, see SIGNAL_COMMAND), each measured from outside the way a client sees it:
 * - first line: from submitting the job to its first output line reaching the client (Flashpods:
 *   the SSE stream; raw API: conmon's file, followed; CLI: its stdout);
 * - line → client: from the line's own stamp (conmon's time of print; Flashpods' `[HH:MM:SS.mmm]`,
 *   which is conmon's once the log comes from conmon's file, the capture's time before) to it
 *   reaching the client;
 * - exit → answer: from Podman's `die` event of the container (its time, a few ms after the
 *   exit) to the client's answer (Flashpods: the long-poll saying `completed`; raw API: `wait`;
 *   CLI: the process exiting).
 * Prints the tables and a final JSON line.
 *
 *   node --import tsx bench/throughput.ts [--jobs 50] [--concurrency 4] [--rounds 3] [--network slirp4netns] [--signal-jobs 20]
 *
 * `--executor kubernetes`: the Kubernetes executor beside raw Pods through the same API server, on
 * the test cluster (bench/kubernetes.ts; --jobs, --concurrency and --rounds apply).
 *
 * `--deployed`: against the running host instead of a Podman service and a server of its own —
 * its API socket (with its token) and its Podman socket, rootless and with the network as its
 * FLASHPODS_* environment (the units') says; run as root on the host, e.g. in the VM of test/vm
 * (bench/README.md).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { conmonLogConfig, conmonLogPath, openConmonLog } from '../actors/containers/conmon-log.ts';
import { jobContainerName, jobContainerOptions, type JobContainerSpec } from '../actors/containers/container-spec.ts';
import { loadConfig } from '../actors/contract/config.ts';
import { unixFetch } from '../cli/unix-fetch.ts';
import { CONTAINERS_CONF, startPodmanService, TEST_IMAGE } from '../test/support/podman.ts';
import { startServer } from '../test/support/server.ts';
import { testEnv } from '../test/support/stack.ts';
import { percentile, pool, type Run } from './job-pool.ts';
import { kubernetesThroughput } from './kubernetes.ts';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '50' },
    concurrency: { type: 'string', default: '4' },
    network: { type: 'string', default: 'slirp4netns' },
    rounds: { type: 'string', default: '3' },
    'signal-jobs': { type: 'string', default: '20' },
    deployed: { type: 'boolean', default: false },
    executor: { type: 'string', default: 'podman' },
  },
});
if (values.executor !== 'podman' && values.executor !== 'kubernetes') throw new Error(`--executor ${values.executor}: podman or kubernetes`);
const DEPLOYED = values.deployed!;
/** The host's own settings in --deployed mode (the units' environment), else nothing. */
const HOST = DEPLOYED ? loadConfig({ env: process.env }) : undefined;
const N = Number(values.jobs);
const C = Number(values.concurrency);
const NETWORK = HOST?.podman.networkMode ?? values.network!;
const { pidsMax: PIDS_LIMIT, logCapBytes: LOG_CAP } = loadConfig({ env: {} }).limits;
const ROUNDS = Number(values.rounds);
const SIGNAL_JOBS = Number(values['signal-jobs']);
const COMMAND = 'echo hello';
/**
 * The signal jobs print, then live on briefly: `echo hello` alone exits inside Podman's start
 * call, so its exit could only be answered once the start has returned, whatever the path; the
 * pause puts the exit after it, which is the delay the figure is about.
 */
const SIGNAL_COMMAND = 'echo hello; sleep 0.3';
const DAY_MS = 86_400_000;
/** In the signal jobs' container names, so one run's leftovers never block the next. */
const RUN_TAG = randomBytes(3).toString('hex');

/** Who runs the containers: this process's user, or (--deployed) the owner of the host's Podman socket. */
const PODMAN_OWNER = HOST ? statSync(HOST.paths.podmanSocket) : { uid: process.geteuid!(), gid: process.getegid!() };

/** A fresh artifacts directory the containers' user owns. */
function artifactsDir(root: string, prefix: string): string {
  const dir = mkdtempSync(join(root, prefix));
  chownSync(dir, PODMAN_OWNER.uid, PODMAN_OWNER.gid);
  return dir;
}

function rawSpec(tag: string, i: number, artifactsRoot: string, command = COMMAND): JobContainerSpec {
  return {
    jobId: `job_bench${tag}${String(i).padStart(7, '0')}`, jobType: 'worker', image: TEST_IMAGE, command,
    cpus: 1, memoryGb: 1, pidsLimit: PIDS_LIMIT, artifactsDir: artifactsDir(artifactsRoot, 'a-'), rootless: HOST?.podman.rootless ?? false, networkMode: NETWORK,
    instanceId: 'bench-raw',
  };
}

/**
 * Create options of a raw job: the job's own, with conmon's log where Flashpods will keep it
 * (conmon-log.ts), so the raw path pays for the same log Flashpods reads.
 */
function rawOptions(spec: JobContainerSpec, conmonDir: string): Docker.ContainerCreateOptions {
  const options = jobContainerOptions(spec);
  return { ...options, HostConfig: { ...options.HostConfig, LogConfig: conmonLogConfig(conmonLogPath(conmonDir, spec.jobId), LOG_CAP) } };
}

/**
 * The same containers straight through the Podman API. With `attach`, each also attaches to its
 * output before start, as Flashpods does today to capture every log line.
 */
async function rawPodman(docker: Docker, artifactsRoot: string, conmonDir: string, attach: boolean): Promise<Run> {
  return pool(attach ? 'raw Podman + attach' : 'raw Podman API', N, C, async (i) => {
    const spec = rawSpec(attach ? 'a' : 'p', i, artifactsRoot);
    const container = await docker.createContainer(attach ? jobContainerOptions(spec) : rawOptions(spec, conmonDir));
    if (attach) (await container.attach({ stream: true, stdout: true, stderr: true, hijack: true })).resume();
    await container.start();
    await container.wait();
    await container.remove({ force: true });
    if (!attach) rmSync(conmonLogPath(conmonDir, spec.jobId), { force: true });
  });
}

/** `podman run --rm` with the job's options as flags, its output read as a user's terminal would. */
function cliArgs(spec: JobContainerSpec): string[] {
  return ['run', '--rm', '--network', spec.networkMode, '--cpus', String(spec.cpus), '--memory', `${spec.memoryGb}g`, '--memory-swap', `${spec.memoryGb}g`,
    '--pids-limit', String(spec.pidsLimit), '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '--init',
    '--log-driver', 'k8s-file', '--log-opt', `max-size=${3 * LOG_CAP}`, '-v', `${spec.artifactsDir}:/artifacts:rw`,
    spec.image, '/bin/sh', '-c', spec.command!];
}

/** Runs the CLI; resolves when it exits, with when its first stdout byte came (performance.now()). */
function podmanRun(args: string[]): Promise<{ firstOutputAt: number | undefined }> {
  return new Promise((resolve, reject) => {
    const remote = HOST ? ['--remote', '--url', `unix://${HOST.paths.podmanSocket}`] : [];
    const child = spawn('podman', [...remote, ...args], { env: { ...process.env, CONTAINERS_CONF }, stdio: ['ignore', 'pipe', 'pipe'] });
    let firstOutputAt: number | undefined;
    let stderr = '';
    child.stdout.on('data', () => { firstOutputAt ??= performance.now(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve({ firstOutputAt }) : reject(new Error(`podman run exited ${code}: ${stderr.trim()}`))));
  });
}

async function cliPodman(artifactsRoot: string): Promise<Run> {
  return pool('podman run --rm (CLI)', N, C, async (i) => { await podmanRun(cliArgs(rawSpec('c', i, artifactsRoot))); });
}

interface Api {
  fetch: (path: string, init?: RequestInit) => Promise<Response>;
}

/** The running host's API on its unix socket, with its token (--deployed). */
function deployedApi(config: NonNullable<typeof HOST>): Api {
  const token = readFileSync(config.paths.apiTokenFile, 'utf8').trim();
  return {
    fetch: (path, init = {}) => unixFetch(config.paths.apiSocket, `http://flashpods${path}`, {
      method: init.method ?? 'GET', headers: { authorization: `Bearer ${token}` }, body: init.body as string | undefined, signal: init.signal,
    }),
  };
}

async function flashpods(server: Api): Promise<Run> {
  return pool('Flashpods HTTP API', N, C, async () => {
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
  return `| ${run.label.padEnd(22)} | ${(N / run.seconds).toFixed(2).padStart(7)} | ${percentile(l, 50).toFixed(0).padStart(8)} | ${percentile(l, 99).toFixed(0).padStart(8)} | ${run.seconds.toFixed(2).padStart(7)} |`;
}

interface Signals {
  /** Submit → first output line at the client. */
  firstLineMs: number[];
  /** The line's own stamp → at the client. */
  lineToClientMs: number[];
  /** Podman's `die` event → the client's answer. */
  exitToAnswerMs: number[];
}

const noSignals = (): Signals => ({ firstLineMs: [], lineToClientMs: [], exitToAnswerMs: [] });

/** Podman's `die` events by container name, with their time (ms since the epoch). */
function containerDeaths(docker: Docker): { of: (name: string) => Promise<number>; stop: () => void } {
  const seen = new Map<string, number>();
  const waiting = new Map<string, (ms: number) => void>();
  let stream: NodeJS.ReadableStream & { destroy?: () => void } | undefined;
  // Filtered here: Podman 4.3's compat events endpoint sends nothing for dockerode's `filters`.
  void docker.getEvents({}).then((events) => {
    stream = events as typeof stream;
    let buffered = '';
    events.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines.filter(Boolean)) {
        const event = JSON.parse(line) as { Type: string; Action: string; Actor: { Attributes: { name: string } }; timeNano: number };
        if (event.Type !== 'container' || event.Action !== 'die') continue;
        const ms = event.timeNano / 1e6;
        seen.set(event.Actor.Attributes.name, ms);
        waiting.get(event.Actor.Attributes.name)?.(ms);
      }
    });
  });
  return {
    of: (name) => {
      const known = seen.get(name);
      if (known !== undefined) return Promise.resolve(known);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no die event for ${name}`)), 10_000);
        waiting.set(name, (ms) => { clearTimeout(timer); resolve(ms); });
      });
    },
    stop: () => stream?.destroy?.(),
  };
}

/** `[HH:MM:SS.mmm] …` → ms since the epoch, on the day of `near` (the stamp is within a day of it). */
function stampMs(line: string, near: number): number {
  const [h, m, s, ms] = /^\[(\d\d):(\d\d):(\d\d)\.(\d{3})\]/.exec(line)!.slice(1).map(Number) as [number, number, number, number];
  const ofDay = ((h * 60 + m) * 60 + s) * 1000 + ms;
  const day = near - (near % DAY_MS);
  return [day - DAY_MS, day, day + DAY_MS].map((d) => d + ofDay).reduce((a, b) => (Math.abs(b - near) < Math.abs(a - near) ? b : a));
}

/** Raw Podman API: create+start, conmon's file followed for the first line, wait for the answer. */
async function rawSignals(docker: Docker, artifactsRoot: string, conmonDir: string, deaths: ReturnType<typeof containerDeaths>): Promise<Signals> {
  const out = noSignals();
  for (let i = 0; i < SIGNAL_JOBS; i++) {
    const spec = rawSpec(`s${RUN_TAG}`, i, artifactsRoot, SIGNAL_COMMAND);
    const t0 = performance.now();
    const container = await docker.createContainer(rawOptions(spec, conmonDir));
    await container.start();
    const exited = container.wait().then(() => Date.now());
    const opened = await openConmonLog(conmonLogPath(conmonDir, spec.jobId), PODMAN_OWNER.uid);
    if (!opened.readable) throw new Error(opened.why);
    for await (const batch of opened.log.follow({ exited })) {
      const line = batch.lines[0];
      if (!line) continue;
      out.firstLineMs.push(performance.now() - t0);
      out.lineToClientMs.push(Date.now() - line.timestampMs);
      break;
    }
    await opened.log.close();
    const answeredAt = await exited;
    out.exitToAnswerMs.push(answeredAt - (await deaths.of(jobContainerName(spec.jobId))));
    await container.remove({ force: true });
    rmSync(conmonLogPath(conmonDir, spec.jobId), { force: true });
  }
  return out;
}

/** `podman run --rm`: first stdout byte, and the process exit as the answer (no stamp to compare). */
async function cliSignals(artifactsRoot: string, deaths: ReturnType<typeof containerDeaths>): Promise<Signals> {
  const out = noSignals();
  for (let i = 0; i < SIGNAL_JOBS; i++) {
    const spec = rawSpec(`c${RUN_TAG}`, i, artifactsRoot, SIGNAL_COMMAND);
    const t0 = performance.now();
    const args = cliArgs(spec);
    args.splice(2, 0, '--name', jobContainerName(spec.jobId));
    const { firstOutputAt } = await podmanRun(args);
    const answeredAt = Date.now();
    out.firstLineMs.push(firstOutputAt! - t0);
    out.exitToAnswerMs.push(answeredAt - (await deaths.of(jobContainerName(spec.jobId))));
  }
  return out;
}

/** Flashpods: POST, the SSE stream for the first line, the long-poll for `completed`. */
async function flashpodsSignals(server: Api, deaths: ReturnType<typeof containerDeaths>): Promise<Signals> {
  const out = noSignals();
  for (let i = 0; i < SIGNAL_JOBS; i++) {
    const t0 = performance.now();
    const res = await server.fetch('/jobs', { method: 'POST', body: JSON.stringify({ type: 'worker', command: SIGNAL_COMMAND, cpus: 1, memory_gb: 1 }) });
    if (res.status !== 201) throw new Error(`POST /jobs answered ${res.status}: ${await res.text()}`);
    const { job_id: id } = (await res.json()) as { job_id: string };
    const stream = new AbortController();
    const firstLine = (async () => {
      const sse = await server.fetch(`/jobs/${id}/output/stream?tail=100`, { signal: stream.signal });
      let buffered = '';
      for await (const chunk of sse.body as unknown as AsyncIterable<Uint8Array>) {
        buffered += Buffer.from(chunk).toString();
        const data = /event: line\ndata: (.*)\n/.exec(buffered)?.[1];
        if (data === undefined) continue;
        const now = Date.now();
        out.firstLineMs.push(performance.now() - t0);
        out.lineToClientMs.push(now - stampMs(data, now));
        return;
      }
    })();
    let answeredAt: number;
    for (;;) {
      const job = (await (await server.fetch(`/jobs/${id}?wait=60`)).json()) as { status: string };
      answeredAt = Date.now();
      if (job.status === 'completed') break;
      if (['failed', 'timed_out', 'cancelled'].includes(job.status)) throw new Error(`job ${id} ended ${job.status}`);
    }
    await firstLine;
    stream.abort();
    out.exitToAnswerMs.push(answeredAt - (await deaths.of(jobContainerName(id))));
  }
  return out;
}

function signalRow(label: string, s: Signals): string {
  const cell = (l: number[]) => {
    const sorted = [...l].sort((a, b) => a - b);
    return (sorted.length ? `${percentile(sorted, 50).toFixed(1)} / ${percentile(sorted, 99).toFixed(1)}` : '–').padStart(15);
  };
  return `| ${label.padEnd(22)} | ${cell(s.firstLineMs)} | ${cell(s.lineToClientMs)} | ${cell(s.exitToAnswerMs)} |`;
}

function signalFigures(s: Signals): Record<string, number | null> {
  const p = (l: number[], q: number) => (l.length ? percentile([...l].sort((a, b) => a - b), q) : null);
  return {
    first_line_p50_ms: p(s.firstLineMs, 50), first_line_p99_ms: p(s.firstLineMs, 99),
    line_to_client_p50_ms: p(s.lineToClientMs, 50), line_to_client_p99_ms: p(s.lineToClientMs, 99),
    exit_to_answer_p50_ms: p(s.exitToAnswerMs, 50), exit_to_answer_p99_ms: p(s.exitToAnswerMs, 99),
  };
}

async function podmanThroughput(): Promise<void> {
  const podman = HOST ? undefined : await startPodmanService();
  const docker = new Docker({ socketPath: HOST?.paths.podmanSocket ?? podman!.socketPath });
  const home = mkdtempSync(join(tmpdir(), 'fp-bench-'));
  const conmonDir = join(home, 'conmon');
  mkdirSync(conmonDir, { mode: 0o700 });
  // The containers' user (rootless Podman with --deployed) mounts the artifact directories and
  // writes conmon's logs.
  chmodSync(home, 0o755);
  chownSync(conmonDir, PODMAN_OWNER.uid, PODMAN_OWNER.gid);
  const server: Api & { stop?: () => Promise<unknown> } = HOST ? deployedApi(HOST) : await startServer(
    testEnv(home, podman!.socketPath, {
      FLASHPODS_CONTAINER_NETWORK: NETWORK, FLASHPODS_CAPACITY_CPUS: String(C), FLASHPODS_CAPACITY_MEMORY_GB: String(C), FLASHPODS_LOG_LEVEL: 'info',
    }),
    home,
  );
  try {
    process.stderr.write(`warming up (${C} containers each way)…\n`);
    for (let i = 0; i < C; i++) {
      const c = await docker.createContainer(jobContainerOptions({ jobId: `job_benchwarm${i}0000000`, jobType: 'worker', image: TEST_IMAGE, command: 'true', cpus: 1, memoryGb: 1, pidsLimit: PIDS_LIMIT, artifactsDir: artifactsDir(home, 'w-'), rootless: HOST?.podman.rootless ?? false, networkMode: NETWORK, instanceId: 'bench-raw' }));
      await c.start();
      await c.wait();
      await c.remove({ force: true });
    }
    process.stderr.write(`running ${N} jobs each way per round, ${C} at a time, ${ROUNDS} rounds, network ${NETWORK}…\n`);
    const rawRuns: Run[] = [];
    const attachRuns: Run[] = [];
    const cliRuns: Run[] = [];
    const fpRuns: Run[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      rawRuns.push(await rawPodman(docker, home, conmonDir, false));
      attachRuns.push(await rawPodman(docker, home, conmonDir, true));
      cliRuns.push(await cliPodman(home));
      fpRuns.push(await flashpods(server));
      process.stderr.write(`  round ${r + 1}: raw ${(N / rawRuns.at(-1)!.seconds).toFixed(2)}, raw+attach ${(N / attachRuns.at(-1)!.seconds).toFixed(2)}, CLI ${(N / cliRuns.at(-1)!.seconds).toFixed(2)}, flashpods ${(N / fpRuns.at(-1)!.seconds).toFixed(2)} jobs/s\n`);
    }
    const signals = { raw: noSignals(), cli: noSignals(), flashpods: noSignals() };
    if (SIGNAL_JOBS > 0) {
      process.stderr.write(`signals: ${SIGNAL_JOBS} jobs one at a time per path…\n`);
      const deaths = containerDeaths(docker);
      try {
        signals.raw = await rawSignals(docker, home, conmonDir, deaths);
        signals.cli = await cliSignals(home, deaths);
        signals.flashpods = await flashpodsSignals(server, deaths);
      } finally {
        deaths.stop();
      }
    }
    const merge = (label: string, runs: Run[]): Run => ({
      label, seconds: runs.reduce((a, r) => a + r.seconds, 0) / runs.length, latenciesMs: runs.flatMap((r) => r.latenciesMs).sort((a, b) => a - b),
    });
    const raw = merge('raw Podman API', rawRuns);
    const attached = merge('raw Podman + attach', attachRuns);
    const cli = merge('podman run --rm (CLI)', cliRuns);
    const fp = merge('Flashpods HTTP API', fpRuns);
    const ratio = raw.seconds / fp.seconds;
    const addedMs = percentile(fp.latenciesMs, 50) - percentile(raw.latenciesMs, 50);
    const attachRatio = attached.seconds / fp.seconds;
    const addedOverAttachMs = percentile(fp.latenciesMs, 50) - percentile(attached.latenciesMs, 50);
    console.log(`\n| path                   |  jobs/s |  p50 ms  |  p99 ms  |  wall s |\n|------------------------|---------|----------|----------|---------|\n${row(raw)}\n${row(attached)}\n${row(cli)}\n${row(fp)}`);
    console.log(`\nFlashpods throughput (mean of rounds) = ${(ratio * 100).toFixed(1)} % of raw Podman (target ≥ 100 %); added p50 latency per job = ${addedMs.toFixed(0)} ms (target ≤ 10 ms)`);
    console.log(`against raw Podman with the log attach: ${(attachRatio * 100).toFixed(1)} % throughput, ${addedOverAttachMs.toFixed(0)} ms added p50`);
    if (SIGNAL_JOBS > 0) {
      console.log(`\nSignals, ${SIGNAL_JOBS} jobs one at a time per path, p50 / p99 ms (targets: exit → answer ≤ 5, line → client ≤ 20 for Flashpods)`);
      console.log(`| path                   |      first line |  line → client |  exit → answer |\n|------------------------|-----------------|-----------------|-----------------|`);
      console.log(`${signalRow('raw Podman API', signals.raw)}\n${signalRow('podman run --rm (CLI)', signals.cli)}\n${signalRow('Flashpods HTTP API', signals.flashpods)}`);
    }
    console.log(JSON.stringify({
      bench: 'throughput', jobs: N, concurrency: C, rounds: ROUNDS, network: NETWORK,
      raw: { jobs_per_s: N / raw.seconds, p50_ms: percentile(raw.latenciesMs, 50), p99_ms: percentile(raw.latenciesMs, 99) },
      flashpods: { jobs_per_s: N / fp.seconds, p50_ms: percentile(fp.latenciesMs, 50), p99_ms: percentile(fp.latenciesMs, 99) },
      raw_attach: { jobs_per_s: N / attached.seconds, p50_ms: percentile(attached.latenciesMs, 50), p99_ms: percentile(attached.latenciesMs, 99) },
      cli: { jobs_per_s: N / cli.seconds, p50_ms: percentile(cli.latenciesMs, 50), p99_ms: percentile(cli.latenciesMs, 99) },
      signals: SIGNAL_JOBS > 0 ? { jobs: SIGNAL_JOBS, raw: signalFigures(signals.raw), cli: signalFigures(signals.cli), flashpods: signalFigures(signals.flashpods) } : null,
      throughput_ratio: ratio, added_p50_ms: addedMs, throughput_ratio_vs_attach: attachRatio, added_p50_ms_vs_attach: addedOverAttachMs,
    }));
  } finally {
    await server.stop?.();
    await podman?.stop();
  }
}

if (values.executor === 'kubernetes') await kubernetesThroughput({ jobs: N, concurrency: C, rounds: ROUNDS });
else await podmanThroughput();
