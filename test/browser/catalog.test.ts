import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { ensureTestVideo } from '../harness/media.js';
import { startProcess, type RunningProcess } from '../harness/processes.js';
import { fetchInPage, openPage, PAGE, playInPage, sha256, startOrigin, startTracker, stats, waitUntilHeld } from './test-site.js';

// A site with a catalog of 5,001 assets (a clip and 5,000 small files, as issue 11 describes):
// its manifest is written as a catalog (shards and per-file piece lists), a second visitor takes
// the clip from the first one's peer (a hello listing every asset passed the 64 KiB frame limit
// and no connection ever got past it), and what a page loads of the manifest before its first
// frame is about what it loads on a site of 10 assets. Sites are generated at run time.

const chromium = useChromium({ webrtc: true });
const CLIP_URL = '/media/clip.mp4';
const PIECE_SIZE = '64KiB';
/** The small files of the large site (and 9 of the small one): 5,000 of them, and the clip, make 5,001 assets. */
const LARGE_FILES = 5000;
const SMALL_FILES = 9;

interface Site {
  dir: string;
  origin: RunningProcess;
  originUrl: string;
}

/** A site of the clip and `files` small audio files, its manifest written by the real `peerfetch manifest` (`extra` flags), served by `peerfetch origin`. */
async function createSite(clip: string, files: number, extra: string[] = []): Promise<Site> {
  const dir = await mkdtemp(join(tmpdir(), 'peerfetch-catalog-'));
  await mkdir(join(dir, 'media'));
  await mkdir(join(dir, 'library'));
  await copyFile(clip, join(dir, 'media', 'clip.mp4'));
  await copyFile('dist/peerfetch.js', join(dir, 'peerfetch.js'));
  await copyFile('dist/peerfetch-sw.js', join(dir, 'peerfetch-sw.js'));
  await writeFile(join(dir, 'index.html'), PAGE);
  for (let n = 0; n < files; n++) await writeFile(join(dir, 'library', `track-${n}.m4a`), randomBytes(256));
  const manifest = await startProcess('node', ['bin/peerfetch.js', 'manifest', dir, '--piece-size', PIECE_SIZE, ...extra], { name: 'peerfetch manifest' });
  expect(await manifest.exited).toBe(0);
  const { origin, originUrl } = await startOrigin(dir);
  return { dir, origin, originUrl };
}

/** Bytes the origin sent of the manifest and its catalog (shards, piece lists), to everyone since it started. */
async function manifestBytes(originUrl: string): Promise<{ total: number; byPath: Record<string, number> }> {
  const response = await fetch(`${originUrl}/__peerfetch/origin-stats`);
  const { byPath } = (await response.json()) as { byPath: Record<string, number> };
  const manifestPaths = Object.entries(byPath).filter(([path]) => path === '/peerfetch-manifest.json' || path.startsWith('/peerfetch-catalog/'));
  return { total: manifestPaths.reduce((sum, [, bytes]) => sum + bytes, 0), byPath: Object.fromEntries(manifestPaths) };
}

/** Starts the clip in a <video> and resolves once it shows its first frame (`playing`). */
function untilFirstFrame(page: Page): Promise<void> {
  return page.evaluate(
    (url) =>
      new Promise<void>((resolve, reject) => {
        const video = document.createElement('video');
        video.muted = true;
        video.addEventListener('error', () => reject(new Error(`media error ${video.error?.code}: ${video.error?.message}`)));
        video.addEventListener('playing', () => resolve(), { once: true });
        video.src = url;
        document.body.append(video);
        void video.play().catch(reject);
      }),
    CLIP_URL,
  );
}

let large: Site | undefined;
let small: Site | undefined;
let tracker: { tracker: RunningProcess; trackerUrl: string } | undefined;
let clipBytes: Buffer;

beforeAll(async () => {
  const clip = await ensureTestVideo({ name: 'catalog', seconds: 12, kbps: 1500 });
  clipBytes = await readFile(clip);
  [large, small, tracker] = await Promise.all([createSite(clip, LARGE_FILES), createSite(clip, SMALL_FILES), startTracker()]);
});

afterAll(async () => {
  await Promise.allSettled([large?.origin.stop(), small?.origin.stop(), tracker?.tracker.stop()]);
});

