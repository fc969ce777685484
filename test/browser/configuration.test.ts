import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { startProcess, type RunningProcess } from '../harness/processes.js';
import { fetchInPage, readyOutcome, recordedEvents, recordEvents, stats, useTestSite } from './test-site.js';

// What a site operator can get wrong — an option, the manifest URL, the tracker — is reported
// with a clear error code, and the page keeps loading its media from the origin.

const chromium = useChromium();
const VIDEO_URL = '/media/video.mp4';
const PIECE_BYTES = 64 * 1024;

const fixture = useTestSite({ video: { name: 'configuration', seconds: 6, kbps: 1000 }, pieceSize: '64KiB' });

/** A tracker that only serves pages of another site (--allow-origin). */
let refusingTracker: RunningProcess;
let refusingTrackerUrl: string;
beforeAll(async () => {
  refusingTracker = await startProcess('node', ['bin/peerfetch.js', 'tracker', '--port', '0', '--allow-origin', 'https://elsewhere.example'], {
    readyPattern: /ws:\/\/127\.0\.0\.1:\d+/,
    name: 'refusing tracker',
  });
  refusingTrackerUrl = refusingTracker.ready![0];
});
afterAll(async () => {
  await refusingTracker?.stop();
});

interface SeenError {
  code: string;
  message: string;
}

/** Opens the test page with these script-tag attributes, recording the instance's `error` events. */
async function openRecording(page: Page, attributes: Record<string, string>): Promise<void> {
  await recordEvents(page, ['error']);
  await page.goto(`${fixture.originUrl}/?${new URLSearchParams(attributes)}`);
  await page.waitForFunction(() => window.peerfetch !== undefined);
}

const errorsOf = async (page: Page): Promise<SeenError[]> => (await recordedEvents(page, 'error')).map((event) => event.detail as unknown as SeenError);

describe('invalid options', () => {
  it.each([
    ['a store cap that is not a number', { storeCapBytes: 'lots' }, /storeCapBytes \(data-store-cap-bytes\) must be a positive whole number, got NaN/],
    ['a TURN server without credentials', { iceServers: 'turn:turn.example:3478' }, /TURN server turn:turn\.example:3478 needs a username and a credential/],
    ['ICE servers that are not valid JSON', { iceServers: '[{"urls": "turn:' }, /ICE server URL .* must start with stun:/],
    ['a tracker URL that is not a WebSocket URL', { tracker: 'https://tracker.example' }, /tracker https:\/\/tracker\.example must be a ws: or wss: URL/],
    ['a negative upload limit', { uploadLimit: '-5' }, /uploadLimit \(data-upload-limit\) must be a positive whole number, got -5/],
  ])('%s: start nothing, say why, and the page loads its media from the origin', async (_name, attributes, message) => {
    const context = await chromium.viewer('bad-option');
    const page = await context.newPage();
    await openRecording(page, attributes);
    const outcome = await readyOutcome(page);
    expect(outcome?.code).toBe('option-invalid');
    expect(outcome?.message).toMatch(message);
    await waitFor(async () => (await errorsOf(page)).length > 0, { what: 'the error event' });
    expect(await errorsOf(page)).toEqual([outcome]);
    // No service worker was registered: the media request goes to the origin as without peerfetch.
    expect(await page.evaluate(async () => (await navigator.serviceWorker.getRegistrations()).length)).toBe(0);
    const video = await fetchInPage(page, VIDEO_URL);
    expect(video.status).toBe(200);
    expect(video.sha256).toBe(fixture.site.videoSha256);
    assertNoPageErrors(context);
  });

  it('TURN servers with credentials are accepted as JSON', async () => {
    const context = await chromium.viewer('turn-json');
    const page = await context.newPage();
    const iceServers = JSON.stringify([{ urls: 'turn:127.0.0.1:3478', username: 'viewer', credential: 'secret' }]);
    await openRecording(page, { iceServers, p2p: 'off' });
    expect(await readyOutcome(page)).toBeUndefined();
    expect(await page.evaluate(() => window.peerfetch!.options.iceServers)).toEqual([{ urls: 'turn:127.0.0.1:3478', username: 'viewer', credential: 'secret' }]);
    assertNoPageErrors(context);
  });
});

