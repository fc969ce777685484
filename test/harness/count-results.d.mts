/** Counts test cases in a vitest JSON report for the CI line `N passed, N failed` (see count-results.mjs). */
export function countResults(report: unknown, exitCode: number): { passed: number; failed: number; notes: string[] };
