import { describe, expect, it } from 'vitest';
import type { Page, Response } from 'playwright-core';
import { assertNoPageErrors, useChromium } from '../harness/browser.js';
import { openPage, readyOutcome, sha256, useTestSite } from './test-site.js';

// What the service worker must leave alone (README, "What peerfetch guarantees the site"):
// requests that are not GET, navigations and URLs not in the manifest go to the network exactly
// as without peerfetch, and so does every request while no manifest is available.

const chromium = useChromium();
const VIDEO_URL = '/media/video.mp4';

const fixture = useTestSite({ video: { name: 'pass-through', seconds: 4, kbps: 800 }, pieceSize: '64KiB' });

/** Runs `request` in the page and returns the browser's response for `path`, as Playwright saw it. */
async function responseFor(page: Page, path: string, request: (path: string) => Promise<unknown>): Promise<Response> {
  const [response] = await Promise.all([page.waitForResponse((r) => new URL(r.url()).pathname === path), request(path)]);
  return response;
}

const fetchIn = (page: Page, init: { method?: string; range?: string } = {}) => (path: string) =>
  page.evaluate(
    async ({ path, method, range }) => {
      const response = await fetch(path, { method: method ?? 'GET', headers: range ? { Range: range } : {} });
      await response.arrayBuffer();
      return response.status;
    },
    { path, ...init },
  );

describe('requests the service worker leaves alone', () => {
  it('answers GETs of manifest assets itself, and passes HEAD, POST and URLs not in the manifest to the network', async () => {
    const context = await chromium.viewer('pass-through');
    const page = await context.newPage();
    await openPage(page, fixture.originUrl, {});

    // The control case: a GET of a listed asset is the SW's.
    const get = await responseFor(page, VIDEO_URL, fetchIn(page, { range: 'bytes=0-99' }));
    expect(get.status()).toBe(206);
    expect(get.fromServiceWorker()).toBe(true);
    expect(get.headers()['etag']).toBeUndefined(); // assembled from pieces: no origin ETag

    const head = await responseFor(page, VIDEO_URL, fetchIn(page, { method: 'HEAD' }));
    expect(head.fromServiceWorker()).toBe(false);
    expect(head.status()).toBe(200);

    const post = await responseFor(page, VIDEO_URL, fetchIn(page, { method: 'POST' }));
    expect(post.fromServiceWorker()).toBe(false);

    // Page code is never listed in the manifest.
    const script = await responseFor(page, '/peerfetch.js', fetchIn(page));
    expect(script.fromServiceWorker()).toBe(false);
    expect(script.status()).toBe(200);
    assertNoPageErrors(context, [/status of 405 \(Method Not Allowed\)/]);
  });

  it('passes a navigation to a manifest asset to the network', async () => {
    const context = await chromium.viewer('navigate');
    const page = await context.newPage();
    await openPage(page, fixture.originUrl, {});
    // The navigation itself only; the media document it opens then asks for the video with Range
    // requests of its own, which are the SW's like any other page's.
    const response = await page.goto(`${fixture.originUrl}${VIDEO_URL}`, { waitUntil: 'commit' });
    expect(response?.fromServiceWorker()).toBe(false);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-type']).toBe('video/mp4');
  });

  it('with no manifest to be had, reports manifest-fetch-failed and passes the media requests through', async () => {
    const context = await chromium.viewer('no-manifest');
    const page = await context.newPage();
    await page.goto(`${fixture.originUrl}/?${new URLSearchParams({ manifest: '/missing-manifest.json' })}`);
    await page.waitForFunction(() => window.peerfetch !== undefined);
    expect(await readyOutcome(page)).toEqual({ code: 'manifest-fetch-failed', message: `${fixture.originUrl}/missing-manifest.json answered 404` });
    // The SW was registered alongside (it installs while the manifest loads) and must not hold
    // the media back: it hands the request to the network and returns the origin's own response
    // (with the origin's ETag, which responses the SW assembles from pieces never carry).
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
    const video = await responseFor(page, VIDEO_URL, fetchIn(page));
    expect(video.status()).toBe(200);
    expect(video.headers()['etag']).toBeDefined();
    expect(sha256(await video.body())).toBe(fixture.site.videoSha256);
    assertNoPageErrors(context, [/Failed to load resource: the server responded with a status of 404/]);
  });
});
