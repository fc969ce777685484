import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { ensureTestVideo, startLiveSource, type LiveSource } from '../harness/media.js';
import { startProcess, type RunningProcess } from '../harness/processes.js';
import type { ManifestJson } from '../../src/shared/manifest.js';
import { createTestSite, openPage, recordEvents, recordedEvents, startOrigin, startTracker, stats, type TestSite } from './test-site.js';

// A live HLS stream in real time: ffmpeg writes 2 s segments with a window of 6 into the site,
// `peerfetch manifest --watch` lists each segment and then publishes the playlist, and hls.js
// plays it live in Chromium viewers through peerfetch. One source for the whole file (a live
// test needs real time); the stream ends with #EXT-X-ENDLIST after STREAM_SECONDS.

/** Length of the live stream (s): long enough for three viewers to play several new segments each, then end. */
const STREAM_SECONDS = 40;
/** Segments hls.js must play while all viewers are watching, before the figures are read. */
const SEGMENTS_WATCHED = 5;

const chromium = useChromium({ webrtc: true });

let site: TestSite;
let watcher: RunningProcess;
let source: LiveSource;
let origin: RunningProcess;
let originUrl: string;
let tracker: RunningProcess;
let trackerUrl: string;

beforeAll(async () => {
  site = await createTestSite(await ensureTestVideo({ name: 'live-page', seconds: 2, kbps: 200 }), '64KiB');
  await copyFile('node_modules/hls.js/dist/hls.min.js', join(site.dir, 'hls.min.js'));
  await mkdir(join(site.dir, 'live'));
  watcher = await startProcess('node', ['bin/peerfetch.js', 'manifest', site.dir, '--watch', '--piece-size', '64KiB'], {
    readyPattern: /watching/,
    name: 'peerfetch manifest --watch',
  });
  ({ origin, originUrl } = await startOrigin(site.dir));
  ({ tracker, trackerUrl } = await startTracker());
  source = startLiveSource(join(site.dir, 'live'), { format: 'hls', seconds: STREAM_SECONDS, kbps: 800, windowSegments: 6 });
  // The published playlist appears once the first segment is complete and listed.
  await waitFor(() => readFile(join(site.dir, 'live', 'index.m3u8'), 'utf8').catch(() => ''), { what: 'the first published playlist' });
});

afterAll(async () => {
  await Promise.allSettled([source?.stop(), watcher?.stop(), origin?.stop(), tracker?.stop()]);
});

interface LiveFigures {
  /** Buffer underruns after the first frame played (`waiting` with nothing buffered ahead). */
  rebuffers: number;
  /** Segments hls.js finished loading. */
  loaded: number;
  /** Wall clock minus the program date time of the frame on screen (ms), sampled once a second. */
  latencies: number[];
  ended: boolean;
  fatal?: string;
}

/** Starts hls.js on the live playlist; `window.live` collects the figures. */
async function playLive(page: Page): Promise<void> {
  await page.addScriptTag({ url: '/hls.min.js' });
  await page.evaluate(() => {
    const w = window as unknown as { Hls: any; live: LiveFigures };
    const live: LiveFigures = (w.live = { rebuffers: 0, loaded: 0, latencies: [], ended: false });
    const video = document.createElement('video');
    video.muted = true;
    document.body.append(video);
    const hls = new w.Hls();
    let playing = false;
    video.addEventListener('playing', () => (playing = true));
    video.addEventListener('waiting', () => {
      if (!playing) return;
      // A rebuffer is a stall with nothing buffered ahead: the bytes were late. A stall with
      // data ahead (a decoder or main-thread hiccup on a busy machine, hls.js stepping over a
      // hole at a segment border) happens alike without peerfetch and says nothing about delivery.
      const { buffered, currentTime } = video;
      let ahead = 0;
      for (let i = 0; i < buffered.length; i++) if (buffered.start(i) <= currentTime + 0.1) ahead = Math.max(ahead, buffered.end(i) - currentTime);
      if (ahead < 0.1) live.rebuffers++;
    });
    video.addEventListener('ended', () => (live.ended = true));
    hls.on(w.Hls.Events.FRAG_LOADED, () => live.loaded++);
    hls.on(w.Hls.Events.ERROR, (_event: unknown, data: { fatal: boolean; details: string }) => {
      if (data.fatal) live.fatal = data.details;
    });
    setInterval(() => {
      const date: Date | null = hls.playingDate;
      if (playing && !video.paused && date) live.latencies.push(Date.now() - date.getTime());
    }, 1000);
    hls.loadSource('/live/index.m3u8');
    hls.attachMedia(video);
    void video.play();
  });
}

