import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { addHostileAddress, HostilePeer, removeHostileAddress, type HostileSession } from '../harness/hostile-peer.js';
import { ensureTestVideo } from '../harness/media.js';
import { startProcess, type RunningProcess } from '../harness/processes.js';
import { pieceCount } from '../../src/shared/piece-math.js';
import type { PeerMessage } from '../../src/shared/peer-messages.js';
import { createTestSite, fetchInPage, openPage, playInPage, sha256, startOrigin, startTracker, stats, waitUntilHeld, type TestSite } from './test-site.js';

// What other viewers learn of what a visitor watches (issue 13 item 7): a visitor that watched
// video A on an earlier visit (its store keeps A), then B, tells a peer that reads only B nothing of
// A (not in its hellos, haves, losses or readings), refuses that peer's requests for A as if it did
// not hold A, and still serves B, to that peer and to an honest viewer of B. The probing peer is a Node member of the swarm speaking the real
// tracker and peer protocols over real WebRTC (see hostile-peer.ts), so every message is seen.

const chromium = useChromium({ webrtc: true });
const A_URL = '/media/video.mp4';
const B_URL = '/media/other.mp4';
const PIECE_BYTES = 64 * 1024;
/** The prober's address on the namespace's loopback device (see addHostileAddress). */
const PROBER_ADDRESS = '10.78.1.1';

let site: TestSite | undefined;
let bBytes: Buffer;
let servers: { origin: RunningProcess; originUrl: string; tracker: RunningProcess; trackerUrl: string } | undefined;

beforeAll(async () => {
  // Two videos of one page, of other frame sizes so that no piece is the same.
  site = await createTestSite(await ensureTestVideo({ name: 'privacy-a', seconds: 8, kbps: 1500 }), '64KiB');
  await copyFile(await ensureTestVideo({ name: 'privacy-b', seconds: 8, kbps: 1500, size: '480x360' }), join(site.dir, 'media', 'other.mp4'));
  const manifest = await startProcess('node', ['bin/peerfetch.js', 'manifest', site.dir, '--piece-size', '64KiB'], { name: 'peerfetch manifest' });
  expect(await manifest.exited).toBe(0);
  bBytes = await readFile(join(site.dir, 'media', 'other.mp4'));
  // The origin at 600 kB/s per connection (a video needs about 190 kB/s): peers are worth asking.
  const [{ origin, originUrl }, { tracker, trackerUrl }] = await Promise.all([startOrigin(site.dir, ['--rate', '600']), startTracker()]);
  servers = { origin, originUrl, tracker, trackerUrl };
  addHostileAddress(PROBER_ADDRESS);
});

afterAll(async () => {
  removeHostileAddress(PROBER_ADDRESS);
  await Promise.allSettled([servers?.origin.stop(), servers?.tracker.stop()]);
});

type Request = Extract<PeerMessage, { type: 'request' }>;

/** What the page answered to request `id`: its bytes (chunks in order), `not-found`/`busy`, or undefined while it is still answering. */
function answerTo(session: HostileSession, id: number): Uint8Array | string | undefined {
  const chunks: Array<Extract<PeerMessage, { type: 'chunk' }>> = [];
  for (const message of session.received) {
    if (message.type === 'reject' && message.id === id) return message.reason;
    if (message.type === 'chunk' && message.id === id) chunks.push(message);
  }
  const total = chunks[0]?.total;
  if (total === undefined || chunks.reduce((sum, chunk) => sum + chunk.data.length, 0) < total) return undefined;
  const bytes = new Uint8Array(total);
  for (const chunk of chunks) bytes.set(chunk.data, chunk.offset);
  return bytes;
}

/** waitFor, whose error also says what the check last saw. */
async function waitSeeing<T>(check: () => T | Promise<T>, what: string, lastSeen: () => string): Promise<NonNullable<T>> {
  try {
    return await waitFor(check, { what });
  } catch (error) {
    throw new Error(`${(error as Error).message}; last seen: ${lastSeen()}`);
  }
}

