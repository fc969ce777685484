// PEERFETCH_BENCH_PROFILE=<folder>: V8 CPU profiles of each viewer's page and of its service
// worker for the whole run, <folder>/<viewer>.cpuprofile and <viewer>-sw.cpuprofile (they open in
// Chromium's DevTools), each with <name>.txt, the functions with the most self time, named by
// dist/*.map (the bundles are minified). The sampler costs CPU of its own (its thread, "v:ProfEvntProc",
// took 12 s in a 4-viewer live run): the CPU s column of a profiled run is not a figure to compare.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { SourceMap } from 'node:module';
import { join } from 'node:path';

/** Sampling interval, in µs: V8's default (1 ms) is fine enough for a 90 s run. */
const SAMPLING_US = 1000;
/** Functions listed in a profile's summary, by self time. */
const SUMMARY_LINES = 40;

/** Writes `<base>.cpuprofile` and its summary `<base>.txt`. */
async function saveProfile(profile, base, distDir) {
  await writeFile(`${base}.cpuprofile`, JSON.stringify(profile));
  await writeFile(`${base}.txt`, profileSummary(profile, distDir));
}

/** Starts V8's sampler on a target, through `send(method, params)` (its CDP session, however it is reached). */
async function startSampler(send) {
  await send('Profiler.enable');
  await send('Profiler.setSamplingInterval', { interval: SAMPLING_US });
  await send('Profiler.start');
}

/** Starts V8's sampler on `page`; the returned function stops it and saves the profile as `<base>.*`. */
export async function profilePage(context, page, base, distDir) {
  const cdp = await context.newCDPSession(page);
  await startSampler((method, params) => cdp.send(method, params));
  const { targetInfo } = await cdp.send('Target.getTargetInfo');
  return {
    /** The page's browser context in CDP's terms: its service worker's target has the same. */
    browserContextId: targetInfo.browserContextId,
    save: async () => saveProfile((await cdp.send('Profiler.stop')).profile, base, distDir),
  };
}

/**
 * Samples every service worker `browser` starts from now on. Playwright's sessions speak to a page
 * or the browser only, so a worker is reached through the browser's session in CDP's non-flat mode
 * (Target.sendMessageToTarget). `nameOf(browserContextId)`: the viewer a worker belongs to (none:
 * not profiled). The returned function stops every sampler and saves `<dir>/<viewer>-sw.*`.
 */
export async function profileWorkers(browser, nameOf, dir, distDir) {
  const cdp = await browser.newBrowserCDPSession();
  const pending = new Map();
  let lastId = 0;
  const send = (sessionId, method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = ++lastId;
      pending.set(id, { resolve, reject });
      cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) }).catch(reject);
    });
  cdp.on('Target.receivedMessageFromTarget', ({ message }) => {
    const { id, result, error } = JSON.parse(message);
    const waiter = pending.get(id);
    pending.delete(id);
    if (error) waiter?.reject(new Error(error.message));
    else waiter?.resolve(result);
  });
  const workers = [];
  cdp.on('Target.targetCreated', async ({ targetInfo }) => {
    if (targetInfo.type !== 'service_worker' || !nameOf(targetInfo.browserContextId)) return;
    try {
      const { sessionId } = await cdp.send('Target.attachToTarget', { targetId: targetInfo.targetId, flatten: false });
      await startSampler((method, params) => send(sessionId, method, params));
      workers.push({ sessionId, name: nameOf(targetInfo.browserContextId) });
    } catch {
      // The worker ended before it could be sampled (a page that was replaced at once).
    }
  });
  await cdp.send('Target.setDiscoverTargets', { discover: true });
  return async () => {
    const problems = [];
    const taken = new Map();
    for (const { sessionId, name } of workers) {
      // A worker restarted in the run is a second target of the same viewer: -sw, -sw2, …
      const count = (taken.get(name) ?? 0) + 1;
      taken.set(name, count);
      try {
        const { profile } = await send(sessionId, 'Profiler.stop');
        await saveProfile(profile, join(dir, `${name}-sw${count > 1 ? count : ''}`), distDir);
      } catch (error) {
        problems.push(`${name}: worker profile not saved: ${error.message}`);
      }
    }
    return problems;
  };
}

/** Per bundle file name, its source map from `distDir` (null: none). */
const sourceMaps = new Map();
function sourceMapOf(url, distDir) {
  const file = url.split('/').pop().split('?')[0];
  if (!file.startsWith('peerfetch')) return null;
  if (!sourceMaps.has(file)) {
    try {
      sourceMaps.set(file, new SourceMap(JSON.parse(readFileSync(join(distDir, `${file}.map`), 'utf8'))));
    } catch {
      sourceMaps.set(file, null);
    }
  }
  return sourceMaps.get(file);
}

/** Self time per function (its source name, file and line where a source map knows it) of a V8 CPU profile, the largest first. */
function profileSummary(profile, distDir) {
  const intervalMs = (profile.endTime - profile.startTime) / 1000 / Math.max(1, profile.samples.length);
  const self = new Map();
  let total = 0;
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber, columnNumber } = node.callFrame;
    let key = `${functionName || '(anonymous)'} ${url.split('/').pop()}:${lineNumber + 1}`;
    const entry = sourceMapOf(url, distDir)?.findEntry(lineNumber, columnNumber);
    if (entry?.originalSource) key = `${entry.name ?? (functionName || '(anonymous)')} ${entry.originalSource.replace(/^(\.\.\/)+/, '')}:${entry.originalLine + 1}`;
    self.set(key, (self.get(key) ?? 0) + node.hitCount);
    if (!['(idle)', '(program)', '(garbage collector)'].includes(functionName)) total += node.hitCount;
  }
  const lines = [...self].sort((a, b) => b[1] - a[1]).slice(0, SUMMARY_LINES).map(([key, hits]) => `${(hits * intervalMs).toFixed(0).padStart(8)} ms  ${key}`);
  return `${(total * intervalMs).toFixed(0)} ms of JavaScript and the functions it called (idle, program and GC apart) over ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s\n${lines.join('\n')}\n`;
}
