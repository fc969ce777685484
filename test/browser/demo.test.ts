/**
 * The demo page in real Chromium: the film plays through peerfetch as MP4 and as HLS, the panel
 * shows exactly what getStats() says, three viewers show a swarm offload above zero, and the page
 * still plays when peerfetch cannot start. Saves screenshots under test-results/.
 * Runs in the browser project, in the private network namespace: the engine opens WebRTC offers
 * as soon as it joins the tracker.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_DEMO_RATE_KBPS, startDemo, type RunningDemo } from '../../src/cli/demo.js';
import type { PeerfetchStats } from '../../src/engine/stats.js';
import { assertNoPageErrors, useChromium, waitFor, type Page } from '../harness/browser.js';

const chromium = useChromium({ webrtc: true });
let demo: RunningDemo;
const ARTIFACTS = path.resolve('test-results');

beforeAll(async () => {
  // Capped like `npm start`, so the first viewer's player cannot pull the film before the others join.
  demo = await startDemo({ port: 0, trackerPort: 0, bytesPerSecond: DEFAULT_DEMO_RATE_KBPS * 1000 });
  // The page is only meaningful with the built scripts and hls.js.
  expect(demo.warnings).toEqual([]);
  expect(demo.viewerUrls.length).toBeGreaterThanOrEqual(3);
  await mkdir(ARTIFACTS, { recursive: true });
});

afterAll(async () => {
  await demo?.close();
});

/** Waits until the demo's <video> has played `seconds` of the film. */
async function playedFor(page: Page, seconds: number): Promise<void> {
  await page.waitForFunction((s) => (document.querySelector('video')?.currentTime ?? 0) > s, seconds, { timeout: 60_000 });
}

const engineStats = (page: Page): Promise<PeerfetchStats> => page.evaluate(() => window.peerfetch!.getStats());

/** What the panel shows, read in the same task as getStats(), right after the panel redrew for a `stats` event. */
interface PanelReading {
  stats: PeerfetchStats;
  figures: Record<string, { value: number; text: string }>;
  peers: { id: string; received: number; sent: number }[];
  /** Piece map cells of the film: one source letter per piece. */
  pieceMap: string;
}

function readPanelAtNextStats(page: Page): Promise<PanelReading> {
  return page.evaluate(
    () =>
      new Promise<PanelReading>((resolve) => {
        const peerfetch = window.peerfetch!;
        // Added after the panel's own listener, so it runs once the panel has drawn this event.
        const listener = (): void => {
          peerfetch.removeEventListener('stats', listener);
          const figures: PanelReading['figures'] = {};
          for (const cell of document.querySelectorAll<HTMLElement>('[data-stat]')) {
            figures[cell.dataset.stat!] = { value: Number(cell.dataset.value), text: cell.textContent ?? '' };
          }
          const peers = [...document.querySelectorAll<HTMLTableRowElement>('#peer-rows tr[data-peer]')].map((row) => ({
            id: row.dataset.peer!,
            received: Number(row.cells[1]!.dataset.value),
            sent: Number(row.cells[2]!.dataset.value),
          }));
          const codes: Record<string, string> = { 'src-p': 'p', 'src-o': 'o', 'src-s': 's', 'src-none': '.' };
          const pieceMap = [...document.querySelectorAll('#piece-map i')].map((cell) => codes[cell.className] ?? '?').join('');
          resolve({ stats: peerfetch.getStats(), figures, peers, pieceMap });
        };
        peerfetch.addEventListener('stats', listener);
      }),
  );
}

/** Parses a figure as the panel prints it (`12 B`, `3.4 kB`, `1.25 MB`, `48.2 %`) and its rounding step. */
function parseFigure(text: string): { value: number; step: number } {
  const match = /^(\d+(?:\.(\d+))?) (B|kB|MB|%)$/.exec(text);
  if (!match) throw new Error(`unexpected figure ${JSON.stringify(text)}`);
  const scale = { B: 1, kB: 1e3, MB: 1e6, '%': 0.01 }[match[3] as 'B' | 'kB' | 'MB' | '%'];
  return { value: Number(match[1]) * scale, step: 10 ** -(match[2]?.length ?? 0) * scale };
}

