import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertNoPageErrors, waitFor, type Page } from '../harness/browser.js';
import { COTURN_READY_PATTERN, coturnCommand } from '../harness/coturn.mjs';
import { ensureTestVideo } from '../harness/media.js';
import { startProcess, type RunningProcess } from '../harness/processes.js';
import { INTERNET_ADDRESS, TURN_ADDRESS } from '../harness/topology.mjs';
import { useTopology } from '../harness/use-topology.js';
import {
  createTestSite,
  openPage,
  openSeeder,
  originBytesFor,
  playInPage,
  recordedEvents,
  recordEvents,
  startOrigin,
  startTracker,
  stats,
  type TestSite,
} from './test-site.js';

// Visitors on real network topologies (test/harness/topology.mjs): homes behind NAT routers,
// each visitor its own Chromium process in its own namespace, the tracker, the origin and coturn
// on the "internet". The script tag names only data-tracker: the page uses its tracker's STUN
// service, and TURN with short-lived credentials when the operator gave the tracker a TURN server.

const VIDEO_URL = '/media/video.mp4';
/** TURN secret shared by coturn and the TURN-handing tracker (the operator's, never a page's). */
const TURN_SECRET = 'nat-topologies-secret';
const TURN_PORT = 3478;

const net = useTopology(
  {
    homes: [
      // Home 0: two visitors (case d) and the seeder of cases a-c.
      { nat: 'cone', visitors: 2 },
      // Home 1: the second visitor of case a.
      { nat: 'cone' },
      // Home 2: a symmetric NAT, reachable only through TURN (case b).
      { nat: 'symmetric' },
      // Home 3: no UDP at all (case c).
      { udp: 'blocked' },
    ],
  },
  () => [originUrl],
);

let site: TestSite;
let origin: RunningProcess;
let originUrl: string;
/** A tracker as an operator starts it by default: its STUN service on, no TURN. */
let tracker: RunningProcess;
let trackerUrl: string;
/** A tracker that hands out TURN credentials for coturn (and its own STUN service on another port). */
let turnTracker: RunningProcess;
let turnTrackerUrl: string;
let coturn: RunningProcess;

beforeAll(async () => {
  // 10 s at 1 Mbit/s in 64 KiB pieces: ~1.3 MB, 20 pieces; enough to see where they came from, quick to move.
  site = await createTestSite(await ensureTestVideo({ name: 'nat', seconds: 10, kbps: 1000 }), '64KiB');
  const [command, args] = coturnCommand({ address: TURN_ADDRESS, port: TURN_PORT, secret: TURN_SECRET });
  [{ origin, originUrl }, { tracker, trackerUrl }, { tracker: turnTracker, trackerUrl: turnTrackerUrl }, coturn] = await Promise.all([
    startOrigin(site.dir, [], INTERNET_ADDRESS),
    startTracker(INTERNET_ADDRESS),
    startTracker(INTERNET_ADDRESS, ['--stun-port', '3479', '--turn-url', `turn:${TURN_ADDRESS}:${TURN_PORT}?transport=udp`, '--turn-secret', TURN_SECRET]),
    startProcess(command, args, { readyPattern: COTURN_READY_PATTERN, name: 'coturn' }),
  ]);
});

afterAll(async () => {
  await Promise.allSettled([origin?.stop(), tracker?.stop(), turnTracker?.stop(), coturn?.stop()]);
});

/** The candidate types of the pair ICE selected with each connected peer, from getStats().peerList. */
async function selectedPairs(page: Page): Promise<Array<{ local: string | undefined; remote: string | undefined }>> {
  const { peerList } = await stats(page);
  return peerList.map((peer) => ({ local: peer.localCandidateType, remote: peer.remoteCandidateType }));
}

/** Waits until the page is connected to a peer whose selected pair is known, and returns the pairs. */
function connectedPairs(page: Page, what: string) {
  return waitFor(async () => {
    const pairs = await selectedPairs(page);
    return pairs.length > 0 && pairs.every((pair) => pair.local && pair.remote) && pairs;
  }, { what });
}

/** Opens a visitor on the test page (script tag with `attributes`) in `home`'s visitor `index`. */
async function openVisitor(home: number, index: number, name: string, attributes: Record<string, string>) {
  const context = await net.viewer(net.topology.homes[home]!.visitors[index]!, name);
  const page = await context.newPage();
  await recordEvents(page, ['swarm:unreachable', 'peer:connect']);
  await openPage(page, originUrl, attributes);
  return { context, page };
}

