import { cp, readdir, readFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { ensureTestHls, ensureTestVideo } from '../harness/media.js';
import { startProcess, type RunningProcess } from '../harness/processes.js';
import { fetchInPage, openPage, startOrigin, startTracker, stats, createTestSite, type TestSite, waitUntilHeld } from './test-site.js';

// HLS through the same path: hls.js fetches segments, each segment is a manifest asset served
// by the SW; the playlist is never touched; segments ahead of the playhead come from peers.

const chromium = useChromium({ webrtc: true });

let site: TestSite;
let segments: string[];
let segmentBytes = 0;
let origin: RunningProcess;
let originUrl: string;
let tracker: RunningProcess;
let trackerUrl: string;

beforeAll(async () => {
  const video = await ensureTestVideo({ name: 'hls-mp4', seconds: 4, kbps: 500 });
  const hls = await ensureTestHls({ name: 'hls', seconds: 16, kbps: 1500 });
  site = await createTestSite(video, '64KiB');
  await cp(hls, join(site.dir, 'hls'), { recursive: true });
  await copyFile('node_modules/hls.js/dist/hls.min.js', join(site.dir, 'hls.min.js'));
  // Rebuild the manifest now that the HLS folder is part of the site.
  const manifest = await startProcess('node', ['bin/peerfetch.js', 'manifest', site.dir, '--piece-size', '64KiB']);
  expect(await manifest.exited).toBe(0);
  segments = (await readdir(join(site.dir, 'hls'))).filter((name) => name.endsWith('.ts')).sort();
  for (const name of segments) segmentBytes += (await readFile(join(site.dir, 'hls', name))).length;
  ({ origin, originUrl } = await startOrigin(site.dir));
  ({ tracker, trackerUrl } = await startTracker());
});

afterAll(async () => {
  await Promise.allSettled([origin?.stop(), tracker?.stop()]);
});

/** Starts hls.js on the page's playlist; records the segment URLs it asked for in `window.requested`. */
async function startHls(page: Page, maxBufferLength: number): Promise<void> {
  await page.addScriptTag({ url: '/hls.min.js' });
  await page.evaluate((maxBuffer) => {
    const w = window as unknown as { Hls: any; requested: string[]; ended: boolean; hlsError?: string };
    w.requested = [];
    w.ended = false;
    const video = document.createElement('video');
    video.muted = true;
    document.body.append(video);
    const hls = new w.Hls({ maxBufferLength: maxBuffer, maxMaxBufferLength: maxBuffer });
    hls.on(w.Hls.Events.FRAG_LOADING, (_event: unknown, data: { frag: { url: string } }) => w.requested.push(data.frag.url));
    hls.on(w.Hls.Events.ERROR, (_event: unknown, data: { fatal: boolean; details: string }) => {
      if (data.fatal) w.hlsError = data.details;
    });
    video.addEventListener('ended', () => (w.ended = true));
    hls.loadSource('/hls/index.m3u8');
    hls.attachMedia(video);
    void video.play();
  }, maxBufferLength);
}

describe('HLS', () => {
  it('the manifest lists every segment and no playlist', async () => {
    const manifest = JSON.parse(await readFile(join(site.dir, 'peerfetch-manifest.json'), 'utf8')) as { assets: { url: string }[] };
    const urls = manifest.assets.map((asset) => asset.url);
    expect(urls.filter((url) => url.startsWith('/hls/'))).toEqual(segments.map((name) => `/hls/${name}`));
    expect(urls.some((url) => url.endsWith('.m3u8'))).toBe(false);
  });

  it('segments ahead of the playhead come from peers, and the stream plays to its end', async () => {
    const seeder = await chromium.viewer('hls-seeder');
    const seederPage = await seeder.newPage();
    await openPage(seederPage, originUrl, { tracker: trackerUrl });
    for (const name of segments) expect((await fetchInPage(seederPage, `/hls/${name}`)).status).toBe(200);
    for (const name of segments) await waitUntilHeld(seederPage, `/hls/${name}`);

    const viewer = await chromium.viewer('hls-viewer');
    const page = await viewer.newPage();
    await openPage(page, originUrl, { tracker: trackerUrl });
    await waitFor(async () => (await stats(page)).peers >= 1, { what: 'a connection to the HLS seeder' });
    // hls.js keeps only ~2 s buffered, so it asks for segments one at a time as playback goes.
    await startHls(page, 2);

    // Some segment hls.js has not asked for yet is already held, all of it from peers.
    const prefetched = await waitFor(
      async () => {
        const requested = await page.evaluate(() => (window as unknown as { requested: string[] }).requested);
        const held = (await stats(page)).assets.filter(
          (asset) => asset.url.includes('/hls/') && /^p+$/.test(asset.sources) && !requested.includes(asset.url),
        );
        return held.length > 0 ? held.map((asset) => asset.url) : undefined;
      },
      { what: 'a segment prefetched from peers before hls.js asked for it' },
    );
    expect(prefetched.length).toBeGreaterThan(0);

    await waitFor(() => page.evaluate(() => (window as unknown as { ended: boolean }).ended), {
      timeoutMs: 60_000,
      what: 'the HLS stream to play to its end',
    });
    expect(await page.evaluate(() => (window as unknown as { hlsError?: string }).hlsError)).toBeUndefined();
    const after = await stats(page);
    expect(after.bytesFromPeers).toBeGreaterThanOrEqual(segmentBytes / 2);
    assertNoPageErrors(viewer);
  });
});