/** The panel of `page` shows exactly its engine's figures (values, and texts that round them). */
async function expectPanelMatchesEngine(page: Page): Promise<PeerfetchStats> {
  const { stats, figures, peers, pieceMap } = await readPanelAtNextStats(page);
  for (const name of ['bytesFromPeers', 'bytesFromOrigin', 'bytesFromStore', 'bytesUploaded', 'offloadRatio', 'peers'] as const) {
    expect([name, figures[name]?.value]).toEqual([name, stats[name]]);
    if (name === 'peers') {
      expect(figures[name]!.text).toBe(String(stats.peers));
    } else {
      const shown = parseFigure(figures[name]!.text);
      expect(Math.abs(shown.value - stats[name])).toBeLessThanOrEqual(shown.step / 2 + 1e-9);
    }
  }
  expect(peers).toEqual(stats.peerList.map(({ id, bytesDownloaded, bytesUploaded }) => ({ id, received: bytesDownloaded, sent: bytesUploaded })));
  expect(pieceMap).toBe(stats.assets.find((asset) => asset.url.endsWith('/media/film.mp4'))!.sources);
  return stats;
}

/** The swarm figure of the panel once it equals what the tracker says now (the page polls every 2 s). */
async function swarmOffloadShown(page: Page): Promise<number> {
  return waitFor(
    async () => {
      const shown = Number(await page.getAttribute('[data-swarm-stat="offloadRatio"]', 'data-value'));
      const response = await fetch(`${demo.trackerUrl.replace('ws:', 'http:')}/stats.json`);
      const { swarms } = (await response.json()) as { swarms: { offloadRatio: number }[] };
      return shown > 0 && swarms.some((swarm) => swarm.offloadRatio === shown) ? shown : undefined;
    },
    { timeoutMs: 60_000, what: 'a swarm offload above zero, shown as the tracker reports it' },
  );
}