/** A viewer factory for openSeeder: visitor `index` of `home`. */
const inHome = (home: number, index = 0) => ({ viewer: (name: string) => net.viewer(net.topology.homes[home]!.visitors[index]!, name) });

describe('NAT topologies', () => {
  it('a: visitors in two homes behind ordinary NATs connect through server-reflexive candidates; the second gets at least half of the video from the first', async () => {
    const swarm = { swarm: 'case-a' };
    const seeder = await openSeeder(inHome(0), { site, originUrl, trackerUrl }, 'a-seeder', swarm);
    const { context, page } = await openVisitor(1, 0, 'a-viewer', { tracker: trackerUrl, ...swarm });

    const pairs = await connectedPairs(page, 'the visitor of home 1 to connect to the seeder of home 0');
    expect(pairs).toEqual([{ local: 'srflx', remote: 'srflx' }]);

    // Played at 1x, as a viewer would: a whole-file fetch at full speed leaves a peer no time.
    await playInPage(page, VIDEO_URL);
    const size = site.videoBytes.length;
    const viewerStats = await stats(page);
    expect(viewerStats.bytesFromPeers).toBeGreaterThanOrEqual(size / 2);
    expect(await originBytesFor(originUrl, 'a-viewer')).toBeLessThan(size / 2);
    assertNoPageErrors(seeder.context);
    assertNoPageErrors(context);
  });

  it('b: a visitor behind a symmetric NAT connects through TURN from the tracker and pieces flow', async () => {
    const attributes = { swarm: 'case-b', relay: 'all' };
    const seeder = await openSeeder(inHome(0), { site, originUrl, trackerUrl: turnTrackerUrl }, 'b-seeder', attributes);
    const { context, page } = await openVisitor(2, 0, 'b-viewer', { tracker: turnTrackerUrl, ...attributes });

    const pairs = await connectedPairs(page, 'the visitor behind the symmetric NAT to connect');
    expect(pairs).toHaveLength(1);
    // One end of the selected pair is a relayed address on the TURN server.
    expect([pairs[0]!.local, pairs[0]!.remote]).toContain('relay');

    await playInPage(page, VIDEO_URL, { rate: 2 });
    expect((await stats(page)).bytesFromPeers).toBeGreaterThan(0);
    assertNoPageErrors(seeder.context);
    assertNoPageErrors(context);
  });

  it('c: with UDP blocked and no TURN, playback completes from the origin and swarm:unreachable says why', async () => {
    const swarm = { swarm: 'case-c' };
    // Two peers in other homes: the visitor's first announce makes an attempt to each, and the
    // engine reports the swarm unreachable after two failed attempts with no connection open.
    const seeder = await openSeeder(inHome(0), { site, originUrl, trackerUrl }, 'c-seeder', swarm);
    const other = await openVisitor(1, 0, 'c-other', { tracker: trackerUrl, ...swarm });
    const { context, page } = await openVisitor(3, 0, 'c-viewer', { tracker: trackerUrl, ...swarm });

    const played = await playInPage(page, VIDEO_URL, { rate: 4 });
    expect(played.duration).toBeGreaterThan(9);
    expect(await originBytesFor(originUrl, 'c-viewer')).toBeGreaterThanOrEqual(site.videoBytes.length);

    // Each attempt gives up after the engine's 15 s channel-open bound.
    const [event] = await waitFor(async () => {
      const events = await recordedEvents(page, 'swarm:unreachable');
      return events.length > 0 && events;
    }, { what: 'swarm:unreachable on the visitor without UDP', timeoutMs: 60_000 });
    // What this page can see: its STUN request (to the tracker) was never answered.
    expect(event!.detail).toMatchObject({ reason: 'gathering-timeout', peersInSwarm: 3 });
    expect(event!.detail.attempts).toBeGreaterThanOrEqual(2);
    expect((await stats(page)).bytesFromPeers).toBe(0);
    expect(await recordedEvents(page, 'peer:connect')).toEqual([]);
    // The two peers that can reach each other still do.
    await waitFor(async () => (await stats(other.page)).peers >= 1, { what: 'the peers of homes 0 and 1 to connect' });
    assertNoPageErrors(seeder.context);
    assertNoPageErrors(other.context);
    assertNoPageErrors(context);
    // Three visitors, a played video and two 15 s attempts: more than the default 120 s on a busy machine.
  }, 240_000);

  it("e: by default (relay 'ahead') a visitor behind the symmetric NAT uses TURN, for pieces ahead of the playhead", async () => {
    // No data-relay: the default policy, with a TURN server on offer.
    const swarm = { swarm: 'case-e' };
    const seeder = await openSeeder(inHome(0), { site, originUrl, trackerUrl: turnTrackerUrl }, 'e-seeder', swarm);
    const { context, page } = await openVisitor(2, 0, 'e-viewer', { tracker: turnTrackerUrl, ...swarm });

    const pairs = await connectedPairs(page, 'the visitor behind the symmetric NAT to connect through TURN');
    expect(pairs).toHaveLength(1);
    expect([pairs[0]!.local, pairs[0]!.remote]).toContain('relay');
    await playInPage(page, VIDEO_URL);
    expect((await stats(page)).bytesFromPeers).toBeGreaterThan(0);
    assertNoPageErrors(seeder.context);
    assertNoPageErrors(context);
  });

  it("f: with relay 'never' a visitor behind the symmetric NAT uses no TURN: the video comes from the origin and swarm:unreachable says why", async () => {
    // The site's setting, on every page; the tracker still hands out TURN credentials.
    const attributes = { swarm: 'case-f', relay: 'never' };
    // Two peers in other homes, as in case c: the visitor's first announce makes an attempt to each.
    const seeder = await openSeeder(inHome(0), { site, originUrl, trackerUrl: turnTrackerUrl }, 'f-seeder', attributes);
    const other = await openVisitor(1, 0, 'f-other', { tracker: turnTrackerUrl, ...attributes });
    const { context, page } = await openVisitor(2, 0, 'f-viewer', { tracker: turnTrackerUrl, ...attributes });

    const played = await playInPage(page, VIDEO_URL, { rate: 4 });
    expect(played.duration).toBeGreaterThan(9);
    expect(await originBytesFor(originUrl, 'f-viewer')).toBeGreaterThanOrEqual(site.videoBytes.length);

    const [event] = await waitFor(async () => {
      const events = await recordedEvents(page, 'swarm:unreachable');
      return events.length > 0 && events;
    }, { what: "swarm:unreachable on the visitor behind the symmetric NAT with relay 'never'", timeoutMs: 60_000 });
    // It had a public address (the tracker's STUN answered), yet no check succeeded: only TURN would help.
    expect(event!.detail).toMatchObject({ reason: 'checks-failed', peersInSwarm: 3 });
    expect(event!.detail.attempts).toBeGreaterThanOrEqual(2);
    // Never connected, so no relayed pair and no byte through the relay.
    expect(await recordedEvents(page, 'peer:connect')).toEqual([]);
    expect((await stats(page)).bytesFromPeers).toBe(0);
    // The peers behind ordinary NATs still connect, directly.
    const otherPairs = await connectedPairs(other.page, 'the peers of homes 0 and 1 to connect');
    expect(otherPairs).toEqual([{ local: 'srflx', remote: 'srflx' }]);
    assertNoPageErrors(seeder.context);
    assertNoPageErrors(other.context);
    assertNoPageErrors(context);
    // Three visitors, a played video and two 15 s attempts, as in case c.
  }, 240_000);

  it('d: two visitors in one home connect directly over their LAN (host candidates), never through TURN', async () => {
    // The TURN-handing tracker: a relay is on offer, and must not be chosen.
    const attributes = { swarm: 'case-d', relay: 'all' };
    const seeder = await openSeeder(inHome(0, 0), { site, originUrl, trackerUrl: turnTrackerUrl }, 'd-seeder', attributes);
    const { context, page } = await openVisitor(0, 1, 'd-viewer', { tracker: turnTrackerUrl, ...attributes });

    const pairs = await connectedPairs(page, 'the two visitors of home 0 to connect');
    expect(pairs).toEqual([{ local: 'host', remote: 'host' }]);
    await playInPage(page, VIDEO_URL);
    expect((await stats(page)).bytesFromPeers).toBeGreaterThanOrEqual(site.videoBytes.length / 2);
    assertNoPageErrors(seeder.context);
    assertNoPageErrors(context);
  });
});
