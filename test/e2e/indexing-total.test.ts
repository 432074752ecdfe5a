import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRootlessPodmanService, type RootlessPodmanService } from '../support/podman.ts';
import { startServer, type RunningServer } from '../support/server.ts';
import { createJob, json, testEnv, until, waitForJob } from '../support/stack.ts';

// Rootless, as production runs: Flashpods and Podman as user flashpods, the job as flashpods too
// (keep-id). That is also what lets this file show a real EACCES: the indexer is not root.
let podman: RootlessPodmanService;
let server: RunningServer;
let home: string;

beforeAll(async () => {
  podman = await startRootlessPodmanService();
  home = mkdtempSync(join(tmpdir(), 'fp-index-total-'));
  chownSync(home, podman.uid, podman.gid);
  server = await startServer(testEnv(home, podman.socketPath, { FLASHPODS_PODMAN_ROOTLESS: 'true' }), home, { uid: podman.uid, gid: podman.gid });
});
afterAll(async () => {
  await server?.stop();
  await podman?.stop();
});

const LONG = 'x'.repeat(200);
const SCRIPT = [
  'cd /artifacts',
  // 25 levels of 200-byte names: past PATH_MAX on the host, reachable in the container by cd.
  `mkdir a-deep && cd a-deep && for i in $(seq 25); do mkdir ${LONG} && cd -P ${LONG}; done && echo bottom > bottom.txt && cd /artifacts`,
  'ln -s c-loop-2 c-loop-1 && ln -s c-loop-1 c-loop-2',
  'echo good > d-good.txt',
  'mkdir e-keep && echo kept > e-keep/inside.txt',
  'mkdir z-dirs && for i in $(seq 100 399); do mkdir z-dirs/d$i; done',
  'touch ready && while [ ! -e go ]; do sleep 0.1; done && rm go ready',
].join(' && ');

/** The names of a tar stream's entries, in order. */
async function tarNames(body: ReadableStream): Promise<string[]> {
  const names: string[] = [];
  const reader = extract();
  reader.on('entry', (header, stream, next) => {
    names.push(header.name);
    stream.on('end', next).resume();
  });
  const done = new Promise<void>((resolve, reject) => reader.on('finish', resolve).on('error', reject));
  Readable.fromWeb(body as any).pipe(reader);
  await done;
  return names;
}

describe('indexing a hostile /artifacts', () => {
  it('completes the job, indexes the good entries, drops each bad one with a note, and releases the reservation', async () => {
    const created = await createJob(server, { type: 'worker', command: SCRIPT, cpus: 1, memory_gb: 1 });
    expect(created.status).toBe(201);
    const id = created.body.job_id;
    const dir = join(home, 'artifacts', id);
    await until(() => existsSync(join(dir, 'ready')), 60_000, 'the job built its tree');
    // No job can make an entry its indexer may not read: the job runs as flashpods itself and the
    // indexer gives an owner its access back. Another user's entry can still sit in /artifacts, so
    // the test (root) injects one while the job waits: the fault is injected, the EACCES is real.
    mkdirSync(join(dir, 'b-locked'));
    writeFileSync(join(dir, 'b-locked', 'secret'), 'root only\n');
    chmodSync(join(dir, 'b-locked'), 0o000);
    writeFileSync(join(dir, 'go'), '');

    const started = Date.now();
    const job = await waitForJob(server, id, { timeoutMs: 60_000 });
    const settledMs = Date.now() - started;
    // The artifacts actor's log line travels through the supervisor's stdout, so it may reach this
    // process after the API already answers with the terminal job.
    const indexedLine = () => server.logLines().find((l) => l.event === 'artifacts_indexed' && l.job_id === id);
    await until(() => indexedLine() !== undefined, 5_000, 'the artifacts_indexed log line');
    const indexedMs = Number(indexedLine()!.ms);
    console.log(`hostile tree: indexed in ${indexedMs} ms; the job was terminal ${settledMs} ms after it was let go`);
    expect(indexedMs).toBeLessThan(120_000); // within the default budget, which it did not need
    expect(settledMs).toBeLessThan(30_000);
    expect(job).toMatchObject({ status: 'completed', exit_code: 0 });

    const root = realpathSync(dir);
    const kept = Math.floor((4095 - Buffer.byteLength(`${root}/a-deep`)) / (LONG.length + 1));
    expect(kept).toBeGreaterThan(15);
    expect(kept).toBeLessThan(25); // the tree really passes PATH_MAX
    const keptDirs = 200 - (1 + kept) - 1 - 2 - 1; // a-deep and its levels, d-good.txt, e-keep and its file, z-dirs
    const tooLong = `a-deep${`/${LONG}`.repeat(kept + 1)}`;
    const firstDropped = [0, 1, 2].map((i) => `z-dirs/d${100 + keptDirs + i}`).join(', ');
    expect(job.error).toBe(
      `artifacts dropped: 1 entry whose path passes 4096 bytes (${tooLong.slice(0, 60)}…${tooLong.slice(-40)}); `
      + '1 unreadable entry (b-locked: EACCES); '
      + '2 dangling or looping symlink (c-loop-1: ELOOP, c-loop-2: ENOENT); ' // c-loop-2 dangles once c-loop-1 is gone
      + `${300 - keptDirs} over the file-count limit (${firstDropped}, … ${300 - keptDirs - 3} more)`,
    );

    const listing = await json(await server.fetch(`/jobs/${id}/artifacts`));
    expect(listing.copy_in_progress).toBe(false);
    expect(listing.artifacts.map((a: any) => [a.name, a.size_bytes])).toEqual([['a-deep', 0], ['d-good.txt', 5], ['e-keep', 5], ['z-dirs', 0]]);
    // The deep artifact downloads whole, holding exactly the levels that were indexed.
    const tar = await server.fetch(`/jobs/${id}/artifacts/a-deep`);
    expect(tar.status).toBe(200);
    const names = await tarNames(tar.body!);
    expect(names).toHaveLength(kept);
    expect(names.at(-1)).toBe(`a-deep${`/${LONG}`.repeat(kept)}`);
    expect((await server.fetch(`/jobs/${id}/artifacts/b-locked`)).status).toBe(404);

    // Its container is gone and its cpus/memory are free: a job asking for the whole host is admitted.
    expect(server.logLines().filter((l) => l.event === 'job_detached' && l.job_id === id)).toEqual([]);
    const whole = await createJob(server, { type: 'worker', command: 'echo whole', cpus: 8, memory_gb: 16 });
    expect([whole.status, whole.body.error]).toEqual([201, undefined]);
    expect(await waitForJob(server, whole.body.job_id)).toMatchObject({ status: 'completed', exit_code: 0 });
  });
});

