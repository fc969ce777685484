import { copyFile, cp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { ensureTestDash, ensureTestHls, ensureTestHlsRenditions, ensureTestVideo } from '../harness/media.js';
import { startProcess, type RunningProcess } from '../harness/processes.js';
import { createTestSite, fetchInPage, openPage, startOrigin, startTracker, stats, type TestSite, waitUntilHeld } from './test-site.js';

// The common players, each playing a few seconds of media to the end through peerfetch while a
// seeder that holds the media serves them pieces: dash.js and Shaka Player on DASH (segment files,
// and with Shaka one file whose segments are byte ranges), Video.js on HLS (its own engine, VHS),
// and hls.js switching between two renditions. Fixtures are generated once into test/.cache/.

const chromium = useChromium({ webrtc: true });
/** Playback rate: every player here keeps it, so a few seconds of media play in half the time. */
const RATE = 2;
/** Seconds of media every player buffers ahead: the players ask for segments as playback goes, so peers deliver ahead of them. */
const BUFFER_SECONDS = 2;

const PLAYER_SCRIPTS: Record<string, string> = {
  'dash.all.min.js': 'node_modules/dashjs/dist/modern/umd/dash.all.min.js',
  'shaka-player.compiled.js': 'node_modules/shaka-player/dist/shaka-player.compiled.js',
  'video.min.js': 'node_modules/video.js/dist/video.min.js',
  'hls.min.js': 'node_modules/hls.js/dist/hls.min.js',
};

let site: TestSite;
let origin: RunningProcess;
let originUrl: string;
let tracker: RunningProcess;
let trackerUrl: string;
let manifestUrls: string[];

beforeAll(async () => {
  const [page, dash, dashSingle, hls, abr] = await Promise.all([
    ensureTestVideo({ name: 'players-page', seconds: 2, kbps: 200 }),
    ensureTestDash({ name: 'dash-vod', seconds: 8, kbps: 800 }),
    ensureTestDash({ name: 'dash-vod', seconds: 8, kbps: 800, singleFile: true }),
    ensureTestHls({ name: 'videojs', seconds: 8, kbps: 800 }),
    ensureTestHlsRenditions({ name: 'hls-abr', seconds: 11, renditions: [{ size: '640x360', kbps: 800 }, { size: '320x180', kbps: 250 }] }),
  ]);
  site = await createTestSite(page, '64KiB');
  for (const [folder, source] of Object.entries({ dash, 'dash-single': dashSingle, hls, abr })) await cp(source, join(site.dir, folder), { recursive: true });
  for (const [name, source] of Object.entries(PLAYER_SCRIPTS)) await copyFile(source, join(site.dir, name));
  const manifest = await startProcess('node', ['bin/peerfetch.js', 'manifest', site.dir, '--piece-size', '64KiB']);
  expect(await manifest.exited).toBe(0);
  manifestUrls = (JSON.parse(await readFile(join(site.dir, 'peerfetch-manifest.json'), 'utf8')) as { assets: { url: string }[] }).assets.map((asset) => asset.url);
  ({ origin, originUrl } = await startOrigin(site.dir));
  ({ tracker, trackerUrl } = await startTracker());
});

afterAll(async () => {
  await Promise.allSettled([origin?.stop(), tracker?.stop()]);
});

/** What the page records of its player, as `window.playback`. */
interface Playback {
  ended: boolean;
  error?: string;
  currentTime: number;
  readyState: number;
  /** Levels hls.js switched to, in order. */
  switches: number[];
  /** Range headers of the segment requests Shaka made. */
  ranges: string[];
  /** URLs of the segments hls.js loaded. */
  fragments: string[];
}

/**
 * A seeder holding every file of `folder` from an earlier visit, connected, and a viewer connected
 * to it. The seeder's page reads nothing, as a seeder that watched longer ago than its reading
 * memory: it tells a peer what it holds of a stream only once that peer says its player reads the
 * stream (see Swarm), so a player's segments come from it only if they share their stream (one
 * stream per segment made a DASH viewer ask and wait again at every segment, and take 24-152 kB of
 * 0.8 MB from peers).
 */
async function seederAndViewer(folder: string): Promise<{ seeder: BrowserContext; viewer: BrowserContext; page: Page }> {
  const seeder = await chromium.viewer(`${folder}-seeder`);
  const earlierVisit = await seeder.newPage();
  await openPage(earlierVisit, originUrl, { tracker: trackerUrl });
  const files = manifestUrls.filter((url) => url.startsWith(`/${folder}/`));
  expect(files.length).toBeGreaterThan(0);
  for (const url of files) expect((await fetchInPage(earlierVisit, url)).status).toBe(200);
  for (const url of files) await waitUntilHeld(earlierVisit, url);
  await earlierVisit.close();
  const seederPage = await seeder.newPage();
  await openPage(seederPage, originUrl, { tracker: trackerUrl });
  for (const url of files) await waitUntilHeld(seederPage, url);

  const viewer = await chromium.viewer(`${folder}-viewer`);
  const page = await viewer.newPage();
  await openPage(page, originUrl, { tracker: trackerUrl });
  await waitFor(async () => (await stats(page)).peers >= 1, { what: `the ${folder} viewer to connect to the seeder` });
  // The element every player below attaches to, and what the test reads of it.
  await page.evaluate((rate) => {
    const w = window as unknown as { playback: Playback; testVideo: HTMLVideoElement };
    const playback: Playback = (w.playback = { ended: false, currentTime: 0, readyState: 0, switches: [], ranges: [], fragments: [] });
    const video = (w.testVideo = document.createElement('video'));
    video.muted = true;
    video.addEventListener('playing', () => (video.playbackRate = rate));
    video.addEventListener('timeupdate', () => (playback.currentTime = video.currentTime));
    video.addEventListener('ended', () => (playback.ended = true));
    video.addEventListener('error', () => (playback.error ??= `media error ${video.error?.code}: ${video.error?.message}`));
    document.body.append(video);
  }, RATE);
  return { seeder, viewer, page };
}

function playback(page: Page): Promise<Playback> {
  return page.evaluate(() => {
    const w = window as unknown as { playback: Playback; testVideo: HTMLVideoElement };
    return { ...w.playback, readyState: w.testVideo.readyState };
  });
}

/** Waits until the player has played to the end; fails at once on a player error, with what it last saw. */
async function playedToEnd(page: Page, player: string): Promise<Playback> {
  let last: Playback | undefined;
  try {
    return await waitFor(
      async () => {
        last = await playback(page);
        if (last.error) throw new Error(`${player} failed: ${last.error}`);
        return last.ended ? last : undefined;
      },
      { timeoutMs: 60_000, what: `${player} to play to the end` },
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last seen ${JSON.stringify(last)}`);
  }
}

/** Bytes from peers must be at least half of what the viewer received; prints where each file came from. */
async function expectMostlyFromPeers(page: Page, folder: string): Promise<void> {
  const after = await stats(page);
  const files = after.assets.filter((asset) => asset.url.includes(`/${folder}/`) && asset.held > 0);
  console.info(`${folder} viewer: ${after.bytesFromPeers} B from peers, ${after.bytesFromOrigin} B from the origin; ${files.map((asset) => `${asset.url.slice(asset.url.lastIndexOf(`/${folder}/`))} ${asset.sources}`).join(', ')}`);
  expect(after.bytesFromPeers).toBeGreaterThan(0);
  expect(after.bytesFromPeers).toBeGreaterThanOrEqual(after.bytesFromOrigin);
}

describe('players', () => {
  it('dash.js plays a DASH VOD of segment files to the end, with segments from peers', async () => {
    const { seeder, viewer, page } = await seederAndViewer('dash');
    await page.addScriptTag({ url: '/dash.all.min.js' });
    await page.evaluate((buffer) => {
      const w = window as unknown as { dashjs: any; playback: Playback; testVideo: HTMLVideoElement };
      const player = w.dashjs.MediaPlayer().create();
      player.updateSettings({ streaming: { buffer: { bufferTimeDefault: buffer, bufferTimeAtTopQuality: buffer, bufferTimeAtTopQualityLongForm: buffer } } });
      player.on(w.dashjs.MediaPlayer.events.ERROR, (event: { error?: { message?: string } }) => (w.playback.error ??= event.error?.message ?? 'dash.js error'));
      player.initialize(w.testVideo, '/dash/manifest.mpd', true);
    }, BUFFER_SECONDS);
    await playedToEnd(page, 'dash.js');
    await expectMostlyFromPeers(page, 'dash');
    assertNoPageErrors(seeder);
    assertNoPageErrors(viewer);
  });

  it.each([
    ['segment files', 'dash'],
    ['byte ranges of one file', 'dash-single'],
  ])('Shaka Player plays a DASH VOD of %s to the end, with bytes from peers', async (_shape, folder) => {
    const { seeder, viewer, page } = await seederAndViewer(folder);
    await page.addScriptTag({ url: '/shaka-player.compiled.js' });
    await page.evaluate(
      async ({ folder, buffer }) => {
        const w = window as unknown as { shaka: any; playback: Playback; testVideo: HTMLVideoElement };
        w.shaka.polyfill.installAll();
        const player = new w.shaka.Player();
        player.configure({ streaming: { bufferingGoal: buffer, rebufferingGoal: 1 } });
        player.addEventListener('error', (event: { detail?: { code?: number } }) => (w.playback.error ??= `shaka error ${event.detail?.code}`));
        player.getNetworkingEngine().registerRequestFilter((type: number, request: { headers: Record<string, string> }) => {
          if (type === w.shaka.net.NetworkingEngine.RequestType.SEGMENT) w.playback.ranges.push(request.headers.Range ?? '');
        });
        await player.attach(w.testVideo);
        await player.load(`/${folder}/manifest.mpd`);
        void w.testVideo.play();
      },
      { folder, buffer: BUFFER_SECONDS },
    );
    const played = await playedToEnd(page, 'Shaka Player');
    if (folder === 'dash-single') {
      // Every segment, the init section included, was a Range request into the one file: each
      // answered by the worker from verified pieces (a wrong byte would have stopped Shaka).
      const file = manifestUrls.filter((url) => url.startsWith(`/${folder}/`));
      expect(file).toEqual([`/${folder}/manifest-stream0.mp4`]);
      expect(played.ranges.length).toBeGreaterThanOrEqual(4);
      expect(played.ranges.every((range) => /^bytes=\d+-\d+$/.test(range))).toBe(true);
    }
    await expectMostlyFromPeers(page, folder);
    assertNoPageErrors(seeder);
    assertNoPageErrors(viewer);
  });

  it('Video.js plays HLS with its own engine (VHS) to the end, with segments from peers', async () => {
    const { seeder, viewer, page } = await seederAndViewer('hls');
    await page.addScriptTag({ url: '/video.min.js' });
    await page.evaluate(
      ({ buffer, rate }) => {
        const w = window as unknown as { videojs: any; playback: Playback; testVideo: HTMLVideoElement };
        w.videojs.Vhs.GOAL_BUFFER_LENGTH = buffer;
        w.videojs.Vhs.MAX_GOAL_BUFFER_LENGTH = buffer;
        const player = w.videojs(w.testVideo, { muted: true, playbackRates: [rate], html5: { vhs: { overrideNative: true } } });
        player.on('error', () => (w.playback.error ??= `video.js error ${player.error()?.code}: ${player.error()?.message}`));
        player.src({ src: '/hls/index.m3u8', type: 'application/x-mpegURL' });
        void player.play();
      },
      { buffer: BUFFER_SECONDS, rate: RATE },
    );
    await playedToEnd(page, 'Video.js');
    // VHS fetched the segments itself (not the browser's own HLS), so they went through the worker.
    expect((await stats(page)).bytesServed).toBeGreaterThan(0);
    await expectMostlyFromPeers(page, 'hls');
    assertNoPageErrors(seeder);
    assertNoPageErrors(viewer);
  });

  it('hls.js switches between two renditions, each its own stream in playlist order, with segments from peers in both', async () => {
    // Each rendition's segments are listed in play order (seg2 before seg10), one folder each.
    for (const rendition of ['v0', 'v1']) {
      const listed = manifestUrls.filter((url) => url.startsWith(`/abr/${rendition}/`));
      expect(listed).toEqual(Array.from({ length: 11 }, (_, i) => `/abr/${rendition}/seg${i}.ts`));
    }
    const { seeder, viewer, page } = await seederAndViewer('abr');
    await page.addScriptTag({ url: '/hls.min.js' });
    await page.evaluate((buffer) => {
      const w = window as unknown as { Hls: any; playback: Playback; testVideo: HTMLVideoElement };
      const { Events } = w.Hls;
      const hls = new w.Hls({ maxBufferLength: buffer, maxMaxBufferLength: buffer, capLevelToPlayerSize: false });
      hls.on(Events.ERROR, (_event: unknown, data: { fatal: boolean; details: string }) => {
        if (data.fatal) w.playback.error ??= data.details;
      });
      const byHeight = () => [...hls.levels.keys()].sort((a: number, b: number) => hls.levels[a].height - hls.levels[b].height);
      // Start on the low rendition, then move up once three of its segments are in.
      hls.on(Events.MANIFEST_PARSED, () => (hls.loadLevel = byHeight()[0]));
      hls.on(Events.FRAG_BUFFERED, (_event: unknown, data: { frag: { level: number; sn: number } }) => {
        const [low, high] = byHeight();
        if (data.frag.level === low && data.frag.sn >= 2 && hls.nextLoadLevel === low) hls.nextLevel = high;
      });
      hls.on(Events.FRAG_LOADED, (_event: unknown, data: { frag: { url: string } }) => w.playback.fragments.push(new URL(data.frag.url).pathname));
      hls.on(Events.LEVEL_SWITCHED, (_event: unknown, data: { level: number }) => w.playback.switches.push(hls.levels[data.level].height));
      hls.loadSource('/abr/master.m3u8');
      hls.attachMedia(w.testVideo);
      void w.testVideo.play();
    }, BUFFER_SECONDS);
    const played = await playedToEnd(page, 'hls.js');
    // It played the low rendition, then the high one.
    expect(played.switches).toContain(180);
    expect(played.switches.lastIndexOf(360)).toBeGreaterThan(played.switches.indexOf(180));
    // hls.js loaded segments of both renditions whose every piece came from peers: the worker
    // followed each rendition from where hls.js was in it (one stream per rendition).
    const after = await stats(page);
    for (const rendition of ['v0', 'v1']) {
      const loaded = played.fragments.filter((url) => url.startsWith(`/abr/${rendition}/`));
      const fromPeers = after.assets.filter((asset) => loaded.some((url) => asset.url.endsWith(url)) && /^p+$/.test(asset.sources));
      expect(fromPeers.length, `segments of ${rendition} that hls.js loaded (${loaded.join(' ')}) wholly from peers`).toBeGreaterThan(0);
    }
    await expectMostlyFromPeers(page, 'abr');
    assertNoPageErrors(seeder);
    assertNoPageErrors(viewer);
  });
});
