import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
// @ts-expect-error bittorrent-tracker ships no type declarations
import TrackerServer from 'bittorrent-tracker/server';
import { assertNoPageErrors, useChromium, waitFor, type Page } from '../harness/browser.js';
import { coturnCommand, COTURN_READY_PATTERN } from '../harness/coturn.mjs';
import { ensureTestVideo } from '../harness/media.js';
import { startProcess, type RunningProcess } from '../harness/processes.js';
import { createTestSite, fetchInPage, openPage, startOrigin, stats, waitUntilHeld, type TestSite } from './test-site.js';

// The tracker's STUN service and TURN credentials, in real Chromium inside the private network
// namespace (10.77.0.1 and 10.77.0.2 on one veth pair, test/harness/netns.mjs). There is no NAT
// here, and Chromium drops a server-reflexive candidate equal to a host candidate, so a SNAT rule
// makes the page's STUN requests reach the tracker from 10.77.0.2: the tracker then reports an
// address the page does not have, as it would behind a NAT. (The NAT topologies are in
// test/browser/topology*.)

const HOST = '10.77.0.1';
const OTHER = '10.77.0.2';
const TURN_SECRET = `turn-secret-${process.pid}`;
/** iptables rules of this run, tagged so they are found and removed whatever happens. */
const RULE_TAG = `peerfetch-networks-${process.pid}`;

function iptables(args: string[]): void {
  const result = spawnSync('iptables', args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`iptables ${args.join(' ')}: ${result.stderr || result.error?.message}`);
}

let site: TestSite;
let origin: { origin: RunningProcess; originUrl: string };
let tracker: RunningProcess;
let trackerUrl: string;
let stunPort: number;
let turn: RunningProcess;
let turnUrl: string;
const snat = () => ['POSTROUTING', '-t', 'nat', '-p', 'udp', '-s', HOST, '-d', HOST, '--dport', String(stunPort), '-m', 'comment', '--comment', RULE_TAG, '-j', 'SNAT', '--to-source', OTHER];

beforeAll(async () => {
  site = await createTestSite(await ensureTestVideo({ seconds: 8 }), '128KiB');
  origin = await startOrigin(site.dir);
  const turnPort = 20_000 + (process.pid % 20_000);
  const [command, args] = coturnCommand({ address: HOST, port: turnPort, secret: TURN_SECRET });
  // The pages of this test are each other's TURN peers on 10.77.0.x, a range coturnCommand refuses
  // as peers (on the internet it is an operator's LAN): this closed network has no other, so the
  // refusals are left out here.
  const withPrivatePeers = args.filter((arg, i) => arg !== '--denied-peer-ip' && args[i - 1] !== '--denied-peer-ip');
  turn = await startProcess(command, withPrivatePeers, { readyPattern: COTURN_READY_PATTERN, name: 'coturn' });
  turnUrl = `turn:${HOST}:${turnPort}?transport=udp`;
  tracker = await startProcess('node', ['bin/peerfetch.js', 'tracker', '--port', '0', '--host', HOST, '--turn-url', turnUrl], {
    readyPattern: /ws:\/\/10\.77\.0\.1:\d+/,
    name: 'peerfetch tracker',
    env: { PEERFETCH_TURN_SECRET: TURN_SECRET },
  });
  trackerUrl = tracker.ready![0];
  const health = (await (await fetch(`${trackerUrl.replace('ws:', 'http:')}/health`)).json()) as { stunPort: number };
  stunPort = health.stunPort;
  iptables(['-A', ...snat()]);
});

afterAll(async () => {
  if (stunPort) spawnSync('iptables', ['-D', ...snat()]);
  await Promise.allSettled([origin?.origin.stop(), tracker?.stop(), turn?.stop()]);
});

async function stunAnswered(): Promise<number> {
  const metrics = await (await fetch(`${trackerUrl.replace('ws:', 'http:')}/metrics`)).text();
  return Number(/peerfetch_tracker_stun_answered_total (\d+)/.exec(metrics)?.[1]);
}

/** ICE candidates gathered (non-trickle) by a fresh connection with `config`, parsed from its SDP. */
function gather(page: Page, config: RTCConfiguration): Promise<Array<{ type: string; address: string; related: string | undefined }>> {
  return page.evaluate(async (config) => {
    const pc = new RTCPeerConnection(config);
    pc.createDataChannel('probe');
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise<void>((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
    });
    const candidates = [...pc.localDescription!.sdp.matchAll(/a=candidate:\S+ \d+ udp \d+ (\S+) \d+ typ (\w+)(?: raddr (\S+))?/gi)].map((m) => ({
      address: m[1]!,
      type: m[2]!,
      related: m[3],
    }));
    pc.close();
    return candidates;
  }, config);
}

