import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { assertNoPageErrors, waitFor } from '../harness/browser.js';
import { ensureTestVideo } from '../harness/media.js';
import { COTURN_READY_PATTERN, coturnCommand } from '../harness/coturn.mjs';
import { startProcess, type RunningProcess } from '../harness/processes.js';
import { INTERNET_ADDRESS, TURN_ADDRESS } from '../harness/topology.mjs';
import { useTopology } from '../harness/use-topology.js';
import { CHUNK_SIZE } from '../../src/shared/peer-messages.js';
import { createTestSite, openPage, openSeeder, fetchInPage, originBytesFor, playInPage, startOrigin, startTracker, stats, waitUntilHeld, type TestSite } from './test-site.js';

// Peers on real home uplinks (issue 15): two homes behind NAT routers whose lines are capped
// with tbf at 2 Mbit/s upstream (test/harness/topology.mjs), servers on the topology's internet,
// a STUN server (coturn) there for the server-reflexive candidates that cross the NATs: a seeder on
// such a line serves a viewer playing a 1.3 Mbit/s stream behind another NAT with a short send
// queue, at the pace of its line, and nothing sent twice, and the upload cap a site or viewer sets
// holds at every time scale, measured in the uploader's page. (How much of the stream the seeder
// carries, and swarms of mixed uplinks: `npm run bench -- --scenarios uplinks`, BENCHMARKS.md
// "Home uplinks".)

const UPLINK_KBIT = 2000;
const VIDEO_URL = '/media/video.mp4';
/** The manifest's piece size (bytes): 256 KiB, as createTestSite is told below. */
const PIECE_BYTES = 256 * 1024;
/**
 * Most bytes the seeder's data channel may hold queued (bufferedAmount just after a send): the
 * sender's largest target before it measured the line (128 KiB, engine/send-pacer.ts; 250 ms of
 * line time after, about 60 kB here) and the chunk that crosses it (16 KiB and its header). A
 * sender that hands the channel whole pieces, or everything asked, holds 256 KiB and more, which a
 * cancel or a more urgent request then waits behind (issue 15: 1.6 MB used of 4.4 MB received).
 */
const MAX_QUEUED_BYTES = 128 * 1024 + CHUNK_SIZE + 256;

const net = useTopology({ homes: [{ uplinkKbit: UPLINK_KBIT }, { uplinkKbit: UPLINK_KBIT }] }, () => [servers.originUrl]);

let site: TestSite;
const servers = { originUrl: '', trackerUrl: '' };
const STUN_PORT = 3478;
/** The script-tag attributes of every page: the tracker and the STUN server. */
const attributes = () => ({ tracker: servers.trackerUrl, iceServers: `stun:${TURN_ADDRESS}:${STUN_PORT}` });
let processes: RunningProcess[] = [];
beforeAll(async () => {
  // 20 s at 1.3 Mbit/s in 256 KiB pieces (the manifest's default): 13 pieces, ~1.6 s of video each.
  site = await createTestSite(await ensureTestVideo({ name: 'uplinks', seconds: 20, kbps: 1300 }), '256KiB');
  const origin = await startOrigin(site.dir, [], INTERNET_ADDRESS);
  const tracker = await startTracker(INTERNET_ADDRESS);
  const [command, args] = coturnCommand({ address: TURN_ADDRESS, port: STUN_PORT });
  const stun = await startProcess(command, args, { readyPattern: COTURN_READY_PATTERN, name: 'coturn (STUN)' });
  processes = [origin.origin, tracker.tracker, stun];
  servers.originUrl = origin.originUrl;
  servers.trackerUrl = tracker.trackerUrl;
});
afterAll(async () => {
  await Promise.allSettled(processes.map((process) => process.stop()));
});

/** A viewer in home `home` (its Chromium runs in that home's namespace). */
async function visitor(home: number, name: string) {
  return net.viewer(net.topology.homes[home]!.visitors[0]!, name);
}

/** Samples `getStats().bytesUploaded` every 100 ms in the page, with the page's clock, until stopped. */
async function sampleUploads(page: Page): Promise<() => Promise<{ at: number; bytes: number }[]>> {
  await page.evaluate(() => {
    const samples: { at: number; bytes: number }[] = [];
    const timer = setInterval(() => samples.push({ at: performance.now(), bytes: window.peerfetch!.getStats().bytesUploaded }), 100);
    Object.assign(window, { uploadSamples: samples, stopUploadSamples: () => clearInterval(timer) });
  });
  return () =>
    page.evaluate(() => {
      const w = window as unknown as { uploadSamples: { at: number; bytes: number }[]; stopUploadSamples(): void };
      w.stopUploadSamples();
      return w.uploadSamples;
    });
}