function figures(page: Page): Promise<LiveFigures> {
  return page.evaluate(() => (window as unknown as { live: LiveFigures }).live);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

describe('live HLS', () => {
  it('three viewers at the live edge take pieces of new segments from each other, verified, without rebuffering', async () => {
    const pages: Page[] = [];
    for (const name of ['live-a', 'live-b', 'live-c']) {
      const context = await chromium.viewer(name);
      const page = await context.newPage();
      await recordEvents(page, ['piece:verified', 'piece:rejected']);
      await openPage(page, originUrl, { tracker: trackerUrl });
      pages.push(page);
    }
    // An origin-only viewer beside them, for the latency it gets without peerfetch.
    const plain = await (await chromium.viewer('live-origin-only')).newPage();
    await openPage(plain, originUrl, { p2p: 'off' });
    await Promise.all(pages.map((page) => waitFor(async () => (await stats(page)).peers >= 2, { what: 'every viewer connected to both others' })));
    await Promise.all([...pages, plain].map(playLive));

    const startLoaded = await Promise.all(pages.map(async (page) => (await figures(page)).loaded));
    await Promise.all(
      pages.map((page, index) =>
        waitFor(async () => (await figures(page)).loaded >= startLoaded[index]! + SEGMENTS_WATCHED, {
          timeoutMs: (SEGMENTS_WATCHED + 4) * 2000 + 10_000,
          what: `viewer ${index} to play ${SEGMENTS_WATCHED} new segments`,
        }),
      ),
    );

    const results = await Promise.all(pages.map(async (page) => ({ live: await figures(page), stats: await stats(page), verified: await recordedEvents(page, 'piece:verified') })));
    const plainLive = await figures(plain);
    for (const [index, { live, stats: s, verified }] of results.entries()) {
      console.log(
        `live viewer ${index}: ${verified.length} pieces verified from peers, ${s.bytesFromPeers} B from peers, ${s.bytesFromOrigin} B from the origin, ` +
          `rebuffers ${live.rebuffers}, latency median ${median(live.latencies)} ms over ${live.latencies.length} samples`,
      );
    }
    console.log(`live origin-only viewer: latency median ${median(plainLive.latencies)} ms, rebuffers ${plainLive.rebuffers}`);

    for (const { live, verified } of results) {
      expect(live.fatal).toBeUndefined();
      expect(live.rebuffers).toBe(0);
      expect(live.latencies.length).toBeGreaterThan(0);
      // Pieces of live segments reached this viewer from its peers, each verified against the live manifest.
      expect(verified.filter((event) => String(event.detail.url).includes('/live/seg-')).length).toBeGreaterThan(0);
    }
    for (const page of pages) expect(await recordedEvents(page, 'piece:rejected')).toEqual([]);
    // Together the swarm took a large share from itself: each new piece came from the origin once, then from peers.
    const fromPeers = results.reduce((sum, { stats: s }) => sum + s.bytesFromPeers, 0);
    const fromOrigin = results.reduce((sum, { stats: s }) => sum + s.bytesFromOrigin, 0);
    console.log(`live swarm offload: ${((100 * fromPeers) / (fromPeers + fromOrigin)).toFixed(1)}% (ideal with 3 viewers: 66.7%)`);
    expect(fromPeers).toBeGreaterThan(fromOrigin / 2);
    for (const page of pages) assertNoPageErrors(page.context());
  });

  it('a stream that ends (#EXT-X-ENDLIST) plays to its end, and the manifest says it ended', async () => {
    const context = await chromium.viewer('live-end');
    const page = await context.newPage();
    await openPage(page, originUrl, { tracker: trackerUrl });
    await playLive(page);
    expect(await source.exited).toBe(0);
    await waitFor(async () => (await figures(page)).ended, { timeoutMs: 40_000, what: 'the ended stream to play to its end' });
    const live = await figures(page);
    expect(live.fatal).toBeUndefined();
    expect(await readFile(join(site.dir, 'live', 'index.m3u8'), 'utf8')).toContain('#EXT-X-ENDLIST');
    const manifest = JSON.parse(await readFile(join(site.dir, 'peerfetch-manifest.json'), 'utf8')) as ManifestJson;
    expect(manifest.live).toEqual([expect.objectContaining({ playlist: '/live/index.m3u8', ended: true })]);
    // The page followed the manifest as the window moved: it knows every segment of the final window,
    // and none of the first ones (they left the window, and the page dropped them).
    const segmentUrls = manifest.assets.filter((asset) => asset.url.startsWith('/live/')).map((asset) => asset.url);
    const known = (await stats(page)).assets.map((asset) => new URL(asset.url).pathname);
    for (const url of segmentUrls) expect(known).toContain(url);
    expect(known).not.toContain('/live/seg-00000.ts');
    assertNoPageErrors(context);
  });
});