/** Requests sent at once: under the 16 a page queues per peer (more are answered `busy`). */
const REQUESTS_AT_ONCE = 8;

/** Sends the requests, a few at a time, and returns every answer. */
async function ask(session: HostileSession, requests: Request[]): Promise<Array<Uint8Array | string>> {
  const answers: Array<Uint8Array | string> = [];
  for (let start = 0; start < requests.length; start += REQUESTS_AT_ONCE) {
    const batch = requests.slice(start, start + REQUESTS_AT_ONCE);
    for (const request of batch) session.send(request);
    let last: Array<Uint8Array | string | undefined> = [];
    answers.push(
      ...(await waitSeeing(
        () => {
          last = batch.map((request) => answerTo(session, request.id));
          return last.every((answer) => answer !== undefined) ? (last as Array<Uint8Array | string>) : undefined;
        },
        `answers to requests ${batch[0]!.id}-${batch.at(-1)!.id}`,
        () => `${last.filter((answer) => answer !== undefined).length} of ${batch.length} answered, session closed: ${session.closed}`,
      )),
    );
  }
  return answers;
}

/**
 * Attempts at connecting the prober to the visitor. One whose ICE checks fail (seen once under a
 * load of 40 on this 2-core machine) would otherwise not be retried before the visitor's next
 * announce, 120 s later: the prober joins again under a fresh id, with fresh offers.
 */
const CONNECT_ATTEMPTS = 3;

/** The prober's open session with the visitor, joining again when every connection it made failed. */
async function connected(prober: HostilePeer): Promise<HostileSession> {
  const open = () => prober.sessions.find((session) => session.remoteId !== undefined && !session.closed);
  // The connections of the current id that the visitor answered (the other offers wait for peers that never come).
  const answered = () => prober.connections.filter((connection) => connection.peerId === prober.peerId && connection.remoteId !== undefined);
  const failed = () => answered().length > 0 && answered().every((connection) => connection.states.includes('failed') || connection.states.includes('closed'));
  for (let attempt = 1; ; attempt++) {
    await waitSeeing(() => open() ?? (failed() && attempt < CONNECT_ATTEMPTS), 'the prober connected to the visitor', () => JSON.stringify(prober.connections));
    const session = open();
    if (session) return session;
    console.info(`prober's connections failed (${JSON.stringify(prober.connections)}): joining again`);
    await prober.rejoin();
  }
}

/** The hello of `session` that answers at least `asks` of its asks (see the `reading` message). */
function helloAnswering(session: HostileSession, asks: number): Promise<Extract<PeerMessage, { type: 'hello' }>> {
  const hellos = () => session.received.filter((message): message is Extract<PeerMessage, { type: 'hello' }> => message.type === 'hello');
  return waitSeeing(
    () => hellos().find((hello) => (hello.asks ?? 0) >= asks),
    `a hello answering ${asks} asks`,
    () => `hellos answering ${JSON.stringify(hellos().map((hello) => hello.asks))}, session closed: ${session.closed}`,
  );
}

