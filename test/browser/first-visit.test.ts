import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { EARLY_TAKEOVER_MAX_BYTES } from '../../src/engine/media-takeover.js';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { openPage, openSeeder, originBytesFor, stats, useTestSite } from './test-site.js';

// A first visit to a page whose player is in its HTML: the <video> starts loading while the page
// is parsed, before peerfetch's service worker controls the page. Chromium reads such a video
// through one long network request and refuses a resource mixed from network and SW-built
// responses, so the element must either stay on the network (every request passed through) or be
// taken over as a new resource that the SW answers entirely.

const chromium = useChromium({ webrtc: true });
// The cap (190 KB/s, 1.5 Mbit/s) keeps the video's own request running (12 s of 1.2 Mbit/s) when the SW
// takes control, as on a real first visit; unthrottled, Chromium has the whole file in a moment.
const fixture = useTestSite({ video: { name: 'first-visit', seconds: 12, kbps: 1200 }, pieceSize: '64KiB', originArgs: ['--rate', '190'] });

/** Writes a page with the player in its HTML and the README's deferred script tag; returns its URL. */
async function inPageHtml(name: string, attributes: Record<string, string>): Promise<string> {
  const data = Object.entries(attributes)
    .map(([key, value]) => ` data-${key}="${value}"`)
    .join('');
  await writeFile(
    join(fixture.site.dir, name),
    `<!doctype html><meta charset="utf-8"><title>player in the page</title>
<script src="/peerfetch.js"${data} defer></script>
<body><video src="/media/video.mp4" muted autoplay></video></body>`,
  );
  return `${fixture.originUrl}/${name}`;
}

function videoState(page: Page) {
  return page.evaluate(() => {
    const video = document.querySelector('video')!;
    return {
      currentSrc: video.currentSrc,
      currentTime: video.currentTime,
      duration: video.duration,
      bufferedEnd: video.buffered.length > 0 ? video.buffered.end(video.buffered.length - 1) : 0,
      ended: video.ended,
      error: video.error ? `${video.error.code}: ${video.error.message}` : null,
    };
  });
}

