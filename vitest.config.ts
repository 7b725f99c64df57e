import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The bench smoke loads both cores for about a minute; it runs on its own
    // (`npm run test:bench`, in .ci/run) so timing-sensitive tests never share the machine with it.
    exclude: ['test/bench/**', 'node_modules/**'],
    // Integration tests start real servers; on a loaded 2-core machine they need slack.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two workers match the two cores; more only adds contention to timing-sensitive tests.
    maxWorkers: 2,
  },
});
