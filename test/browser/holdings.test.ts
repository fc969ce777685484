import { describe, expect, it } from 'vitest';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { fetchInPage, openPage, recordedEvents, recordEvents, stats, useTestSite } from './test-site.js';

// What a visitor tells its peers it holds stays true while its store evicts pieces: evicted
// pieces are withdrawn, a peer is not asked for them, and the swarm keeps the offload of what is
// really held (issue 13 item 1).

const chromium = useChromium({ webrtc: true });
const VIDEO_URL = '/media/video.mp4';
const PIECE_BYTES = 64 * 1024;
/** The first visitor's store keeps 12 pieces of the ~35: most of what it fetches is evicted again while its peer listens. */
const CAP_PIECES = 12;

const fixture = useTestSite({ video: { name: 'holdings', seconds: 12, kbps: 1500 }, pieceSize: '64KiB' });

describe('holdings stay true', () => {
  it('a small store cap with a peer connected: evicted pieces are withdrawn, the peer takes what is really held', async () => {
    const size = fixture.site.videoBytes.length;
    const pieces = Math.ceil(size / PIECE_BYTES);
    // The viewer joins first, so that it hears every have (and every withdrawal) as it happens.
    const viewer = await chromium.viewer('holdings-viewer');
    const viewerPage = await viewer.newPage();
    await recordEvents(viewerPage, ['asset:fallback']);
    await openPage(viewerPage, fixture.originUrl, { tracker: fixture.trackerUrl, swarm: 'holdings' });

    const small = await chromium.viewer('holdings-small-store');
    const smallPage = await small.newPage();
    await openPage(smallPage, fixture.originUrl, { tracker: fixture.trackerUrl, swarm: 'holdings', storeCapBytes: String(CAP_PIECES * PIECE_BYTES) });
    await waitFor(async () => (await stats(viewerPage)).peers >= 1, { what: 'the two visitors to connect' });

    // The small store fetches the whole video: the SW stores each piece and evicts the oldest.
    expect((await fetchInPage(smallPage, VIDEO_URL)).sha256).toBe(fixture.site.videoSha256);
    const held = await waitFor(async () => {
      const asset = (await stats(smallPage)).assets.find((entry) => entry.url.endsWith(VIDEO_URL));
      // Every piece was announced once; what is still held is at most the cap's worth.
      return asset && asset.held <= CAP_PIECES && asset.held > 0 ? asset.held : undefined;
    }, { what: 'the small store to hold at most its cap' });
    expect(held).toBeLessThan(pieces / 2);

    // The viewer fetches the whole video: the pieces the small store still holds come from it,
    // the others from the origin at once (no request to a peer that no longer has them).
    expect((await fetchInPage(viewerPage, VIDEO_URL)).sha256).toBe(fixture.site.videoSha256);
    const after = await waitFor(async () => {
      const current = await stats(viewerPage);
      return current.bytesFromPeers + current.bytesFromOrigin >= size ? current : undefined;
    }, { what: 'every piece of the viewer to be counted' });
    console.info(`small store held ${held} of ${pieces} pieces; the viewer got ${after.bytesFromPeers} B from it`);
    // The swarm kept its offload: (nearly) every piece the small store still held came from it.
    expect(after.bytesFromPeers).toBeGreaterThanOrEqual((held - 1) * PIECE_BYTES);
    // The peer is still trusted at the end: its rank was not sunk by pieces it had honestly lost.
    const reasons = (await recordedEvents(viewerPage, 'asset:fallback')).map((event) => event.detail.reason as string);
    expect(reasons.filter((reason) => reason === 'slow-peers' || reason === 'timeout')).toEqual([]);
    expect((await stats(viewerPage)).peers).toBe(1);
    assertNoPageErrors(small);
    assertNoPageErrors(viewer);
  });
});
