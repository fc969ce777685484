// Browser-level interop of the tracker, with peers no one here wrote and with the peerfetch engine:
//  - stock webtorrent 3.0.21 in two Chromium visitors exchanges a torrent through our tracker;
//  - the peerfetch page engine works against bittorrent-tracker's own server;
//  - two visitors connected to two tracker instances sharing Redis exchange pieces.
// Real Chromium, WebRTC inside the private network namespace that `npm test` creates.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error bittorrent-tracker ships no type declarations
import TrackerServer from 'bittorrent-tracker/server';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { ensureTestVideo } from '../harness/media.js';
import type { RunningProcess } from '../harness/processes.js';
import { createTestSite, openPage, originBytesFor, playInPage, startOrigin, stats, type TestSite } from '../browser/test-site.js';
import { startTracker, type RunningTracker } from '../../src/tracker/index.js';
import { startRedis, type RunningRedis } from './redis-server.js';

/** Browser tests: a cold Chromium, WebRTC setup and a short video played at 2x fit well within this (ms). */
const BROWSER_TEST_MS = 120_000;

const chromium = useChromium({ webrtc: true });

const WEBTORRENT_PAGE = `<!doctype html><meta charset="utf-8"><title>webtorrent interop</title>
<script type="module">
  import WebTorrent from '/webtorrent.min.js';
  window.WebTorrent = WebTorrent;
  window.ready = true;
</script>`;

/** Serves the webtorrent page and webtorrent's own browser build from 127.0.0.1. */
async function serveWebtorrentPage(): Promise<{ url: string; close: () => Promise<void> }> {
  const lib = readFileSync('node_modules/webtorrent/dist/webtorrent.min.js');
  const server = http.createServer((req, res) => {
    if (req.url === '/webtorrent.min.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript' });
      res.end(lib);
    } else {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end(WEBTORRENT_PAGE);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('stock webtorrent through the peerfetch tracker', () => {
  let tracker: RunningTracker;
  let site: { url: string; close: () => Promise<void> };
  beforeAll(async () => {
    [tracker, site] = await Promise.all([startTracker({ port: 0 }), serveWebtorrentPage()]);
  });
  afterAll(async () => {
    await Promise.allSettled([tracker?.close(), site?.close()]);
  });

  it('two Chromium visitors exchange a torrent', { timeout: BROWSER_TEST_MS }, async () => {
    const seeder = await (await chromium.viewer('wt-seeder')).newPage();
    const leecher = await (await chromium.viewer('wt-leecher')).newPage();
    await Promise.all([seeder.goto(site.url), leecher.goto(site.url)]);
    await Promise.all([seeder.waitForFunction(() => (window as any).ready), leecher.waitForFunction(() => (window as any).ready)]);

    // The file is made in the seeder page (2 MiB + a partial piece), hashed there with SHA-256.
    const { magnet, sha, length } = await seeder.evaluate(
      (announce) =>
        new Promise<{ magnet: string; sha: string; length: number }>((resolve) => {
          const bytes = new Uint8Array(2 * 1024 * 1024 + 12_345);
          for (let i = 0; i < bytes.length; i += 65_536) crypto.getRandomValues(bytes.subarray(i, i + 65_536));
          void crypto.subtle.digest('SHA-256', bytes).then((d) => {
            const sha = Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, '0')).join('');
            const client = new (window as any).WebTorrent();
            (window as any).client = client;
            client.seed(new File([bytes], 'interop.bin'), { announce: [announce] }, (torrent: any) => resolve({ magnet: torrent.magnetURI, sha, length: bytes.length }));
          });
        }),
      tracker.url,
    );
    expect(magnet).toContain(encodeURIComponent(tracker.url));

    const received = await leecher.evaluate(
      (magnetURI) =>
        new Promise<{ sha: string; length: number; peers: number }>((resolve, reject) => {
          const client = new (window as any).WebTorrent();
          (window as any).client = client;
          client.on('error', (e: Error) => reject(e));
          client.add(magnetURI, (torrent: any) => {
            torrent.on('done', async () => {
              const blob: Blob = await torrent.files[0].blob();
              const bytes = new Uint8Array(await blob.arrayBuffer());
              const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
              resolve({ sha: Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join(''), length: bytes.length, peers: torrent.numPeers });
            });
          });
        }),
      magnet,
    );
    expect(received).toMatchObject({ sha, length });
    expect(received.peers).toBeGreaterThanOrEqual(1);
    // The exchange was signaled by this tracker.
    expect(tracker.stats().offersRelayed).toBeGreaterThanOrEqual(1);
    expect(tracker.stats().answersRelayed).toBeGreaterThanOrEqual(1);
  });
});

