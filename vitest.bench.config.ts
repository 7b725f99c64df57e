import { defineConfig } from 'vitest/config';

// The benchmark smoke test alone: every scenario for one second (see bench/README.md).
export default defineConfig({
  test: {
    include: ['test/bench/**/*.test.ts'],
    testTimeout: 240_000,
    hookTimeout: 60_000,
  },
});
