import { describe, expect, it } from 'vitest';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { openSeeder, fetchInPage, openPage, stats, useTestSite } from './test-site.js';

// The run-time controls a site (and the demo) offers its viewers: peer-to-peer off and on,
// and clearing what this device stored.

const chromium = useChromium({ webrtc: true });
const VIDEO_URL = '/media/video.mp4';

const fixture = useTestSite({ video: { name: 'controls', seconds: 6, kbps: 1000 }, pieceSize: '64KiB' });

describe('controls', () => {
  it('P2P off leaves the swarm and takes nothing from peers; on joins again', async () => {
    const { page: seeder } = await openSeeder(chromium, fixture, 'ctl-seeder');

    const context = await chromium.viewer('ctl-viewer');
    const page = await context.newPage();
    await openPage(page, fixture.originUrl, { tracker: fixture.trackerUrl });
    await waitFor(async () => (await stats(page)).peers >= 1, { what: 'a connection to the seeder' });

    await page.evaluate(() => window.peerfetch!.setP2P(false));
    await waitFor(async () => (await stats(page)).peers === 0 && (await stats(seeder)).peers === 0, { what: 'both ends to drop the connection' });
    expect((await fetchInPage(page, VIDEO_URL, 'bytes=0-99999')).status).toBe(206);
    expect((await stats(page)).bytesFromPeers).toBe(0);

    await page.evaluate(() => window.peerfetch!.setP2P(true));
    await waitFor(async () => (await stats(page)).peers >= 1, { what: 'the viewer to join the swarm again' });
    expect((await fetchInPage(page, VIDEO_URL)).sha256).toBe(fixture.site.videoSha256);
    expect((await stats(page)).bytesFromPeers).toBeGreaterThan(0);
    assertNoPageErrors(context);
  });

  it('clearing storage deletes the stored pieces, and the next play fetches them again', async () => {
    const context = await chromium.viewer('ctl-clear');
    const page = await context.newPage();
    await openPage(page, fixture.originUrl, { tracker: fixture.trackerUrl });
    await fetchInPage(page, VIDEO_URL);
    const before = await waitFor(async () => {
      const current = await stats(page);
      return current.assets[0] && current.assets[0].held === current.assets[0].pieces ? current : undefined;
    }, { what: 'every piece to be stored' });

    await page.evaluate(() => window.peerfetch!.clearStorage());
    expect((await stats(page)).assets[0]?.held).toBe(0);
    const fromStoreBefore = (await stats(page)).bytesFromStore;
    expect((await fetchInPage(page, VIDEO_URL)).sha256).toBe(fixture.site.videoSha256);
    const after = await waitFor(async () => {
      const current = await stats(page);
      return current.bytesFromOrigin >= before.bytesFromOrigin + fixture.site.videoBytes.length ? current : undefined;
    }, { what: 'every piece to be fetched from the origin again' });
    // Nothing came from the store: it was empty.
    expect(after.bytesFromStore).toBe(fromStoreBefore);
    assertNoPageErrors(context);
  });

  it('destroy() leaves the swarm, keeps the last figures and fires no more events', async () => {
    const seeder = await (await chromium.viewer('ctl-destroy-seeder')).newPage();
    await openPage(seeder, fixture.originUrl, { tracker: fixture.trackerUrl });
    const context = await chromium.viewer('ctl-destroy');
    const page = await context.newPage();
    await openPage(page, fixture.originUrl, { tracker: fixture.trackerUrl });
    await waitFor(async () => (await stats(page)).peers >= 1 && (await stats(seeder)).peers >= 1, { what: 'a connection' });
    await fetchInPage(page, VIDEO_URL, 'bytes=0-99999');

    const { before, after, eventsAfter } = await page.evaluate(async () => {
      const peerfetch = window.peerfetch!;
      let events = 0;
      peerfetch.addEventListener('stats', () => events++);
      const before = peerfetch.getStats();
      peerfetch.destroy();
      peerfetch.destroy(); // idempotent
      events = 0;
      // Two stats intervals: a live instance would have fired twice.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      return { before, after: peerfetch.getStats(), eventsAfter: events };
    });
    expect(eventsAfter).toBe(0);
    expect(after.bytesServed).toBe(before.bytesServed);
    expect(after.bytesFromOrigin).toBe(before.bytesFromOrigin);
    await waitFor(async () => (await stats(seeder)).peers === 0, { what: 'the seeder to see the peer leave' });
    assertNoPageErrors(context);
  });
});
