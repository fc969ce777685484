import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { ensureTestVideo, type TestVideoOptions } from '../harness/media.js';
import type { BrowserContext, Page } from 'playwright-core';
import type { ChromiumFixture } from '../harness/browser.js';
import { startProcess, type RunningProcess } from '../harness/processes.js';
import type { PeerfetchStats } from '../../src/engine/stats.js';

/**
 * A small site the way an operator sets one up: the two peerfetch files at the root, a video,
 * and the manifest written by the real `peerfetch manifest` command. Served by the real
 * `peerfetch origin` process, with the real `peerfetch tracker` process for signaling.
 */
export interface TestSite {
  dir: string;
  videoPath: string;
  videoBytes: Buffer;
  videoSha256: string;
}

/** The test page: inserts the script tag after load, with attributes from its own query string. */
export const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>peerfetch test page</title>
<body>
<script>
  // Tests pass the script tag's data- attributes in the query string (?tracker=…&p2p=off).
  const script = document.createElement('script');
  script.src = '/peerfetch.js';
  for (const [name, value] of new URLSearchParams(location.search)) script.dataset[name] = value;
  document.head.append(script);
</script>
</body>`;

export async function createTestSite(video: string, pieceSize: string): Promise<TestSite> {
  const dir = await mkdtemp(join(tmpdir(), 'peerfetch-site-'));
  await mkdir(join(dir, 'media'));
  const videoPath = join(dir, 'media', 'video.mp4');
  await copyFile(video, videoPath);
  await copyFile('dist/peerfetch.js', join(dir, 'peerfetch.js'));
  await copyFile('dist/peerfetch-sw.js', join(dir, 'peerfetch-sw.js'));
  await writeFile(join(dir, 'index.html'), PAGE);
  const manifest = await startProcess('node', ['bin/peerfetch.js', 'manifest', dir, '--piece-size', pieceSize], {
    name: 'peerfetch manifest',
  });
  expect(await manifest.exited).toBe(0);
  const videoBytes = await readFile(videoPath);
  return { dir, videoPath, videoBytes, videoSha256: createHash('sha256').update(videoBytes).digest('hex') };
}

export interface Servers {
  origin: RunningProcess;
  originUrl: string;
  tracker: RunningProcess;
  trackerUrl: string;
}

/** Starts `peerfetch origin` on `host` (default 127.0.0.1; a topology's internet address for NAT tests). */
export async function startOrigin(dir: string, extra: string[] = [], host = '127.0.0.1'): Promise<{ origin: RunningProcess; originUrl: string }> {
  const origin = await startProcess('node', ['bin/peerfetch.js', 'origin', dir, '--port', '0', '--host', host, ...extra], {
    readyPattern: /http:\/\/[\d.]+:\d+/,
    name: 'peerfetch origin',
  });
  return { origin, originUrl: origin.ready![0] };
}

/** Starts `peerfetch tracker` on `host` (default 127.0.0.1) with `extra` arguments (e.g. TURN settings). */
export async function startTracker(host = '127.0.0.1', extra: string[] = []): Promise<{ tracker: RunningProcess; trackerUrl: string }> {
  const tracker = await startProcess('node', ['bin/peerfetch.js', 'tracker', '--port', '0', '--host', host, ...extra], {
    readyPattern: /ws:\/\/[\d.]+:\d+/,
    name: 'peerfetch tracker',
  });
  return { tracker, trackerUrl: tracker.ready![0] };
}

/** Bytes the origin process sent to `viewer` (of the file at `path` only, when given), by its own counter. */
export async function originBytesFor(originUrl: string, viewer: string, path?: string): Promise<number> {
  const response = await fetch(`${originUrl}/__peerfetch/origin-stats`);
  const stats = (await response.json()) as { byViewer: Record<string, number>; byViewerPath: Record<string, Record<string, number>> };
  return (path === undefined ? stats.byViewer[viewer] : stats.byViewerPath[viewer]?.[path]) ?? 0;
}

/** One event of the page's peerfetch instance, as recorded by {@link recordEvents}. */
export interface RecordedEvent {
  type: string;
  detail: Record<string, unknown>;
}

/**
 * Records every event of these types that the page's peerfetch instance fires, from its creation
 * on (the script tag creates it, so a listener added after load could miss the first ones). Call
 * before the page loads; read them with {@link recordedEvents}. An `error` event's detail is the
 * error's code and message.
 */
export async function recordEvents(page: Page, types: string[]): Promise<void> {
  await page.addInitScript((types: string[]) => {
    const seen: Array<{ type: string; detail: unknown }> = [];
    let instance: EventTarget | undefined;
    Object.defineProperty(window, 'peerfetchEvents', { value: seen });
    Object.defineProperty(window, 'peerfetch', {
      configurable: true,
      get: () => instance,
      set: (value: EventTarget) => {
        instance = value;
        for (const type of types) {
          value.addEventListener(type, (event) => {
            const detail = (event as CustomEvent).detail as { error?: { code: string; message: string } };
            seen.push({ type, detail: detail.error ? { code: detail.error.code, message: detail.error.message } : detail });
          });
        }
      },
    });
  }, types);
}

/** The events recorded so far (see {@link recordEvents}), optionally of one type only. */
export async function recordedEvents(page: Page, type?: string): Promise<RecordedEvent[]> {
  const all = await page.evaluate(() => (window as unknown as { peerfetchEvents: RecordedEvent[] }).peerfetchEvents);
  return type === undefined ? all : all.filter((event) => event.type === type);
}

/** How the page's `peerfetch.ready` ended: undefined when it resolved, else the error's code and message. */
export function readyOutcome(page: Page): Promise<{ code: string; message: string } | undefined> {
  return page.evaluate(() =>
    window.peerfetch!.ready.then(
      () => undefined,
      (error: { code: string; message: string }) => ({ code: error.code, message: error.message }),
    ),
  );
}

/** Opens the test page with the given script-tag attributes and waits for `peerfetch.ready`. */
export async function openPage(page: Page, originUrl: string, attributes: Record<string, string>): Promise<void> {
  await page.goto(`${originUrl}/?${new URLSearchParams(attributes)}`);
  await page.waitForFunction(() => 'peerfetch' in window);
  await page.evaluate(() => window.peerfetch!.ready);
}

/**
 * Waits until the page holds every piece of the asset at `url` (stored and announced to peers).
 * The SW reports a piece once it is complete and stored, just after its bytes reached the page,
 * so a seeder is only complete a moment after its fetch or playback finished.
 */
export async function waitUntilHeld(page: Page, url: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const asset = (await stats(page)).assets.find((entry) => entry.url.endsWith(url));
    if (asset && asset.held === asset.pieces) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for every piece of ${url} to be stored (${asset?.sources})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A visitor that already holds the whole video at `/media/video.mp4` and seeds it: a new viewer
 * of `chromium` named `name`, on the fixture's test page with its tracker (and further script-tag
 * `attributes`, e.g. a swarm).
 */
export async function openSeeder(
  chromium: Pick<ChromiumFixture, 'viewer'>,
  fixture: Pick<SiteFixture, 'site' | 'originUrl' | 'trackerUrl'>,
  name: string,
  attributes: Record<string, string> = {},
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await chromium.viewer(name);
  const page = await context.newPage();
  await openPage(page, fixture.originUrl, { tracker: fixture.trackerUrl, ...attributes });
  expect((await fetchInPage(page, '/media/video.mp4')).sha256).toBe(fixture.site.videoSha256);
  await waitUntilHeld(page, '/media/video.mp4');
  return { context, page };
}

export function stats(page: Page): Promise<PeerfetchStats> {
  return page.evaluate(() => window.peerfetch!.getStats());
}

/** Fetches `url` in the page (through the SW, like the player) and returns status, headers and the SHA-256 of the body. */
export function fetchInPage(page: Page, url: string, range?: string) {
  return page.evaluate(
    async ({ url, range }) => {
      const response = await fetch(url, range ? { headers: { Range: range } } : {});
      const body = new Uint8Array(await response.arrayBuffer());
      const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', body));
      return {
        status: response.status,
        contentRange: response.headers.get('content-range'),
        contentLength: response.headers.get('content-length'),
        length: body.length,
        sha256: Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join(''),
      };
    },
    { url, range },
  );
}

/** Plays `url` in a <video> to its end at `rate`, seeking to `seekTo` (0..1 of the duration) once it plays. */
export function playInPage(page: Page, url: string, options: { rate?: number; seekTo?: number } = {}) {
  return page.evaluate(
    ({ url, rate, seekTo }) =>
      new Promise<{ duration: number; seeked: boolean }>((resolve, reject) => {
        const video = document.createElement('video');
        video.muted = true;
        video.playbackRate = rate;
        let seeked = false;
        video.addEventListener('error', () => reject(new Error(`media error ${video.error?.code}: ${video.error?.message}`)));
        video.addEventListener(
          'playing',
          () => {
            video.playbackRate = rate;
            if (seekTo !== undefined) video.currentTime = video.duration * seekTo;
          },
          { once: true },
        );
        video.addEventListener('seeked', () => (seeked = true));
        video.addEventListener('ended', () => resolve({ duration: video.duration, seeked }));
        video.src = url;
        document.body.append(video);
        void video.play().catch(reject);
      }),
    { url, rate: options.rate ?? 1, seekTo: options.seekTo },
  );
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A test site served by a real origin process, with a real tracker process, for one test file. */
export interface SiteFixture {
  readonly site: TestSite;
  readonly originUrl: string;
  readonly trackerUrl: string;
}

/**
 * Registers beforeAll/afterAll hooks that build a test site around a generated video, serve it
 * with `peerfetch origin` (plus `originArgs`, e.g. a bandwidth cap) and run `peerfetch tracker`.
 */
export function useTestSite(options: { video: TestVideoOptions; pieceSize: string; originArgs?: string[] }): SiteFixture {
  let site: TestSite | undefined;
  let origin: { origin: RunningProcess; originUrl: string } | undefined;
  let tracker: { tracker: RunningProcess; trackerUrl: string } | undefined;
  beforeAll(async () => {
    site = await createTestSite(await ensureTestVideo(options.video), options.pieceSize);
    origin = await startOrigin(site.dir, options.originArgs);
    tracker = await startTracker();
  });
  afterAll(async () => {
    await Promise.allSettled([origin?.origin.stop(), tracker?.tracker.stop()]);
  });
  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('useTestSite: available only inside tests, after beforeAll');
    return value;
  };
  return {
    get site() {
      return ready(site);
    },
    get originUrl() {
      return ready(origin).originUrl;
    },
    get trackerUrl() {
      return ready(tracker).trackerUrl;
    },
  };
}
