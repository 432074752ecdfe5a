import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';

const fixture = new URL('../fixtures/supervised.ts', import.meta.url).pathname;

function startProcess(env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], { env: { ...process.env, ...env } }) as ChildProcessWithoutNullStreams;
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const ready = new Promise<void>((resolve) => child.stderr.on('data', () => stderr.includes('ready\n') && resolve()));
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  return {
    child, ready, exited,
    logLines: () => stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>),
    results: () => stderr.split('\n').filter((l) => l.startsWith('result ')).map((l) => JSON.parse(l.slice(7))),
    send: (line: string) => child.stdin.write(`${line}\n`),
  };
}

describe('the supervised process', () => {
  it('drains an in-flight slow request on SIGTERM, stops actors in reverse order and exits 0', async () => {
    const proc = startProcess();
    await proc.ready;
    proc.send('call slow {"ms":1500}');
    await new Promise((r) => setTimeout(r, 300));
    proc.child.kill('SIGTERM');
    const [code] = await proc.exited;
    expect(code).toBe(0);
    expect(proc.results()).toEqual([{ type: 'slow', ok: true, value: { done: true } }]);
    const stops = proc.logLines().filter((l) => l.event === 'stopped').map((l) => l.actor);
    expect(stops).toEqual(['relay', 'victim']);
    for (const line of proc.logLines()) expect(typeof line.time).toBe('string');
  });

  it('exits non-zero with the reason when an actor exhausts its restart budget', async () => {
    const proc = startProcess({ MAX_RESTARTS: '1' });
    await proc.ready;
    proc.send('call exitProcess {"code":9}');
    await new Promise((r) => setTimeout(r, 1_000));
    proc.send('call exitProcess {"code":9}');
    const [code] = await proc.exited;
    expect(code).toBe(1);
    const lines = proc.logLines();
    expect(lines.filter((l) => l.event === 'crashed')).toHaveLength(2);
    expect(lines.some((l) => l.event === 'restarted')).toBe(true);
    const gaveUp = lines.find((l) => l.event === 'gave_up');
    expect(gaveUp?.reason).toMatch(/victim crashed 2 times .* thread exited with code 9/);
  });
});
