import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertNoPageErrors, useChromium, VIEWER_UA_TOKEN, waitFor, type Page } from '../harness/browser.js';
import { PRIVATE_SUBNET_PREFIX, privateNetworkStatus } from '../harness/network.js';

// Proves the test network works: two visitors in real Chromium connect a WebRTC data
// channel over the private namespace's veth pair, and the origin can tell them apart by
// User-Agent, for their pages' requests and for their service workers' own fetches.

const PAGE = '<!doctype html><meta charset="utf-8"><title>smoke</title><body>smoke</body>';
// The SW fetches a probe URL on activation, so the origin sees a request made by the SW itself.
const SW = `
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim().then(() => fetch('/probe?from=sw')));
});
`;

interface SeenRequest {
  url: string;
  headers: IncomingHttpHeaders;
}

let server: Server;
let base: string;
const seen: SeenRequest[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
    } else if (req.url === '/sw.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(SW);
    } else if (req.url?.startsWith('/probe')) {
      res.writeHead(204).end();
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** Candidate addresses of the pair ICE selected, read from getStats(). */
interface SelectedPair {
  local: string;
  remote: string;
  localType: string;
}

// Functions below run in the page. They keep state on `window` between evaluate calls.
type SmokeWindow = Window & {
  pc?: RTCPeerConnection;
  channel?: RTCDataChannel;
  received?: string[];
};

/** Creates the peer connection; the offerer also creates the channel. Returns the complete (non-trickle) local SDP once offering. */
async function offer(page: Page): Promise<RTCSessionDescriptionInit> {
  return page.evaluate(async () => {
    const w = window as SmokeWindow;
    // No ICE servers: host candidates on the veth pair are all we want.
    const pc = new RTCPeerConnection({ iceServers: [] });
    w.pc = pc;
    w.received = [];
    const channel = pc.createDataChannel('smoke');
    channel.onmessage = (event) => w.received!.push(String(event.data));
    w.channel = channel;
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise<void>((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') resolve();
      });
    });
    return pc.localDescription!.toJSON() as RTCSessionDescriptionInit;
  });
}

async function answer(page: Page, remote: RTCSessionDescriptionInit): Promise<RTCSessionDescriptionInit> {
  return page.evaluate(async (offerSdp) => {
    const w = window as SmokeWindow;
    const pc = new RTCPeerConnection({ iceServers: [] });
    w.pc = pc;
    w.received = [];
    pc.ondatachannel = (event) => {
      w.channel = event.channel;
      event.channel.onmessage = (message) => w.received!.push(String(message.data));
    };
    await pc.setRemoteDescription(offerSdp);
    await pc.setLocalDescription(await pc.createAnswer());
    await new Promise<void>((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') resolve();
      });
    });
    return pc.localDescription!.toJSON() as RTCSessionDescriptionInit;
  }, remote);
}

async function channelOpen(page: Page): Promise<boolean> {
  return page.evaluate(() => (window as SmokeWindow).channel?.readyState === 'open');
}

async function selectedPair(page: Page): Promise<SelectedPair | null> {
  return page.evaluate(async () => {
    const stats = await (window as SmokeWindow).pc!.getStats();
    const byId = new Map<string, Record<string, unknown>>();
    stats.forEach((report: Record<string, unknown>) => byId.set(report.id as string, report));
    let pairId: string | undefined;
    for (const report of byId.values()) {
      if (report.type === 'transport' && typeof report.selectedCandidatePairId === 'string') pairId = report.selectedCandidatePairId;
    }
    const pair = pairId ? byId.get(pairId) : undefined;
    if (!pair) return null;
    const local = byId.get(pair.localCandidateId as string);
    const remote = byId.get(pair.remoteCandidateId as string);
    return {
      local: String(local?.address ?? local?.ip ?? ''),
      remote: String(remote?.address ?? remote?.ip ?? ''),
      localType: String(local?.candidateType ?? ''),
    };
  });
}

describe('webrtc smoke', () => {
  const chromium = useChromium({ webrtc: true });

  it('connects two viewers over a data channel inside the private network', async () => {
    const alice = await chromium.viewer('alice');
    const bob = await chromium.viewer('bob');
    const pageA = await alice.newPage();
    const pageB = await bob.newPage();
    await pageA.goto(`${base}/`);
    await pageB.goto(`${base}/`);

    const offerSdp = await offer(pageA);
    expect(offerSdp.sdp, 'offer has ICE candidates').toMatch(/a=candidate:/);
    const answerSdp = await answer(pageB, offerSdp);
    await pageA.evaluate(async (sdp) => (window as SmokeWindow).pc!.setRemoteDescription(sdp), answerSdp);

    await waitFor(async () => (await channelOpen(pageA)) && (await channelOpen(pageB)), { what: 'data channel open on both sides' });
    await pageA.evaluate(() => (window as SmokeWindow).channel!.send('hello from alice'));
    await pageB.evaluate(() => (window as SmokeWindow).channel!.send('hello from bob'));
    await waitFor(() => pageB.evaluate(() => (window as SmokeWindow).received!.length > 0), { what: 'bob receives' });
    await waitFor(() => pageA.evaluate(() => (window as SmokeWindow).received!.length > 0), { what: 'alice receives' });
    expect(await pageB.evaluate(() => (window as SmokeWindow).received)).toEqual(['hello from alice']);
    expect(await pageA.evaluate(() => (window as SmokeWindow).received)).toEqual(['hello from bob']);

    const pairA = await waitFor(() => selectedPair(pageA), { what: 'alice selected candidate pair' });
    const pairB = await waitFor(() => selectedPair(pageB), { what: 'bob selected candidate pair' });
    console.log(`selected candidate pairs: alice ${pairA.local} -> ${pairA.remote} (${pairA.localType}), bob ${pairB.local} -> ${pairB.remote} (${pairB.localType})`);
    if (privateNetworkStatus().insideNamespace) {
      for (const address of [pairA.local, pairA.remote, pairB.local, pairB.remote]) {
        expect(address.startsWith(PRIVATE_SUBNET_PREFIX), `candidate ${address} is on the private veth pair`).toBe(true);
      }
    }
    assertNoPageErrors(alice);
    assertNoPageErrors(bob);
  });
});

// No WebRTC here, so this part also runs outside the namespace.
describe('viewer identity', () => {
  const chromium = useChromium();

  it('tags page and service worker requests with the viewer User-Agent token', async () => {
    const carol = await chromium.viewer('carol');
    const page = await carol.newPage();
    await page.goto(`${base}/`);
    await page.evaluate(async () => {
      await navigator.serviceWorker.register('/sw.js');
      await fetch('/probe?from=page');
    });
    const fromSw = await waitFor(() => seen.find((r) => r.url === '/probe?from=sw'), { what: 'the service worker probe request' });
    const fromPage = seen.find((r) => r.url === '/probe?from=page');
    expect(fromPage?.headers['user-agent']).toContain(`${VIEWER_UA_TOKEN}carol`);
    expect(fromSw.headers['user-agent']).toContain(`${VIEWER_UA_TOKEN}carol`);
    assertNoPageErrors(carol);
  });
});
