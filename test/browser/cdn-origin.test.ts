import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { ensureTestVideo } from '../harness/media.js';
import { startProcess, type RunningProcess } from '../harness/processes.js';
import { createTestSite, openPage, originBytesFor, playInPage, startOrigin, startTracker, stats, type TestSite, waitUntilHeld } from './test-site.js';

// Video usually lives on a CDN, another origin than the page. The manifest lists it by absolute
// URL (`--base-url`), the SW answers the cross-origin <video> requests with its own responses
// and fetches from the CDN with CORS; visitors still share its pieces.

const chromium = useChromium({ webrtc: true });

let site: TestSite;
let cdn: RunningProcess;
let cdnUrl: string;
let page: RunningProcess;
let pageUrl: string;
let tracker: RunningProcess;
let trackerUrl: string;

beforeAll(async () => {
  site = await createTestSite(await ensureTestVideo({ name: 'cdn', seconds: 8, kbps: 1200 }), '64KiB');
  cdn = await startProcess('node', ['bin/peerfetch.js', 'origin', site.dir, '--port', '0', '--host', '127.0.0.2'], {
    readyPattern: /http:\/\/127\.0\.0\.2:\d+/,
    name: 'cdn origin',
  });
  cdnUrl = cdn.ready![0];
  const manifest = await startProcess('node', ['bin/peerfetch.js', 'manifest', site.dir, '--piece-size', '64KiB', '--base-url', cdnUrl]);
  expect(await manifest.exited).toBe(0);
  ({ origin: page, originUrl: pageUrl } = await startOrigin(site.dir));
  ({ tracker, trackerUrl } = await startTracker());
});

afterAll(async () => {
  await Promise.allSettled([cdn?.stop(), page?.stop(), tracker?.stop()]);
});

describe('assets on a CDN origin', () => {
  it('plays the cross-origin video through the SW and shares it between visitors', async () => {
    const videoUrl = `${cdnUrl}/media/video.mp4`;
    const size = site.videoBytes.length;

    const first = await chromium.viewer('cdn-first');
    const firstPage = await first.newPage();
    await openPage(firstPage, pageUrl, { tracker: trackerUrl });
    await playInPage(firstPage, videoUrl, { rate: 4 });
    await waitUntilHeld(firstPage, videoUrl);
    const firstStats = await stats(firstPage);
    // The SW answered: it counted what it served and fetched from the CDN itself.
    expect(firstStats.bytesServed).toBeGreaterThanOrEqual(size);
    expect(firstStats.bytesFromOrigin).toBeGreaterThanOrEqual(size);

    const second = await chromium.viewer('cdn-second');
    const secondPage = await second.newPage();
    await openPage(secondPage, pageUrl, { tracker: trackerUrl });
    await waitFor(async () => (await stats(secondPage)).peers >= 1, { what: 'the second visitor to connect' });
    await playInPage(secondPage, videoUrl, { rate: 4 });
    const secondStats = await stats(secondPage);
    // What the second visitor saw, for reading a failure: where each piece came from, its peers.
    console.info(`second visitor: ${secondStats.bytesFromPeers} B from peers, sources ${secondStats.assets.map((asset) => asset.sources).join(' ')}, peers ${JSON.stringify(secondStats.peerList)}`);
    expect(secondStats.bytesFromPeers).toBeGreaterThanOrEqual(size / 2);
    expect(await originBytesFor(cdnUrl, 'cdn-second')).toBeLessThan(size / 2);
    assertNoPageErrors(first);
    assertNoPageErrors(second);
  });
});
