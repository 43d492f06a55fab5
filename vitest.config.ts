import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// A plugin's test imports the SDK by its package name (sdk-plugin/README.md); in this repository
// that name is the sdk-plugin/ folder (tsconfig.json "paths" says the same to tsc).
const sdk = (file: string): string => fileURLToPath(new URL(`./sdk-plugin/${file}`, import.meta.url));

// Tests that attach BPF see every process on the machine; each filters by the pids/ports it owns,
// so most files may run in parallel (2 at a time: this is a 2-core box). The whole-system tests
// (many real servers, 100 concurrent requests, timing-sensitive trace assembly) run afterwards,
// one at a time, so they measure the product rather than the test runner's contention.
const SYSTEM = ['test/query/acceptance.test.ts', 'test/query/event-loop.test.ts', 'test/query/event-loop-timing.test.ts', 'test/query/first-request.test.ts', 'test/query/asyncio.test.ts', 'test/query/handoff.test.ts', 'test/query/goroutine.test.ts', 'test/deploy/**/*.test.ts', 'test/capture/tls.test.ts', 'test/query/tls-trace.test.ts', 'test/protocols/midstream-all.e2e.test.ts'];

export default defineConfig({
  resolve: {
    alias: [
      { find: /^@riptide\/sdk-plugin$/, replacement: sdk('index.ts') },
      { find: /^@riptide\/sdk-plugin\/testing$/, replacement: sdk('testing.ts') },
    ],
  },
  test: {
    exclude: ['**/node_modules/**', 'test/bench/**'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'parts',
          include: ['agent/**/*.test.ts', 'functions/**/*.test.ts', 'plugins/**/*.test.ts', 'sdk-plugin/**/*.test.ts', 'test/**/*.test.ts', 'infra/**/*.test.ts'],
          exclude: ['**/node_modules/**', 'test/bench/**', ...SYSTEM],
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'system',
          include: SYSTEM,
          maxWorkers: 1,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