describe('the peerfetch engine with other trackers and with Redis scale-out', () => {
  let site: TestSite;
  let origin: RunningProcess;
  let originUrl: string;
  const VIDEO_URL = '/media/video.mp4';

  beforeAll(async () => {
    const video = await ensureTestVideo({ name: 'tracker-interop', seconds: 8, kbps: 1500 });
    site = await createTestSite(video, '64KiB');
    ({ origin, originUrl } = await startOrigin(site.dir));
  }, BROWSER_TEST_MS);
  afterAll(async () => {
    await origin?.stop();
  });

  /** Seeder fetches the whole video; viewer plays it; returns the viewer's stats. */
  async function exchange(seederTracker: string, viewerTracker: string, names: [string, string]) {
    const seeder = await chromium.viewer(names[0]);
    const seederPage = await seeder.newPage();
    await openPage(seederPage, originUrl, { tracker: seederTracker });
    await seederPage.evaluate((url) => fetch(url).then((r) => r.arrayBuffer()).then((b) => b.byteLength), VIDEO_URL);
    const viewer = await chromium.viewer(names[1]);
    const page = await viewer.newPage();
    await openPage(page, originUrl, { tracker: viewerTracker });
    await waitFor(async () => (await stats(page)).peers >= 1, { what: 'the viewer to connect to the seeder', timeoutMs: 60_000 });
    await playInPage(page, VIDEO_URL, { rate: 2 });
    const viewerStats = await stats(page);
    assertNoPageErrors(seeder);
    assertNoPageErrors(viewer);
    return viewerStats;
  }

  it('works against bittorrent-tracker\'s own server', { timeout: BROWSER_TEST_MS }, async () => {
    const server = new TrackerServer({ udp: false, http: false, ws: true, stats: false });
    server.on('warning', () => {});
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `ws://127.0.0.1:${server.ws.address().port}`;
    try {
      const viewerStats = await exchange(url, url, ['bt-seeder', 'bt-viewer']);
      expect(viewerStats.bytesFromPeers).toBeGreaterThanOrEqual(site.videoBytes.length / 2);
      expect(await originBytesFor(originUrl, 'bt-viewer')).toBeLessThan(site.videoBytes.length / 2);
    } finally {
      // Not awaited: bittorrent-tracker's close waits for its WebSockets, which the pages
      // (closed after the test by useChromium) still hold.
      server.close();
    }
  });

  it('connects two visitors on two tracker instances sharing Redis', { timeout: BROWSER_TEST_MS }, async () => {
    let redis: RunningRedis | undefined;
    const trackers: RunningTracker[] = [];
    try {
      redis = await startRedis();
      trackers.push(await startTracker({ port: 0, redisUrl: redis.url }), await startTracker({ port: 0, redisUrl: redis.url }));
      const [a, b] = trackers as [RunningTracker, RunningTracker];
      const viewerStats = await exchange(a.url, b.url, ['redis-seeder', 'redis-viewer']);
      expect(viewerStats.bytesFromPeers).toBeGreaterThanOrEqual(site.videoBytes.length / 2);
      expect(await originBytesFor(originUrl, 'redis-viewer')).toBeLessThan(site.videoBytes.length / 2);
      // Each visitor was only ever connected to its own instance.
      expect(a.stats().connections).toBe(1);
      expect(b.stats().connections).toBe(1);
    } finally {
      await Promise.allSettled(trackers.map((t) => t.close()));
      await redis?.stop();
    }
  });
});