describe('a manifest URL that answers HTML', () => {
  it('is reported as manifest-invalid, and the media still loads', async () => {
    const context = await chromium.viewer('html-manifest');
    const page = await context.newPage();
    await openRecording(page, { manifest: '/index.html' });
    const outcome = await readyOutcome(page);
    expect(outcome?.code).toBe('manifest-invalid');
    expect(outcome?.message).toMatch(/\/index\.html is not JSON \(content-type text\/html/);
    const video = await fetchInPage(page, VIDEO_URL);
    expect(video.status).toBe(200);
    expect(video.sha256).toBe(fixture.site.videoSha256);
    assertNoPageErrors(context, [/Failed to load resource/]);
  });
});

describe('tracker problems', () => {
  it('a tracker that refuses this site is reported once, not on every retry, and pieces still come from the origin', async () => {
    const context = await chromium.viewer('refused');
    const page = await context.newPage();
    await openRecording(page, { tracker: refusingTrackerUrl });
    expect(await readyOutcome(page)).toBeUndefined();
    // Three refused connections (the client retries with backoff): still one error event.
    await waitFor(async () => {
      const response = await fetch(`${refusingTrackerUrl.replace('ws:', 'http:')}/stats.json`);
      const body = (await response.json()) as { rejections: Record<string, number> };
      return (body.rejections['origin-not-allowed'] ?? 0) >= 3;
    }, { what: 'three refused connections' });
    const errors = await errorsOf(page);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.code).toBe('tracker-refused');
    expect(errors[0]?.message).toMatch(/closed the connection: origin not allowed \(1008\)/);
    expect((await fetchInPage(page, VIDEO_URL)).sha256).toBe(fixture.site.videoSha256);
    expect((await stats(page)).bytesFromOrigin).toBeGreaterThan(0);
    assertNoPageErrors(context, [/WebSocket connection to .* failed/]);
  });

  it('a tracker that cannot be reached is reported as tracker-unreachable', async () => {
    const context = await chromium.viewer('unreachable');
    const page = await context.newPage();
    // Port 9 (discard) has no listener here: the connection is refused at once.
    await openRecording(page, { tracker: 'ws://127.0.0.1:9' });
    expect(await readyOutcome(page)).toBeUndefined();
    const errors = await waitFor(async () => {
      const seen = await errorsOf(page);
      return seen.length > 0 ? seen : undefined;
    }, { what: 'the tracker-unreachable error' });
    expect(errors).toEqual([{ code: 'tracker-unreachable', message: 'cannot connect to the tracker ws://127.0.0.1:9/' }]);
    assertNoPageErrors(context, [/WebSocket connection to .* failed/]);
  });
});

describe('storeCapBytes', () => {
  it('caps what the service worker stores, not only the page', async () => {
    const context = await chromium.viewer('store-cap');
    const page = await context.newPage();
    const capBytes = 3 * PIECE_BYTES;
    await openRecording(page, { storeCapBytes: String(capBytes) });
    expect(await readyOutcome(page)).toBeUndefined();
    const video = await fetchInPage(page, VIDEO_URL);
    expect(video.sha256).toBe(fixture.site.videoSha256);
    expect(fixture.site.videoBytes.length).toBeGreaterThan(2 * capBytes);
    // Every piece went through the SW's store (each put evicts down to the cap first).
    await waitFor(async () => (await stats(page)).bytesFromOrigin >= fixture.site.videoBytes.length, { what: 'every piece delivered' });
    const stored = await waitFor(async () => {
      const bytes = await page.evaluate(
        () =>
          new Promise<number>((resolve, reject) => {
            const open = indexedDB.open('peerfetch');
            open.onerror = () => reject(open.error);
            open.onsuccess = () => {
              const request = open.result.transaction('meta').objectStore('meta').getAll();
              request.onsuccess = () => resolve((request.result as Array<{ size: number }>).reduce((sum, entry) => sum + entry.size, 0));
              request.onerror = () => reject(request.error);
            };
          }),
      );
      return bytes > 0 && bytes <= capBytes ? bytes : undefined;
    }, { what: `the stored pieces to fit in ${capBytes} bytes`, timeoutMs: 5000 });
    expect(stored).toBeLessThanOrEqual(capBytes);
    assertNoPageErrors(context);
  });
});
