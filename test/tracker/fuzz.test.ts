// Fuzz: random, malformed, truncated, oversized and binary frames and JSON against a tracker process.
// It must never crash, every connection must end answered (its sentinel scrape gets a reply) or
// closed, and the process's memory must stay bounded.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleTrackerCli } from './bundle.js';
import { TestClient, TRANSPORTS, waitFor, type TransportKind } from './helpers.js';
import { fuzzSeed, seededRandom } from '../harness/seeded-random.js';

/** Connections in the run, frames per connection: 60 × 40 = 2400 frames, a few seconds here. */
const CONNECTIONS = 60;
const FRAMES_PER_CONNECTION = 40;
/** Concurrent connections: keeps the test from testing the per-IP cap instead of the parser. */
const BATCH = 20;
/** Allowed RSS growth of the tracker over the whole run, in bytes: its own state is capped far below. */
const MAX_RSS_GROWTH = 64 * 1024 * 1024;
const MAX_FRAME_BYTES = 16 * 1024;
const ADMIN_TOKEN = 'fuzz-admin-token-0123';

const seed = fuzzSeed();

let entry: string;
let child: ChildProcess;
let url: string;
let httpUrl: string;

beforeAll(async () => {
  entry = await bundleTrackerCli();
});

afterAll(() => rmSync(entry, { force: true }));

