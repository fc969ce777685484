import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { fetchInPage, openSeeder, stats, useTestSite } from './test-site.js';

// A site that has its own service worker runs peerfetch inside it: `importScripts('/peerfetch-sw.js')`
// at the top of a classic worker, or `startPeerfetch()` from the module build in a module worker.
// The page names the site's worker in data-sw; peerfetch then registers nothing, forces neither
// skipWaiting() nor clients.claim(), answers manifest assets and leaves every other request to the
// site's own fetch listener.

const chromium = useChromium({ webrtc: true });
const fixture = useTestSite({ video: { name: 'site-worker', seconds: 8, kbps: 1200 }, pieceSize: '64KiB' });
const SWARM = 'site-worker';

/**
 * The site's own fetch handling, shared by both workers: it records every request it sees, answers
 * /api/ itself and everything else through its own network fetch, marking its responses with
 * `x-site-worker: VERSION`. It tells a page what it saw on a `site-seen` message.
 */
const SITE_HANDLING = `
const seen = [];
function siteFetch(event) {
  const url = new URL(event.request.url);
  seen.push(url.pathname);
  if (url.pathname.startsWith('/api/')) {
    event.respondWith(new Response(JSON.stringify({ version: VERSION }), { headers: { 'content-type': 'application/json', 'x-site-worker': VERSION } }));
  } else if (event.request.method === 'GET' && event.request.mode !== 'navigate') {
    event.respondWith(fetch(event.request).then((response) => {
      const headers = new Headers(response.headers);
      headers.set('x-site-worker', VERSION);
      return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
    }));
  }
}
self.addEventListener('message', (event) => {
  if (event.data && event.data.type === 'site-seen') event.ports[0].postMessage(seen);
});
`;

/** A classic worker that imports peerfetch on its first line and claims nothing. */
const classicWorker = (version: string) => `importScripts('/peerfetch-sw.js');
const VERSION = ${JSON.stringify(version)};
${SITE_HANDLING}
self.addEventListener('fetch', siteFetch);
`;

/** A module worker that starts peerfetch from the module build and claims its pages, as many sites do. */
const MODULE_WORKER = `import { startPeerfetch } from '/peerfetch-sw.mjs';
const peerfetch = startPeerfetch();
const VERSION = 'module';
${SITE_HANDLING}
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (event) => {
  if (peerfetch.handleFetch(event)) return;
  siteFetch(event);
});
`;

/** A page of the site: it registers its own worker, and names it in peerfetch's script tag. */
const sitePage = (worker: string, registration: string) => `<!doctype html><meta charset="utf-8"><title>site with its own worker</title>
<script>window.siteRegistration = navigator.serviceWorker.register(${registration});</script>
<script src="/peerfetch.js" data-sw="${worker}" data-tracker="${fixture.trackerUrl}" data-swarm="${SWARM}" defer></script>`;

beforeAll(async () => {
  const { dir } = fixture.site;
  await copyFile('dist/peerfetch-sw.mjs', join(dir, 'peerfetch-sw.mjs'));
  await writeFile(join(dir, 'notes.txt'), 'a file of the site that is not media\n');
  await writeFile(join(dir, 'site-sw.js'), classicWorker('v1'));
  await writeFile(join(dir, 'site-module-sw.js'), MODULE_WORKER);
  await writeFile(join(dir, 'classic.html'), sitePage('/site-sw.js', "'/site-sw.js'"));
  await writeFile(join(dir, 'module.html'), sitePage('/site-module-sw.js', "'/site-module-sw.js', { type: 'module' }"));
});

/** Status, the site worker's marker and the body's text of a fetch made by the page. */
function fetchMarked(page: Page, url: string) {
  return page.evaluate(async (url) => {
    const response = await fetch(url);
    return { status: response.status, marker: response.headers.get('x-site-worker'), body: await response.text() };
  }, url);
}

/** The paths the site's own fetch listener saw in the worker that controls the page. */
function siteSeen(page: Page): Promise<string[]> {
  return page.evaluate(
    () =>
      new Promise<string[]>((resolve) => {
        const channel = new MessageChannel();
        channel.port1.onmessage = (event) => resolve(event.data as string[]);
        navigator.serviceWorker.controller!.postMessage({ type: 'site-seen' }, [channel.port2]);
      }),
  );
}

/**
 * The page navigation's workerStart: non-zero when a worker handled the navigation. peerfetch tells
 * by it whether a site's worker controlled the page from its start or claimed it later.
 */
function navigationWorkerStart(page: Page): Promise<number> {
  return page.evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).workerStart);
}

/** Script URLs of every registration of the page's origin, active or not. */
function registrations(page: Page) {
  return page.evaluate(async () =>
    (await navigator.serviceWorker.getRegistrations()).map((registration) =>
      [registration.installing, registration.waiting, registration.active].flatMap((worker) => (worker ? [worker.scriptURL] : [])),
    ),
  );
}

