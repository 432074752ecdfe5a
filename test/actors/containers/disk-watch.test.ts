import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { diskBudget, MAX_JOB_ENTRIES, overBudgetError, watchDisk } from '../../../actors/containers/disk-watch.ts';
import measureDisk from '../../../actors/containers/measure-disk.task.ts';

const MIB = 1024 ** 2;
const dirs: string[] = [];
const tempDir = (prefix: string) => {
  dirs.push(mkdtempSync(join(tmpdir(), `fp-${prefix}-`)));
  return dirs.at(-1)!;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A directory of `n` MiB of real (non-sparse) data in one file. */
function filled(dir: string, name: string, mib: number): string {
  const path = join(dir, name);
  writeFileSync(path, Buffer.alloc(mib * MIB, 1));
  return path;
}

describe('measureDisk (the task, on a real filesystem)', () => {
  it('counts allocated blocks once per inode and never follows a link out of the tree', async () => {
    const outside = tempDir('outside');
    filled(outside, 'big', 8);
    const root = tempDir('measured');
    mkdirSync(join(root, 'sub'));
    const data = filled(join(root, 'sub'), 'data', 2);
    linkSync(data, join(root, 'hardlink'));
    symlinkSync(outside, join(root, 'to-outside'));
    symlinkSync(join(outside, 'big'), join(root, 'to-big'));
    writeFileSync(join(root, 'sparse'), '');
    truncateSync(join(root, 'sparse'), 1024 ** 4);

    const usage = await measureDisk({ roots: [root, join(root, 'missing')], stopAboveBytes: 100 * MIB, maxEntries: 100 });
    // sub, data, hardlink, to-outside, to-big, sparse
    expect(usage.entries).toBe(6);
    // 2 MiB of data once, plus the sub directory's block and (fast) symlinks' nothing: well under
    // the 8 MiB outside or the 1 TiB the sparse file claims.
    expect(usage.bytes).toBeGreaterThanOrEqual(2 * MIB);
    expect(usage.bytes).toBeLessThan(2 * MIB + 64 * 1024);
    expect(usage).toMatchObject({ stoppedEarly: false, unreadable: { count: 0, examples: [] } });
  });

  it('stops as soon as a bound is passed', async () => {
    const root = tempDir('bounded');
    for (let i = 0; i < 4; i++) filled(root, `f${i}`, 1);
    const bySize = await measureDisk({ roots: [root], stopAboveBytes: 1.5 * MIB, maxEntries: 100 });
    expect([bySize.entries, bySize.stoppedEarly]).toEqual([2, true]);
    const byCount = await measureDisk({ roots: [root], stopAboveBytes: 100 * MIB, maxEntries: 3 });
    expect([byCount.entries, byCount.stoppedEarly]).toEqual([3, true]);
  });
});

describe('the disk budget', () => {
  const budget = diskBudget({ jobDiskMultiple: 5, artifactJobMaxBytes: 2 * 1024 ** 3 });
  const places = [{ hostPath: '/a', name: '/artifacts' }, { hostPath: '/u', name: 'its container filesystem' }];

  it('is the multiple of the artifact limit, and says what was killed and what to do', () => {
    expect(budget.bytes).toBe(10 * 1024 ** 3);
    expect(overBudgetError({ bytes: budget.bytes, entries: 10 }, budget, places)).toBeUndefined();
    expect(overBudgetError({ bytes: budget.bytes + 1.5 * 1024 ** 3, entries: 10 }, budget, places)).toBe(
      'disk_limit_exceeded: the job held 11.5 GB in /artifacts and its container filesystem, over its 10 GB disk budget '
      + '(5× the 2 GB per-job artifact limit); it was killed. Write less there, or ask the operator to raise FLASHPODS_JOB_DISK_MULTIPLE.',
    );
    expect(overBudgetError({ bytes: 0, entries: MAX_JOB_ENTRIES }, budget, places.slice(0, 1))).toBe(
      'disk_limit_exceeded: the job created 1000000 files and directories in /artifacts, the most a job may hold; it was killed.',
    );
  });

  it('is watched every interval until passed, then reported once', async () => {
    const root = tempDir('watched');
    const overs: string[] = [];
    const started = Date.now();
    const watch = watchDisk({
      places: [{ hostPath: root, name: '/artifacts' }],
      budget: diskBudget({ jobDiskMultiple: 2, artifactJobMaxBytes: MIB }),
      intervalMs: 100,
      measure: measureDisk,
      onOver: (error) => overs.push(`${Date.now() - started} ${error}`),
      onUnreadable: () => undefined,
      onPassFailed: (err) => { throw err; },
    });
    filled(root, 'under', 1);
    await new Promise((r) => setTimeout(r, 450));
    expect(overs).toEqual([]);
    filled(root, 'over', 2);
    const overAt = Date.now() - started;
    await new Promise((r) => setTimeout(r, 450));
    watch.stop();
    expect(overs).toHaveLength(1);
    const [ms, ...words] = overs[0]!.split(' ');
    expect(Number(ms)).toBeGreaterThanOrEqual(overAt);
    expect(Number(ms)).toBeLessThanOrEqual(overAt + 300);
    // The pass may have caught the second file half written.
    expect(words.join(' ')).toMatch(/^disk_limit_exceeded: the job held (2\.\d|3) MB in \/artifacts, over its 2 MB disk budget \(2× the 1 MB per-job artifact limit\); it was killed\./);
  });
});