async function startTrackerProcess(transport: TransportKind): Promise<void> {
  child = spawn(process.execPath, [entry, '--port', '0', '--transport', transport, '--max-frame-bytes', String(MAX_FRAME_BYTES), '--max-swarms', '500', '--max-peers-per-swarm', '50', '--max-messages-per-window-per-ip', '1000000', '--trust-proxy', '--admin-token', ADMIN_TOKEN, '--log-level', 'error'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const m = await waitFor('tracker process', () => /listening on (ws:\/\/[\d.:]+)/.exec(out), 15_000);
  url = m[1]!;
  httpUrl = url.replace('ws://', 'http://');
}

async function rss(): Promise<number> {
  const text = await (await fetch(`${httpUrl}/metrics`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
  return Number(/^peerfetch_tracker_resident_memory_bytes (\d+)$/m.exec(text)![1]);
}

function makeFrames(rand: () => number): Array<string | Buffer> {
  const int = (n: number): number => Math.floor(rand() * n);
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)));
  const bin20 = (): string => bytes(20).toString('latin1');
  const pool = [bin20(), bin20(), bin20()];
  const hash = (): string => pool[int(pool.length)]!;
  const randomValue = (depth = 0): unknown => {
    switch (int(depth > 3 ? 6 : 9)) {
      case 0: return null;
      case 1: return rand() * 1e12 * (rand() < 0.5 ? -1 : 1);
      case 2: return bytes(int(40)).toString('latin1');
      case 3: return rand() < 0.5;
      case 4: return bin20();
      case 5: return 'x'.repeat(int(3000));
      case 6: return Array.from({ length: int(5) }, () => randomValue(depth + 1));
      case 7: return Object.fromEntries(Array.from({ length: int(5) }, () => [['offer', 'sdp', 'type', '__proto__', 'constructor', 'offer_id'][int(6)]!, randomValue(depth + 1)]));
      default: return { offer: { type: 'offer', sdp: 'v=0' }, offer_id: bin20() };
    }
  };
  const validAnnounce = (): Record<string, unknown> => ({
    action: 'announce', info_hash: hash(), peer_id: bin20(), numwant: int(20), uploaded: 0, downloaded: 0, left: int(3) === 0 ? 0 : 100,
    event: ['started', 'update', 'completed', 'stopped', undefined][int(5)],
    offers: Array.from({ length: int(12) }, () => ({ offer: { type: 'offer', sdp: 'v=0 fuzz' }, offer_id: bin20() })),
    ...(rand() < 0.3 ? { peerfetch: { bytesFromPeers: randomValue(), bytesFromOrigin: int(1000), bytesUploaded: int(1000) } } : {}),
    ...(rand() < 0.2 ? { answer: { type: 'answer', sdp: 'v=0' }, to_peer_id: rand() < 0.5 ? bin20() : pool[0], offer_id: bin20() } : {}),
  });
  const frames: Array<string | Buffer> = [];
  for (let i = 0; i < FRAMES_PER_CONNECTION; i++) {
    switch (int(10)) {
      case 0: frames.push(bytes(int(200))); break; // binary frame
      case 1: frames.push(JSON.stringify(validAnnounce()).slice(0, int(200))); break; // truncated JSON
      case 2: { // a valid announce with one field replaced by garbage
        const a = validAnnounce();
        const keys = Object.keys(a);
        a[keys[int(keys.length)]!] = randomValue();
        frames.push(JSON.stringify(a));
        break;
      }
      case 3: frames.push(`${'['.repeat(5000)}${']'.repeat(5000)}`); break; // deep nesting
      case 4: frames.push(JSON.stringify(randomValue())); break; // any JSON value
      case 5: frames.push(JSON.stringify({ action: 'scrape', info_hash: rand() < 0.5 ? Array.from({ length: int(150) }, hash) : randomValue() })); break;
      case 6: frames.push(`{"__proto__":{"polluted":1},"action":"announce","info_hash":${JSON.stringify(hash())},"peer_id":${JSON.stringify(bin20())}}`); break;
      case 7: if (rand() < 0.1) frames.push('x'.repeat(MAX_FRAME_BYTES + 1)); else frames.push(JSON.stringify(validAnnounce())); break; // oversized, rarely
      case 8: frames.push(bytes(int(100)).toString('latin1')); break; // text that is not JSON
      default: frames.push(JSON.stringify(validAnnounce()));
    }
  }
  return frames;
}

/** An X-Forwarded-For header as a client or a broken proxy might send it (the tracker trusts the proxy, so it parses it). */
function forwardedFor(rand: () => number): string {
  const int = (n: number): number => Math.floor(rand() * n);
  const hop = (): string => {
    switch (int(6)) {
      case 0: return `${int(256)}.${int(256)}.${int(256)}.${int(256)}`;
      case 1: return `2001:db8:${int(65536).toString(16)}:${int(65536).toString(16)}::${int(65536).toString(16)}`;
      case 2: return `::ffff:10.0.0.${int(256)}`;
      case 3: return 'unknown';
      case 4: return `[::1]:${int(65536)}`;
      default: return Array.from({ length: int(30) }, () => String.fromCharCode(32 + int(95))).join('');
    }
  };
  return Array.from({ length: 1 + int(4) }, hop).join(rand() < 0.5 ? ', ' : ',');
}

/** Random requests to the HTTP routes, with and without (wrong) admin tokens: each must get a status, never hang or crash. */
async function fuzzHttp(rand: () => number): Promise<void> {
  const int = (n: number): number => Math.floor(rand() * n);
  const paths = ['/stats.json', `/stats.json?info_hash=${'ab'.repeat(20)}`, '/stats.json?info_hash=%00', '/metrics', '/health', '/x'];
  const auth = [undefined, `Bearer ${ADMIN_TOKEN}`, 'Bearer ', `Bearer ${ADMIN_TOKEN}x`, 'Basic Zm9vOmJhcg==', 'x'.repeat(int(4000))];
  for (let i = 0; i < 30; i++) {
    const authorization = auth[int(auth.length)];
    const res = await fetch(`${httpUrl}${paths[int(paths.length)]}`, { headers: authorization === undefined ? {} : { Authorization: authorization } });
    expect(res.status).toBeGreaterThanOrEqual(200);
    await res.arrayBuffer();
  }
}

describe.each(TRANSPORTS)('tracker fuzz, %s transport', (transport) => {
  beforeAll(() => startTrackerProcess(transport));
  afterAll(() => {
    child?.kill('SIGKILL');
  });

  it(`survives random and malformed frames (seed ${seed})`, { timeout: 120_000 }, async () => {
    const rand = seededRandom(seed);
    const sentinelHash = Buffer.alloc(20, 7).toString('latin1');
    const before = await rss();
    let answered = 0;
    let closed = 0;
    for (let start = 0; start < CONNECTIONS; start += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, CONNECTIONS - start) }, () => makeFrames(rand));
      await Promise.all(batch.map(async (frames) => {
        const c = await TestClient.open(url, rand() < 0.5 ? { headers: { 'X-Forwarded-For': forwardedFor(rand) } } : {});
        for (const f of frames) if (c.ws.readyState === c.ws.OPEN) c.send(f);
        if (c.ws.readyState === c.ws.OPEN) c.send({ action: 'scrape', info_hash: sentinelHash });
        // Answered: the sentinel scrape reply arrives. Closed: the tracker closed the socket with a code.
        const outcome = await Promise.race([
          c.next((f) => f.action === 'scrape' && f.files && f.files[sentinelHash] !== undefined, 30_000).then(() => 'answered' as const, () => undefined),
          c.closed.then(() => 'closed' as const),
        ]);
        expect(outcome, `seed ${seed}: a connection was neither answered nor closed`).toBeDefined();
        if (outcome === 'answered') answered++;
        else closed++;
        await c.close();
      }));
    }
    await fuzzHttp(rand);
    expect(answered + closed).toBe(CONNECTIONS);
    expect(answered).toBeGreaterThan(0);
    expect(child.exitCode).toBeNull();
    const health = await fetch(`${httpUrl}/health`);
    expect(health.status).toBe(200);
    const stats = await (await fetch(`${httpUrl}/stats.json`)).json();
    expect(stats.swarmCount).toBeLessThanOrEqual(500);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(await rss() - before).toBeLessThan(MAX_RSS_GROWTH);
  });
});
