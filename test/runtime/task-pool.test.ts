import { describe, expect, it } from 'vitest';
import { createTaskPool } from '../../runtime/task-pool.ts';

describe('the task pool', () => {
  it('ends a task that outlives its signal and keeps serving the next one', async () => {
    const pool = createTaskPool<{ stuck: boolean }, string>(new URL('../fixtures/tasks/stuck.task.ts', import.meta.url), 1);
    try {
      expect(await pool.run({ stuck: false })).toBe('answered'); // the thread is up: the timing below is the abort's alone
      const started = performance.now();
      const error = await pool.run({ stuck: true }, { signal: AbortSignal.timeout(300) }).then(() => undefined, (err: Error) => err);
      const ms = performance.now() - started;
      expect(error?.name).toBe('AbortError');
      expect(ms).toBeGreaterThanOrEqual(290);
      expect(ms).toBeLessThan(2_000);
      expect(await pool.run({ stuck: false })).toBe('answered');
    } finally {
      await pool.destroy();
    }
  });
});
