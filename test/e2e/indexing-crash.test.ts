import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJob, json, startStack, until, waitForJob, type Stack } from '../support/stack.ts';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.stop();
});

describe('a runtime killed while it indexes artifacts', () => {
  it('serves nothing half-indexed and completes the indexing on the next start', async () => {
    const { server, home } = stack;
    // 4000 files against the 200-entry limit (the directory is one): the indexer has 3801 deletions to make.
    const created = await createJob(server, { type: 'worker', command: 'mkdir /artifacts/many && cd /artifacts/many && i=0; while [ $i -lt 4000 ]; do echo $i > f$i; i=$((i+1)); done', cpus: 1, memory_gb: 1 });
    const id = created.body.job_id;
    await until(() => server.logLines().some((l) => l.event === 'artifacts_indexing' && l.job_id === id), 120_000, 'indexing started');
    await server.stop('SIGKILL');
    expect(server.logLines().some((l) => l.event === 'artifacts_indexed' && l.job_id === id)).toBe(false);
    const leftBehind = readdirSync(join(home, 'artifacts', id, 'many')).length;
    expect(leftBehind).toBeGreaterThan(200); // the kill really landed mid-way

    const restarted = await stack.restartServer();
    const listing = await restarted.fetch(`/jobs/${id}/artifacts`);
    if (listing.status === 200) expect((await json(listing)).copy_in_progress).toBe(true);
    else expect((await json(listing)).error).toBe('artifacts_not_available');

    const job = await waitForJob(restarted, id, { timeoutMs: 60_000 });
    expect(job).toMatchObject({ status: 'completed', exit_code: 0 });
    // The note counts what the completing pass dropped; files the killed pass already removed
    // are gone without a record, so the figure is at most 3801 (the directory `many` counts as
    // one of the 200 entries, so 199 of its files stay).
    const dropped = Number(/artifacts dropped: (\d+) over the file-count limit/.exec(job.error)?.[1]);
    expect(dropped).toBeGreaterThan(0);
    expect(dropped).toBeLessThanOrEqual(3801);
    const final = await json(await restarted.fetch(`/jobs/${id}/artifacts`));
    expect(final.copy_in_progress).toBe(false);
    expect(final.artifacts.map((a: any) => a.name)).toEqual(['many']);
    expect(readdirSync(join(home, 'artifacts', id, 'many'))).toHaveLength(199);
  });
});