/** The ICE servers this tracker hands a peerfetch page, asked for the way the engine asks (an announce with peerfetch counters). */
async function handout(): Promise<{ stunPort?: number; turn?: { urls: string[]; username: string; credential: string } }> {
  const ws = new WebSocket(trackerUrl);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const id = () => String.fromCharCode(...Array.from({ length: 20 }, () => Math.floor(Math.random() * 256)));
  ws.send(JSON.stringify({ action: 'announce', info_hash: id(), peer_id: id(), numwant: 0, uploaded: 0, downloaded: 0, left: 1, event: 'started', peerfetch: { bytesFromPeers: 0, bytesFromOrigin: 0, bytesUploaded: 0 } }));
  const reply = await new Promise<{ peerfetch: Awaited<ReturnType<typeof handout>> }>((resolve) => ws.once('message', (data) => resolve(JSON.parse(String(data)))));
  ws.close();
  return reply.peerfetch;
}

describe('networks: STUN and TURN from the tracker', () => {
  const chromium = useChromium({ webrtc: true });

  it('the tracker\'s STUN service gives Chromium a server-reflexive candidate', async () => {
    const viewer = await chromium.viewer('stun-probe');
    const page = await viewer.newPage();
    await page.goto(`${origin.originUrl}/`);
    const before = await stunAnswered();
    const candidates = await gather(page, { iceServers: [{ urls: `stun:${HOST}:${stunPort}` }] });
    // Chromium keeps a server-reflexive candidate only when the address the server saw differs
    // from its own socket's: this one exists only if the tracker answered with the SNATed address.
    expect(candidates.filter((c) => c.type === 'srflx').map((c) => c.address), 'the address the tracker saw').toContain(OTHER);
    expect(await stunAnswered()).toBeGreaterThan(before);
    const hostOnly = await gather(page, { iceServers: [] });
    expect(hostOnly.map((c) => c.type), 'without a STUN server: host candidates only').not.toContain('srflx');
    assertNoPageErrors(viewer);
  });

  it('with only data-tracker, pages use their tracker\'s STUN and TURN, connect, and report the path per peer; data-debug logs decisions', async () => {
    const seeder = await chromium.viewer('net-seeder');
    const seederPage = await seeder.newPage();
    const debugLines: string[] = [];
    seederPage.on('console', (message) => message.type() === 'debug' && debugLines.push(message.text()));
    const answeredBefore = await stunAnswered();
    await openPage(seederPage, origin.originUrl, { tracker: trackerUrl, debug: '' });
    expect((await fetchInPage(seederPage, '/media/video.mp4')).sha256).toBe(site.videoSha256);
    await waitUntilHeld(seederPage, '/media/video.mp4');

    const viewer = await chromium.viewer('net-viewer');
    const viewerPage = await viewer.newPage();
    const viewerDebug: string[] = [];
    viewerPage.on('console', (message) => message.type() === 'debug' && viewerDebug.push(message.text()));
    await openPage(viewerPage, origin.originUrl, { tracker: trackerUrl });
    await waitFor(async () => (await stats(viewerPage)).peers >= 1, { what: 'the viewer to connect to the seeder', timeoutMs: 60_000 });
    const peer = await waitFor(async () => (await stats(viewerPage)).peerList.find((p) => p.localCandidateType && p.rttMs !== undefined), { what: 'the peer path in getStats()' });
    expect(['host', 'srflx', 'prflx']).toContain(peer.localCandidateType);
    expect(['host', 'srflx', 'prflx']).toContain(peer.remoteCandidateType);
    expect(peer.rttMs).toBeGreaterThanOrEqual(0);
    expect((await fetchInPage(viewerPage, '/media/video.mp4')).sha256).toBe(site.videoSha256);
    expect((await stats(viewerPage)).bytesFromPeers).toBeGreaterThan(0);

    expect(await stunAnswered(), 'the pages asked their tracker\'s STUN service').toBeGreaterThan(answeredBefore);
    const handedOut = debugLines.find((line) => line.includes('hands out ICE servers'));
    expect(handedOut, 'data-debug logs the ICE servers from the tracker').toBeDefined();
    expect(handedOut).toContain(`stun:${HOST}:${stunPort} ${turnUrl}`);
    expect(debugLines.some((line) => line.includes(' path: ')), 'connections are logged').toBe(true);
    expect(viewerDebug, 'no data-debug: nothing logged').toEqual([]);
    assertNoPageErrors(seeder);
    assertNoPageErrors(viewer);
  });

  it('data-ice-servers="[]" overrides the tracker: no STUN request is made', async () => {
    const viewer = await chromium.viewer('no-ice');
    const page = await viewer.newPage();
    const lines: string[] = [];
    page.on('console', (message) => message.type() === 'debug' && lines.push(message.text()));
    const before = await stunAnswered();
    await openPage(page, origin.originUrl, { tracker: trackerUrl, iceServers: '[]', debug: 'on' });
    // Logged once the offers are complete (gathering done): a STUN request would have been answered by then.
    const made = await waitFor(() => lines.find((line) => line.includes(' offers with ICE servers ')), { what: 'the page to make its offers' });
    expect(made).toContain('offers with ICE servers none; candidates: host');
    expect(await stunAnswered()).toBe(before);
    assertNoPageErrors(viewer);
  });

  it('a TURN credential from the tracker allocates a relay on coturn, and two pages open a data channel through it', async () => {
    const given = await handout();
    expect(given.stunPort).toBe(stunPort);
    const turnServer = { ...given.turn! };
    const alice = await chromium.viewer('relay-alice');
    const bob = await chromium.viewer('relay-bob');
    const pageA = await alice.newPage();
    const pageB = await bob.newPage();
    await pageA.goto(`${origin.originUrl}/`);
    await pageB.goto(`${origin.originUrl}/`);

    const forged = await gather(pageA, { iceServers: [{ ...turnServer, credential: Buffer.from('not the secret').toString('base64') }], iceTransportPolicy: 'relay' });
    expect(forged, 'a credential not made with the shared secret allocates nothing').toEqual([]);
    const relayed = await gather(pageA, { iceServers: [turnServer], iceTransportPolicy: 'relay' });
    expect(relayed.map((c) => c.type)).toContain('relay');

    // `events`: what each connection went through, for the message when the relayed channel never opens.
    type RelayWindow = Window & { pc?: RTCPeerConnection; channel?: RTCDataChannel; got?: string; events?: string[] };
    const config = { iceServers: [turnServer], iceTransportPolicy: 'relay' as const };
    const offer = await pageA.evaluate(async (config) => {
      const w = window as RelayWindow;
      const pc = (w.pc = new RTCPeerConnection(config));
      const events: string[] = (w.events = []);
      const note = (what: string) => events.push(`${Math.round(performance.now())} ms ${what}`);
      pc.oniceconnectionstatechange = () => note(`ice ${pc.iceConnectionState}`);
      pc.onconnectionstatechange = () => note(`connection ${pc.connectionState}`);
      w.channel = pc.createDataChannel('relay');
      w.channel.onopen = () => note('channel open');
      w.channel.onmessage = (event) => (w.got = String(event.data));
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise<void>((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve();
        pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
      });
      return pc.localDescription!.toJSON() as RTCSessionDescriptionInit;
    }, config);
    const answer = await pageB.evaluate(
      async ({ config, offer }) => {
        const w = window as RelayWindow;
        const pc = (w.pc = new RTCPeerConnection(config));
        const events: string[] = (w.events = []);
        const note = (what: string) => events.push(`${Math.round(performance.now())} ms ${what}`);
        pc.oniceconnectionstatechange = () => note(`ice ${pc.iceConnectionState}`);
        pc.onconnectionstatechange = () => note(`connection ${pc.connectionState}`);
        pc.ondatachannel = (event) => {
          note(`datachannel ${event.channel.readyState}`);
          w.channel = event.channel;
          event.channel.onopen = () => {
            note('channel open');
            event.channel.send('through the relay');
          };
        };
        await pc.setRemoteDescription(offer);
        await pc.setLocalDescription(await pc.createAnswer());
        await new Promise<void>((resolve) => {
          if (pc.iceGatheringState === 'complete') return resolve();
          pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
        });
        return pc.localDescription!.toJSON() as RTCSessionDescriptionInit;
      },
      { config, offer },
    );
    await pageA.evaluate((answer) => (window as RelayWindow).pc!.setRemoteDescription(answer), answer);
    const got = await waitFor(() => pageA.evaluate(() => (window as RelayWindow).got), { what: 'a message over the relayed data channel' }).catch(async (error: Error) => {
      const [offerer, answerer] = await Promise.all([pageA, pageB].map((page) => page.evaluate(() => (window as RelayWindow).events?.join(', '))));
      throw new Error(`${error.message}; the offerer's connection: ${offerer}; the answerer's: ${answerer}`);
    });
    expect(got).toBe('through the relay');
    const localType = await pageA.evaluate(async () => {
      const report = await (window as RelayWindow).pc!.getStats();
      let pairId: string | undefined;
      report.forEach((s: Record<string, unknown>) => {
        if (s.type === 'transport') pairId = s.selectedCandidatePairId as string;
      });
      const pair = report.get(pairId!) as Record<string, unknown>;
      return (report.get(pair.localCandidateId as string) as Record<string, unknown>).candidateType;
    });
    expect(localType).toBe('relay');
    assertNoPageErrors(alice);
    assertNoPageErrors(bob);
  });

  it('against a tracker that hands out nothing (bittorrent-tracker), pages connect on host candidates', async () => {
    const server = new TrackerServer({ udp: false, http: false, ws: true, stats: false });
    server.on('warning', () => {});
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    const thirdParty = `ws://${HOST}:${server.ws.address().port}`;
    try {
      const a = await (await chromium.viewer('bt-a')).newPage();
      const b = await (await chromium.viewer('bt-b')).newPage();
      await openPage(a, origin.originUrl, { tracker: thirdParty });
      await openPage(b, origin.originUrl, { tracker: thirdParty });
      const peer = await waitFor(async () => (await stats(b)).peerList.find((p) => p.localCandidateType), { what: 'a connection over the third-party tracker', timeoutMs: 60_000 });
      expect(peer).toMatchObject({ localCandidateType: 'host', remoteCandidateType: 'host' });
    } finally {
      server.close();
    }
  });
});
