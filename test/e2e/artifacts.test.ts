import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJob, json, startStack, waitForJob, type Stack } from '../support/stack.ts';

let stack: Stack;
let jobId: string;

beforeAll(async () => {
  stack = await startStack({ FLASHPODS_ARTIFACT_FILE_MAX_BYTES: String(1024 ** 3) });
});
afterAll(async () => {
  await stack?.stop();
});

/** A GET whose path reaches the server byte for byte (fetch would normalise `..`). */
function rawGet(path: string): Promise<{ status: number; body: string }> {
  const url = new URL(stack.server.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, headers: { authorization: `Bearer ${stack.server.token}` } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const SCRIPT = [
  'cd /artifacts',
  'echo "the report" > report.txt',
  'echo secret-ish > .hidden',
  'ln -s report.txt link-to-report',
  'ln -s /etc/passwd passwd',
  'mkdir -p tree/a/b && echo deep > tree/a/b/c.txt && ln -s a/b/c.txt tree/link',
  // Directories count toward the 200-entry limit: many, tree, tree/a, tree/a/b and 196 files fill it.
  'mkdir many && for i in $(seq 1 191); do echo $i > many/f$i; done',
  'echo one-too-many > zz-extra.txt',
  'dd if=/dev/zero of=big.bin bs=1M count=1025 2>/dev/null',
].join(' && ');

describe('artifacts', () => {
  it('indexes exactly what may be served and notes what was dropped', async () => {
    const { server } = stack;
    const created = await createJob(server, { type: 'worker', command: SCRIPT, cpus: 1, memory_gb: 1 });
    const job = await waitForJob(server, created.body.job_id, { timeoutMs: 120_000 });
    jobId = job.id;
    expect(job.status).toBe('completed');
    expect(job.exit_code).toBe(0);
    expect(job.error).toBe('artifacts dropped: 1 file over the per-file limit (big.bin); 1 over the file-count limit (zz-extra.txt)');

    const listing = await json(await server.fetch(`/jobs/${jobId}/artifacts`));
    const manySize = Array.from({ length: 191 }, (_, i) => `${i + 1}\n`.length).reduce((a, b) => a + b, 0);
    expect(listing.artifacts.map((a: any) => [a.name, a.size_bytes])).toEqual([
      ['.hidden', 11], ['link-to-report', 11], ['many', manySize], ['report.txt', 11], ['tree', 5],
    ]);
    expect(listing.total_size_bytes).toBe(38 + manySize);
    expect(listing.copy_in_progress).toBe(false);
    expect(Date.parse(listing.expires_at) - Date.parse(job.completed_at)).toBe(3600_000);
    expect(server.logLines().some((l) => l.event === 'artifact_dropped' && l.path === 'passwd' && l.level === 40)).toBe(true);
  });

  it('downloads files exactly, with ranges, and a directory as a tar that unpacks to it', async () => {
    const { server } = stack;
    const file = await server.fetch(`/jobs/${jobId}/artifacts/report.txt`);
    expect(file.status).toBe(200);
    expect(file.headers.get('content-type')).toBe('application/octet-stream');
    expect(file.headers.get('content-length')).toBe('11');
    expect(file.headers.get('content-disposition')).toBe('attachment; filename="report.txt"');
    expect(await file.text()).toBe('the report\n');
    expect(await (await server.fetch(`/jobs/${jobId}/artifacts/link-to-report`)).text()).toBe('the report\n');
    expect(await (await server.fetch(`/jobs/${jobId}/artifacts/.hidden`)).text()).toBe('secret-ish\n');

    const part = await server.fetch(`/jobs/${jobId}/artifacts/report.txt`, { headers: { range: 'bytes=4-9' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 4-9/11');
    expect(await part.text()).toBe('report');
    const outside = await server.fetch(`/jobs/${jobId}/artifacts/report.txt`, { headers: { range: 'bytes=50-60' } });
    expect([outside.status, ((await outside.json()) as any).error]).toEqual([416, 'range_not_satisfiable']);

    const tar = await server.fetch(`/jobs/${jobId}/artifacts/tree`);
    expect(tar.headers.get('content-type')).toBe('application/x-tar');
    const dir = mkdtempSync(join(tmpdir(), 'fp-untar-'));
    const tarPath = join(dir, 'tree.tar');
    writeFileSync(tarPath, Buffer.from(await tar.arrayBuffer()));
    execFileSync('tar', ['-xf', tarPath, '-C', dir]);
    expect(readFileSync(join(dir, 'tree/a/b/c.txt'), 'utf8')).toBe('deep\n');
    expect(readlinkSync(join(dir, 'tree/link'))).toBe('a/b/c.txt');
    expect(readFileSync(join(dir, 'tree/link'), 'utf8')).toBe('deep\n');
    expect(readdirSync(join(dir, 'tree')).sort()).toEqual(['a', 'link']);
    rmSync(dir, { recursive: true });
  });

  it('never reads outside the job directory, whatever the name or a later symlink swap', async () => {
    const attempts = [
      `/jobs/${jobId}/artifacts/..`,
      `/jobs/${jobId}/artifacts/%2e%2e%2f%2e%2e%2fdb%2fflashpods.db`,
      `/jobs/${jobId}/artifacts/..%2f..%2fapi-token`,
      `/jobs/${jobId}/artifacts/report.txt%00.png`,
      `/jobs/${jobId}/artifacts/..%5C..%5Capi-token`,
      `/jobs/${jobId}/artifacts/%20report.txt`,
    ];
    for (const path of attempts) {
      const res = await rawGet(path);
      expect([path, res.status]).not.toEqual([path, 200]);
      expect(res.body).not.toContain(stack.server.token);
      expect(res.body).not.toContain('root:');
      if (res.status === 400) expect(JSON.parse(res.body).error).toBe('invalid_artifact_name');
    }
    expect(JSON.parse((await rawGet(`/jobs/${jobId}/artifacts/%2e%2e%2fx`)).body).error).toBe('invalid_artifact_name');

    // Swap a served file for a symlink to a host file after indexing.
    const report = join(stack.home, 'artifacts', jobId, 'report.txt');
    unlinkSync(report);
    symlinkSync('/etc/passwd', report);
    const swapped = await rawGet(`/jobs/${jobId}/artifacts/report.txt`);
    expect(swapped.status).toBe(404);
    expect(JSON.parse(swapped.body).error).toBe('artifact_not_found');
    expect(swapped.body).not.toContain('root:');
    // And inside a served directory: the tar leaves the escaping entry out.
    const inner = join(stack.home, 'artifacts', jobId, 'tree', 'a', 'b', 'c.txt');
    unlinkSync(inner);
    symlinkSync('/etc/passwd', inner);
    const tar = await stack.server.fetch(`/jobs/${jobId}/artifacts/tree`);
    expect(Buffer.from(await tar.arrayBuffer()).toString('latin1')).not.toContain('root:');
  });

  it('answers the artifact error codes', async () => {
    const { server } = stack;
    expect((await json(await server.fetch(`/jobs/${jobId}/artifacts/nope.txt`))).error).toBe('artifact_not_found');
    expect((await json(await server.fetch('/jobs/job_aaaaaaaaaaaaaaaa/artifacts'))).error).toBe('job_not_found');
    const running = await createJob(server, { type: 'worker', command: 'sleep 5', cpus: 1, memory_gb: 1 });
    const res = await server.fetch(`/jobs/${running.body.job_id}/artifacts`);
    expect([res.status, ((await res.json()) as any).error]).toEqual([404, 'artifacts_not_available']);
    await server.fetch(`/jobs/${running.body.job_id}`, { method: 'DELETE' });
  });

  it('streams a 1 GiB artifact with the server RSS growing by less than 64 MB', async () => {
    const { server } = stack;
    const created = await createJob(server, { type: 'worker', command: 'dd if=/dev/urandom of=/artifacts/one-gib.bin bs=1M count=1024 2>/dev/null', cpus: 1, memory_gb: 1 });
    const job = await waitForJob(server, created.body.job_id, { timeoutMs: 180_000 });
    expect(job.status).toBe('completed');
    const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.child.pid}/status`, 'utf8'))![1]) * 1024;
    const before = rss();
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rss())), 20);
    const res = await server.fetch(`/jobs/${job.id}/artifacts/one-gib.bin`);
    expect(res.headers.get('content-length')).toBe(String(1024 ** 3));
    let received = 0;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) received += chunk.byteLength;
    clearInterval(sampler);
    expect(received).toBe(1024 ** 3);
    console.log(`1 GiB download: server RSS ${(before / 2 ** 20).toFixed(1)} MB before, peak ${(peak / 2 ** 20).toFixed(1)} MB (+${((peak - before) / 2 ** 20).toFixed(1)} MB)`);
    expect(peak - before).toBeLessThan(64 * 1024 ** 2);
  });
});
