import { describe, expect, it } from 'vitest';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { openSeeder, fetchInPage, openPage, originBytesFor, stats, useTestSite } from './test-site.js';

// How the engine decides where pieces come from: prefetching ahead from peers, splitting the
// origin's work in a flash crowd, seeding again after a reload, and several tabs sharing one
// presence in the swarm. Real Chromium, real WebRTC in the private namespace, real processes.

const chromium = useChromium({ webrtc: true });
const VIDEO_URL = '/media/video.mp4';
const PIECE_SIZE = '64KiB';
const PIECE_BYTES = 64 * 1024;

const fixture = useTestSite({ video: { name: 'scheduling', seconds: 12, kbps: 1500 }, pieceSize: PIECE_SIZE, originArgs: ['--rate', '600'] });

/** A viewer that already holds the whole video and seeds it. */
const seeder = (name: string) => openSeeder(chromium, fixture, name);

describe('scheduling', () => {
  it('prefetches the pieces after the stream head from peers before the page asks for them', async () => {
    await seeder('pre-seeder');
    const viewer = await chromium.viewer('pre-viewer');
    const page = await viewer.newPage();
    await openPage(page, fixture.originUrl, { tracker: fixture.trackerUrl });
    await waitFor(async () => (await stats(page)).peers >= 1, { what: 'a peer connection' });

    // The page asks for the first bytes only: one piece.
    const head = await fetchInPage(page, VIDEO_URL, 'bytes=0-999');
    expect(head).toMatchObject({ status: 206, length: 1000 });
    // The engine fetches the next pieces on its own, from the peer that holds them. A peer that
    // looks too slow at that moment (a loaded machine) may lose a piece to the origin by design,
    // so most of the window, not all of it, must come from the peer; with prefetching from peers
    // broken none would.
    const sources = await waitFor(
      async () => {
        const asset = (await stats(page)).assets.find((entry) => entry.url.endsWith(VIDEO_URL));
        return asset && !asset.sources.slice(1, 9).includes('.') ? asset.sources : undefined;
      },
      { what: 'pieces 1..8 fetched ahead of the page' },
    );
    console.info(`prefetch window sources: ${sources.slice(0, 9)}`);
    const fromPeer = [...sources.slice(1, 9)].filter((code) => code === 'p').length;
    expect(fromPeer).toBeGreaterThanOrEqual(6);
    assertNoPageErrors(viewer);
  });

  it('a flash crowd fetches each piece from the origin about once for the whole swarm', async () => {
    const names = ['flash-1', 'flash-2', 'flash-3'];
    const pages = [];
    for (const name of names) {
      const context = await chromium.viewer(name);
      const page = await context.newPage();
      await openPage(page, fixture.originUrl, { tracker: fixture.trackerUrl });
      pages.push(page);
    }
    // The crowd knows itself before the video starts (a live event's waiting room).
    for (const page of pages) {
      await waitFor(async () => (await stats(page)).peers >= names.length - 1, { what: 'a full mesh of three viewers' });
    }
    const results = await Promise.all(pages.map((page) => fetchInPage(page, VIDEO_URL)));
    for (const result of results) expect(result.sha256).toBe(fixture.site.videoSha256);

    const size = fixture.site.videoBytes.length;
    const perViewer = await Promise.all(names.map((name) => originBytesFor(fixture.originUrl, name)));
    const total = perViewer.reduce((sum, bytes) => sum + bytes, 0);
    console.info(`flash crowd of 3: origin sent ${total} B for a ${size} B video (${(total / size).toFixed(2)} copies), per viewer ${perViewer.join(', ')}`);
    // Without splitting every viewer would fetch the whole file: 3 copies. Measured with the owner
    // chosen among the peers reading the video: 1.37-1.60 copies when this test runs alone, up to
    // 1.70 after the file's other tests or beside busy loops on both cores.
    expect(total).toBeLessThan(2 * size);
    // What the origin did not send came from peers: more than one whole copy between the three.
    // Not a share per viewer: a viewer that runs ahead of the others (the others starved of CPU)
    // fetches the pieces they own itself rather than wait for owners still behind, as it should;
    // measured so, 2.23-2.39 MB of the 2.25 MB video from the origin for that viewer.
    const fromPeers = await Promise.all(pages.map(async (page) => (await stats(page)).bytesFromPeers));
    expect(fromPeers.reduce((sum, bytes) => sum + bytes, 0)).toBeGreaterThan(size);
  });

  it('pieces stored in an earlier visit are announced and seeded again after a reload', async () => {
    const first = await seeder('reload-seeder');
    await first.page.reload();
    await first.page.waitForFunction(() => 'peerfetch' in window);
    await first.page.evaluate(() => window.peerfetch!.ready);

    const viewer = await chromium.viewer('reload-viewer');
    const page = await viewer.newPage();
    await openPage(page, fixture.originUrl, { tracker: fixture.trackerUrl });
    await waitFor(async () => (await stats(page)).peers >= 1, { what: 'a connection to the reloaded seeder' });
    expect((await fetchInPage(page, VIDEO_URL)).sha256).toBe(fixture.site.videoSha256);

    const size = fixture.site.videoBytes.length;
    expect((await stats(page)).bytesFromPeers).toBeGreaterThan(size / 2);
    const reloaded = await stats(first.page);
    expect(reloaded.bytesFromOrigin).toBe(0);
    expect(reloaded.bytesUploaded).toBeGreaterThan(size / 2);
    expect(reloaded.assets[0]?.held).toBe(Math.ceil(size / PIECE_BYTES));
  });

  it('tabs of one visitor share one swarm presence, and the next tab takes over when the leader closes', async () => {
    const source = await seeder('tabs-seeder');
    const visitor = await chromium.viewer('tabs-visitor');
    const leader = await visitor.newPage();
    await openPage(leader, fixture.originUrl, { tracker: fixture.trackerUrl });
    await waitFor(async () => (await stats(leader)).peers >= 1, { what: 'the leader tab to connect' });
    const follower = await visitor.newPage();
    await openPage(follower, fixture.originUrl, { tracker: fixture.trackerUrl });

    // The follower's request is served through the leader's peers; the follower holds none itself.
    expect((await fetchInPage(follower, VIDEO_URL, 'bytes=0-299999')).status).toBe(206);
    const followerStats = await stats(follower);
    expect(followerStats.peers).toBe(0);
    expect(followerStats.bytesFromPeers).toBeGreaterThan(0);
    expect((await stats(source.page)).peers).toBe(1);

    await leader.close();
    await waitFor(async () => (await stats(follower)).peers >= 1, { what: 'the follower to take over the swarm presence' });
    const peerBytesBefore = (await stats(follower)).bytesFromPeers;
    expect((await fetchInPage(follower, VIDEO_URL)).sha256).toBe(fixture.site.videoSha256);
    // The new leader fetches from its own peers now.
    expect((await stats(follower)).bytesFromPeers).toBeGreaterThan(peerBytesBefore);
    // No piece came twice from the origin for this visitor, across both tabs (on a quiet machine
    // none comes at all; under load a slow peer's piece may be rescued from the origin once).
    expect(await originBytesFor(fixture.originUrl, 'tabs-visitor')).toBeLessThan(fixture.site.videoBytes.length);
    assertNoPageErrors(visitor);
  });
});
