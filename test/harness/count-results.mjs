#!/usr/bin/env node
// Turns vitest's JSON report into the plain `N passed, N failed` line that CI reads.
//
// Usage: node test/harness/count-results.mjs <vitest.json> <exit code of npm test> [<report> <exit code> ...]
// Prints explanations on stderr, the line on stdout; exits 1 when anything failed.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Counts test cases in a vitest JSON report (`null` when there is none).
 * A test file that failed without a failed test (import error, failing beforeAll) counts as
 * one failure; a non-zero exit with nothing failed (unhandled error, build failure, missing
 * report) counts as one failure too, so the line never says "0 failed" for a red run.
 *
 * @param {unknown} report parsed vitest JSON report, or null
 * @param {number} exitCode exit code of the test command
 * @returns {{ passed: number, failed: number, notes: string[] }}
 */
export function countResults(report, exitCode) {
  const notes = [];
  let passed = 0;
  let failed = 0;
  const files = report && typeof report === 'object' && Array.isArray(report.testResults) ? report.testResults : null;
  if (!files) {
    notes.push('no vitest JSON report: the build or the test run itself failed');
  } else {
    for (const file of files) {
      const cases = Array.isArray(file.assertionResults) ? file.assertionResults : [];
      const filePassed = cases.filter((c) => c.status === 'passed').length;
      const fileFailed = cases.filter((c) => c.status === 'failed').length;
      passed += filePassed;
      failed += fileFailed;
      // Name every failed case with the first line of its error, so the end of a CI log (often all
      // that is kept of it) says which test failed and why.
      for (const c of cases.filter((one) => one.status === 'failed')) {
        const why = String((Array.isArray(c.failureMessages) && c.failureMessages[0]) || '').split('\n')[0];
        notes.push(`failed: ${file.name} > ${c.fullName ?? c.title}${why ? `: ${why.slice(0, 300)}` : ''}`);
      }
      if (file.status === 'failed' && fileFailed === 0) {
        failed += 1;
        const why = String(file.message ?? '').split('\n')[0];
        notes.push(`test file failed outside its tests: ${file.name}${why ? `: ${why}` : ''}`);
      }
    }
  }
  if (exitCode !== 0 && failed === 0) {
    failed += 1;
    notes.push(`the test command exited with code ${exitCode} although no test case failed`);
  }
  return { passed, failed, notes };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // Pairs of <report> <exit code>, one per test run (.ci/run also runs the Node-side tests on Node LTS).
  const args = process.argv.slice(2);
  let passed = 0;
  let failed = 0;
  for (let i = 0; i < args.length; i += 2) {
    let report = null;
    try {
      report = JSON.parse(readFileSync(args[i], 'utf8'));
    } catch {
      report = null;
    }
    const counted = countResults(report, Number(args[i + 1] ?? 0));
    for (const note of counted.notes) process.stderr.write(`${args[i]}: ${note}\n`);
    passed += counted.passed;
    failed += counted.failed;
  }
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  process.exitCode = failed > 0 ? 1 : 0;
}
