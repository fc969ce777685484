// Load generator for the tracker benchmark, in its own process (loopback only, bounded in count and
// time): `node bench/tracker-load.mjs '<json config>'`. Talks to its parent over IPC.
//   1. opens `peers` WebSockets, each one peer announcing `started` in one of `swarms` swarms;
//   2. reports {type:'connected'} and waits for {type:'go'} (the parent measures server memory);
//   3. for `durationMs`, keeps `concurrency` announces in flight, each with `offers` offers, each
//      sent when the previous reply on that socket arrived; records every reply's latency;
//   4. reports {type:'result', ...} and exits.
import WebSocket from 'ws';
import { binaryId, sampleSdp } from './lib/tracker-frames.mjs';

const config = JSON.parse(process.argv[2]);
const { url, peers, swarms, concurrency, offers, sdpBytes, durationMs, connectBatch } = config;

const swarmIds = Array.from({ length: swarms }, binaryId);
const sdp = sampleSdp(sdpBytes);

/** The other headers Chromium 140 sends with a WebSocket upgrade: servers see them on every real connection. */
const BROWSER_HEADERS = {
  'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36',
  Pragma: 'no-cache',
  'Cache-Control': 'no-cache',
  'Accept-Encoding': 'gzip, deflate, br, zstd',
  'Accept-Language': 'en-US,en;q=0.9',
};

const sockets = [];
const waiting = []; // per socket: resolve function of the pending reply, or null

function open(i) {
  return new Promise((resolve, reject) => {
    // The generator must stay cheaper than the servers it measures: no UTF-8 validation, and an
    // all-zero masking key (valid: the frames are still masked frames; ws then skips the XOR pass).
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      generateMask: (mask) => mask.fill(0),
      origin: 'https://video.example',
      headers: BROWSER_HEADERS,
    });
    const peer = { ws, infoHash: swarmIds[i % swarms], peerId: binaryId() };
    ws.on('message', (data) => {
      // Replies carry "interval"; relayed offers do not, and are only counted. Searched in the
      // bytes: decoding every frame to a string would make the generator the bottleneck.
      if (data.includes(INTERVAL_KEY)) {
        const w = waiting[i];
        waiting[i] = null;
        w?.();
      } else stats.relayed++;
    });
    ws.on('error', (e) => {
      stats.errors++;
      reject(e);
    });
    ws.on('close', () => {
      const w = waiting[i];
      waiting[i] = null;
      w?.(new Error('closed'));
    });
    ws.on('open', () => {
      sockets[i] = peer;
      resolve(peer);
    });
  });
}

const INTERVAL_KEY = Buffer.from('"interval"');
const stats = { relayed: 0, errors: 0 };
/**
 * Per socket, its announce with offers, serialised once: the tracker sees a complete, valid announce
 * every time (its offer ids repeat between a socket's announces, which the protocol allows), and the
 * generator spends its CPU on the sockets rather than on JSON.
 */
const offerFrames = [];
/** A reply slower than this (ms) counts as an error: far above any latency seen at saturation. */
const REPLY_TIMEOUT_MS = 10_000;

function announceFrame(p, withOffers) {
  const frame = {
    action: 'announce', info_hash: p.infoHash, peer_id: p.peerId, numwant: withOffers ? offers : 0,
    uploaded: 0, downloaded: 0, left: 1000, event: withOffers ? 'update' : 'started',
  };
  if (withOffers) frame.offers = Array.from({ length: offers }, () => ({ offer: { type: 'offer', sdp }, offer_id: binaryId() }));
  return Buffer.from(JSON.stringify(frame));
}

function announce(i, withOffers) {
  const p = sockets[i];
  const text = withOffers ? (offerFrames[i] ??= announceFrame(p, true)) : announceFrame(p, false);
  return new Promise((resolve, reject) => {
    sentAt[i] = performance.now();
    waiting[i] = (err) => (err ? reject(err) : resolve());
    p.ws.send(text, { binary: false });
  });
}

/** When each socket's pending announce was sent (ms), for the reply watchdog. */
const sentAt = new Float64Array(peers);
// Bounded: a reply that never comes fails its lane after REPLY_TIMEOUT_MS instead of hanging the
// run. One sweep a second rather than a timer per announce, which would cost the generator more
// than some servers spend on the announce.
const watchdog = setInterval(() => {
  const now = performance.now();
  for (let i = 0; i < peers; i++) {
    const w = waiting[i];
    if (w && now - sentAt[i] > REPLY_TIMEOUT_MS) {
      waiting[i] = null;
      w(new Error('reply timeout'));
    }
  }
}, 1000);
watchdog.unref();

const connectStart = performance.now();
for (let i = 0; i < peers; i += connectBatch) {
  const batch = [];
  for (let j = i; j < Math.min(i + connectBatch, peers); j++) batch.push(open(j).then(() => announce(j, false)));
  await Promise.all(batch);
}
const connectMs = performance.now() - connectStart;
process.send({ type: 'connected', connectMs });
await new Promise((resolve) => process.once('message', resolve));

const latencies = new Float64Array(50_000_000 / 8); // bounded: up to ~6M samples
let count = 0;
let stop = false;
const deadline = performance.now() + durationMs;
setTimeout(() => (stop = true), durationMs);
async function lane(first) {
  // Each lane walks its own stride of sockets, so every socket has at most one announce in flight.
  let i = first;
  while (!stop) {
    const t0 = performance.now();
    try {
      await announce(i, true);
    } catch {
      stats.errors++;
      return;
    }
    if (count < latencies.length) latencies[count] = performance.now() - t0;
    count++;
    i += concurrency;
    if (i >= peers) i = first;
  }
}
const measureStart = performance.now();
await Promise.all(Array.from({ length: Math.min(concurrency, peers) }, (_, k) => lane(k)));
const elapsedMs = performance.now() - measureStart;
const sorted = latencies.subarray(0, Math.min(count, latencies.length)).sort();
const pct = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
process.send({
  type: 'result',
  connectMs,
  announces: count,
  elapsedMs,
  announcesPerSec: count / (elapsedMs / 1000),
  p50Ms: pct(0.5),
  p99Ms: pct(0.99),
  relayed: stats.relayed,
  errors: stats.errors,
  overrunMs: Math.max(0, performance.now() - deadline),
});
for (const p of sockets) p?.ws.terminate();
process.exit(0);
