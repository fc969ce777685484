import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { fetchInPage, stats, useTestSite, waitUntilHeld } from './test-site.js';

// A Workbox site: its worker is built the way Workbox's injectManifest builds one (the site's
// source bundled with workbox-precaching, -routing, -strategies and -core, the precache list
// injected), precaches the page, has its own runtime routes, and registers peerfetch's route from
// the module build. Its page registers the worker itself and runs its own update flow (a new
// version is told to skip waiting, as workbox-window's messageSkipWaiting() does).

const chromium = useChromium({ webrtc: true });
// The cap (120 KB/s per connection, under the video's 150 KB/s) keeps a lone viewer's video
// loading for 15 s, so that the worker upgrade below happens while the player still reads its
// response from the old worker.
const fixture = useTestSite({ video: { name: 'workbox-site', seconds: 12, kbps: 1200 }, pieceSize: '64KiB', originArgs: ['--rate', '120'] });
const SWARM = 'workbox-site';

/** The site's worker source, as a site writes it for injectManifest. */
const WORKER_SOURCE = `
import { precacheAndRoute } from 'workbox-precaching';
import { registerRoute, setDefaultHandler } from 'workbox-routing';
import { NetworkOnly } from 'workbox-strategies';
import { clientsClaim } from 'workbox-core';
import { startPeerfetch } from 'peerfetch/sw-module';

const peerfetch = startPeerfetch();
registerRoute(peerfetch.matcher, peerfetch.handler);
precacheAndRoute(self.__WB_MANIFEST);
// The site's own API route: from the network, marked with the worker's version.
registerRoute(({ url }) => url.pathname.startsWith('/api/'), async ({ request }) => {
  const response = await fetch(request);
  const headers = new Headers(response.headers);
  headers.set('x-site-worker', SITE_VERSION);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
});
setDefaultHandler(new NetworkOnly());
self.addEventListener('message', (event) => {
  if (event.data && event.data.type === 'SKIP_WAITING') {
    self.skipWaitingAsked = Date.now();
    event.source && event.source.postMessage({ type: 'SKIP_WAITING_RECEIVED', version: SITE_VERSION });
    self.skipWaiting();
  }
});
clientsClaim();
`;

/** The page: precached by the worker; registers it and updates it when a new version is deployed. */
const appPage = (build: string) => `<!doctype html><meta charset="utf-8"><title>workbox site</title>
<p id="build">${build}</p>
<script>
  // The page notes its update flow (and the worker's echo of SKIP_WAITING) for a failing test to print.
  window.swLog = [];
  const note = (what) => window.swLog.push(Math.round(performance.now()) + ' ' + what);
  navigator.serviceWorker.addEventListener('controllerchange', () => note('controllerchange'));
  navigator.serviceWorker.addEventListener('message', (event) => { if (event.data && event.data.type === 'SKIP_WAITING_RECEIVED') note('received by ' + event.data.version); });
  window.siteRegistration = navigator.serviceWorker.register('/sw.js').then((registration) => {
    registration.addEventListener('updatefound', () => {
      const worker = registration.installing;
      note('updatefound ' + (worker && worker.state));
      worker.addEventListener('statechange', () => {
        note('statechange ' + worker.state + ' controller ' + Boolean(navigator.serviceWorker.controller));
        if (worker.state === 'installed' && navigator.serviceWorker.controller) { note('post SKIP_WAITING'); worker.postMessage({ type: 'SKIP_WAITING' }); }
      });
    });
    return registration;
  });
</script>
<script src="/peerfetch.js" data-sw="/sw.js" data-tracker="${fixture.trackerUrl}" data-swarm="${SWARM}" defer></script>`;

/** Bundles the site's worker with real Workbox packages, `version` in its API route's marker. */
async function buildSiteWorker(version: string, precache: Array<{ url: string; revision: string }>): Promise<string> {
  const result = await build({
    stdin: { contents: WORKER_SOURCE, resolveDir: resolve('.'), sourcefile: 'site-sw.js', loader: 'js' },
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
    // peerfetch/sw-module is the package's own export, resolved to the built dist/peerfetch-sw.mjs.
    alias: { 'peerfetch/sw-module': resolve('dist/peerfetch-sw.mjs') },
    define: {
      'process.env.NODE_ENV': '"production"',
      'self.__WB_MANIFEST': JSON.stringify(precache),
      SITE_VERSION: JSON.stringify(version),
    },
  });
  return result.outputFiles[0]!.text;
}

