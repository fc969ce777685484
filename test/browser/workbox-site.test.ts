import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { assertNoPageErrors, useChromium } from '../harness/browser.js';
import { fetchInPage, stats, useTestSite, waitUntilHeld } from './test-site.js';

// A Workbox site: its worker is built the way Workbox's injectManifest builds one (the site's
// source bundled with workbox-precaching, -routing, -strategies and -core, the precache list
// injected), precaches the page, has its own runtime routes, and registers peerfetch's route from
// the module build. Its page registers the worker itself and runs its own update flow (a new
// version is told to skip waiting, as workbox-window's messageSkipWaiting() does).

const chromium = useChromium({ webrtc: true });
const fixture = useTestSite({ video: { name: 'workbox-site', seconds: 12, kbps: 1200 }, pieceSize: '64KiB' });
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
  if (event.data && event.data.type === 'SKIP_WAITING') self.skipWaiting();
});
clientsClaim();
`;

/** The page: precached by the worker; registers it and updates it when a new version is deployed. */
const appPage = (build: string) => `<!doctype html><meta charset="utf-8"><title>workbox site</title>
<p id="build">${build}</p>
<script>
  window.siteRegistration = navigator.serviceWorker.register('/sw.js').then((registration) => {
    registration.addEventListener('updatefound', () => {
      const worker = registration.installing;
      worker.addEventListener('statechange', () => {
        if (worker.state === 'installed' && navigator.serviceWorker.controller) worker.postMessage({ type: 'SKIP_WAITING' });
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
});
