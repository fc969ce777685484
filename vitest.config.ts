import { defineConfig } from 'vitest/config';

/**
 * Test files that drive Chromium: everything under test/browser/ and any `browser-*.test.ts`
 * elsewhere (e.g. test/tracker/browser-interop.test.ts).
 */
const BROWSER_TESTS = ['test/browser/**/*.test.ts', 'test/**/browser-*.test.ts'];
/** The packed npm tarball installed into a scratch project (its own project: it builds the package once more). */
const PACKAGE_TESTS = ['test/package/**/*.test.ts'];

/**
 * Two projects: unit tests (pure Node, parallel) and browser tests (real Chromium, one file
 * at a time). The machine has 2 cores and each browser test runs one or more Chromium
 * processes plus servers, so browser files in parallel would only make each other slow and flaky.
 *
 * Results also go to test-results/vitest.json, which `.ci/run` counts for its
 * `N passed, N failed` line.
 */

/** Per-test and per-hook timeout for browser tests, in ms: a cold Chromium start, SW install and a 20 s video played through peers fit in well under 2 minutes here. */
const BROWSER_TIMEOUT_MS = 120_000;
/** Per-test and per-hook timeout for unit tests, in ms: they are pure or use loopback servers and child processes; 60 s is only hit by a hang, even with both cores busy. */
const UNIT_TIMEOUT_MS = 60_000;
/** Timeout (ms) of the package test's setup: a whole build (about 20 s of CPU, a minute on a busy machine) and an install. */
const PACKAGE_HOOK_TIMEOUT_MS = 300_000;

export default defineConfig({
  test: {
    // PEERFETCH_VITEST_REPORT: another report file, for a second run (the Node LTS run of .ci/run).
    reporters: ['default', ['json', { outputFile: process.env.PEERFETCH_VITEST_REPORT ?? 'test-results/vitest.json' }]],
    projects: [
      {
        test: {
          name: 'unit',
          environment: 'node',
          // bench/test/ checks the benchmark's own counters and report writer.
          include: ['test/**/*.test.ts', 'bench/test/**/*.test.mjs'],
          exclude: [...BROWSER_TESTS, ...PACKAGE_TESTS, 'test/.cache/**', '**/node_modules/**'],
          testTimeout: UNIT_TIMEOUT_MS,
          hookTimeout: UNIT_TIMEOUT_MS,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'package',
          environment: 'node',
          include: PACKAGE_TESTS,
          testTimeout: UNIT_TIMEOUT_MS,
          hookTimeout: PACKAGE_HOOK_TIMEOUT_MS,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'browser',
          environment: 'node',
          include: BROWSER_TESTS,
          fileParallelism: false,
          testTimeout: BROWSER_TIMEOUT_MS,
          hookTimeout: BROWSER_TIMEOUT_MS,
          // Runs after the unit tests so Chromium does not compete with them for the 2 cores.
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
