import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import type { ManifestJson } from '../../src/shared/manifest.js';
import { openPage, recordEvents, recordedEvents, stats } from './test-site.js';
import { playbackFigures, useLiveSite, watchPlayback } from './live-site.js';

// A live DASH stream in real time: ffmpeg's dash muxer writes 2 s fMP4 segments with a window of
// 6 and a SegmentTimeline MPD into the site, `peerfetch manifest --watch` lists each segment and
// then publishes the MPD, and dash.js plays it live in two Chromium viewers through peerfetch.

/** Length of the live stream (s): two viewers play several new segments, then it ends. */
const STREAM_SECONDS = 36;
/** Seconds of media each viewer must play while both are watching. */
const SECONDS_WATCHED = 10;

const chromium = useChromium({ webrtc: true });
const live = useLiveSite('dash', { format: 'dash', seconds: STREAM_SECONDS, kbps: 800, windowSegments: 6 });

/** Starts dash.js on the live MPD, on the video of watchPlayback. */
async function playDash(page: Page): Promise<void> {
  await watchPlayback(page);
  await page.addScriptTag({ url: '/dash.all.min.js' });
  await page.evaluate((mpd) => {
    const w = window as unknown as { dashjs: any; live: { fatal?: string }; liveVideo: HTMLVideoElement };
    const player = w.dashjs.MediaPlayer().create();
    // The test network has no time server: the page and the packager share this machine's clock.
    player.updateSettings({ streaming: { utcSynchronization: { enabled: false } }, debug: { logLevel: 0 } });
    player.on(w.dashjs.MediaPlayer.events.ERROR, (event: { error?: { message?: string } }) => {
      w.live.fatal = event.error?.message ?? 'dash.js error';
    });
    player.initialize(w.liveVideo, mpd, true);
  }, live.playlist);
}

describe('live DASH', () => {
  it('two dash.js viewers of a live MPD take segment pieces from each other, verified', async () => {
    const pages: Page[] = [];
    for (const name of ['dash-a', 'dash-b']) {
      const page = await (await chromium.viewer(name)).newPage();
      await recordEvents(page, ['piece:verified', 'piece:rejected']);
      await openPage(page, live.originUrl, { tracker: live.trackerUrl });
      pages.push(page);
    }
    await Promise.all(pages.map((page) => waitFor(async () => (await stats(page)).peers >= 1, { what: 'the two viewers connected' })));
    await live.startSource();
    await Promise.all(pages.map(playDash));
    await Promise.all(
      pages.map((page, index) =>
        waitFor(async () => {
          const figures = await playbackFigures(page);
          if (figures.fatal) throw new Error(`dash.js failed: ${figures.fatal}`);
          return figures.played >= SECONDS_WATCHED;
        }, {
          timeoutMs: SECONDS_WATCHED * 1000 + 30_000,
          what: `DASH viewer ${index} to play ${SECONDS_WATCHED} s`,
        }),
      ),
    );

    const manifest = JSON.parse(await readFile(join(live.site.dir, 'peerfetch-manifest.json'), 'utf8')) as ManifestJson;
    expect(manifest.live).toEqual([expect.objectContaining({ playlist: '/dash/live.mpd', segmentMs: 2000 })]);
    expect(manifest.assets.some((asset) => asset.url === '/dash/init-stream0.m4s')).toBe(true);
    for (const [index, page] of pages.entries()) {
      const figures = await playbackFigures(page);
      const verified = (await recordedEvents(page, 'piece:verified')).filter((event) => String(event.detail.url).includes('/dash/chunk-'));
      const s = await stats(page);
      console.log(`DASH viewer ${index}: ${verified.length} pieces verified from peers, ${s.bytesFromPeers} B from peers, ${s.bytesFromOrigin} B from the origin, rebuffers ${figures.rebuffers}`);
      expect(figures.fatal).toBeUndefined();
      expect(await recordedEvents(page, 'piece:rejected')).toEqual([]);
      assertNoPageErrors(page.context());
    }
    // Between them the two viewers took pieces of live segments from each other.
    const fromPeers = await Promise.all(pages.map(async (page) => (await recordedEvents(page, 'piece:verified')).length));
    expect(fromPeers[0]! + fromPeers[1]!).toBeGreaterThan(0);
  });
});