describe('an uploader on a 2 Mbit/s home uplink', () => {
  it('serves a viewer playing a 1.3 Mbit/s stream behind another NAT from a short send queue at the pace of its line, nothing sent twice', async () => {
    const fixture = { site, originUrl: servers.originUrl, trackerUrl: servers.trackerUrl };
    const { context: seeder, page: seederPage } = await openSeeder({ viewer: (name) => visitor(0, name) }, fixture, 'line-seeder', attributes());
    // The most the seeder's channels hold queued, read just after each send (the queue's peak).
    await seederPage.evaluate(() => {
      const send = RTCDataChannel.prototype.send;
      let most = 0;
      RTCDataChannel.prototype.send = function (this: RTCDataChannel, data: never) {
        send.call(this, data);
        most = Math.max(most, this.bufferedAmount);
      };
      Object.assign(window, { mostQueued: () => most });
    });
    const viewer = await visitor(1, 'line-viewer');
    const page = await viewer.newPage();
    await openPage(page, servers.originUrl, attributes());
    await waitFor(async () => (await stats(page)).peers >= 1, { what: 'the viewer to connect to the seeder' });
    const sentBefore = (await stats(seederPage)).bytesUploaded;
    const lineBefore = net.topology.homes[0]!.lineBytes().up;

    // The player reads the stream at 1x to its end (playInPage resolves on `ended`).
    await playInPage(page, VIDEO_URL);
    await waitUntilHeld(page, VIDEO_URL);
    const size = site.videoBytes.length;
    const fromPeers = (await stats(page)).bytesFromPeers;
    const fromOrigin = await originBytesFor(servers.originUrl, 'line-viewer', VIDEO_URL);
    const sent = (await stats(seederPage)).bytesUploaded - sentBefore;
    const line = net.topology.homes[0]!.lineBytes().up - lineBefore;
    const mostQueued = await seederPage.evaluate(() => (window as unknown as { mostQueued(): number }).mostQueued());
    console.info(
      `2 Mbit/s seeder: ${fromPeers} B of ${size} B from it (${((fromPeers / size) * 100).toFixed(1)}%), ${fromOrigin} B from the origin, ` +
        `${sent} B sent (${sent - fromPeers} B unused), ${line} B across its line, at most ${mostQueued} B queued in its channel`,
    );
    // The seeder served the viewer, through a queue of a quarter second of its line or so, and
    // carried a sixth of the video at least. The player reads the 20 s video about 10 s ahead from
    // the uncapped origin at the start, so a 2 Mbit/s line can carry only the rest, and how much
    // depends on the first seconds: 27-60% in runs at machine loads of 1-19 (27% once at 19);
    // 5-25%, most under 15%, when a fresh peer's line never earned the player's trust (every piece
    // the player reached before the line finished it went to the origin).
    expect(fromPeers).toBeGreaterThan(size / 6);
    expect(sent).toBeGreaterThan(0);
    // Its uploads went at the pace of its line (engine/line-pacer.ts): what crossed the line is the
    // payload and the transport's headers (10% over it in runs), not the resends of a router queue
    // the transport overflowed (52% over it when uploads went out as fast as the channel took them).
    expect(line).toBeLessThanOrEqual(1.25 * sent);
    expect(mostQueued).toBeGreaterThan(0);
    expect(mostQueued).toBeLessThanOrEqual(MAX_QUEUED_BYTES);
    // Nothing arrived twice: a piece the origin rescued was cancelled at the seeder, the part
    // already received finished by the origin from there (one piece of slack: the player may read
    // a piece twice, e.g. Chromium's second range request for the same bytes).
    expect(fromOrigin + fromPeers).toBeLessThanOrEqual(size + PIECE_BYTES);
    assertNoPageErrors(seeder);
    assertNoPageErrors(viewer);
  });

  it('an upload cap holds at every time scale: bytes uploaded over any window ≤ cap × window + one chunk', async () => {
    const fixture = { site, originUrl: servers.originUrl, trackerUrl: servers.trackerUrl };
    const { context: seeder, page: seederPage } = await openSeeder({ viewer: (name) => visitor(0, name) }, fixture, 'capped-seeder', attributes());
    const capBytesPerSecond = 100_000; // 800 kbit/s, well under the line
    await seederPage.evaluate((cap) => window.peerfetch!.setUploadLimit(cap), capBytesPerSecond);
    const viewer = await visitor(1, 'capped-viewer');
    const page = await viewer.newPage();
    await openPage(page, servers.originUrl, attributes());
    await waitFor(async () => (await stats(page)).peers >= 1, { what: 'the viewer to connect to the seeder' });

    const samples = await sampleUploads(seederPage);
    expect((await fetchInPage(page, VIDEO_URL)).sha256).toBe(site.videoSha256);
    const series = await samples();
    const total = series.at(-1)!.bytes - series[0]!.bytes;
    expect(total).toBeGreaterThan(4 * CHUNK_SIZE); // it did upload under the cap
    let leastMargin = Infinity;
    for (let i = 0; i < series.length; i++) {
      for (let j = i + 1; j < series.length; j++) {
        const bytes = series[j]!.bytes - series[i]!.bytes;
        const allowed = (capBytesPerSecond * (series[j]!.at - series[i]!.at)) / 1000 + CHUNK_SIZE;
        if (bytes > allowed) throw new Error(`${bytes} B uploaded in ${(series[j]!.at - series[i]!.at).toFixed(0)} ms, more than ${allowed.toFixed(0)} B`);
        leastMargin = Math.min(leastMargin, allowed - bytes);
      }
    }
    const seconds = ((series.at(-1)!.at - series[0]!.at) / 1000).toFixed(1);
    console.info(`capped seeder: ${total} B uploaded over ${seconds} s, never closer to the bound than ${leastMargin.toFixed(0)} B`);
    assertNoPageErrors(seeder);
    assertNoPageErrors(viewer);
  });
});