describe('a catalog of 5,001 assets', () => {
  it('is written as a catalog: a manifest of a few hundred bytes, shards of a few dozen assets', async () => {
    const manifest = JSON.parse(await readFile(join(large!.dir, 'peerfetch-manifest.json'), 'utf8')) as { assets: unknown[]; catalog: { shards: string; count: number } };
    expect(manifest.assets).toEqual([]);
    expect(manifest.catalog.count).toBe(128);
    expect((await stat(join(large!.dir, 'peerfetch-manifest.json'))).size).toBeLessThan(1024);
    const shards = await readdir(join(large!.dir, manifest.catalog.shards));
    expect(shards).toHaveLength(128);
    // The small site stays a plain manifest (under 64 KiB).
    const plain = JSON.parse(await readFile(join(small!.dir, 'peerfetch-manifest.json'), 'utf8')) as { assets: unknown[]; catalog?: unknown };
    expect(plain.assets).toHaveLength(SMALL_FILES + 1);
    expect(plain.catalog).toBeUndefined();
  });

  it('a page loads about as much of the manifest before its first frame as on a site of 10 assets', async () => {
    const measure = async (site: Site, name: string) => {
      const viewer = await chromium.viewer(name);
      const page = await viewer.newPage();
      await openPage(page, site.originUrl, { tracker: tracker!.trackerUrl, swarm: `catalog-first-frame-${name}` });
      await untilFirstFrame(page);
      const bytes = await manifestBytes(site.originUrl);
      assertNoPageErrors(viewer);
      await viewer.close();
      return bytes;
    };
    const onSmall = await measure(small!, 'first-frame-small');
    const onLarge = await measure(large!, 'first-frame-large');
    // The same catalog in full, as a manifest listing every asset and piece (what pages loaded before).
    const inlineFile = `${large!.dir}-inline.json`;
    const inline = await startProcess('node', ['bin/peerfetch.js', 'manifest', large!.dir, '--piece-size', PIECE_SIZE, '--catalog', 'off', '--out', inlineFile], { name: 'peerfetch manifest --catalog off' });
    expect(await inline.exited).toBe(0);
    const inlineBytes = (await stat(inlineFile)).size;
    console.info(`manifest bytes before the first frame: ${onLarge.total} B with 5,001 assets ${JSON.stringify(onLarge.byPath)}, ${onSmall.total} B with 10; the full manifest is ${inlineBytes} B`);
    expect(onLarge.total, JSON.stringify(onLarge.byPath)).toBeGreaterThan(0);
    expect(onLarge.total, JSON.stringify(onLarge.byPath)).toBeLessThanOrEqual(onSmall.total + 16 * 1024);
    expect(onLarge.total * 20, 'a twentieth of the full manifest at most').toBeLessThan(inlineBytes);
  });

  it('a second visitor takes the clip from the first visitor over WebRTC', async () => {
    const site = large!;
    const swarm = 'catalog-peers';
    const seeder = await chromium.viewer('catalog-seeder');
    const seederPage = await seeder.newPage();
    await openPage(seederPage, site.originUrl, { tracker: tracker!.trackerUrl, swarm });
    expect((await fetchInPage(seederPage, CLIP_URL)).sha256).toBe(sha256(clipBytes));
    await waitUntilHeld(seederPage, CLIP_URL);

    const viewer = await chromium.viewer('catalog-viewer');
    const page = await viewer.newPage();
    await openPage(page, site.originUrl, { tracker: tracker!.trackerUrl, swarm });
    await waitFor(async () => (await stats(page)).peers >= 1, { what: 'the second visitor to connect to the first (its hello fits a frame)' });
    await playInPage(page, CLIP_URL, { rate: 2 });
    const viewerStats = await stats(page);
    console.info(`second visitor: ${viewerStats.bytesFromPeers} B of the clip's ${clipBytes.length} B from peers, offload ${viewerStats.offloadRatio.toFixed(3)}`);
    expect(viewerStats.bytesFromPeers).toBeGreaterThanOrEqual(clipBytes.length / 2);
    expect((await stats(seederPage)).bytesUploaded).toBeGreaterThanOrEqual(viewerStats.bytesFromPeers);
    assertNoPageErrors(seeder);
    assertNoPageErrors(viewer);
  });

  it('an asset whose piece list is damaged or missing comes from the origin, byte-exact, and is not answered by the worker', async () => {
    const site = large!;
    const manifest = JSON.parse(await readFile(join(site.dir, 'peerfetch-manifest.json'), 'utf8')) as { catalog: { shards: string; pieces: string } };
    // Find two small files' entries and break their lists: one with other bytes, one gone.
    const shardFolder = join(site.dir, manifest.catalog.shards);
    const entries: Array<{ url: string; piecesSha256: string }> = [];
    for (const file of await readdir(shardFolder)) {
      const shard = JSON.parse(await readFile(join(shardFolder, file), 'utf8')) as { assets: Array<{ url: string; piecesSha256: string }> };
      entries.push(...shard.assets.filter((entry) => entry.url.startsWith('/library/')));
      if (entries.length >= 2) break;
    }
    const [damaged, missing] = entries as [{ url: string; piecesSha256: string }, { url: string; piecesSha256: string }];
    await writeFile(join(site.dir, manifest.catalog.pieces, `${damaged.piecesSha256}.bin`), randomBytes(32));
    await writeFile(join(site.dir, manifest.catalog.pieces, `${missing.piecesSha256}.bin`), '');

    const visitor = await chromium.viewer('catalog-bad-lists');
    const page = await visitor.newPage();
    await openPage(page, site.originUrl, { tracker: tracker!.trackerUrl, swarm: 'catalog-bad-lists' });
    for (const entry of [damaged, missing]) {
      const fetched = await fetchInPage(page, entry.url);
      expect(fetched.status).toBe(200);
      expect(fetched.sha256).toBe(sha256(await readFile(join(site.dir, entry.url))));
    }
    // A listed file with a good list is the worker's; the broken ones were passed through (the
    // worker reports what it serves in order, so their bytes would be counted before the clip's).
    const good = await fetchInPage(page, CLIP_URL);
    expect(good.sha256).toBe(sha256(clipBytes));
    const served = await waitFor(async () => {
      const { bytesServed } = await stats(page);
      return bytesServed >= clipBytes.length ? bytesServed : undefined;
    }, { what: 'the worker to report serving the clip' });
    expect(served).toBe(clipBytes.length);
    assertNoPageErrors(visitor);
  });
});
