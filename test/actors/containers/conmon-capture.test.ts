import { describe, it, expect } from 'vitest';
import { spawn } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { conmonLogConfig, conmonLogPath, openConmonLog } from '../../../actors/containers/conmon-log.ts';
import { jobContainerOptions } from '../../../actors/containers/container-spec.ts';
import { openBeforeStart } from '../../../actors/containers/conmon-capture.ts';
import { captureConmonLog, captureStatePath, JobLogWriter } from '../../../actors/containers/job-log-writer.ts';
import { DEFAULT_LOG_CAP_BYTES } from '../../../actors/containers/log-capture.ts';
import { startPodmanService, startRootlessPodmanService, type PodmanService } from '../../support/podman.ts';
import { podmanForFile, tempDir, workerSpec, type PodmanForFile } from './helpers.ts';
import { expectLogIsRecord, fileLines, PRINTING_JOB } from '../../support/printing-job.ts';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const FIXTURE = 'test/actors/containers/fixtures/conmon-capture.ts';
/** Each outage of the capture lasts this long: a line stamped at recovery would be this late. */
const OUTAGE_MS = 2000;
/** Our own instance label: a Flashpods server tested meanwhile on the same Podman leaves these alone. */
const INSTANCE = 'test-conmon-capture';

interface Child {
  pid: number;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** The fixture, as root or (rootless) as the Podman user, the way the API runs in production. */
function runFixture(mode: 'capture' | 'probe', args: object, user?: { uid: number; gid: number }): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, mode, JSON.stringify(args)], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(user ? { uid: user.uid, gid: user.gid, env: { ...process.env, HOME: '/nonexistent' } } : {}),
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  return { pid: child.pid!, done: new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }))) };
}

/**
 * Resolves once the capture has caught up with the job (the log holds all but the last few lines
 * of the job's record) and holds at least `atLeast` lines: a kill then lands mid-output.
 * Fails when the capture ends first.
 */
