import { defineConfig } from 'vitest/config';

// Tests drive real processes, real Podman and real sockets: they are slow by nature and
// share host resources (capacity, ports, the Podman socket), so files run one at a time.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    pool: 'forks',
  },
});