describe('player in the page on a first visit', () => {
  it('is taken over once the SW controls the page, plays to its end and gets pieces from peers', async () => {
    // One swarm for the seeder's test page and this page (the default key is the page's path).
    const seeder = await openSeeder(chromium, fixture, 'first-visit-seeder', { swarm: 'first-visit' });
    const viewer = await chromium.viewer('first-visit-viewer');
    const page = await viewer.newPage();
    await page.addInitScript(() => {
      (window as unknown as { controlledAtStart: boolean }).controlledAtStart = navigator.serviceWorker.controller !== null;
    });
    await page.goto(await inPageHtml('in-page.html', { tracker: fixture.trackerUrl, swarm: 'first-visit' }));
    // Loading began on the network: the page had no SW when the player started.
    expect(await page.evaluate(() => (window as unknown as { controlledAtStart: boolean }).controlledAtStart)).toBe(false);
    await page.evaluate(() => window.peerfetch!.ready);
    await waitFor(async () => (await videoState(page)).ended || (await videoState(page)).error, {
      timeoutMs: 60_000,
      what: 'the video to end',
    });
    const state = await videoState(page);
    // A resource mixed from network and SW-built responses fails in Chromium (PIPELINE_ERROR_READ).
    expect(state.error).toBeNull();
    expect(state.ended).toBe(true);
    expect(state.currentSrc).toMatch(/\/media\/video\.mp4#peerfetch$/);
    expect((await stats(page)).bytesFromPeers).toBeGreaterThan(0);
    // What the element had loaded from the network before the reload and read again came from
    // peers: the origin sent this viewer less than the whole video.
    expect(await originBytesFor(fixture.originUrl, 'first-visit-viewer', '/media/video.mp4')).toBeLessThan(fixture.site.videoBytes.length);
    assertNoPageErrors(seeder.context);
    assertNoPageErrors(viewer);
  });

  it('is taken over early while its only peer holds nothing: plays to its end, the origin sends little twice', async () => {
    // A peer of the swarm that holds nothing (its page loads no video), there before the viewer.
    const empty = await chromium.viewer('first-visit-empty-peer');
    await openPage(await empty.newPage(), fixture.originUrl, { tracker: fixture.trackerUrl, swarm: 'first-visit-empty' });
    const viewer = await chromium.viewer('first-visit-alone');
    const page = await viewer.newPage();
    await page.goto(await inPageHtml('in-page-empty-peer.html', { tracker: fixture.trackerUrl, swarm: 'first-visit-empty' }));
    await page.evaluate(() => window.peerfetch!.ready);
    await waitFor(async () => (await videoState(page)).ended || (await videoState(page)).error, { timeoutMs: 60_000, what: 'the video to end' });
    const state = await videoState(page);
    expect(state.error).toBeNull();
    // Reloaded early although the peer had nothing to give: its pieces went through the SW into the store.
    expect(state.currentSrc).toMatch(/\/media\/video\.mp4#peerfetch$/);
    const viewerStats = await stats(page);
    expect(viewerStats.bytesServed).toBeGreaterThan(0);
    expect(viewerStats.assets.find((asset) => asset.url.endsWith('/media/video.mp4'))?.held).toBeGreaterThan(0);
    // What the origin sent twice is bounded by what the element may have loaded before an early takeover.
    expect(await originBytesFor(fixture.originUrl, 'first-visit-alone', '/media/video.mp4')).toBeLessThanOrEqual(fixture.site.videoBytes.length + EARLY_TAKEOVER_MAX_BYTES);
    assertNoPageErrors(viewer);
    assertNoPageErrors(empty);
  });

  it('first visits of three viewers joining one after another: the first is taken over early, the later ones get the video from peers', async () => {
    const url = await inPageHtml('in-page-staggered.html', { tracker: fixture.trackerUrl, swarm: 'first-visit-staggered' });
    const names = ['first-visit-staggered-1', 'first-visit-staggered-2', 'first-visit-staggered-3'];
    const contexts: BrowserContext[] = [];
    const pages: Page[] = [];
    for (const [index, name] of names.entries()) {
      if (index > 0) {
        // The next viewer comes once the one before it was taken over and stored pieces past the
        // start, as viewers arriving seconds apart find them.
        const before = pages[index - 1]!;
        await waitFor(
          async () => {
            const state = await videoState(before);
            const held = (await stats(before)).assets.find((asset) => asset.url.endsWith('/media/video.mp4'))?.held ?? 0;
            if (state.error) throw new Error(`viewer ${index} failed: ${state.error}`);
            if (state.currentSrc.endsWith('#peerfetch') && held >= 8) return true;
            throw new Error(`viewer ${index}: ${JSON.stringify(state)}, ${held} pieces held`);
          },
          { timeoutMs: 30_000, what: `viewer ${index} to be taken over and hold 8 pieces` },
        );
      }
      const context = await chromium.viewer(name);
      contexts.push(context);
      const page = await context.newPage();
      await page.goto(url);
      pages.push(page);
    }
    for (const [index, page] of pages.entries()) {
      await waitFor(async () => (await videoState(page)).ended || (await videoState(page)).error, { timeoutMs: 60_000, what: `viewer ${index + 1}'s video to end` });
      const state = await videoState(page);
      // A resource mixed from network and SW-built responses fails in Chromium (PIPELINE_ERROR_READ).
      expect(state.error, `viewer ${index + 1}`).toBeNull();
      expect(state.ended, `viewer ${index + 1}`).toBe(true);
      expect(state.currentSrc, `viewer ${index + 1}`).toMatch(/\/media\/video\.mp4#peerfetch$/);
    }
    const video = fixture.site.videoBytes.length;
    const origin = await Promise.all(names.map((name) => originBytesFor(fixture.originUrl, name, '/media/video.mp4')));
    // The first viewer, alone: the origin sent it the video and at most what its element had loaded before the takeover again.
    expect(origin[0]).toBeLessThanOrEqual(video + EARLY_TAKEOVER_MAX_BYTES);
    for (const index of [1, 2]) {
      // The later viewers: what the element had loaded from the origin before the reload and read
      // again came from peers, and so did more of the rest: the origin sent less than the video.
      expect((await stats(pages[index]!)).bytesFromPeers, `viewer ${index + 1}`).toBeGreaterThan(0);
      expect(origin[index], `viewer ${index + 1}: origin bytes ${origin.join(', ')} of ${video}`).toBeLessThan(video);
    }
    for (const context of contexts) assertNoPageErrors(context);
  });

  it('stays on the network when it is not taken over: a seek after the SW took control plays on', async () => {
    const viewer = await chromium.viewer('first-visit-direct');
    const page = await viewer.newPage();
    // P2P off: nothing to gain from a takeover on a first visit, so the element keeps its request.
    await page.goto(await inPageHtml('in-page-p2p-off.html', { p2p: 'off' }));
    await page.evaluate(() => window.peerfetch!.ready);
    await waitFor(async () => (await videoState(page)).currentTime > 0, { what: 'the video to play' });
    // Far past what the capped origin has delivered: Chromium must issue a new Range request.
    await page.evaluate(() => {
      const video = document.querySelector('video')!;
      video.currentTime = video.duration * 0.8;
    });
    await waitFor(async () => {
      const state = await videoState(page);
      return state.error ?? (state.ended || state.currentTime > 0);
    });
    await waitFor(async () => (await videoState(page)).ended || (await videoState(page)).error, { timeoutMs: 30_000, what: 'the video to end' });
    const state = await videoState(page);
    expect(state.error).toBeNull();
    expect(state.currentSrc).toMatch(/\/media\/video\.mp4$/);
    // The SW answered nothing of it: every request of that element went to the network.
    expect((await stats(page)).bytesServed).toBe(0);
    assertNoPageErrors(viewer);
  });
});
