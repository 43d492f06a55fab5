import { defineConfig } from 'vitest/config';

// Tests that attach BPF see every process on the machine; each filters by the pids/ports it owns,
// so files may run in parallel, but this is a 2-core box: keep the pool small.
export default defineConfig({
  test: {
    include: ['agent/**/*.test.ts', 'functions/**/*.test.ts', 'plugins/**/*.test.ts', 'sdk-plugin/**/*.test.ts', 'test/**/*.test.ts', 'infra/**/*.test.ts'],
    exclude: ['**/node_modules/**', 'test/bench/**'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
