import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { ensureTestVideo } from '../harness/media.js';
import { startProcess, type RunningProcess } from '../harness/processes.js';
import { createTestSite, openPage, originBytesFor, playInPage, startOrigin, startTracker, stats, type TestSite, waitUntilHeld } from './test-site.js';

// A CDN that checks signed URLs: media is served only to requests carrying the right token in the
// query. The manifest (`--ignore-query token`) matches the asset whatever the token, and the SW
// fetches from the origin with the URL the page asked for, token included.

const chromium = useChromium({ webrtc: true });
const TOKEN = 's3cret-7f2a';

let site: TestSite;
let origin: RunningProcess;
let originUrl: string;
let tracker: RunningProcess;
let trackerUrl: string;

beforeAll(async () => {
  site = await createTestSite(await ensureTestVideo({ name: 'signed', seconds: 8, kbps: 1200 }), '64KiB');
  const manifest = await startProcess('node', ['bin/peerfetch.js', 'manifest', site.dir, '--piece-size', '64KiB', '--ignore-query', 'token,expires']);
  expect(await manifest.exited).toBe(0);
  ({ origin, originUrl } = await startOrigin(site.dir, ['--require-query', `token=${TOKEN}`]));
  ({ tracker, trackerUrl } = await startTracker());
});

afterAll(async () => {
  await Promise.allSettled([origin?.stop(), tracker?.stop()]);
});

describe('signed URLs', () => {
  it('matches the asset whatever its token, fetches with the token, and shares it between visitors', async () => {
    const size = site.videoBytes.length;
    // The origin really checks: no token, no bytes.
    expect((await fetch(`${originUrl}/media/video.mp4`)).status).toBe(403);
    expect((await fetch(`${originUrl}/media/video.mp4?token=${TOKEN}`, { headers: { Range: 'bytes=0-0' } })).status).toBe(206);
    const signed = `/media/video.mp4?token=${TOKEN}&expires=1893456000`;

    const first = await chromium.viewer('signed-first');
    const firstPage = await first.newPage();
    await openPage(firstPage, originUrl, { tracker: trackerUrl });
    await playInPage(firstPage, signed, { rate: 2 });
    await waitUntilHeld(firstPage, '/media/video.mp4');
    const firstStats = await stats(firstPage);
    // The SW answered the signed URL (it matched the manifest) and its own origin fetches passed
    // the token check (a 403 would have left the pieces unfetched and the video unplayed).
    expect(firstStats.bytesServed).toBeGreaterThanOrEqual(size);
    expect(firstStats.bytesFromOrigin).toBeGreaterThanOrEqual(size);

    const second = await chromium.viewer('signed-second');
    const secondPage = await second.newPage();
    await openPage(secondPage, originUrl, { tracker: trackerUrl });
    await waitFor(async () => (await stats(secondPage)).peers >= 1, { what: 'the second visitor to connect' });
    await playInPage(secondPage, signed, { rate: 2 });
    const secondStats = await stats(secondPage);
    // What the second visitor saw, for reading a failure: where each piece came from, its peers.
    console.info(`second visitor: ${secondStats.bytesFromPeers} B from peers, sources ${secondStats.assets.map((asset) => asset.sources).join(' ')}, peers ${JSON.stringify(secondStats.peerList)}`);
    expect(secondStats.bytesFromPeers).toBeGreaterThanOrEqual(size / 2);
    expect(await originBytesFor(originUrl, 'signed-second')).toBeLessThan(size / 2);
    assertNoPageErrors(first);
    assertNoPageErrors(second);
  });
});
