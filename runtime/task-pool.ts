/**
 * @module task-pool
 * A piscina pool for CPU- or syscall-heavy work (walking an upload or an artifact tree) so it
 * never blocks an actor's event loop. The task module's default export takes one input and
 * returns (a promise of) one structured-cloneable output.
 */
import { Piscina } from 'piscina';

export interface TaskPool<In, Out> {
  /** An aborted `signal` rejects the run and, if the task already started, ends its thread. */
  run(input: In, options?: { signal?: AbortSignal }): Promise<Out>;
  destroy(): Promise<void>;
}

export function createTaskPool<In, Out>(taskModule: URL, maxThreads = 2): TaskPool<In, Out> {
  const pool = new Piscina({
    filename: new URL('./task-pool-boot.mjs', import.meta.url).href,
    workerData: { taskModule: taskModule.href },
    minThreads: 0,
    maxThreads,
    idleTimeout: 30_000,
  });
  return {
    run: (input, options) => pool.run(input, { signal: options?.signal }) as Promise<Out>,
    destroy: () => pool.destroy(),
  };
}