describe('what other viewers learn of what a visitor watches', () => {
  it('a visitor that watched A on an earlier visit, then B, tells a peer reading only B nothing of A, refuses it A, and still serves B to it and to an honest viewer', async () => {
    const { originUrl, trackerUrl } = servers!;
    // The visitor watches A (through its worker, as a player reads it) and leaves; on its next
    // visit it watches B, and keeps both. (A watched within the last READING_MEMORY_MS would still
    // be told: a page's players read several streams at once, see Swarm.)
    const visitor = await chromium.viewer('privacy-visitor');
    const earlierVisit = await visitor.newPage();
    await openPage(earlierVisit, originUrl, { tracker: trackerUrl });
    expect((await fetchInPage(earlierVisit, A_URL)).sha256).toBe(sha256(await readFile(site!.videoPath)));
    await waitUntilHeld(earlierVisit, A_URL);
    await earlierVisit.close();
    const visitorPage = await visitor.newPage();
    await openPage(visitorPage, originUrl, { tracker: trackerUrl });
    await waitUntilHeld(visitorPage, A_URL);
    expect((await fetchInPage(visitorPage, B_URL)).sha256).toBe(sha256(bBytes));
    await waitUntilHeld(visitorPage, B_URL);

    // A peer that reads only B joins and asks for both.
    const prober = await HostilePeer.start({
      trackerUrl,
      pageUrl: `${originUrl}/`,
      manifestUrl: `${originUrl}/peerfetch-manifest.json`,
      file: () => undefined,
      behaviour: {
        claims: 'none',
        onOpen: (opened) => {
          const other = opened.manifest.assets.find((asset) => asset.href.endsWith(B_URL))!;
          opened.send({ type: 'reading', asset: other.id, piece: 0, ask: true });
        },
      },
      address: PROBER_ADDRESS,
    });
    const a = prober.manifest.assets.find((asset) => asset.href.endsWith(A_URL))!;
    const b = prober.manifest.assets.find((asset) => asset.href.endsWith(B_URL))!;
    const session = await connected(prober);
    // The visitor answers its ask (a hello saying how many asks it answers).
    const answer = await helloAnswering(session, 1);
    const bPieces = pieceCount(b.size, b.pieceSize);
    expect([...(answer.holdings.get(b.id) ?? [])], 'it tells all it holds of B').toEqual([0, bPieces]);

    // Probing by requests: every piece of A is refused as not held (the visitor holds them all), B is served.
    let nextId = 1;
    const aPieces = pieceCount(a.size, a.pieceSize);
    const forA = await ask(session, Array.from({ length: aPieces }, (_, piece) => ({ type: 'request' as const, id: nextId++, asset: a.id, piece })));
    expect(new Set(forA)).toEqual(new Set(['not-found']));
    const forB = await ask(session, Array.from({ length: bPieces }, (_, piece) => ({ type: 'request' as const, id: nextId++, asset: b.id, piece })));
    forB.forEach((bytes, piece) => expect(typeof bytes === 'string' ? bytes : sha256(bytes), `piece ${piece} of B`).toBe(sha256(bBytes.subarray(piece * PIECE_BYTES, (piece + 1) * PIECE_BYTES))));

    // An honest viewer of B takes it from the visitor.
    const viewer = await chromium.viewer('privacy-viewer');
    const viewerPage = await viewer.newPage();
    await openPage(viewerPage, originUrl, { tracker: trackerUrl });
    await waitFor(async () => (await stats(viewerPage)).peerList.some((peer) => peer.id !== prober.peerId), { what: 'the viewer connected to the visitor' });
    await playInPage(viewerPage, B_URL, { rate: 2 });
    const viewerStats = await stats(viewerPage);
    console.info(`viewer of B: ${viewerStats.bytesFromPeers} B from peers, ${viewerStats.bytesFromOrigin} B from the origin (B is ${bBytes.length} B)`);
    expect(viewerStats.bytesFromPeers).toBeGreaterThanOrEqual(bBytes.length / 3);

    // Nothing the visitor sent the prober named A: no hello listed it, no have, lost or reading named it.
    const aboutA = session.received.filter((message) => (message.type === 'hello' ? message.holdings.has(a.id) : 'asset' in message && message.asset === a.id));
    expect(aboutA.map((message) => message.type)).toEqual([]);
    expect(session.received.some((message) => message.type === 'chunk'), 'the check above saw the visitor\'s messages').toBe(true);

    // Once the prober says it reads A, it is told of A and served A: the refusals were the privacy rule.
    session.send({ type: 'reading', asset: a.id, piece: 0, ask: true });
    const told = await helloAnswering(session, 2);
    expect([...(told.holdings.get(a.id) ?? [])]).toEqual([0, aPieces]);
    const [first] = await ask(session, [{ type: 'request', id: nextId++, asset: a.id, piece: 0 }]);
    expect(typeof first === 'string' ? first : first!.length).toBe(PIECE_BYTES);
    prober.stop();
    assertNoPageErrors(visitor);
    assertNoPageErrors(viewer);
  });
});
