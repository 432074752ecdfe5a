import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import indexTree, { PATH_MAX, type IndexInput } from '../../../actors/artifacts/index-tree.task.ts';

// Fault hook, named as such: an entry that vanishes between the listing of its directory and its
// lstat is a real race nothing can time on purpose; this hook deletes the entry (for real) right
// before the indexer's lstat of any entry named `vanish-me`, so the real lstat fails with ENOENT.
vi.mock('node:fs/promises', async () => {
  const real = await vi.importActual<typeof import('node:fs/promises')>('node:fs/promises');
  const lstat = (async (path: Parameters<typeof real.lstat>[0], ...rest: unknown[]) => {
    if (String(path).endsWith('/vanish-me')) await real.rm(path, { recursive: true, force: true });
    return (real.lstat as (...a: unknown[]) => unknown)(path, ...rest);
  }) as typeof real.lstat;
  return { ...real, lstat, default: { ...real, lstat } };
});

const LONG = 'x'.repeat(200);
const NOBODY = 65534;
const made: string[] = [];

function tree(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fp-index-'));
  made.push(dir);
  return realpathSync(dir);
}

const limits = (dir: string, extra: Partial<IndexInput> = {}): IndexInput => ({
  dir, fileMaxBytes: 1024 ** 3, jobMaxBytes: 2 * 1024 ** 3, maxEntries: 200, budgetMs: 60_000, ...extra,
});

/** How many LONG-named levels a tree under `dir/top` still has (a shell's cd walks any depth). */
function levels(dir: string, top: string): number {
  return Number(execFileSync('sh', ['-c', `cd "$1" && n=0; while cd -P ${LONG} 2>/dev/null; do n=$((n+1)); done; echo $n`, 'sh', join(dir, top)], { encoding: 'utf8' }));
}

afterEach(() => {
  for (const dir of made.splice(0)) execFileSync('rm', ['-rf', dir]); // GNU rm: any depth, unlike fs.rm
});

