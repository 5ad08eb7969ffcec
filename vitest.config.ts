import { defineConfig } from 'vitest/config';

// Three tiers, all run by `npm test`: unit (pure TS), gpu (real WGSL on Dawn in Node), browser (the built app in
// headless Chromium, WebGPU inside the worker). The gpu tier runs two files at a time: one such process keeps about
// one core busy (Tint and SwiftShader compile each pipeline on the calling thread, and compiling is most of a test's
// time there), so one file at a time left half of a 2-core machine idle. The browser tier runs one file at a time, after
// the gpu tier: Chromium's GPU process already uses every core.
export default defineConfig({
  test: {
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'], environment: 'node' } },
      {
        extends: true,
        test: {
          name: 'gpu',
          include: ['test/gpu/**/*.test.ts'],
          environment: 'node',
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
          testTimeout: 600_000,
          hookTimeout: 120_000,
          pool: 'forks',
          // A process whose main thread is stuck in native code (a Dawn deadlock) is killed, not waited on forever.
          setupFiles: ['test/gpu/watchdog-setup.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'browser',
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          fileParallelism: false,
          testTimeout: 600_000,
          hookTimeout: 300_000,
          globalSetup: ['test/e2e/global-setup.ts'],
        },
      },
    ],
  },
});