async function untilCaughtUp(logPath: string, recordPath: string, atLeast: number, capture: Child): Promise<void> {
  let ended: string | undefined;
  void capture.done.then((r) => { ended = `the capture ended first (${r.code ?? r.signal}): ${r.stdout}${r.stderr}`; });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const printed = fileLines(recordPath).length;
    const logged = fileLines(logPath).length;
    if (logged >= atLeast && logged >= printed - 3) return;
    if (ended) throw new Error(ended);
    if (Date.now() > deadline) throw new Error(`the capture never caught up (${logged} of ${printed} lines logged)`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** libpod's own inspect: the compat one reports every log driver as json-file and has no conmon pid. */
async function libpodInspect(docker: Docker, id: string): Promise<{ HostConfig: { LogConfig: { Type: string; Path: string } }; State: { ConmonPid: number } }> {
  return await new Promise((resolve, reject) => {
    docker.modem.dial({ path: `/v4.0.0/libpod/containers/${id}/json`, method: 'GET', statusCodes: { 200: true } },
      (err, data) => (err ? reject(err) : resolve(data as never)));
  });
}

/** A directory only `owner` can enter (conmon creates its file there: as the Podman user). */
function ownDir(parent: string, name: string, owner?: { uid: number; gid: number }): string {
  const dir = join(parent, name);
  mkdirSync(dir, { mode: 0o700 });
  if (owner) chownSync(dir, owner.uid, owner.gid);
  return dir;
}

/**
 * The job above under a capture killed with SIGKILL twice while it prints, each time left down
 * for OUTAGE_MS and started again from what it persisted; then every check of exactness.
 */
async function killedTwiceWhilePrinting(pod: PodmanForFile<PodmanService>, user?: { uid: number; gid: number }): Promise<void> {
  const { docker } = pod;
  const base = tempDir('conmon-capture');
  if (user) chownSync(base, user.uid, user.gid);
  const conmonDir = ownDir(base, 'conmon', user);
  const logDir = ownDir(base, 'logs', user);
  const spec = workerSpec({ rootless: user !== undefined, networkMode: 'none', command: PRINTING_JOB, instanceId: INSTANCE });
  if (user) chownSync(spec.artifactsDir, user.uid, user.gid);
  const conmonPath = conmonLogPath(conmonDir, spec.jobId);
  const logPath = join(logDir, `${spec.jobId}.log`);
  const options = jobContainerOptions(spec);
  options.HostConfig = { ...options.HostConfig, LogConfig: conmonLogConfig(conmonPath, DEFAULT_LOG_CAP_BYTES) };
  const container = await docker.createContainer(options);
  pod.cleanup.container(container.id);
  await container.start();

  const inspected = await libpodInspect(docker, container.id);
  expect(inspected.HostConfig.LogConfig).toMatchObject({ Type: 'k8s-file', Path: conmonPath });
  const conmonArgs = readFileSync(`/proc/${inspected.State.ConmonPid}/cmdline`, 'utf8').split('\0');
  expect(conmonArgs[conmonArgs.indexOf('--log-size-max') + 1]).toBe(String(3 * DEFAULT_LOG_CAP_BYTES));

  const args = { socketPath: pod.service.socketPath, containerId: container.id, conmonPath, logPath, statePath: captureStatePath(conmonDir, spec.jobId), ownerUid: user?.uid ?? 0 };
  const outages: Array<{ from: number; to: number }> = [];
  const recordPath = join(spec.artifactsDir, 'record');
  for (const atLeast of [15, 0]) {
    const capture = runFixture('capture', args, user);
    await untilCaughtUp(logPath, recordPath, atLeast, capture);
    process.kill(capture.pid, 'SIGKILL');
    const from = Date.now();
    expect((await capture.done).signal).toBe('SIGKILL');
    expect((await container.inspect()).State.Running).toBe(true);
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    outages.push({ from, to: Date.now() });
  }
  const last = await runFixture('capture', args, user).done;
  expect(last.stderr).toBe('');
  expect(JSON.parse(last.stdout)).toEqual({ bytesWritten: statSync(logPath).size, truncated: false, gaps: [] });
  expect((await container.wait()).StatusCode).toBe(0);

  // conmon really cut the long lines and left the last one open.
  const conmonText = readFileSync(conmonPath, 'latin1');
  expect(conmonText).toMatch(/^\S+ stdout P x{100}/m);
  expect(conmonText).toMatch(/^\S+ stderr P x{100}/m);
  expect(conmonText).toMatch(/ stdout P out \d+ \d+ final-without-newline\n$/);

  // The job's own record, line for line and stream by stream; nothing twice; each line stamped
  // when it was printed, those printed while no capture ran included.
  const record = fileLines(recordPath);
  expectLogIsRecord(fileLines(logPath), record, outages, 10);

  // Byte for byte what one uninterrupted capture of the same file writes.
  const refDir = tempDir('conmon-reference');
  const opened = await openConmonLog(conmonPath, user?.uid ?? 0);
  if (!opened.readable) throw new Error(opened.why);
  const writer = await JobLogWriter.open({ logPath: join(refDir, 'ref.log'), statePath: join(refDir, 'ref.capture.json') });
  await captureConmonLog(opened.log, writer, { exited: Promise.resolve() });
  await writer.close();
  await opened.log.close();
  expect(readFileSync(logPath, 'utf8')).toBe(readFileSync(join(refDir, 'ref.log'), 'utf8'));
}

describe('conmon log capture on rootful Podman', () => {
  const pod = podmanForFile(startPodmanService);

  it('keeps a job\'s beginning when it prints past conmon\'s size bound before anyone reads: the file is made and opened before the start', async () => {
    const cap = 64 * 1024;
    const conmonDir = ownDir(tempDir('conmon-early'), 'conmon');
    const logDir = tempDir('conmon-early-logs');
    // 20,000 lines of 19 bytes: 380 KB at once, past the bound of 3 × 64 KB.
    const spec = workerSpec({ networkMode: 'none', command: 'yes flashpods-log-line | head -n 20000; echo done-at-end', instanceId: INSTANCE });
    const conmonPath = conmonLogPath(conmonDir, spec.jobId);
    const options = jobContainerOptions(spec);
    options.HostConfig = { ...options.HostConfig, LogConfig: conmonLogConfig(conmonPath, cap) };
    const container = await pod.docker.createContainer(options);
    pod.cleanup.container(container.id);

    const early = await openBeforeStart({ dir: conmonDir, ownerUid: 0 }, spec.jobId);
    if (!early.readable) throw new Error(early.why);
    const made = statSync(conmonPath).ino;
    await container.start();
    // Read only once the job is done: conmon has replaced its file meanwhile, so a file opened
    // now would start somewhere in the middle of the output.
    expect((await container.wait()).StatusCode).toBe(0);
    expect(statSync(conmonPath).ino).not.toBe(made);
    const writer = await JobLogWriter.open({ logPath: join(logDir, 'job.log'), statePath: join(logDir, 'job.capture.json'), capBytes: cap });
    const result = await captureConmonLog(early.log, writer, { exited: Promise.resolve() });
    await writer.close();
    await early.log.close();

    // The log starts with the job's first line and ends at the cap with the marker.
    const lines = fileLines(join(logDir, 'job.log'));
    expect(result.truncated).toBe(true);
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] flashpods-log-line$/);
    expect(lines.at(-1)).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] \[TRUNCATED - log exceeded 0\.06 MB limit\]$/);
    expect(lines.slice(0, -1).every((l) => l.endsWith('] flashpods-log-line'))).toBe(true);
    // The cap, and the marker line after it (as the API's log-cap test allows).
    expect(statSync(join(logDir, 'job.log')).size).toBeLessThanOrEqual(cap + 80);
  });

  it('after SIGKILLs of the capture mid-output, the job log is exactly the job\'s record, each line stamped when printed', async () => {
    await killedTwiceWhilePrinting(pod);
  });
});

describe('conmon log capture on rootless Podman (user flashpods)', () => {
  const pod = podmanForFile(startRootlessPodmanService);

  it('after SIGKILLs of the capture (running as flashpods) mid-output, the job log is exactly the job\'s record', async () => {
    await killedTwiceWhilePrinting(pod, { uid: pod.service.uid, gid: pod.service.gid });
  });

  it("cannot read Podman's own place for the file (userdata belongs to the container's root), and says so", async () => {
    const spec = workerSpec({ rootless: true, networkMode: 'none', command: 'echo hi', instanceId: INSTANCE });
    const options = jobContainerOptions(spec);
    options.HostConfig = { ...options.HostConfig, LogConfig: { Type: 'k8s-file', Config: {} } };
    const container = await pod.docker.createContainer(options);
    pod.cleanup.container(container.id);
    await container.start();
    await container.wait();
    const path = (await libpodInspect(pod.docker, container.id)).HostConfig.LogConfig.Path;
    expect(path).toMatch(/^\/home\/flashpods\/\.local\/share\/containers\/storage\/vfs-containers\/[0-9a-f]{64}\/userdata\/ctr\.log$/);

    const probe = await runFixture('probe', { conmonPath: path, ownerUid: pod.service.uid }, { uid: pod.service.uid, gid: pod.service.gid }).done;
    expect(JSON.parse(probe.stdout)).toEqual({ readable: false, why: `${path} cannot be opened (EACCES)` });
  });
});
