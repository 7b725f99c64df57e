import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start real servers; on a loaded 2-core machine they need slack.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two workers match the two cores; more only adds contention to timing-sensitive tests.
    maxWorkers: 2,
    reporters: process.env.CI ? ['default'] : ['default'],
  },
});