describe('demo page', () => {
  it('plays the film through peerfetch and draws getStats() in its panel', async () => {
    const viewer = await chromium.viewer('demo-alice');
    const page = await viewer.newPage();
    await page.goto(demo.url);
    await playedFor(page, 1);
    expect(await page.textContent('#mode')).toContain('peerfetch ready');
    expect(await page.textContent('#viewer-name')).toBe('viewer 1');
    // The SW controlled the video's requests: the engine counted the bytes handed to the player.
    await waitFor(async () => {
      const stats = await engineStats(page);
      return stats.bytesServed > 0 && stats.bytesFromOrigin > 0;
    }, { what: 'bytes served through peerfetch' });
    const stats = await expectPanelMatchesEngine(page);
    expect(stats.offloadRatio).toBe(0); // alone in the swarm: everything from the origin
    expect(stats.peers).toBe(0);
    assertNoPageErrors(viewer);
  });

  it('controls: P2P off and on, the upload cap, clearing the stored pieces', async () => {
    const viewer = await chromium.viewer('demo-controls');
    const page = await viewer.newPage();
    await page.goto(demo.url);
    await playedFor(page, 1);
    // The whole film stored (≈ 10 s at the origin's cap), so the player asks for nothing more once it is cleared.
    await waitFor(async () => (await engineStats(page)).assets.some((asset) => asset.held > 0 && asset.held === asset.pieces), {
      timeoutMs: 60_000,
      what: 'the whole film stored',
    });

    await page.click('.switch'); // the toggle's label: the checkbox itself is visually hidden
    expect(await page.evaluate(() => window.peerfetch!.p2p)).toBe(false);
    await page.click('.switch');
    expect(await page.evaluate(() => window.peerfetch!.p2p)).toBe(true);

    // The cap goes to the engine in bytes per second (the engine has no getter: record the calls).
    await page.evaluate(() => {
      const peerfetch = window.peerfetch! as unknown as { setUploadLimit(limit?: number): void; limits: (number | undefined)[] };
      const original = peerfetch.setUploadLimit.bind(peerfetch);
      peerfetch.limits = [];
      peerfetch.setUploadLimit = (limit) => {
        peerfetch.limits.push(limit);
        original(limit);
      };
    });
    await page.selectOption('#upload-limit', '100000');
    await page.selectOption('#upload-limit', '');
    expect(await page.evaluate(() => (window.peerfetch as unknown as { limits: unknown[] }).limits)).toEqual([100_000, undefined]);

    await page.click('#clear-storage');
    await page.waitForFunction(() => document.querySelector('#control-note')?.textContent?.includes('cleared'));
    const cleared = await engineStats(page);
    expect(cleared.assets.every((asset) => asset.held === 0)).toBe(true);
    const { pieceMap } = await readPanelAtNextStats(page);
    expect(pieceMap).toMatch(/^\.+$/);
    assertNoPageErrors(viewer);
  });

  it('switches to HLS: hls.js plays the segments through peerfetch and the piece map follows', async () => {
    const viewer = await chromium.viewer('demo-hls');
    const page = await viewer.newPage();
    await page.goto(demo.url);
    await page.waitForSelector('#player video');
    await page.click('[data-format="hls"]');
    await page.waitForFunction(() => typeof (window as unknown as { Hls?: unknown }).Hls === 'function');
    await playedFor(page, 3);
    expect(page.url()).toMatch(/#hls$/);
    const segments = await waitFor(async () => {
      const held = (await engineStats(page)).assets.filter((asset) => asset.url.includes('/media/hls/') && asset.held > 0);
      return held.length >= 2 ? held : undefined;
    }, { what: 'HLS segments held by the engine' });
    // One cell per piece of every segment, in the same colours as `sources`.
    const map = await page.$$eval('#piece-map .asset', (groups) => groups.map((group) => group.children.length));
    const hlsAssets = (await engineStats(page)).assets.filter((asset) => asset.url.includes('/media/hls/'));
    expect(map).toEqual(hlsAssets.map((asset) => asset.pieces));
    expect(segments.length).toBeGreaterThanOrEqual(2);
    assertNoPageErrors(viewer);
  });

  it('live tab: two viewers play the live stream at its edge, share pieces of its new segments, and the panel and latency follow it', async () => {
    const pages: Page[] = [];
    const viewers = [];
    for (const name of ['demo-live-one', 'demo-live-two']) {
      const viewer = await chromium.viewer(name);
      viewers.push(viewer);
      const page = await viewer.newPage();
      await page.goto(`${demo.url}#live`);
      pages.push(page);
    }
    for (const page of pages) await playedFor(page, 1);
    // Pieces of live segments that one viewer took from the other, verified by its engine.
    const isLive = (asset: { url: string }): boolean => new URL(asset.url).pathname.startsWith('/media/live/');
    let last: PeerfetchStats[] = [];
    await waitFor(async () => {
      last = await Promise.all(pages.map(engineStats));
      return last.some((stats) => stats.assets.some((asset) => isLive(asset) && asset.sources.includes('p')));
    }, { timeoutMs: 60_000, what: 'a viewer to take pieces of a live segment from the other' }).catch((error: Error) => {
      const seen = last.map((stats) => ({ peers: stats.peers, bytesFromPeers: stats.bytesFromPeers, live: stats.assets.filter(isLive).map((asset) => asset.sources).join(' ') }));
      throw new Error(`${error.message}; viewers saw: ${JSON.stringify(seen)}`);
    });
    for (const page of pages) {
      expect(page.url()).toMatch(/#live$/);
      // The piece map shows the live window, in the engine's own colours, read in the task that drew it.
      const { stats, figures, pieceMap } = await readPanelAtNextStats(page);
      expect(pieceMap).toBe(stats.assets.filter(isLive).map((asset) => asset.sources).join(''));
      expect(pieceMap.length).toBeGreaterThan(0);
      expect(figures.offloadRatio!.value).toBe(stats.offloadRatio);
      expect(figures.bytesFromPeers!.value).toBe(stats.bytesFromPeers);
      // The latency against the stream's program date time, once a frame is on screen.
      const latency = Number(await waitFor(() => page.getAttribute('#live-status', 'data-latency'), { what: 'a live latency shown' }));
      expect(latency).toBeGreaterThan(0);
      console.log(`demo live viewer: latency ${latency} ms, offload ${(stats.offloadRatio * 100).toFixed(1)}%, live pieces ${pieceMap}`);
    }
    await pages[1]!.screenshot({ path: path.join(ARTIFACTS, 'demo-live.png'), fullPage: true });
    for (const viewer of viewers) assertNoPageErrors(viewer);
  });

  it('without ffmpeg: the live tab says there is no live stream, and the film still plays', async () => {
    const plain = await startDemo({ port: 0, trackerPort: 0, ffmpeg: '/nonexistent/peerfetch-test-ffmpeg' });
    try {
      expect(plain.live).toBeUndefined();
      expect(plain.warnings).toEqual([expect.stringContaining('no live stream: ffmpeg could not start')]);
      const viewer = await chromium.viewer('demo-no-ffmpeg');
      const page = await viewer.newPage();
      await page.goto(`${plain.url}#live`);
      await page.waitForSelector('#player .unavailable');
      expect(await page.textContent('#player')).toContain('No live stream: ffmpeg could not start');
      expect(await page.$('#player video')).toBeNull();
      await page.click('[data-format="mp4"]');
      await playedFor(page, 1);
      expect(await page.textContent('#mode')).toContain('peerfetch ready');
      assertNoPageErrors(viewer);
    } finally {
      await plain.close();
    }
  });

  it('three viewers: the panel shows a swarm offload above zero and each engine\'s own figures (screenshot)', async () => {
    const pages: Page[] = [];
    const viewers = [];
    for (const [index, name] of ['demo-one', 'demo-two', 'demo-three'].entries()) {
      const viewer = await chromium.viewer(name, { viewport: { width: 1360, height: 900 } });
      viewers.push(viewer);
      const page = await viewer.newPage();
      // Each on its own loopback address, as a person would open them: distinct origins.
      await page.goto(demo.viewerUrls[index]!);
      pages.push(page);
      if (index === 0) {
        // The first viewer holds part of the film before the others arrive.
        await waitFor(async () => (await engineStats(page)).assets.some((asset) => asset.held >= 6), { what: 'viewer one to hold pieces' });
      }
    }
    const [, , third] = pages as [Page, Page, Page];
    let last: PeerfetchStats[] = [];
    await waitFor(async () => {
      last = await Promise.all(pages.map(engineStats));
      return last[1]!.bytesFromPeers > 0 && last[2]!.bytesFromPeers > 0 && last.every((stats) => stats.peers >= 1);
    }, { timeoutMs: 60_000, what: 'viewers two and three to take pieces from peers' }).catch((error: Error) => {
      const summary = last.map(({ bytesFromPeers, bytesFromOrigin, peers, assets }) => ({ bytesFromPeers, bytesFromOrigin, peers, film: assets[0]?.sources }));
      throw new Error(`${error.message}; viewers: ${JSON.stringify(summary)}`);
    });

    const swarmOffload = await swarmOffloadShown(third);
    expect(swarmOffload).toBeGreaterThan(0);
    for (const page of pages) await expectPanelMatchesEngine(page);
    const thirdStats = await engineStats(third);
    expect(thirdStats.offloadRatio).toBeGreaterThan(0);
    expect(await third.textContent('#viewer-name')).toBe('viewer 3');

    await playedFor(third, 2); // a frame of the film on the picture, not a black box
    await expectPanelMatchesEngine(third);
    await third.screenshot({ path: path.join(ARTIFACTS, 'demo-three-viewers.png'), fullPage: true });
    // The first viewer, which served the others: its uploads and peers.
    await pages[0]!.screenshot({ path: path.join(ARTIFACTS, 'demo-first-viewer.png'), fullPage: true });
    for (const viewer of viewers) assertNoPageErrors(viewer);
  });

  it('plays from the origin when peerfetch.js does not load', async () => {
    const viewer = await chromium.viewer('demo-noscript');
    await viewer.route('**/peerfetch.js', (route) => route.abort());
    const page = await viewer.newPage();
    await page.goto(demo.url);
    await playedFor(page, 1);
    expect(await page.textContent('#mode')).toContain('did not load');
    expect(await page.isDisabled('#clear-storage')).toBe(true);
    assertNoPageErrors(viewer, [/Failed to load resource/]);
  });

  it('plays from the origin when peerfetch.ready never resolves', async () => {
    const viewer = await chromium.viewer('demo-stuck');
    // A manifest that never arrives holds `ready` back forever.
    await viewer.route('**/peerfetch-manifest.json', () => {});
    const page = await viewer.newPage();
    await page.goto(demo.url);
    await playedFor(page, 1);
    expect(await page.textContent('#mode')).toContain('not ready in time');
    expect(demo.origin.stats().byViewer['demo-stuck']).toBeGreaterThan(0);
  });
});