/** Asserts peerfetch's part on a page the site's worker controls: media from peers, byte-exact; the rest the site's. */
async function assertSiteAndPeers(page: Page, version: string): Promise<void> {
  const api = await fetchMarked(page, '/api/version');
  expect(api).toEqual({ status: 200, marker: version, body: JSON.stringify({ version }) });
  const notes = await fetchMarked(page, '/notes.txt');
  expect(notes).toMatchObject({ status: 200, marker: version });
  const media = await fetchInPage(page, '/media/video.mp4');
  expect(media.sha256).toBe(fixture.site.videoSha256);
  expect((await stats(page)).bytesFromPeers).toBeGreaterThan(0);
  const seen = await siteSeen(page);
  expect(seen).toEqual(expect.arrayContaining(['/api/version', '/notes.txt']));
  // peerfetch answered the media and kept the site's listener from answering it too.
  expect(seen).not.toContain('/media/video.mp4');
}

describe("peerfetch inside the site's own service worker", () => {
  it('importScripts: no registration of its own, no claim, no skipWaiting; media from peers, the rest to the site', async () => {
    const seeder = await openSeeder(chromium, fixture, 'site-worker-seeder', { swarm: SWARM });
    const viewer = await chromium.viewer('site-worker-classic');
    const page = await viewer.newPage();
    await page.goto(`${fixture.originUrl}/classic.html`);
    // First visit: the site's worker activates but does not claim the page, and neither does peerfetch.
    const firstVisit = await page.evaluate(async () => {
      const registration = await (window as unknown as { siteRegistration: Promise<ServiceWorkerRegistration> }).siteRegistration;
      const worker = (registration.installing ?? registration.waiting ?? registration.active)!;
      if (worker.state !== 'activated') {
        await new Promise<void>((resolve) => worker.addEventListener('statechange', () => worker.state === 'activated' && resolve()));
      }
      // A round trip to the activated worker: a claim() on activation would have taken the page by now.
      await new Promise((resolve) => {
        const channel = new MessageChannel();
        channel.port1.onmessage = resolve;
        worker.postMessage({ type: 'site-seen' }, [channel.port2]);
      });
      return { controlled: navigator.serviceWorker.controller !== null, state: worker.state };
    });
    expect(firstVisit).toEqual({ controlled: false, state: 'activated' });
    expect(await registrations(page)).toEqual([[`${fixture.originUrl}/site-sw.js`]]);

    // The next page load is controlled by the site's worker from its start.
    await page.reload();
    await page.evaluate(() => window.peerfetch!.ready);
    expect(await navigationWorkerStart(page)).toBeGreaterThan(0);
    expect(await registrations(page)).toEqual([[`${fixture.originUrl}/site-sw.js`]]);
    await assertSiteAndPeers(page, 'v1');

    // The site deploys a new worker that does not call skipWaiting(): it waits, and v1 keeps the page.
    await writeFile(join(fixture.site.dir, 'site-sw.js'), classicWorker('v2'));
    const update = await page.evaluate(async () => {
      const registration = (await navigator.serviceWorker.getRegistration())!;
      await registration.update();
      const installing = registration.installing;
      if (installing && installing.state !== 'installed') {
        await new Promise<void>((resolve) => installing.addEventListener('statechange', () => installing.state !== 'installing' && resolve()));
      }
      return { waiting: registration.waiting?.state ?? null, active: registration.active?.state ?? null };
    });
    expect(update).toEqual({ waiting: 'installed', active: 'activated' });
    expect((await fetchMarked(page, '/api/version')).marker).toBe('v1');
    assertNoPageErrors(seeder.context);
    assertNoPageErrors(viewer);
  });

  it('module worker: startPeerfetch() and handleFetch(), the site claims its pages, so the first visit gets peers', async () => {
    const seeder = await openSeeder(chromium, fixture, 'site-module-seeder', { swarm: SWARM });
    const viewer = await chromium.viewer('site-worker-module');
    const page = await viewer.newPage();
    await page.goto(`${fixture.originUrl}/module.html`);
    await waitFor(() => page.evaluate(() => navigator.serviceWorker.controller !== null), { what: 'the site worker to claim the page' });
    await page.evaluate(() => window.peerfetch!.ready);
    // Claimed during its first visit: no worker handled the navigation.
    expect(await navigationWorkerStart(page)).toBe(0);
    expect(await registrations(page)).toEqual([[`${fixture.originUrl}/site-module-sw.js`]]);
    await assertSiteAndPeers(page, 'module');
    assertNoPageErrors(seeder.context);
    assertNoPageErrors(viewer);
  });
});