describe('a tree the indexer had no time for', () => {
  let short: RunningServer;
  beforeAll(async () => {
    const shortHome = mkdtempSync(join(tmpdir(), 'fp-index-budget-'));
    chownSync(shortHome, podman.uid, podman.gid);
    short = await startServer(testEnv(shortHome, podman.socketPath, {
      // The budget alone must stop the walk: on a fast host it could pass the default 200-entry
      // limit first, and the note would name that too.
      FLASHPODS_PODMAN_ROOTLESS: 'true', FLASHPODS_ARTIFACT_INDEX_BUDGET_SECONDS: '0.1', FLASHPODS_ARTIFACT_MAX_FILES: '1000000',
      FLASHPODS_ARTIFACT_TTL_SECONDS: '1', FLASHPODS_LOG_TTL_SECONDS: '1', FLASHPODS_CLEANUP_INTERVAL_SECONDS: '0.5',
    }), shortHome, { uid: podman.uid, gid: podman.gid });
  });
  afterAll(async () => {
    await short?.stop();
  });

  it('is withheld, the job completes, and cleanup still deletes it however deep it goes', async () => {
    const script = [
      'cd /artifacts && mkdir a-many && i=0; while [ $i -lt 40000 ]; do : > a-many/f$i; i=$((i+1)); done',
      `mkdir b-deep && cd b-deep && for i in $(seq 25); do mkdir ${LONG} && cd -P ${LONG}; done && echo bottom > bottom.txt`,
    ].join(' && ');
    const created = await createJob(short, { type: 'worker', command: script, cpus: 1, memory_gb: 1 });
    const job = await waitForJob(short, created.body.job_id, { timeoutMs: 120_000 });
    expect(job).toMatchObject({ status: 'completed', exit_code: 0, error: 'artifacts dropped: 2 not indexed within the time budget (a-many, b-deep)' });
    expect((await json(await short.fetch(`/jobs/${job.id}/artifacts`))).artifacts).toEqual([]);
    const dir = join(short.home, 'artifacts', job.id);
    // Still on disk, past PATH_MAX (a shell's cd -P walks any depth): cleanup has to delete it.
    expect(execFileSync('sh', ['-c', `cd "$1" && n=0; while cd -P ${LONG} 2>/dev/null; do n=$((n+1)); done; echo $n`, 'sh', join(dir, 'b-deep')], { encoding: 'utf8' }).trim()).toBe('25');

    await until(async () => (await json(await short.fetch(`/jobs/${job.id}`))).status === 'cleaned', 30_000, 'the job cleaned');
    expect(existsSync(dir)).toBe(false);
    expect(short.logLines().filter((l) => l.event === 'cleanup_failed')).toEqual([]);
  });
});