let precache: Array<{ url: string; revision: string }>;

beforeAll(async () => {
  const { dir } = fixture.site;
  const page = appPage('BUILD-1');
  await writeFile(join(dir, 'app.html'), page);
  await mkdir(join(dir, 'api'));
  await writeFile(join(dir, 'api', 'version.json'), '{"api":true}');
  precache = [{ url: '/app.html', revision: createHash('sha256').update(page).digest('hex').slice(0, 16) }];
  await writeFile(join(dir, 'sw.js'), await buildSiteWorker('v1', precache));
});

/** Status and the worker's marker of the site's API answer. */
function api(page: Page) {
  return page.evaluate(async () => {
    const response = await fetch('/api/version.json');
    return { status: response.status, marker: response.headers.get('x-site-worker'), body: await response.text() };
  });
}

/** A visitor of the Workbox site: its first visit, once peerfetch is ready (the site's worker claims the page). */
async function visit(name: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await chromium.viewer(name);
  const page = await context.newPage();
  await page.goto(`${fixture.originUrl}/app.html`);
  await page.evaluate(() => window.peerfetch!.ready);
  return { context, page };
}

function registrations(page: Page) {
  return page.evaluate(async () => (await navigator.serviceWorker.getRegistrations()).map((registration) => registration.active?.scriptURL ?? null));
}

