import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { countResults } from '../harness/count-results.mjs';
import { ensureTestHls, ensureTestVideo, testMediaBaseName } from '../harness/media.js';
import { privateNetworkStatus, requirePrivateNetwork } from '../harness/network.js';
import { startProcess } from '../harness/processes.js';

// The test harness itself: child processes, generated media and the runner. Pure Node, no browser.

/** A child that prints a URL once it "listens" and then waits to be stopped. */
const SERVER_SCRIPT = `
  setTimeout(() => console.log('listening on http://127.0.0.1:4321/'), 50);
  process.on('SIGTERM', () => { console.error('got SIGTERM'); process.exit(0); });
  setInterval(() => {}, 1000);
`;

describe('startProcess', () => {
  it('resolves with the ready match and stops with SIGTERM', async () => {
    const proc = await startProcess(process.execPath, ['-e', SERVER_SCRIPT], { readyPattern: /http:\/\/127\.0\.0\.1:(\d+)\//, name: 'fake server' });
    expect(proc.ready?.[1]).toBe('4321');
    expect(await proc.stop()).toBe(0);
    expect(proc.stderr()).toContain('got SIGTERM');
    // stop() is idempotent.
    expect(await proc.stop()).toBe(0);
  });

  it('passes env through', async () => {
    const proc = await startProcess(process.execPath, ['-e', 'console.log("value=" + process.env.HARNESS_PROBE); setInterval(() => {}, 1000)'], {
      readyPattern: /value=(\w+)/,
      env: { HARNESS_PROBE: 'xyz' },
    });
    expect(proc.ready?.[1]).toBe('xyz');
    await proc.stop();
  });

  it('rejects with stderr when the process exits before it is ready', async () => {
    await expect(
      startProcess(process.execPath, ['-e', 'console.error("port in use"); process.exit(3)'], { readyPattern: /never/, name: 'broken' }),
    ).rejects.toThrow(/broken: exited \(3\) before it was ready[\s\S]*port in use/);
  });

  it('rejects when the ready pattern never shows up in time', async () => {
    await expect(
      startProcess(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { readyPattern: /never/, readyTimeoutMs: 300 }),
    ).rejects.toThrow(/no output matching \/never\/ within 300 ms/);
  });

  it('kills a process that ignores SIGTERM after the grace period', async () => {
    const proc = await startProcess(process.execPath, ['-e', 'process.on("SIGTERM", () => {}); console.log("up"); setInterval(() => {}, 1000)'], {
      readyPattern: /up/,
    });
    expect(await proc.stop(200)).toBe('SIGKILL');
  });
});

describe('test media', () => {
  it('generates a faststart H.264 MP4 once and reuses it', async () => {
    const options = { seconds: 2, kbps: 300, name: 'harness-unit' };
    const path = await ensureTestVideo(options);
    expect(path.endsWith(`${testMediaBaseName(options)}.mp4`)).toBe(true);
    const bytes = readFileSync(path);
    expect(bytes.subarray(4, 8).toString('latin1')).toBe('ftyp');
    // +faststart: the moov box comes before the media data.
    const text = bytes.toString('latin1');
    expect(text.indexOf('moov')).toBeGreaterThan(0);
    expect(text.indexOf('moov')).toBeLessThan(text.indexOf('mdat'));
    expect(text).toContain('avc1');
    const mtime = statSync(path).mtimeMs;
    expect(await ensureTestVideo(options)).toBe(path);
    expect(statSync(path).mtimeMs).toBe(mtime);
  });

  it('generates a VOD HLS folder with 2 s segments', async () => {
    const dir = await ensureTestHls({ seconds: 6, kbps: 300, name: 'harness-unit' });
    const playlist = readFileSync(join(dir, 'index.m3u8'), 'utf8');
    expect(playlist).toContain('#EXT-X-PLAYLIST-TYPE:VOD');
    expect(playlist).toContain('#EXT-X-ENDLIST');
    const segments = playlist.split('\n').filter((line) => line.endsWith('.ts'));
    expect(segments).toEqual(['seg-000.ts', 'seg-001.ts', 'seg-002.ts']);
    for (const segment of segments) expect(statSync(join(dir, segment)).size).toBeGreaterThan(0);
    const durations = [...playlist.matchAll(/#EXTINF:([\d.]+)/g)].map((m) => Number(m[1]));
    for (const duration of durations) expect(duration).toBeCloseTo(2, 1);
  });

  it('rejects parameters that would make a bad file name', () => {
    expect(() => testMediaBaseName({ name: '../x' })).toThrow(/media name/);
    expect(() => testMediaBaseName({ size: '640' })).toThrow(/WxH/);
  });
});

describe('private network guard', () => {
  it('agrees with the environment it runs in', () => {
    const status = privateNetworkStatus();
    if (status.insideNamespace) {
      expect(process.env.PEERFETCH_NETNS).toBe('1');
      expect(status.addresses.filter((a) => !a.startsWith('fe80:')).sort()).toEqual(['10.77.0.1', '10.77.0.2']);
      expect(() => requirePrivateNetwork()).not.toThrow();
    } else if (!status.hostAllowed) {
      expect(() => requirePrivateNetwork()).toThrow(/private network namespace/);
    }
  });
});

// The nested runs below filter on a path that matches no test file, so they never run this
// file again; the env guard makes sure of it even if the filter changed.
describe.skipIf(process.env.PEERFETCH_HARNESS_NESTED === '1')('test runner', () => {
  const runner = join(dirname(new URL(import.meta.url).pathname), '..', 'harness', 'run.mjs');
  const env = { ...process.env, PEERFETCH_NO_NETNS: '1', PEERFETCH_HARNESS_NESTED: '1' };
  const run = (...args: string[]) => spawnSync(process.execPath, [runner, 'test/no-such-test-file', '--reporter=dot', ...args], { env, encoding: 'utf8', timeout: 60_000 });

  it('propagates a vitest success', () => {
    const ok = run('--passWithNoTests');
    expect(ok.status).toBe(0);
    expect(ok.stderr).toContain('vitest exited with code 0');
  }, 60_000);

  it('propagates a vitest failure', () => {
    const none = run();
    expect(none.status).toBe(1);
    expect(none.stderr).toContain('vitest exited with code 1');
  }, 60_000);
});

describe('countResults (the CI summary line)', () => {
  const file = (status: string, cases: string[], message = '') => ({
    name: '/x.test.ts',
    status,
    message,
    assertionResults: cases.map((c) => ({ status: c })),
  });
  const table: Array<[string, unknown, number, { passed: number; failed: number }]> = [
    ['all green', { testResults: [file('passed', ['passed', 'passed']), file('passed', ['passed', 'skipped'])] }, 0, { passed: 3, failed: 0 }],
    ['failed cases', { testResults: [file('failed', ['passed', 'failed', 'failed'])] }, 1, { passed: 1, failed: 2 }],
    ['a file that failed to load counts once', { testResults: [file('failed', [], 'SyntaxError'), file('passed', ['passed'])] }, 1, { passed: 1, failed: 1 }],
    ['a failing beforeAll (tests skipped) counts once', { testResults: [file('failed', ['skipped', 'skipped'])] }, 1, { passed: 0, failed: 1 }],
    ['no report at all', null, 1, { passed: 0, failed: 1 }],
    ['non-zero exit with nothing failed', { testResults: [file('passed', ['passed'])] }, 1, { passed: 1, failed: 1 }],
  ];
  it.each(table)('%s', (_name, report, exitCode, expected) => {
    const { passed, failed } = countResults(report, exitCode);
    expect({ passed, failed }).toEqual(expected);
  });

  it('names each failed case and the first line of its error, for the end of the CI log', () => {
    const report = {
      testResults: [
        {
          name: '/p/test/browser/a.test.ts',
          status: 'failed',
          assertionResults: [
            { status: 'passed', fullName: 'a works' },
            { status: 'failed', fullName: 'a plays to the end', failureMessages: ['AssertionError: expected 1 to be 0\n    at x.ts:1'] },
          ],
        },
      ],
    };
    expect(countResults(report, 1).notes).toEqual(['failed: /p/test/browser/a.test.ts > a plays to the end: AssertionError: expected 1 to be 0']);
  });
});
