// What reloading a playing <video> costs in Chromium, the floor under the pause of a first visit's
// takeover (src/engine/media-takeover.ts): a playing element gets a new src (the same bytes, a new
// fragment), its position and play(); the pause a viewer sees is its `waiting` to its `playing`.
// Sources: `blob` (the file in memory: no network, no service worker: Chromium's own cost) and
// `http` (a loopback server answering Range requests at once). Positions: just after a keyframe
// (the reloaded element decodes one frame) and just before the next one (it decodes the whole GOP
// up to its position). No WebRTC: runs outside a network namespace.
//
//   node bench/media-reload.mjs [--runs 5]
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { launchChromium } from './lib/browser.mjs';
import { ensureMp4 } from './lib/media.mjs';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Number(values.runs);
if (!Number.isSafeInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${values.runs}`);

// The benchmark's video: 1.2 Mbit/s H.264, 640x360, 25 fps, a keyframe every 2 s (bench/lib/media.mjs).
const { mp4 } = await ensureMp4(join(import.meta.dirname, '.cache'), { seconds: 20, kbps: 1200 });
const video = await readFile(mp4);
/**
 * Positions (s) of the reload: early in the first GOP (where a first visit's early takeover happens),
 * just before the keyframe at 2 s, just past it, and just before the one at 4 s.
 */
const POSITIONS = [0.5, 1.9, 2.05, 3.9];
/** Playback rate of the element before the reload, to reach the position sooner (the reloaded element plays at 1). */
const APPROACH_RATE = 4;

const server = createServer((request, response) => {
  if (request.url === '/') {
    response.writeHead(200, { 'content-type': 'text/html' });
    return response.end('<!doctype html><video muted playsinline></video>');
  }
  const range = /bytes=(\d+)-(\d*)/.exec(request.headers.range ?? '');
  const start = range ? Number(range[1]) : 0;
  const end = range?.[2] ? Number(range[2]) : video.length - 1;
  response.writeHead(range ? 206 : 200, {
    'content-type': 'video/mp4',
    'accept-ranges': 'bytes',
    'content-length': end - start + 1,
    ...(range ? { 'content-range': `bytes ${start}-${end}/${video.length}` } : {}),
  });
  response.end(video.subarray(start, end + 1));
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await launchChromium();
try {
  const results = [];
  for (const source of ['blob', 'http']) {
    for (const position of POSITIONS) {
      const pauses = [];
      for (let run = 0; run < runs; run++) {
        const page = await (await browser.newContext()).newPage();
        await page.goto(`${origin}/`);
        const trace = await page.evaluate(
          async ({ source, position, rate }) => {
            const element = document.querySelector('video');
            const url = source === 'blob' ? URL.createObjectURL(await (await fetch('/video.mp4')).blob()) : `${location.origin}/video.mp4`;
            element.src = url;
            element.playbackRate = rate;
            await element.play();
            // Plays up to the position (checked every 5 ms), then reloads.
            await new Promise((resolve, reject) => {
              const check = () => {
                if (element.error) return reject(new Error(`media error ${element.error.code}`));
                if (element.currentTime >= position) return resolve();
                setTimeout(check, 5);
              };
              check();
            });
            const at = element.currentTime;
            const events = {};
            const start = performance.now();
            for (const type of ['loadstart', 'loadedmetadata', 'seeked', 'canplay', 'waiting', 'playing']) {
              element.addEventListener(type, () => (events[type] ??= Math.round(performance.now() - start)));
            }
            const resumed = new Promise((resolve) => element.addEventListener('playing', resolve, { once: true }));
            element.src = `${url}#reloaded`;
            element.currentTime = at;
            element.play().catch(() => {});
            await resumed;
            return { at, events, pauseMs: performance.now() - start };
          },
          { source, position, rate: APPROACH_RATE },
        );
        pauses.push(trace.pauseMs);
        if (run === 0) console.log(`[media-reload] ${source} at ${trace.at.toFixed(2)} s: ${JSON.stringify(trace.events)} (ms after the new src)`);
        await page.context().close();
      }
      pauses.sort((a, b) => a - b);
      results.push({ source, position, medianMs: pauses[Math.floor(pauses.length / 2)], minMs: pauses[0], maxMs: pauses[pauses.length - 1] });
    }
  }
  console.log('| source | reload at (s) | pause median (min-max), ms |');
  console.log('| --- | --- | --- |');
  for (const { source, position, medianMs, minMs, maxMs } of results) {
    console.log(`| ${source} | ${position} | ${medianMs.toFixed(0)} (${minMs.toFixed(0)}-${maxMs.toFixed(0)}) |`);
  }
} finally {
  await browser.close();
  server.close();
}