describe('peerfetch in a Workbox site', () => {
  it('precache, the site route and peers all answer: the page from the precache, /api/ from the route, the video from peers', async () => {
    const seeder = await visit('workbox-seeder');
    expect((await fetchInPage(seeder.page, '/media/video.mp4')).sha256).toBe(fixture.site.videoSha256);
    await waitUntilHeld(seeder.page, '/media/video.mp4');

    const viewer = await visit('workbox-viewer');
    expect(await registrations(viewer.page)).toEqual([`${fixture.originUrl}/sw.js`]);
    expect(await api(viewer.page)).toEqual({ status: 200, marker: 'v1', body: '{"api":true}' });
    const media = await fetchInPage(viewer.page, '/media/video.mp4');
    expect(media).toMatchObject({ status: 200, sha256: fixture.site.videoSha256 });
    expect((await stats(viewer.page)).bytesFromPeers).toBeGreaterThan(0);

    // The site deploys a new page without a new worker: the worker keeps serving its precached copy.
    await writeFile(join(fixture.site.dir, 'app.html'), appPage('BUILD-2'));
    expect(await (await fetch(`${fixture.originUrl}/app.html`)).text()).toContain('BUILD-2');
    await viewer.page.reload();
    expect(await viewer.page.textContent('#build')).toBe('BUILD-1');
    await viewer.page.evaluate(() => window.peerfetch!.ready);
    await writeFile(join(fixture.site.dir, 'app.html'), appPage('BUILD-1'));
    assertNoPageErrors(seeder.context);
    assertNoPageErrors(viewer.context);
  });

  it('a site that upgrades its worker while a video plays: it plays on to its end, and the new worker serves peers byte-exact', async () => {
    const viewer = await visit('workbox-upgrade');
    await viewer.page.evaluate(() => {
      const video = document.createElement('video');
      video.muted = true;
      video.src = '/media/video.mp4';
      document.body.append(video);
      void video.play();
    });
    const videoState = () =>
      viewer.page.evaluate(() => {
        const video = document.querySelector('video')!;
        const buffered = video.buffered.length > 0 ? video.buffered.end(video.buffered.length - 1) : 0;
        return { currentTime: video.currentTime, buffered, duration: video.duration, ended: video.ended, error: video.error?.message ?? null };
      });
    let seen = await videoState();
    await waitFor(
      async () => {
        seen = await videoState();
        if (seen.error) throw new Error(`media error ${seen.error}`);
        if (seen.currentTime > 1) return true;
        throw new Error(`video at ${JSON.stringify(seen)}`);
      },
      { what: 'the video to play' },
    );
    const atUpgrade = seen;

    // The site deploys worker v2; its page's update flow tells v2 to skip waiting, and v2 claims the page.
    await writeFile(join(fixture.site.dir, 'sw.js'), await buildSiteWorker('v2', precache));
    await viewer.page.evaluate(async () => {
      const registration = await (window as unknown as { siteRegistration: Promise<ServiceWorkerRegistration> }).siteRegistration;
      await registration.update();
    });
    // Watched from the page, without a request through the worker while waiting: Chromium stops
    // the old worker to activate the new one only once it is idle, and a test that asked it
    // something every 50 ms kept it busy (measured: v2 still `installed` 30 s after
    // SKIP_WAITING in 3 of 6 runs, with nothing of peerfetch's in progress in v1).
    const pageLog = () => viewer.page.evaluate(() => (window as unknown as { swLog: string[] }).swLog);
    try {
      await waitFor(
        async () => {
          const log = await pageLog();
          seen = await videoState();
          if (log.some((line, index) => line.endsWith('controllerchange') && log.slice(0, index).some((earlier) => earlier.endsWith('post SKIP_WAITING')))) return true;
          throw new Error(`video ${JSON.stringify(seen)}; page log ${JSON.stringify(log)}`);
        },
        { timeoutMs: 30_000, what: 'worker v2 to control the page' },
      );
    } catch (error) {
      // What each worker says of itself: whether v2 got SKIP_WAITING, and its state.
      const workers = await Promise.all(
        viewer.context.serviceWorkers().map((worker) =>
          worker
            .evaluate(() => ({ state: (self as unknown as { serviceWorker?: { state: string } }).serviceWorker?.state, skipWaitingAsked: (self as unknown as { skipWaitingAsked?: number }).skipWaitingAsked }))
            .catch((failure: Error) => failure.message.split('\n')[0]),
        ),
      );
      throw new Error(`${(error as Error).message}; workers ${JSON.stringify(workers)}`);
    }
    const atTakeover = seen;
    expect((await api(viewer.page)).marker).toBe('v2');
    // Chromium activates a worker told to skip waiting only once the old one has nothing in
    // progress, an open response body included: v2 took over while the player's response from v1
    // was still loading (so v1's peerfetch ended it), not after it.
    expect(atTakeover.buffered, `video when v2 was deployed: ${JSON.stringify(atUpgrade)}, when it took over: ${JSON.stringify(atTakeover)}`).toBeLessThan(atTakeover.duration);
    await waitFor(
      async () => {
        seen = await videoState();
        if (seen.error) return true;
        if (seen.ended) return true;
        throw new Error(`video at ${JSON.stringify(seen)}`);
      },
      { timeoutMs: 60_000, what: 'the video to end' },
    );
    expect(seen.error, `video when v2 was deployed: ${JSON.stringify(atUpgrade)}, when it took over: ${JSON.stringify(atTakeover)}`).toBeNull();
    expect(seen.ended).toBe(true);

    // The new worker serves the media byte-exact: from the store, then, with the store cleared,
    // from a peer, through the page engine that v2 now asks.
    expect((await fetchInPage(viewer.page, '/media/video.mp4')).sha256).toBe(fixture.site.videoSha256);
    const seeder = await visit('workbox-upgrade-seeder');
    expect((await fetchInPage(seeder.page, '/media/video.mp4')).sha256).toBe(fixture.site.videoSha256);
    await waitUntilHeld(seeder.page, '/media/video.mp4');
    await viewer.page.evaluate(() => window.peerfetch!.clearStorage());
    const peersBefore = (await stats(viewer.page)).bytesFromPeers;
    expect((await fetchInPage(viewer.page, '/media/video.mp4', 'bytes=0-')).sha256).toBe(fixture.site.videoSha256);
    expect((await stats(viewer.page)).bytesFromPeers).toBeGreaterThan(peersBefore);
    expect(await registrations(viewer.page)).toEqual([`${fixture.originUrl}/sw.js`]);
    assertNoPageErrors(viewer.context);
    assertNoPageErrors(seeder.context);
  });
});