describe('the artifact index task', () => {
  it('keeps what can be served and drops, with a reason each, a tree past PATH_MAX, a symlink loop, non-UTF-8 names and directories over the entry limit', async () => {
    const dir = tree();
    mkdirSync(join(dir, 'a-deep'));
    execFileSync('sh', ['-c', `cd "$1" && for i in $(seq 25); do mkdir ${LONG} && cd -P ${LONG}; done && echo bottom > bottom.txt`, 'sh', join(dir, 'a-deep')]);
    symlinkSync('b-loop-2', join(dir, 'b-loop-1'));
    symlinkSync('b-loop-1', join(dir, 'b-loop-2'));
    mkdirSync(join(dir, 'c-bytes'));
    writeFileSync(Buffer.from(`${dir}/c-bytes/\xffA`, 'latin1'), 'not utf-8\n');
    writeFileSync(join(dir, 'c-bytes', 'ok.txt'), 'ok\n');
    writeFileSync(join(dir, 'c.txt'), 'hello\n');
    mkdirSync(join(dir, 'd-dirs'));
    for (let i = 0; i < 300; i++) mkdirSync(join(dir, 'd-dirs', `d${String(i).padStart(3, '0')}`));
    writeFileSync(Buffer.from(`${dir}/\xfe`, 'latin1'), 'not utf-8 either\n');

    const kept = Math.floor((PATH_MAX - 1 - Buffer.byteLength(`${dir}/a-deep`)) / (LONG.length + 1));
    expect(kept).toBeGreaterThan(15); // the tree really passes PATH_MAX: 25 levels of 201 bytes
    const keptDirs = 200 - (1 + kept) - 2 - 1 - 1; // a-deep and its levels, c-bytes and ok.txt, c.txt, d-dirs itself

    const result = await indexTree(limits(dir));
    if (!result.ok) throw new Error(result.message);
    expect(result.artifacts.map((a) => [a.name, a.kind, a.sizeBytes])).toEqual([
      ['a-deep', 'directory', 0], ['c-bytes', 'directory', 3], ['c.txt', 'file', 6], ['d-dirs', 'directory', 0],
    ]);
    const tooLong = `a-deep${`/${LONG}`.repeat(kept + 1)}`;
    expect(result.dropped).toEqual([
      { reason: 'path_too_long', count: 1, examples: [{ path: tooLong }] },
      // b-loop-1 loops; once it is removed, b-loop-2 dangles.
      { reason: 'unresolvable_symlink', count: 2, examples: [{ path: 'b-loop-1', code: 'ELOOP' }, { path: 'b-loop-2', code: 'ENOENT' }] },
      { reason: 'invalid_name', count: 2, examples: [{ path: 'c-bytes/\uFFFDA' }, { path: '\uFFFD' }] },
      { reason: 'too_many_files', count: 300 - keptDirs, examples: expect.any(Array) },
    ]);
    expect(result.dropped[3]!.examples.slice(0, 2)).toEqual([{ path: `d-dirs/d${String(keptDirs).padStart(3, '0')}` }, { path: `d-dirs/d${String(keptDirs + 1).padStart(3, '0')}` }]);
    // Dropped means gone from disk: a directory artifact is downloaded as a tar of what is there.
    expect(levels(dir, 'a-deep')).toBe(kept);
    expect(readdirSync(join(dir, 'd-dirs'))).toHaveLength(keptDirs);
    expect(readdirSync(dir).sort()).toEqual(['a-deep', 'c-bytes', 'c.txt', 'd-dirs']);
    expect(readdirSync(join(dir, 'c-bytes'))).toEqual(['ok.txt']);
  });

  it('stops at its time budget: what it did not reach is withheld, not listed, and left on disk', async () => {
    const dir = tree();
    writeFileSync(join(dir, 'a.txt'), 'a\n');
    mkdirSync(join(dir, 'b-many'));
    for (let i = 0; i < 40_000; i++) writeFileSync(join(dir, 'b-many', `f${i}`), '');
    writeFileSync(join(dir, 'c.txt'), 'c\n');

    const started = performance.now();
    const result = await indexTree(limits(dir, { budgetMs: 250 }));
    const ms = performance.now() - started;
    if (!result.ok) throw new Error(result.message);
    expect(ms).toBeGreaterThanOrEqual(249); // the budget runs on Date.now's whole milliseconds
    expect(ms).toBeLessThan(1_000); // one entry's work past the budget at most, on a loaded machine
    expect(result.artifacts.map((a) => a.name)).toEqual(['a.txt']);
    const byReason = Object.fromEntries(result.dropped.map((d) => [d.reason, d]));
    expect(byReason.out_of_time).toEqual({ reason: 'out_of_time', count: 2, examples: [{ path: 'b-many' }, { path: 'c.txt' }] });
    expect(readdirSync(join(dir, 'b-many')).length).toBeGreaterThan(200); // it stopped inside b-many
    expect(existsSync(join(dir, 'c.txt'))).toBe(true);
  });

  it('notes entries that vanish while it walks and keeps the rest', async () => {
    const dir = tree();
    mkdirSync(join(dir, 'a-dir'));
    writeFileSync(join(dir, 'a-dir', 'stays.txt'), 'stays\n');
    writeFileSync(join(dir, 'a-dir', 'vanish-me'), 'gone\n');
    mkdirSync(join(dir, 'vanish-me'));
    writeFileSync(join(dir, 'z.txt'), 'z\n');

    const result = await indexTree(limits(dir));
    if (!result.ok) throw new Error(result.message);
    expect(result.artifacts.map((a) => [a.name, a.sizeBytes])).toEqual([['a-dir', 6], ['z.txt', 2]]);
    expect(result.dropped).toEqual([{ reason: 'vanished', count: 2, examples: [{ path: 'a-dir/vanish-me' }, { path: 'vanish-me' }] }]);
  });

  it('as a non-root indexer, drops entries another user locked (EACCES) and withholds the artifact holding one', () => {
    const dir = tree();
    const own = (path: string) => chownSync(path, NOBODY, NOBODY);
    own(dir);
    writeFileSync(join(dir, 'a-ok.txt'), 'ok\n');
    own(join(dir, 'a-ok.txt'));
    mkdirSync(join(dir, 'b-dir'));
    own(join(dir, 'b-dir'));
    writeFileSync(join(dir, 'b-dir', 'fine.txt'), 'fine\n');
    own(join(dir, 'b-dir', 'fine.txt'));
    mkdirSync(join(dir, 'b-dir', 'locked'));
    writeFileSync(join(dir, 'b-dir', 'locked', 'secret'), 'root only\n');
    chmodSync(join(dir, 'b-dir', 'locked'), 0o000);
    mkdirSync(join(dir, 'c-locked'));
    chmodSync(join(dir, 'c-locked'), 0o000);
    mkdirSync(join(dir, 'd-mine'));
    writeFileSync(join(dir, 'd-mine', 'x.txt'), 'x\n');
    own(join(dir, 'd-mine'));
    own(join(dir, 'd-mine', 'x.txt'));
    chmodSync(join(dir, 'd-mine', 'x.txt'), 0o000);
    chmodSync(join(dir, 'd-mine'), 0o000); // the indexer's own: it gives itself access back

    const task = fileURLToPath(new URL('../../../actors/artifacts/index-tree.task.ts', import.meta.url));
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e',
      'const { default: indexTree } = await import(process.argv[1]); console.log(JSON.stringify(await indexTree(JSON.parse(process.argv[2]))));',
      task, JSON.stringify(limits(dir))], { uid: NOBODY, gid: NOBODY, encoding: 'utf8', cwd: fileURLToPath(new URL('../../..', import.meta.url)) });
    expect(run.stderr).toBe('');
    const result = JSON.parse(run.stdout);
    expect(result.artifacts.map((a: any) => [a.name, a.sizeBytes])).toEqual([['a-ok.txt', 3], ['d-mine', 2]]);
    expect(result.dropped).toEqual([
      { reason: 'unreadable', count: 2, examples: [{ path: 'b-dir/locked', code: 'EACCES' }, { path: 'c-locked', code: 'EACCES' }] },
      { reason: 'withheld', count: 1, examples: [{ path: 'b-dir' }] },
    ]);
    expect(existsSync(join(dir, 'b-dir', 'fine.txt'))).toBe(true); // withheld, not deleted
  });
});
