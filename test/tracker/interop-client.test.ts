// The stock bittorrent-tracker client (Node side, WebRTC from node-datachannel) against our tracker:
// announces, gets offers, answers, and the two peers open a real data channel through the relayed
// signaling. WebRTC traffic must stay inside the private network namespace that `npm test` creates.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error bittorrent-tracker ships no type declarations
import Client from 'bittorrent-tracker';
import wrtc from 'node-datachannel/polyfill';
import { requirePrivateNetwork } from '../harness/network.js';
import { startTracker, type RunningTracker } from '../../src/tracker/index.js';
import { waitFor } from './helpers.js';

/** Waits for a data channel through the tracker's signaling, in ms: ICE on a veth pair takes < 1 s. */
const CONNECT_MS = 20_000;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

let tracker: RunningTracker;
const made: Any[] = [];

beforeAll(async () => {
  requirePrivateNetwork();
  tracker = await startTracker({ port: 0 });
});

afterAll(async () => {
  for (const c of made) c.destroy();
  await tracker?.close();
});

function makeClient(infoHash: string): { client: Any; peers: Any[]; updates: Any[]; scrapes: Any[]; warnings: string[] } {
  const client = new Client({ infoHash, peerId: randomBytes(20), announce: [tracker.url], port: 6881, wrtc, rtcConfig: { iceServers: [] } });
  made.push(client);
  const record = { client, peers: [] as Any[], updates: [] as Any[], scrapes: [] as Any[], warnings: [] as string[] };
  client.on('peer', (peer: Any) => {
    record.peers.push(peer);
    peer.on('error', () => {});
  });
  client.on('update', (u: Any) => record.updates.push(u));
  client.on('scrape', (s: Any) => record.scrapes.push(s));
  client.on('warning', (w: Error) => record.warnings.push(w.message));
  client.on('error', (e: Error) => record.warnings.push(`error: ${e.message}`));
  return record;
}

describe('stock bittorrent-tracker client against the peerfetch tracker', () => {
  it('announces, receives offers and answers, and connects a data channel', { timeout: 60_000 }, async () => {
    const infoHash = randomBytes(20).toString('hex');
    const a = makeClient(infoHash);
    a.client.start();
    await waitFor('first announce reply', () => a.updates.length > 0, CONNECT_MS);
    expect(a.updates[0]).toMatchObject({ complete: 0, incomplete: 1, infoHash });

    const b = makeClient(infoHash);
    b.client.start();
    // B's offers reach A through the tracker, A's answer reaches B: both sides get a peer that connects.
    const connected = (r: typeof a): Any => r.peers.find((p: Any) => p.connected);
    const [peerA, peerB] = await waitFor('a connected peer on both sides', () => {
      const pa = connected(a);
      const pb = connected(b);
      return pa && pb ? [pa, pb] : undefined;
    }, CONNECT_MS);
    expect(peerA.id).toBe(b.client.peerId);
    expect(peerB.id).toBe(a.client.peerId);

    const received = new Promise<string>((resolve) => peerA.once('data', (d: Uint8Array) => resolve(Buffer.from(d).toString())));
    peerB.send('hello over the relayed signaling');
    expect(await received).toBe('hello over the relayed signaling');
    expect(tracker.stats().answersRelayed).toBeGreaterThanOrEqual(1);

    b.client.scrape();
    const scrape = await waitFor('scrape result', () => b.scrapes[0], CONNECT_MS);
    expect(scrape).toMatchObject({ infoHash, complete: 0, incomplete: 2 });

    b.client.complete();
    await waitFor('completed announce counted', () => b.updates.some((u: Any) => u.complete === 1), CONNECT_MS);
    a.client.stop();
    await waitFor('stopped peer removed', () => tracker.stats().swarms[0]?.peers === 1, CONNECT_MS);
    expect(a.warnings.filter((w) => !w.startsWith('Connection error'))).toEqual([]);
  });
});
