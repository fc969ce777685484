/**
 * The demo page in real Chromium: the video plays through peerfetch and the panel shows
 * getStats(); when peerfetch cannot start, the page still plays the video from the origin.
 * Runs in the browser project (file name browser-*), in the private network namespace:
 * the engine opens WebRTC offers as soon as it joins the tracker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemo, type RunningDemo } from '../../src/cli/demo.js';
import { assertNoPageErrors, useChromium, waitFor, type Page } from '../harness/browser.js';

const chromium = useChromium({ webrtc: true });
let demo: RunningDemo;

beforeAll(async () => {
  demo = await startDemo({ port: 0, trackerPort: 0 });
  // The page is only meaningful with the built scripts.
  expect(demo.warnings.filter((warning) => warning.includes('npm run build'))).toEqual([]);
});

afterAll(async () => {
  await demo?.close();
});

/** Waits until the demo's <video> has played `seconds` of the film. */
async function playedFor(page: Page, seconds: number): Promise<void> {
  await page.waitForFunction((s) => (document.querySelector('video')?.currentTime ?? 0) > s, seconds, { timeout: 60_000 });
}

describe('demo page', () => {
  it('plays the film through peerfetch and draws getStats() in its panel', async () => {
    const viewer = await chromium.viewer('demo-alice');
    const page = await viewer.newPage();
    await page.goto(demo.url);
    await playedFor(page, 1);
    expect(await page.textContent('#mode')).toContain('peerfetch ready');
    // The SW controlled the video's requests: the engine counted the bytes handed to the player.
    const stats = await waitFor(
      async () => {
        const current = await page.evaluate(() => window.peerfetch!.getStats());
        return current.bytesServed > 0 && current.bytesFromOrigin > 0 ? current : undefined;
      },
      { what: 'bytes served through peerfetch' },
    );
    expect(stats.offloadRatio).toBe(0); // alone in the swarm: everything from the origin
    // The panel follows the `stats` events: its origin figure catches up with getStats().
    await waitFor(
      async () => {
        const [panel, bytes] = await page.evaluate(() => [
          document.querySelector('[data-stat="bytesFromOrigin"]')!.textContent,
          window.peerfetch!.getStats().bytesFromOrigin,
        ] as const);
        return panel === `${(bytes / 1024 / 1024).toFixed(2)} MiB` || panel === `${(bytes / 1024).toFixed(1)} KiB`;
      },
      { what: 'the panel to show bytes from origin' },
    );
    expect(await page.textContent('[data-stat="peers"]')).toBe('0');
    assertNoPageErrors(viewer);
  });

  it('plays from the origin when peerfetch.js does not load', async () => {
    const viewer = await chromium.viewer('demo-noscript');
    await viewer.route('**/peerfetch.js', (route) => route.abort());
    const page = await viewer.newPage();
    await page.goto(demo.url);
    await playedFor(page, 1);
    expect(await page.textContent('#mode')).toContain('did not load');
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
