import { randomBytes } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { startProcess } from '../harness/processes.js';
import { openPage, sha256, stats, useTestSite } from './test-site.js';

// The file changes on the origin while viewers watch and peers still hold pieces of the old
// version (issue 13 item 3): the origin replaces the video (same size, other bytes; then another
// size), and the manifest is republished a moment later. Every response a viewer gets is
// byte-exact to one version of the file or a clean network error, never a mix of two versions;
// once the manifest is republished, requests get the new version.

const chromium = useChromium({ webrtc: true });
const VIDEO_URL = '/media/video.mp4';
const PIECE_BYTES = 64 * 1024;
/** Pieces the seeder holds: the first half of the video's ~35 (the rest only the origin has). */
const SEEDED_PIECES = 16;
const SWARM = 'changed-file';

const fixture = useTestSite({ video: { name: 'changed-file', seconds: 12, kbps: 1500 }, pieceSize: '64KiB' });

/** What one request of the whole video gave: the SHA-256 of a complete body, or a network error. */
async function fetchWhole(page: Page): Promise<{ sha256: string } | { error: string }> {
  return page.evaluate(async (url) => {
    try {
      const body = new Uint8Array(await (await fetch(url)).arrayBuffer());
      const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', body));
      return { sha256: Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('') };
    } catch (error) {
      return { error: String(error) };
    }
  }, VIDEO_URL);
}

/** Replaces the video on the origin at once (a new file renamed over the old one, as a deploy does). */
async function replaceVideo(bytes: Uint8Array): Promise<void> {
  const next = `${fixture.site.videoPath}.next`;
  await writeFile(next, bytes);
  await rename(next, fixture.site.videoPath);
}

async function republishManifest(): Promise<void> {
  const manifest = await startProcess('node', ['bin/peerfetch.js', 'manifest', fixture.site.dir, '--piece-size', '64KiB'], { name: 'peerfetch manifest' });
  expect(await manifest.exited).toBe(0);
}

describe('a file that changes on the origin while viewers play', () => {
  // Four visitors and two republishes, each waiting for a worker to notice: longer than the default.
  it('every response is one version or a network error, and requests after the republish get the new version', { timeout: 240_000 }, async () => {
    const v1 = fixture.site.videoBytes;
    // Same size, the second half changed: pieces of the first half are alike in both versions.
    const v2 = Uint8Array.from(v1, (byte, index) => (index >= SEEDED_PIECES * PIECE_BYTES ? byte ^ 0x5a : byte));
    // Another size: v2 with 100 kB more.
    const v3 = new Uint8Array([...v2, ...randomBytes(100_000)]);
    const versions = new Map([[sha256(v1), 'v1'], [sha256(v2), 'v2'], [sha256(v3), 'v3']]);
    const seen: string[] = [];
    /** One whole-file request, named by what it gave: a version, `error`, or `MIXED` (neither). */
    const request = async (page: Page, who: string): Promise<string> => {
      const result = await fetchWhole(page);
      const outcome = 'error' in result ? 'error' : (versions.get(result.sha256) ?? 'MIXED');
      seen.push(`${who}:${outcome}`);
      return outcome;
    };
    /** Repeats the request until it gives `version`; a failure names every response seen so far. */
    const until = (page: Page, who: string, version: string) =>
      waitFor(async () => (await request(page, who)) === version, { what: `${version} (${who})`, timeoutMs: 60_000, intervalMs: 500 }).catch((error: Error) => {
        throw new Error(`${error.message}; responses so far: ${seen.join(', ')}`);
      });

    // The seeder holds the first half of v1 and shares it.
    const seeder = await chromium.viewer('changed-seeder');
    const seederPage = await seeder.newPage();
    await openPage(seederPage, fixture.originUrl, { tracker: fixture.trackerUrl, swarm: SWARM });
    const firstHalf = await seederPage.evaluate(async ({ url, end }) => (await (await fetch(url, { headers: { Range: `bytes=0-${end}` } })).arrayBuffer()).byteLength, { url: VIDEO_URL, end: SEEDED_PIECES * PIECE_BYTES - 1 });
    expect(firstHalf).toBe(SEEDED_PIECES * PIECE_BYTES);
    await waitFor(async () => ((await stats(seederPage)).assets.find((asset) => asset.url.endsWith(VIDEO_URL))?.held ?? 0) >= SEEDED_PIECES, {
      what: 'the seeder to hold the first half',
    });

    const viewer = await chromium.viewer('changed-viewer');
    const viewerPage = await viewer.newPage();
    await openPage(viewerPage, fixture.originUrl, { tracker: fixture.trackerUrl, swarm: SWARM });
    await waitFor(async () => (await stats(viewerPage)).peers >= 1, { what: 'the viewer to connect to the seeder' });

    // The origin now serves v2 under the manifest of v1: the first half comes from the seeder (or
    // the origin, where it is unchanged), the second half only from the origin, in its new version.
    await replaceVideo(v2);
    expect(['v1', 'error']).toContain(await request(viewerPage, 'stale manifest'));

    // The manifest follows; the viewer's worker reloads it (a mismatch asked for that) and its
    // requests get v2, each one before that v1 or a network error.
    await republishManifest();
    await until(viewerPage, 'after republish', 'v2');
    // A visitor who comes now gets v2 at once.
    const late = await chromium.viewer('changed-late');
    const latePage = await late.newPage();
    await openPage(latePage, fixture.originUrl, { tracker: fixture.trackerUrl, swarm: SWARM });
    expect(await request(latePage, 'late visitor')).toBe('v2');

    // Another size: the origin's answers no longer fit the listed size. A new visitor (alone in
    // its swarm, so every piece comes from the origin) loads the manifest still listing v2.
    await replaceVideo(v3);
    const fresh = await chromium.viewer('changed-fresh');
    const freshPage = await fresh.newPage();
    await openPage(freshPage, fixture.originUrl, { tracker: fixture.trackerUrl, swarm: `${SWARM}-alone` });
    expect(['v2', 'error']).toContain(await request(freshPage, 'other size, stale manifest'));
    // The viewers who hold all of v2 answer it from their stores: still one version.
    expect(['v2', 'v3', 'error']).toContain(await request(viewerPage, 'other size, from the store'));
    // The manifest follows: the new visitor's requests get v3.
    await republishManifest();
    await until(freshPage, 'other size, after republish', 'v3');

    console.info(`responses: ${seen.join(', ')}`);
    expect(seen.filter((outcome) => outcome.endsWith(':MIXED'))).toEqual([]);
    for (const context of [seeder, viewer, late, fresh]) assertNoPageErrors(context, [/Failed to load resource/, /ERR_FAILED/, /network error/i]);
  });
});
