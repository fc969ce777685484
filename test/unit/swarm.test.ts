import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Peer, READING_MEMORY_MS, type PeerHandlers } from '../../src/engine/peer.js';
import { ForwardedPiece } from '../../src/engine/forwarded-piece.js';
import { Swarm, type PieceResult } from '../../src/engine/swarm.js';
import { originMs } from '../../src/engine/playback-slack.js';
import { PeerfetchError } from '../../src/shared/errors.js';
import { runsOf } from '../../src/shared/holdings.js';
import { sha256Hex } from '../../src/shared/integrity.js';
import { parseManifest, type Manifest, type ManifestAsset } from '../../src/shared/manifest.js';
import { MemoryPieceStore, type StoredPiece } from '../../src/store/piece-store.js';
import { channelPair, fakeConnection, SharedLine, type FakeChannel } from './fake-channel.js';
import type { PeerMessage } from '../../src/shared/peer-messages.js';

// The swarm against remote Peer objects over fake data channels (some on slow lines, driven by
// fake timers): what it tells peers it holds, and how it gets a piece from lines of every speed.

const PIECE = 64 * 1024;
const PIECES = 4;
const bytes = Uint8Array.from({ length: PIECE * PIECES }, (_, i) => (i * 7 + (i >> 10)) % 251);
const pieceBytes = (piece: number) => bytes.slice(piece * PIECE, (piece + 1) * PIECE);

async function manifest(): Promise<Manifest> {
  const pieces = await Promise.all(Array.from({ length: PIECES }, (_, piece) => sha256Hex(pieceBytes(piece))));
  return parseManifest(
    { version: 1, assets: [{ url: '/v.mp4', size: bytes.length, contentType: 'video/mp4', pieceSize: PIECE, pieces }] },
    'https://site.example/peerfetch-manifest.json',
  );
}

const noCallbacks = {
  onPeerConnect() {},
  onPeerDisconnect() {},
  onPieceVerified() {},
  onPieceRejected() {},
  onUploaded() {},
  onPeerHave() {},
  onWithdrawn() {},
};

function remoteHandlers(stored: Map<number, Uint8Array>): PeerHandlers {
  return {
    pieceCount: () => PIECES,
    readPiece: async (_asset, piece) => stored.get(piece),
    onHave: () => {},
    onUploaded: () => {},
    beforeUpload: async () => {},
    onClose: () => {},
  };
}

/** A remote peer connected to `swarm`, holding `held` pieces, sending to it at `rate` bytes/s (unlimited when absent). */
function connectRemote(swarm: Swarm, assetId: string, name: string, held: number[], rate?: number, readPiece?: PeerHandlers['readPiece']) {
  const [swarmEnd, remoteEnd] = channelPair(undefined, rate);
  const handlers = remoteHandlers(new Map(held.map((piece) => [piece, pieceBytes(piece)])));
  const remote = new Peer('us', fakeConnection(), remoteEnd as unknown as RTCDataChannel, { ...handlers, ...(readPiece && { readPiece }) });
  swarm.addPeer(name, fakeConnection(), swarmEnd as unknown as RTCDataChannel);
  remote.hello(new Map([[assetId, runsOf(held)]]));
  return { remote, remoteEnd: remoteEnd as FakeChannel };
}

/** A remote peer connected to `swarm` that holds nothing and says a hello naming nothing (its player reads nothing yet). */
function connectEmptyRemote(swarm: Swarm, name: string) {
  const [swarmEnd, remoteEnd] = channelPair();
  const remote = new Peer('us', fakeConnection(), remoteEnd as unknown as RTCDataChannel, remoteHandlers(new Map()));
  swarm.addPeer(name, fakeConnection(), swarmEnd as unknown as RTCDataChannel);
  remote.hello(new Map());
  return { remote, swarmEnd };
}

const chunksSent = (end: FakeChannel) => end.sent.filter((message) => message.type === 'chunk') as { offset: number }[];

describe('Swarm: holdings stay true', () => {
  it('withdraws evicted and deleted pieces from what peers are told', async () => {
    const m = await manifest();
    const assetId = m.assets[0]!.id;
    const store = new MemoryPieceStore(2 * PIECE);
    await store.put({ asset: assetId, piece: 0, data: pieceBytes(0) });
    await store.put({ asset: assetId, piece: 1, data: pieceBytes(1) });
    const swarm = new Swarm(m, store, noCallbacks);
    await swarm.loadHave();
    const { remote } = connectRemote(swarm, assetId, 'remote', []);
    remote.announceReading(assetId, 0, true); // it plays the video: it may know what we hold of it
    await vi.waitFor(() => expect([remote.has(assetId, 0), remote.has(assetId, 1)]).toEqual([true, true]));

    // Storing a third piece evicts the least recently used one (the SW does this without the page).
    await store.put({ asset: assetId, piece: 2, data: pieceBytes(2) });
    swarm.markHave(assetId, 2);
    await vi.waitFor(() => expect([0, 1, 2].map((piece) => remote.has(assetId, piece))).toEqual([false, true, true]));
    expect(swarm.holds(assetId, 0)).toBe(false);

    await store.delete(); // clearStorage()
    await vi.waitFor(() => expect([0, 1, 2].map((piece) => remote.has(assetId, piece))).toEqual([false, false, false]));
    swarm.destroy();
  });
});

describe('Swarm: a peer that fetches a piece from the origin itself', () => {
  it('is reported with the piece its reading names; a plain reading is not', async () => {
    const m = await manifest();
    const assetId = m.assets[0]!.id;
    const fetching: [string, number][] = [];
    const swarm = new Swarm(m, new MemoryPieceStore(), { ...noCallbacks, onPeerFetching: (asset, piece) => fetching.push([asset, piece]) });
    await swarm.loadHave();
    const { remote } = connectRemote(swarm, assetId, 'remote', []);
    remote.announceReading(assetId, 2, true);
    remote.announceReading(assetId, 3, false, true);
    await vi.waitFor(() => expect(fetching).toEqual([[assetId, 3]]));
    swarm.destroy();
  });

  it('is told so when our player cannot wait for a piece', async () => {
    const m = await manifest();
    const assetId = m.assets[0]!.id;
    const swarm = new Swarm(m, new MemoryPieceStore(), noCallbacks);
    await swarm.loadHave();
    const { swarmEnd } = connectEmptyRemote(swarm, 'remote');
    swarm.announceReading(assetId, 1);
    swarm.announceReading(assetId, 1, true);
    const readings = () => swarmEnd.sent.filter((message) => message.type === 'reading');
    await vi.waitFor(() => expect(readings()).toHaveLength(2));
    expect(readings()).toEqual([
      { type: 'reading', asset: assetId, piece: 1, ask: true },
      { type: 'reading', asset: assetId, piece: 1, origin: true },
    ]);
    swarm.destroy();
  });
});

describe('Swarm: a piece arriving from the origin', () => {
  async function arriving() {
    const m = await manifest();
    const assetId = m.assets[0]!.id;
    const forwards: ForwardedPiece[] = [];
    const swarm = new Swarm(m, new MemoryPieceStore(), {
      ...noCallbacks,
      openForward: (asset: ManifestAsset, piece: number) => {
        const forwarded = new ForwardedPiece(PIECE, asset.pieces[piece]!);
        forwards.push(forwarded);
        return forwarded;
      },
    });
    await swarm.loadHave();
    const { remote } = connectRemote(swarm, assetId, 'remote', []);
    remote.announceReading(assetId, 0, true); // it plays the video: it may know what we hold of it
    await vi.waitFor(() => expect(remote.holdingsPending).toBe(false)); // the swarm answered its ask
    swarm.markArriving(assetId, 2);
    await vi.waitFor(() => expect(remote.has(assetId, 2)).toBe(true));
    return { swarm, remote, assetId, forwards };
  }

  it('is announced at once and its bytes go to an asking peer as they arrive, the last once the whole piece is verified', async () => {
    const { swarm, remote, assetId, forwards } = await arriving();
    expect(swarm.holds(assetId, 2)).toBe(false);
    const request = remote.request(assetId, 2, PIECE, new AbortController().signal);
    await vi.waitFor(() => expect(forwards).toHaveLength(1));
    const forwarded = forwards[0]!;
    forwarded.append(pieceBytes(2).subarray(0, 20_000));
    // Sent before the piece is whole, not held back until it is.
    await vi.waitFor(() => expect(remote.partial(assetId, 2)?.length).toBe(20_000));
    forwarded.append(pieceBytes(2).subarray(20_000));
    expect(await request).toEqual(pieceBytes(2));
    // Stored later, the piece is held like any other, its forward done.
    swarm.markHave(assetId, 2);
    expect(swarm.holds(assetId, 2)).toBe(true);
    swarm.destroy();
  });

  it('that fails ends the upload with what was sent, and the peer no longer counts it as ours', async () => {
    const { swarm, remote, assetId, forwards } = await arriving();
    const request = remote.request(assetId, 2, PIECE, new AbortController().signal);
    await vi.waitFor(() => expect(forwards).toHaveLength(1));
    forwards[0]!.append(pieceBytes(2).subarray(0, 20_000));
    await vi.waitFor(() => expect(remote.partial(assetId, 2)?.length).toBe(20_000));
    forwards[0]!.fail();
    const error = await request.catch((rejected: unknown) => rejected as PeerfetchError);
    expect(error).toBeInstanceOf(PeerfetchError);
    // The asker keeps the bytes it got, for the next source to finish from.
    expect((error as PeerfetchError).details.partial).toEqual(pieceBytes(2).subarray(0, 20_000));
    await vi.waitFor(() => expect(remote.has(assetId, 2)).toBe(false));
    swarm.destroy();
  });

  it('whose bytes fail their hash never completes at the peer', async () => {
    const { swarm, remote, assetId, forwards } = await arriving();
    const request = remote.request(assetId, 2, PIECE, new AbortController().signal);
    await vi.waitFor(() => expect(forwards).toHaveLength(1));
    const wrong = pieceBytes(2);
    wrong[PIECE - 1]! ^= 0xff;
    // All but the last byte, and once the peer has them (uploads go at the line's pace), the wrong last byte.
    forwards[0]!.append(wrong.subarray(0, PIECE - 1));
    await vi.waitFor(() => expect(remote.partial(assetId, 2)?.length).toBe(PIECE - 1));
    forwards[0]!.append(wrong.subarray(PIECE - 1));
    const error = await request.catch((rejected: unknown) => rejected as PeerfetchError);
    expect(error).toBeInstanceOf(PeerfetchError);
    // Everything but the last byte went out; the piece was never whole at the peer.
    expect((error as PeerfetchError).details.partial).toHaveLength(PIECE - 1);
    swarm.destroy();
  });
});

describe('Swarm: requests sized to each line', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  async function setup() {
    const m = await manifest();
    const store = new MemoryPieceStore();
    const swarm = new Swarm(m, store, noCallbacks);
    await swarm.loadHave();
    return { swarm, store, assetId: m.assets[0]!.id };
  }

  it('hands over what a slow line delivered by the deadline, and stops that line at once', async () => {
    const { swarm, assetId } = await setup();
    const { remoteEnd } = connectRemote(swarm, assetId, 'slow', [0], 50_000); // 400 kbit/s
    await vi.advanceTimersByTimeAsync(10);
    const fetching = swarm.fetchPiece(assetId, 0, 700, new AbortController().signal, { handOver: true });
    await vi.advanceTimersByTimeAsync(800);
    const result = await fetching;
    expect(result.ok).toBe(false);
    const partial = !result.ok ? result.partial : undefined;
    expect(partial?.length).toBeGreaterThan(0);
    expect(partial?.length).toBeLessThan(PIECE);
    expect(partial).toEqual(pieceBytes(0).subarray(0, partial!.length));
    // The line stops: nothing more is handed to it once the cancel arrived.
    const sentAtDeadline = chunksSent(remoteEnd).length;
    await vi.advanceTimersByTimeAsync(2000);
    expect(chunksSent(remoteEnd).length - sentAtDeadline).toBeLessThanOrEqual(1);
    swarm.destroy();
  });

  it('a peer that stops part way leaves its bytes: the next peer sends only the rest', async () => {
    const { swarm, store, assetId } = await setup();
    const trickle = connectRemote(swarm, assetId, 'a-trickle', [1], 10_000); // 80 kbit/s
    const fast = connectRemote(swarm, assetId, 'b-fast', [1]);
    await vi.advanceTimersByTimeAsync(10);
    const fetching = swarm.fetchPiece(assetId, 1, 10_000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(4000);
    const result = await fetching;
    expect(result).toMatchObject({ ok: true });
    expect(result.ok && result.data).toEqual(pieceBytes(1));
    expect(await store.get(assetId, 1)).toEqual(pieceBytes(1));
    // Both were asked (the unmeasured trickle first, in the order they came); the fast one sent only what the trickle had not.
    const fromTrickle = chunksSent(trickle.remoteEnd);
    const fromFast = chunksSent(fast.remoteEnd);
    expect(fromTrickle.length).toBeGreaterThan(0);
    expect(fromFast[0]?.offset).toBeGreaterThan(0);
    expect(fromFast[0]!.offset).toBeLessThanOrEqual(fromTrickle.length * 16 * 1024);
    swarm.destroy();
  });

  it('a download that ended part way leaves its bytes: the next download of the piece asks only for the rest', async () => {
    const { swarm, store, assetId } = await setup();
    const slow = connectRemote(swarm, assetId, 'a-slow', [1], 20_000); // 160 kbit/s: 64 KiB take 3.3 s
    await vi.advanceTimersByTimeAsync(10);
    // A prefetch runs out of time with part of the piece received (its only holder is this slow line).
    const prefetch = swarm.fetchPiece(assetId, 1, 2000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(2100);
    expect(await prefetch).toMatchObject({ ok: false });
    const received = chunksSent(slow.remoteEnd).length;
    expect(received).toBeGreaterThan(0);
    // A fast peer arrives; the piece is asked for again: only what the slow line had not sent.
    const fast = connectRemote(swarm, assetId, 'b-fast', [1]);
    await vi.advanceTimersByTimeAsync(10);
    const again = swarm.fetchPiece(assetId, 1, 10_000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(1000);
    const result = await again;
    expect(result).toMatchObject({ ok: true });
    expect(result.ok && result.data).toEqual(pieceBytes(1));
    expect(await store.get(assetId, 1)).toEqual(pieceBytes(1));
    expect(chunksSent(fast.remoteEnd)[0]?.offset, 'the fast peer starts where the slow line stopped').toBeGreaterThan(0);
    expect(chunksSent(fast.remoteEnd)[0]!.offset).toBeLessThanOrEqual(received * 16 * 1024);
    swarm.destroy();
  });

  it('a slow line expected to take longer than 3 s gets twice that before the next peer is asked', async () => {
    const { swarm, assetId } = await setup();
    const slow = connectRemote(swarm, assetId, 'a-slow', [0, 2], 20_000); // 160 kbit/s: 64 KiB take 3.3 s
    const slower = connectRemote(swarm, assetId, 'b-slower', [1, 2], 10_000);
    await vi.advanceTimersByTimeAsync(10);
    // One piece from each measures both lines.
    const measured = [0, 1].map((piece) => swarm.fetchPiece(assetId, piece, 20_000, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(8000);
    for (const result of await Promise.all(measured)) expect(result).toMatchObject({ ok: true });
    // Piece 2: the faster of the two sends it whole, in about 3.3 s; the other is never asked.
    const fetching = swarm.fetchPiece(assetId, 2, 20_000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(5000);
    expect(await fetching).toMatchObject({ ok: true });
    expect(slower.remoteEnd.other.sent.some((message) => message.type === 'request' && message.piece === 2)).toBe(false);
    expect(chunksSent(slow.remoteEnd).length).toBe((2 * PIECE) / (16 * 1024));
    swarm.destroy();
  });

  it('the only peer that holds a piece gets the whole deadline, not one attempt of 3 s', async () => {
    const { swarm, assetId } = await setup();
    connectRemote(swarm, assetId, 'slow', [0], 16_000); // 128 kbit/s: 64 KiB take 4.1 s
    await vi.advanceTimersByTimeAsync(10);
    const slow = swarm.fetchPiece(assetId, 0, 8000, new AbortController().signal);
    // Past 3 s the piece is still arriving; the clock then stops short of the deadline, so
    // hashing it (real time) cannot race the deadline's timer.
    await vi.advanceTimersByTimeAsync(6000);
    const result = await slow;
    expect(result).toMatchObject({ ok: true });
    expect(result.ok && result.data).toEqual(pieceBytes(0));
    swarm.destroy();
  });

  it('does not queue a request on a line that cannot deliver it in time', async () => {
    const { swarm, assetId } = await setup();
    connectRemote(swarm, assetId, 'slow', [0, 1, 2], 50_000);
    await vi.advanceTimersByTimeAsync(10);
    // A first piece measures the line (400 kbit/s).
    const measuring = swarm.fetchPiece(assetId, 0, 4000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(2000);
    expect(await measuring).toMatchObject({ ok: true });
    // 64 KiB on it take 1.3 s: a piece needed within 1 s is refused at once, one needed within 4 s is taken.
    expect(await swarm.fetchPiece(assetId, 1, 1000, new AbortController().signal)).toEqual({ ok: false, reason: 'slow-peers' });
    const inTime = swarm.fetchPiece(assetId, 2, 4000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(2000);
    expect(await inTime).toMatchObject({ ok: true });
    swarm.destroy();
  });
});

describe('Swarm: a piece the player waits for, against its buffer', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A swarm with one remote peer holding every piece on a line of `rate` bytes/s (unlimited when absent). */
  async function withLine(rate?: number, callbacks = noCallbacks) {
    const m = await manifest();
    const store = new MemoryPieceStore();
    const swarm = new Swarm(m, store, callbacks);
    await swarm.loadHave();
    const assetId = m.assets[0]!.id;
    const line = connectRemote(swarm, assetId, 'line', [0, 1, 2, 3], rate);
    await vi.advanceTimersByTimeAsync(10);
    return { swarm, store, assetId, ...line };
  }

  /** A piece the player asks for through the SW (handed over when peers fail), its buffer read from `buffer`. */
  function playerAsks(swarm: Swarm, assetId: string, piece: number, buffer: () => number | undefined) {
    const answer: { result?: Awaited<ReturnType<Swarm['fetchPiece']>> } = {};
    const promise = swarm.fetchPiece(assetId, piece, 4000, new AbortController().signal, { handOver: true, urgent: true, bufferMs: buffer });
    void promise.then((result) => (answer.result = result));
    return { answer, promise };
  }

  /** A trusted line of 200 kB/s (64 KiB in 0.33 s), measured by pieces 0 and 2 (one is too short a sample). */
  async function measuredLine(callbacks = noCallbacks) {
    const line = await withLine(200_000, callbacks);
    const { swarm, assetId } = line;
    const measuring = [0, 2].map((piece) => swarm.fetchPiece(assetId, piece, 10_000, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(1000);
    expect(await Promise.all(measuring)).toMatchObject([{ ok: true }, { ok: true }]);
    return line;
  }

  /**
   * A measured line (see measuredLine) and the player asking for piece 1 with 2 s buffered, draining
   * as it plays; the line sends for `sendingMs` and then nothing (a transport pause), until `answer`
   * comes or 4 s pass.
   */
  async function silentWhilePlayerWaits(sendingMs: number, callbacks = noCallbacks) {
    const line = await measuredLine(callbacks);
    const { swarm, assetId, remoteEnd } = line;
    const askedAt = performance.now();
    const buffer = () => Math.max(0, 2000 - (performance.now() - askedAt));
    const { answer } = playerAsks(swarm, assetId, 1, buffer);
    await vi.advanceTimersByTimeAsync(sendingMs);
    remoteEnd.silent = true;
    let bufferAtAnswer: number | undefined;
    while (answer.result === undefined && performance.now() - askedAt < 4000) {
      await vi.advanceTimersByTimeAsync(50);
      if (answer.result !== undefined) bufferAtAnswer = buffer();
    }
    return { ...line, result: answer.result, bufferAtAnswer };
  }

  it('a piece a slow line is sending is finished by the origin from where the line stopped once the buffer cannot wait for it, and the line stops', async () => {
    const { swarm, assetId, remoteEnd } = await withLine(50_000); // 400 kbit/s: 64 KiB take 1.3 s
    // Piece 0 measures the line and earns the peer trust; piece 1 is being prefetched when the player needs it.
    const measuring = swarm.fetchPiece(assetId, 0, 10_000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(1500);
    expect(await measuring).toMatchObject({ ok: true });
    const prefetch = swarm.fetchPiece(assetId, 1, 10_000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(400);
    // 0.6 s buffered: the rest (about 48 KiB, 1 s on this line) would come after the player ran dry.
    const { answer } = playerAsks(swarm, assetId, 1, () => 600);
    await vi.advanceTimersByTimeAsync(0);
    const result = answer.result;
    expect(result, 'answered at once, not at the 4 s deadline').toMatchObject({ ok: false, reason: 'slow-peers' });
    const partial = result && !result.ok ? result.partial : undefined;
    expect(partial?.length).toBeGreaterThan(0);
    expect(partial).toEqual(pieceBytes(1).subarray(0, partial!.length));
    // Nobody needs the rest from the line: the prefetch's transfer is cancelled, not carried on beside the origin's.
    expect(swarm.downloading(assetId, 1)).toBe(false);
    expect(await prefetch).toMatchObject({ ok: false });
    const sentAtHandOver = chunksSent(remoteEnd).length;
    await vi.advanceTimersByTimeAsync(2000);
    expect(chunksSent(remoteEnd).length - sentAtHandOver).toBeLessThanOrEqual(1);
    swarm.destroy();
  });

  it('checks the line while the player waits: a buffer that runs out hands the piece over before the deadline', async () => {
    const { swarm, assetId } = await withLine(50_000);
    const measuring = swarm.fetchPiece(assetId, 0, 10_000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(1500);
    expect(await measuring).toMatchObject({ ok: true });
    // 3 s buffered when asked: the 1.3 s the line needs for the piece leave the origin time after it.
    let buffer = 3000;
    const { answer } = playerAsks(swarm, assetId, 1, () => buffer);
    await vi.advanceTimersByTimeAsync(300);
    expect(answer.result, 'still waiting for the line').toBeUndefined();
    // The player stalls (its other stream ran dry): the line would now be later than the origin.
    buffer = 0;
    await vi.advanceTimersByTimeAsync(300);
    const result = answer.result;
    expect(result).toMatchObject({ ok: false, reason: 'slow-peers' });
    expect(result && !result.ok && result.partial?.length).toBeGreaterThan(0);
    expect(swarm.downloading(assetId, 1)).toBe(false);
    swarm.destroy();
  });

  it('a piece whose line went silent is handed to the origin while the buffer still covers the rest, though the line looked faster than the origin; the line finishes it for the store', async () => {
    const verified: number[] = [];
    // The line sends most of the piece and then nothing: its rate, and so the expected 0.1 s for the rest, do not change meanwhile.
    const { swarm, store, assetId, remoteEnd, result, bufferAtAnswer } = await silentWhilePlayerWaits(250, {
      ...noCallbacks,
      onPieceVerified: (_asset, _piece, _peer, bytes) => verified.push(bytes),
    });
    expect(result).toMatchObject({ ok: false, reason: 'slow-peers' });
    const partial = result && !result.ok ? result.partial : undefined;
    expect(partial?.length).toBeGreaterThanOrEqual(PIECE / 2);
    // Handed over in time for the origin to send the rest before the player runs dry.
    expect(bufferAtAnswer).toBeGreaterThanOrEqual(originMs(PIECE - partial!.length));
    // The line's transfer goes on: once the line sends again the piece is verified and stored
    // (a fresh peer so completes a piece and earns trust), its first bytes counted only once.
    expect(swarm.downloading(assetId, 1)).toBe(true);
    remoteEnd.silent = false;
    await vi.advanceTimersByTimeAsync(1000);
    // Its hash is checked by WebCrypto, on real time.
    await vi.waitFor(() => expect(swarm.holds(assetId, 1)).toBe(true));
    expect(await store.get(assetId, 1)).toEqual(pieceBytes(1));
    expect(verified).toEqual([PIECE, PIECE, PIECE - partial!.length]);
    swarm.destroy();
  });

  it('a piece whose line went silent with under half of it in is handed to the origin and its transfer stopped (at most half a piece comes twice)', async () => {
    const { swarm, assetId, result } = await silentWhilePlayerWaits(100); // a third of the piece
    expect(result).toMatchObject({ ok: false, reason: 'slow-peers' });
    expect(result && !result.ok && result.partial?.length).toBeLessThan(PIECE / 2);
    expect(swarm.downloading(assetId, 1)).toBe(false);
    swarm.destroy();
  });

  it('a request queued behind the piece a line paused in, given up just after that piece came, does not mark the line slow', async () => {
    const { swarm, assetId, remoteEnd } = await measuredLine();
    // Piece 1 is sent first (due sooner); piece 3 waits behind it at the peer. The line pauses 2.5 s
    // in piece 1, then finishes it, and piece 3 is given up on before its first byte.
    const first = swarm.fetchPiece(assetId, 1, 8000, new AbortController().signal);
    const behind = new AbortController();
    const queued = swarm.fetchPiece(assetId, 3, 10_000, behind.signal);
    await vi.advanceTimersByTimeAsync(100);
    remoteEnd.silent = true;
    await vi.advanceTimersByTimeAsync(2500);
    remoteEnd.silent = false;
    // Piece 1's rest comes; the line pauses again before piece 3's first byte.
    const line = swarm.peers.get('line')!;
    while (line.bytesDownloaded < 3 * PIECE) await vi.advanceTimersByTimeAsync(10);
    remoteEnd.silent = true;
    await vi.waitFor(() => expect(swarm.holds(assetId, 1)).toBe(true)); // hashed on real time
    expect(await first).toMatchObject({ ok: true });
    behind.abort();
    expect(await queued).toMatchObject({ ok: false });
    // Measured from when piece 3 was asked, over the pause, the line would look several times slower.
    expect(swarm.canDeliverWithin(assetId, 3, 1000, 0)).toBe(true);
    swarm.destroy();
  });

  it('a line gone silent is waited for while the buffer can still wait (an uploader pausing for a few seconds)', async () => {
    const { swarm, assetId, remoteEnd } = await measuredLine();
    const { answer, promise } = playerAsks(swarm, assetId, 1, () => 6000);
    await vi.advanceTimersByTimeAsync(100);
    remoteEnd.silent = true;
    await vi.advanceTimersByTimeAsync(2500);
    expect(answer.result, 'still waiting for the line').toBeUndefined();
    remoteEnd.silent = false;
    await vi.advanceTimersByTimeAsync(500);
    expect(await promise).toMatchObject({ ok: true });
    swarm.destroy();
  });

  it('a piece handed over for the buffer does not mark the line slow: the next piece is asked of it again', async () => {
    const { swarm, assetId, remoteEnd } = await withLine(50_000);
    const measuring = swarm.fetchPiece(assetId, 0, 10_000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(1500);
    expect(await measuring).toMatchObject({ ok: true });
    expect(swarm.canDeliverWithin(assetId, 2, 4000, 0)).toBe(true);
    // The uploader's line is busy for a moment (its page, its other peers): nothing arrives.
    const line = remoteEnd as unknown as { bytesPerSecond: number };
    line.bytesPerSecond = 1000;
    let buffer = 3000;
    const { answer } = playerAsks(swarm, assetId, 1, () => buffer);
    await vi.advanceTimersByTimeAsync(800);
    expect(answer.result, 'still waiting for the line').toBeUndefined();
    // The buffer cannot wait any longer: the origin takes the piece over.
    buffer = 1000;
    await vi.advanceTimersByTimeAsync(300);
    expect(answer.result).toMatchObject({ ok: false, reason: 'slow-peers' });
    // The line is back; the player's buffer forced the hand-over, the line did not fail a deadline.
    line.bytesPerSecond = 50_000;
    expect(swarm.canDeliverWithin(assetId, 2, 4000, 0)).toBe(true);
    swarm.destroy();
  });

  it('waits for a slow line when the buffer leaves the origin time to rescue the piece after it', async () => {
    const { swarm, assetId } = await withLine(50_000);
    const measuring = swarm.fetchPiece(assetId, 0, 10_000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(1500);
    expect(await measuring).toMatchObject({ ok: true });
    const { promise } = playerAsks(swarm, assetId, 1, () => 10_000);
    await vi.advanceTimersByTimeAsync(1600);
    const result = await promise;
    expect(result).toMatchObject({ ok: true });
    expect(result.ok && result.data).toEqual(pieceBytes(1));
    swarm.destroy();
  });

  it('always waits for a line faster than the origin, with nothing buffered (a peer on a fast line at start-up)', async () => {
    const { swarm, assetId } = await withLine(250_000); // 2 Mbit/s: 64 KiB in 0.26 s, from the origin in 0.6 s
    // Two pieces measure the line (a rate sample spans 250 ms of it).
    const measuring = [0, 1].map((piece) => swarm.fetchPiece(assetId, piece, 10_000, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(700);
    for (const result of await Promise.all(measuring)) expect(result).toMatchObject({ ok: true });
    expect(swarm.peers.get('line')!.throughputMeasured).toBe(true);
    const prefetch = swarm.fetchPiece(assetId, 2, 10_000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(5);
    // The player stalls (nothing buffered) and needs the piece being prefetched and the next one.
    const joined = playerAsks(swarm, assetId, 2, () => 0);
    const fresh = playerAsks(swarm, assetId, 3, () => 0);
    await vi.advanceTimersByTimeAsync(800);
    for (const [piece, answer] of [[2, await joined.promise], [3, await fresh.promise]] as const) {
      expect(answer).toMatchObject({ ok: true });
      expect(answer.ok && answer.data).toEqual(pieceBytes(piece));
    }
    expect(await prefetch).toMatchObject({ ok: true });
    swarm.destroy();
  });

  it('at the deadline, a prefetch the player joined is stopped even when nothing of the piece arrived', async () => {
    const { swarm, assetId, remote } = await withLine(50_000);
    const measuring = swarm.fetchPiece(assetId, 0, 10_000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(1500);
    expect(await measuring).toMatchObject({ ok: true });
    // Three prefetches queue on the line; the player needs the last one within 0.5 s.
    const prefetches = [1, 2, 3].map((piece) => swarm.fetchPiece(assetId, piece, 10_000, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(5);
    const answer = swarm.fetchPiece(assetId, 3, 500, new AbortController().signal, { handOver: true, urgent: true });
    await vi.advanceTimersByTimeAsync(600);
    expect(await answer).toEqual({ ok: false, reason: 'timeout' });
    expect(swarm.downloading(assetId, 3), 'the origin fetches it: the line does not send it too').toBe(false);
    expect(await prefetches[2]).toMatchObject({ ok: false });
    await vi.advanceTimersByTimeAsync(10);
    expect(remote.keptState.uploads, 'only pieces 1 and 2 left queued at the sender').toBeLessThanOrEqual(2);
    await vi.advanceTimersByTimeAsync(4000);
    for (const piece of [1, 2]) expect(await prefetches[piece - 1]).toMatchObject({ ok: true });
    swarm.destroy();
  });
});

describe('Swarm: a verified piece and the store write', () => {
  /** A store whose writes wait until the test lets each go, as a busy page's store writes one piece at a time. */
  class HeldWrites extends MemoryPieceStore {
    readonly writes: { piece: number; release: () => void }[] = [];
    override async put(piece: StoredPiece): Promise<void> {
      await new Promise<void>((release) => this.writes.push({ piece: piece.piece, release }));
      return super.put(piece);
    }
  }

  it("the player's request takes the piece once verified, before its write; a prefetch waits for the write", async () => {
    const m = await manifest();
    const assetId = m.assets[0]!.id;
    const store = new HeldWrites();
    const swarm = new Swarm(m, store, noCallbacks);
    await swarm.loadHave();
    connectRemote(swarm, assetId, 'seeder', [0, 1]);
    await vi.waitFor(() => expect(swarm.availability(assetId, 1)).toBe(1));
    let prefetched: PieceResult | undefined;
    void swarm.fetchPiece(assetId, 1, 4000, new AbortController().signal).then((result) => (prefetched = result));
    const player = await swarm.fetchPiece(assetId, 0, 4000, new AbortController().signal, { handOver: true });
    expect(player).toEqual({ ok: true, data: pieceBytes(0) });
    // Not written yet, so not yet offered to peers.
    expect(store.writes.map((write) => write.piece)).toContain(0);
    expect(swarm.holds(assetId, 0)).toBe(false);
    await vi.waitFor(() => expect(store.writes.map((write) => write.piece)).toContain(1));
    expect(prefetched).toBeUndefined();
    for (const write of store.writes) write.release();
    await vi.waitFor(() => expect(prefetched).toEqual({ ok: true, data: pieceBytes(1) }));
    await vi.waitFor(() => expect([swarm.holds(assetId, 0), swarm.holds(assetId, 1)]).toEqual([true, true]));
    swarm.destroy();
  });
});

describe('Swarm: a fresh peer before its line is measured', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('takes one request ahead of another within a second, as on a 1 Mbit/s line, until a piece measured it', async () => {
    const m = await manifest();
    const assetId = m.assets[0]!.id;
    const swarm = new Swarm(m, new MemoryPieceStore(), noCallbacks);
    await swarm.loadHave();
    connectRemote(swarm, assetId, 'fresh', [0, 1, 2, 3], 400_000); // 3.2 Mbit/s, unknown to us yet
    await vi.advanceTimersByTimeAsync(10);
    // Two 64 KiB pieces asked: another fits a second only if they drain faster than 1 Mbit/s (1.05 s).
    const first = [0, 1].map((piece) => swarm.fetchPiece(assetId, piece, 10_000, new AbortController().signal));
    expect(swarm.canDeliverWithin(assetId, 2, 1000, 10_000)).toBe(false);
    // They measured the line (a quarter second of it): two outstanding now count at its rate (0.33 s).
    await vi.advanceTimersByTimeAsync(1000);
    for (const result of await Promise.all(first)) expect(result).toMatchObject({ ok: true });
    const next = [2, 3].map((piece) => swarm.fetchPiece(assetId, piece, 10_000, new AbortController().signal));
    expect(swarm.canDeliverWithin(assetId, 0, 1000, 10_000)).toBe(true);
    await vi.advanceTimersByTimeAsync(1000);
    for (const result of await Promise.all(next)) expect(result).toMatchObject({ ok: true });
    swarm.destroy();
  });
});

describe('Swarm: a home line shared by several viewers', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sends first the prefetch its viewer needs soonest, not the ones asked first', async () => {
    const m = await manifest();
    const assetId = m.assets[0]!.id;
    const seederStore = new MemoryPieceStore();
    for (let piece = 0; piece < PIECES; piece++) await seederStore.put({ asset: assetId, piece, data: pieceBytes(piece) });
    const seeder = new Swarm(m, seederStore, noCallbacks);
    await seeder.loadHave();
    // The seeder's 2 Mbit/s uplink carries its channels to both viewers.
    const line = new SharedLine(250_000);
    const viewer = async (name: string) => {
      const swarm = new Swarm(m, new MemoryPieceStore(), noCallbacks);
      await swarm.loadHave();
      const [seederEnd, viewerEnd] = channelPair();
      line.add(seederEnd);
      seeder.addPeer(name, fakeConnection(), seederEnd as unknown as RTCDataChannel);
      swarm.addPeer('seeder', fakeConnection(), viewerEnd as unknown as RTCDataChannel);
      swarm.announceReading(assetId, 0);
      return swarm;
    };
    const [comfortable, short] = [await viewer('comfortable'), await viewer('short')];
    await vi.advanceTimersByTimeAsync(10);
    expect(short.availability(assetId, 3)).toBe(1);
    const prefetch = (swarm: Swarm, piece: number, urgencyMs: number) => swarm.fetchPiece(assetId, piece, 10_000, new AbortController().signal, { urgencyMs });
    const received = (swarm: Swarm) => swarm.peers.get('seeder')!.bytesDownloaded;
    // A viewer with a long buffer prefetches three pieces it plays in 10 s and more; then one whose
    // buffer runs out in a few seconds asks for the piece it plays next.
    const early = [0, 1, 2].map((piece) => prefetch(comfortable, piece, 10_000));
    await vi.advanceTimersByTimeAsync(100);
    const needed = prefetch(short, 3, 4000);
    // The line sends the four pieces in 1 s. Within 0.6 s the needed piece is in: it waited for what
    // the comfortable viewer's channel had queued, not for that viewer's other pieces.
    await vi.advanceTimersByTimeAsync(600);
    expect(received(short)).toBe(PIECE);
    expect(received(comfortable)).toBeLessThan(2 * PIECE);
    await vi.advanceTimersByTimeAsync(2000);
    for (const result of await Promise.all([...early, needed])) expect(result).toMatchObject({ ok: true });
    for (const swarm of [seeder, comfortable, short]) swarm.destroy();
  });
});

describe('Swarm: seeding off (an upload limit of 0)', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('tells peers it holds nothing, refuses what they asked, and offers everything again when turned back on', async () => {
    const m = await manifest();
    const assetId = m.assets[0]!.id;
    const store = new MemoryPieceStore();
    for (const piece of [0, 1]) await store.put({ asset: assetId, piece, data: pieceBytes(piece) });
    const swarm = new Swarm(m, store, noCallbacks);
    await swarm.loadHave();
    // Our uplink sends 20 kB/s: a 64 KiB piece is still on its way when seeding stops.
    const [swarmEnd, remoteEnd] = channelPair(20_000);
    const remote = new Peer('us', fakeConnection(), remoteEnd as unknown as RTCDataChannel, remoteHandlers(new Map()));
    swarm.addPeer('remote', fakeConnection(), swarmEnd as unknown as RTCDataChannel);
    remote.hello(new Map());
    remote.announceReading(assetId, 0, true);
    await vi.advanceTimersByTimeAsync(10);
    expect([0, 1].map((piece) => remote.has(assetId, piece))).toEqual([true, true]);
    const outcome = (request: Promise<Uint8Array>) => request.then((data) => data, (error: { details: { reason?: string } }) => error.details.reason);

    const uploading = outcome(remote.request(assetId, 0, PIECE, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(100);
    expect(chunksSent(swarmEnd).length).toBeGreaterThan(0);
    swarm.setSeeding(false);
    await vi.advanceTimersByTimeAsync(5000);
    expect(await uploading).toBe('not-found');
    expect(chunksSent(swarmEnd).length).toBeLessThan(PIECE / (16 * 1024));
    expect([0, 1].map((piece) => remote.has(assetId, piece))).toEqual([false, false]);

    // A piece stored meanwhile is not announced; a request that comes anyway is refused.
    await store.put({ asset: assetId, piece: 2, data: pieceBytes(2) });
    swarm.markHave(assetId, 2);
    const refused = outcome(remote.request(assetId, 1, PIECE, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(100);
    expect(await refused).toBe('not-found');
    expect(remote.has(assetId, 2)).toBe(false);

    swarm.setSeeding(true);
    await vi.advanceTimersByTimeAsync(10);
    expect([0, 1, 2].map((piece) => remote.has(assetId, piece))).toEqual([true, true, true]);
    const served = outcome(remote.request(assetId, 2, PIECE, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(5000);
    expect(await served).toEqual(pieceBytes(2));
    swarm.destroy();
  });
});

describe('Swarm: relayed peers (relay policy)', () => {
  async function setup() {
    const m = await manifest();
    const swarm = new Swarm(m, new MemoryPieceStore(), noCallbacks);
    await swarm.loadHave();
    const assetId = m.assets[0]!.id;
    connectRemote(swarm, assetId, 'relayed', [0, 1]);
    await vi.waitFor(() => expect(swarm.availability(assetId, 0)).toBe(1));
    swarm.markRelayed('relayed', true);
    return { swarm, assetId };
  }

  it("'ahead': a relayed peer serves prefetches but not pieces the player waits for", async () => {
    const { swarm, assetId } = await setup();
    swarm.relayedServeUrgent = false;
    expect(swarm.availability(assetId, 0, true), 'not counted for the player').toBe(0);
    expect(await swarm.fetchPiece(assetId, 0, 5000, new AbortController().signal, { urgent: true })).toMatchObject({ ok: false, reason: 'no-peer' });
    const prefetched = await swarm.fetchPiece(assetId, 1, 5000, new AbortController().signal);
    expect(prefetched.ok && prefetched.data).toEqual(pieceBytes(1));
    swarm.destroy();
  });

  it("'all': a relayed peer serves the player too; a peer no longer relayed is an ordinary peer", async () => {
    const { swarm, assetId } = await setup();
    // A fresh peer earns trust on a prefetch first (see 'a fresh peer earns trust' below).
    expect(await swarm.fetchPiece(assetId, 1, 5000, new AbortController().signal)).toMatchObject({ ok: true });
    expect(swarm.availability(assetId, 0, true)).toBe(1);
    const urgent = await swarm.fetchPiece(assetId, 0, 5000, new AbortController().signal, { urgent: true });
    expect(urgent.ok && urgent.data).toEqual(pieceBytes(0));
    swarm.relayedServeUrgent = false;
    swarm.markRelayed('relayed', false);
    expect(swarm.availability(assetId, 1, true)).toBe(1);
    swarm.destroy();
  });
});

describe('Swarm: hostile peers', () => {
  const PATH = '198.51.100.7';

  it('a fresh peer earns trust on a prefetch before the player waits on it', async () => {
    const m = await manifest();
    const swarm = new Swarm(m, new MemoryPieceStore(), noCallbacks);
    await swarm.loadHave();
    const assetId = m.assets[0]!.id;
    connectRemote(swarm, assetId, 'fresh', [0, 1]);
    await vi.waitFor(() => expect(swarm.availability(assetId, 0)).toBe(1));
    expect(swarm.availability(assetId, 0, true), 'not counted for the player yet').toBe(0);
    expect(await swarm.fetchPiece(assetId, 0, 5000, new AbortController().signal, { urgent: true })).toMatchObject({ ok: false, reason: 'no-peer' });
    expect(await swarm.fetchPiece(assetId, 1, 5000, new AbortController().signal)).toMatchObject({ ok: true });
    expect(swarm.peers.get('fresh')!.trusted).toBe(true);
    expect(await swarm.fetchPiece(assetId, 0, 5000, new AbortController().signal, { urgent: true })).toMatchObject({ ok: true });
    swarm.destroy();
  });

  it('the player waits only briefly on a fresh peer through a prefetch of it that has not started', async () => {
    vi.useFakeTimers();
    try {
      const m = await manifest();
      const swarm = new Swarm(m, new MemoryPieceStore(), noCallbacks);
      await swarm.loadHave();
      const assetId = m.assets[0]!.id;
      const [swarmEnd, remoteEnd] = channelPair();
      const staller = new Peer('us', fakeConnection(), remoteEnd as unknown as RTCDataChannel, { ...remoteHandlers(new Map()), readPiece: () => new Promise(() => {}) });
      swarm.addPeer('staller', fakeConnection(), swarmEnd as unknown as RTCDataChannel);
      staller.hello(new Map([[assetId, runsOf([0])]]));
      await vi.advanceTimersByTimeAsync(10);
      expect(swarm.availability(assetId, 0)).toBe(1);
      const stop = new AbortController();
      const prefetch = swarm.fetchPiece(assetId, 0, 10_000, stop.signal);
      expect(swarm.downloading(assetId, 0)).toBe(true);
      let answer: unknown;
      void swarm.fetchPiece(assetId, 0, 4000, new AbortController().signal, { urgent: true, handOver: true }).then((result) => (answer = result));
      await vi.advanceTimersByTimeAsync(990);
      expect(answer, 'still waiting').toBeUndefined();
      await vi.advanceTimersByTimeAsync(20);
      expect(answer, 'given up after 1 s, not its 4 s deadline').toEqual({ ok: false, reason: 'timeout' });
      // The player takes the piece from the origin: the prefetch's request is cancelled too, or
      // the piece would come from both.
      expect(swarm.downloading(assetId, 0), 'the prefetch is stopped').toBe(false);
      expect(await prefetch).toMatchObject({ ok: false });
      stop.abort();
      swarm.destroy();
    } finally {
      vi.useRealTimers();
    }
  });

  /** A swarm whose first peer to say hello ('busy') holds pieces 0-1 and sends none of them: its line sends other viewers' pieces first. */
  async function swarmWithBusyPeer() {
    const m = await manifest();
    const swarm = new Swarm(m, new MemoryPieceStore(), noCallbacks);
    await swarm.loadHave();
    const assetId = m.assets[0]!.id;
    const { remoteEnd: busyEnd } = connectRemote(swarm, assetId, 'busy', [0, 1], undefined, () => new Promise(() => {}));
    return { swarm, assetId, busyEnd };
  }

  it('a playing player waits on a fresh peer that has not started the piece no longer than its buffer leaves the origin', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    try {
      const { swarm, assetId } = await swarmWithBusyPeer();
      await vi.advanceTimersByTimeAsync(10);
      const prefetch = swarm.fetchPiece(assetId, 0, 10_000, new AbortController().signal);
      // 1 s buffered: the origin needs originMs(PIECE) of it (0.4 s to the first byte, then the
      // piece at 375 kB/s), so the wait ends with that much left, not after the 1 s wait.
      const leftMs = 1000 - originMs(PIECE);
      let answer: unknown;
      void swarm.fetchPiece(assetId, 0, 4000, new AbortController().signal, { urgent: true, handOver: true, bufferMs: () => 1000 }).then((result) => (answer = result));
      await vi.advanceTimersByTimeAsync(leftMs - 20);
      expect(answer, 'still waiting').toBeUndefined();
      await vi.advanceTimersByTimeAsync(40);
      expect(answer, 'given up with what the origin needs still buffered').toEqual({ ok: false, reason: 'timeout' });
      expect(await prefetch, 'the prefetch is stopped').toMatchObject({ ok: false });
      swarm.destroy();
    } finally {
      vi.useRealTimers();
    }
  });

  it('the player takes a piece from a trusted holder at once, not through a prefetch of it that a fresh peer has not started', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    try {
      const { swarm, assetId, busyEnd } = await swarmWithBusyPeer();
      await vi.advanceTimersByTimeAsync(10);
      const prefetch = swarm.fetchPiece(assetId, 0, 10_000, new AbortController().signal);
      // A peer that said hello moments later earns trust on another prefetch.
      connectRemote(swarm, assetId, 'idle', [0, 1]);
      await vi.advanceTimersByTimeAsync(10);
      const proof = swarm.fetchPiece(assetId, 1, 10_000, new AbortController().signal, { from: new Set(['idle']) });
      await vi.advanceTimersByTimeAsync(100);
      expect(await proof).toMatchObject({ ok: true });
      expect(swarm.peers.get('idle')!.trusted).toBe(true);
      const answered = swarm.fetchPiece(assetId, 0, 4000, new AbortController().signal, { urgent: true, handOver: true });
      // Past the 1 s wait on a fresh peer; the piece's hash is checked off the fake clock.
      await vi.advanceTimersByTimeAsync(1010);
      const answer = await answered;
      expect(answer, 'from the trusted holder, not handed to the origin after the wait on the fresh peer').toMatchObject({ ok: true });
      expect(answer.ok && [...answer.data]).toEqual([...pieceBytes(0)]);
      expect(await prefetch, 'the prefetch of the fresh peer is stopped').toMatchObject({ ok: false });
      expect(busyEnd.other.sent.some((message) => message.type === 'cancel'), 'and its request cancelled').toBe(true);
      swarm.destroy();
    } finally {
      vi.useRealTimers();
    }
  });

  /**
   * A fresh peer on a line of `rate` bytes/s holding pieces `held` (piece 0 by default; `readPiece`
   * of its own: a peer that never sends), a prefetch of piece 0 under way and the player's request
   * (4 s deadline, handed over at its end) joining that prefetch; fake timers (the caller restores
   * real ones). `answer()` is the player's result once it came.
   */
  async function playerJoinsPrefetchOfFreshPeer(name: string, rate: number, { held = [0], readPiece }: { held?: number[]; readPiece?: PeerHandlers['readPiece'] } = {}) {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    const m = await manifest();
    const swarm = new Swarm(m, new MemoryPieceStore(), noCallbacks);
    await swarm.loadHave();
    const assetId = m.assets[0]!.id;
    const { remoteEnd } = connectRemote(swarm, assetId, name, held, rate, readPiece);
    await vi.advanceTimersByTimeAsync(200);
    expect(swarm.availability(assetId, 0)).toBe(1);
    const prefetch = swarm.fetchPiece(assetId, 0, 10_000, new AbortController().signal);
    let result: PieceResult | undefined;
    const answered = swarm.fetchPiece(assetId, 0, 4000, new AbortController().signal, { urgent: true, handOver: true }).then((value) => (result = value));
    return { swarm, assetId, remoteEnd, prefetch, answered, answer: () => result };
  }

  it('a fresh peer on a home line, sending the piece when the player joined its prefetch, is waited for until it has sent it', async () => {
    try {
      // 40 kB/s: a 64 KiB piece takes 1.6 s, more than the 1 s a player waits on a fresh peer.
      const { swarm, prefetch, answered, answer } = await playerJoinsPrefetchOfFreshPeer('home', 40_000);
      await vi.advanceTimersByTimeAsync(1100);
      expect(answer(), 'still waiting past 1 s: the peer is sending it').toBeUndefined();
      await vi.advanceTimersByTimeAsync(1800);
      expect(await answered).toMatchObject({ ok: true });
      expect(await prefetch).toMatchObject({ ok: true });
      expect(swarm.peers.get('home')!.trusted).toBe(true);
      swarm.destroy();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a fresh peer that sends part of the piece and then goes silent holds the player 1 s more, not until the deadline', async () => {
    try {
      // 40 kB/s: a 16 KiB chunk every 0.41 s, the 64 KiB piece in 1.6 s.
      const { swarm, remoteEnd, prefetch, answer } = await playerJoinsPrefetchOfFreshPeer('quitter', 40_000);
      await vi.advanceTimersByTimeAsync(1050);
      expect(answer(), 'still waiting past 1 s: the peer is sending it').toBeUndefined();
      // The line goes silent with two of the four chunks received.
      remoteEnd.other.onmessage = null;
      await vi.advanceTimersByTimeAsync(1000);
      expect(answer(), 'given up 1 s after its last progress, not at the 4 s deadline').toMatchObject({ ok: false, reason: 'timeout' });
      expect(await prefetch).toMatchObject({ ok: false });
      swarm.destroy();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a home line whose first piece the player cut while the line was silent is asked again within seconds, and earns trust', async () => {
    try {
      // 40 kB/s: a 16 KiB chunk every 0.41 s, the 64 KiB piece in 1.6 s (a 256 KiB piece on a 1 Mbit/s home line takes 2 s).
      const { swarm, assetId, remoteEnd, prefetch, answered } = await playerJoinsPrefetchOfFreshPeer('home', 40_000, { held: [0, 1] });
      await vi.advanceTimersByTimeAsync(1000);
      // Two chunks in, the line's transport goes silent for 2 s (across a capped router's queue):
      // the player, waiting on a peer not yet trusted, hands the piece over after 1 s without progress.
      remoteEnd.silent = true;
      await vi.advanceTimersByTimeAsync(1100);
      expect(await answered).toMatchObject({ ok: false, reason: 'timeout' });
      expect(await prefetch).toMatchObject({ ok: false });
      expect(swarm.canDeliverWithin(assetId, 1, 2500), 'its stall counts for now').toBe(false);
      await vi.advanceTimersByTimeAsync(900);
      remoteEnd.silent = false;
      await vi.advanceTimersByTimeAsync(3100);
      // 4 s after the stall the line counts at its measured rate again (it was 15 s, then 30 s after
      // the next stall: the only line ahead of the uplinks benchmark's second viewer carried none
      // of its pieces for 20-30 s).
      expect(swarm.canDeliverWithin(assetId, 1, 2500), 'a prefetch may ask it again').toBe(true);
      const next = swarm.fetchPiece(assetId, 1, 10_000, new AbortController().signal);
      await vi.advanceTimersByTimeAsync(2500);
      expect(await next).toMatchObject({ ok: true });
      expect(swarm.peers.get('home')!.trusted).toBe(true);
      swarm.destroy();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a peer that claims pieces and never sends a byte is given up after 1 s and not asked again for 15 s, then 30 s', async () => {
    try {
      const { swarm, assetId, prefetch, answered } = await playerJoinsPrefetchOfFreshPeer('claimer', 40_000, { held: [0, 1], readPiece: () => new Promise(() => {}) });
      await vi.advanceTimersByTimeAsync(1010);
      expect(await answered).toMatchObject({ ok: false, reason: 'timeout' });
      expect(await prefetch).toMatchObject({ ok: false });
      await vi.advanceTimersByTimeAsync(13_900);
      expect(swarm.canDeliverWithin(assetId, 1, 4000), 'not asked again for 15 s').toBe(false);
      await vi.advanceTimersByTimeAsync(1200);
      expect(swarm.canDeliverWithin(assetId, 1, 4000), 'another chance').toBe(true);
      // Asked again, it sends nothing again: the next stall in a row counts 30 s.
      const again = swarm.fetchPiece(assetId, 1, 10_000, new AbortController().signal);
      const joined = swarm.fetchPiece(assetId, 1, 4000, new AbortController().signal, { urgent: true, handOver: true });
      await vi.advanceTimersByTimeAsync(1010);
      expect(await joined).toMatchObject({ ok: false, reason: 'timeout' });
      expect(await again).toMatchObject({ ok: false });
      await vi.advanceTimersByTimeAsync(29_000);
      expect(swarm.canDeliverWithin(assetId, 1, 4000), 'not asked again for 30 s').toBe(false);
      swarm.destroy();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a fresh peer trickling the piece is still given up after 1 s', async () => {
    try {
      // 4 kB/s: the piece would take 16 s.
      const { swarm, prefetch, answer } = await playerJoinsPrefetchOfFreshPeer('trickler', 4000);
      await vi.advanceTimersByTimeAsync(1010);
      expect(answer()).toMatchObject({ ok: false, reason: 'timeout' });
      expect(await prefetch).toMatchObject({ ok: false });
      swarm.destroy();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a peer banned for a bad piece is refused under a fresh id from the same address, not from another', async () => {
    const m = await manifest();
    const rejected: string[] = [];
    const swarm = new Swarm(m, new MemoryPieceStore(), { ...noCallbacks, onPieceRejected: (_asset, _piece, peer) => rejected.push(peer.id) });
    await swarm.loadHave();
    const assetId = m.assets[0]!.id;
    // A remote that answers piece 0 with the bytes of piece 1.
    const [swarmEnd, remoteEnd] = channelPair();
    const liar = new Peer('us', fakeConnection(), remoteEnd as unknown as RTCDataChannel, remoteHandlers(new Map([[0, pieceBytes(1)]])));
    swarm.addPeer('liar', fakeConnection(), swarmEnd as unknown as RTCDataChannel, PATH);
    liar.hello(new Map([[assetId, runsOf([0])]]));
    await vi.waitFor(() => expect(swarm.availability(assetId, 0)).toBe(1));
    expect(await swarm.fetchPiece(assetId, 0, 5000, new AbortController().signal)).toMatchObject({ ok: false, reason: 'rejected' });
    expect(rejected).toEqual(['liar']);
    expect(swarm.isBannedPath(PATH)).toBe(true);

    const [again] = channelPair();
    const closed = fakeConnection();
    const close = vi.spyOn(closed, 'close');
    swarm.addPeer('liar-fresh-id', closed, again as unknown as RTCDataChannel, PATH);
    expect(close).toHaveBeenCalled();
    expect(swarm.peers.has('liar-fresh-id')).toBe(false);
    expect(swarm.isConnected('liar-fresh-id'), 'that id is banned too').toBe(true);

    connectRemote(swarm, assetId, 'neighbour', [0]);
    expect(swarm.peers.has('neighbour'), 'a peer at another (or no known) address is taken').toBe(true);
    swarm.destroy();
  });

  it('garbage on the channel bans the peer and its address', async () => {
    const m = await manifest();
    const swarm = new Swarm(m, new MemoryPieceStore(), noCallbacks);
    await swarm.loadHave();
    const [swarmEnd, remoteEnd] = channelPair();
    swarm.addPeer('babbler', fakeConnection(), swarmEnd as unknown as RTCDataChannel, PATH);
    (remoteEnd as FakeChannel).other.onmessage?.({ data: new Uint8Array([0, 3, 1, 2, 3]).buffer });
    await vi.waitFor(() => expect(swarm.peers.has('babbler')).toBe(false));
    expect(swarm.isConnected('babbler')).toBe(true);
    expect(swarm.isBannedPath(PATH)).toBe(true);
    swarm.destroy();
  });
});

describe('Swarm: a stalling peer is remembered', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('by id and by address: coming back under a fresh id does not wipe its stall', async () => {
    const m = await manifest();
    const swarm = new Swarm(m, new MemoryPieceStore(), noCallbacks);
    await swarm.loadHave();
    const assetId = m.assets[0]!.id;
    // A remote that claims pieces and never sends a byte of them.
    const [swarmEnd, remoteEnd] = channelPair();
    const staller = new Peer('us', fakeConnection(), remoteEnd as unknown as RTCDataChannel, {
      ...remoteHandlers(new Map()),
      readPiece: () => new Promise(() => {}),
    });
    swarm.addPeer('staller', fakeConnection(), swarmEnd as unknown as RTCDataChannel, '198.51.100.9');
    const all = new Map([[assetId, runsOf([0, 1, 2, 3])]]);
    staller.hello(all);
    await vi.advanceTimersByTimeAsync(10);
    expect(swarm.canDeliverWithin(assetId, 0, 4000)).toBe(true);
    const attempt = swarm.fetchPiece(assetId, 0, 5000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(5000);
    expect(await attempt).toMatchObject({ ok: false });
    expect(swarm.canDeliverWithin(assetId, 0, 4000), 'a stalled peer is not waited for').toBe(false);

    // Back under a fresh id while its old connection still looks open.
    const [liveEnd, liveRemote] = channelPair();
    const meanwhile = new Peer('us', fakeConnection(), liveRemote as unknown as RTCDataChannel, remoteHandlers(new Map()));
    swarm.addPeer('staller-second-id', fakeConnection(), liveEnd as unknown as RTCDataChannel, '198.51.100.9');
    meanwhile.hello(all);
    await vi.advanceTimersByTimeAsync(10);
    expect(swarm.peers.get('staller-second-id')!.expectedDelay(PIECE) > 100, 'it inherits the stall of the open one').toBe(true);
    swarm.peers.get('staller-second-id')!.close('gone');
    swarm.peers.get('staller')!.close('gone');

    const [freshEnd, freshRemote] = channelPair();
    const fresh = new Peer('us', fakeConnection(), freshRemote as unknown as RTCDataChannel, remoteHandlers(new Map()));
    swarm.addPeer('staller-fresh-id', fakeConnection(), freshEnd as unknown as RTCDataChannel, '198.51.100.9');
    fresh.hello(all);
    await vi.advanceTimersByTimeAsync(10);
    expect(swarm.availability(assetId, 0)).toBe(1);
    expect(swarm.canDeliverWithin(assetId, 0, 4000), 'the fresh id inherits the stall').toBe(false);
    swarm.destroy();
  });
});

describe('Swarm: live segments', () => {
  /** A live manifest listing segments `from`..`to` (sequence numbers; segment n holds pieceBytes(n)) and one on-demand file. */
  async function liveManifest(from: number, to: number, onDemandPiece = 0): Promise<Manifest> {
    const segments = [];
    for (let n = from; n <= to; n++) {
      segments.push({ url: `/live/seg-${n}.ts`, size: PIECE, contentType: 'video/mp2t', pieceSize: PIECE, pieces: [await sha256Hex(pieceBytes(n))], sequence: n });
    }
    const onDemand = { url: `/v${onDemandPiece}.mp4`, size: PIECE, contentType: 'video/mp4', pieceSize: PIECE, pieces: [await sha256Hex(pieceBytes(onDemandPiece).reverse())] };
    return parseManifest(
      { version: 1, live: [{ playlist: '/live/index.m3u8', segmentMs: 2000, windowMs: 4000 }], assets: [...segments, onDemand] },
      'https://site.example/peerfetch-manifest.json',
    );
  }

  it('tells every peer, once, of each new live segment its manifest lists (not of on-demand files, nor of segments that left)', async () => {
    const first = await liveManifest(0, 1);
    const swarm = new Swarm(first, new MemoryPieceStore(), { ...noCallbacks, onUnknownAsset() {} });
    await swarm.loadHave();
    const ends = ['a', 'b'].map((name) => {
      const [swarmEnd, remoteEnd] = channelPair();
      new Peer('us', fakeConnection(), remoteEnd as unknown as RTCDataChannel, { ...remoteHandlers(new Map()), onUnknownAsset() {} });
      swarm.addPeer(name, fakeConnection(), swarmEnd as unknown as RTCDataChannel);
      return swarmEnd;
    });
    const listed = (end: FakeChannel) => end.sent.filter((message) => message.type === 'listed').map((message) => (message as { asset: string }).asset);

    const next = await liveManifest(1, 2, 3); // segment 2 came, segment 0 left; the on-demand file changed too
    await swarm.setManifest(next);
    const segment2 = next.assets.find((asset) => asset.href.endsWith('/seg-2.ts'))!.id;
    for (const end of ends) expect(listed(end)).toEqual([segment2]);

    await swarm.setManifest(next); // the same version again (the worker's copy after our own reload)
    for (const end of ends) expect(listed(end)).toEqual([segment2]);
    swarm.destroy();
  });
});

describe('Swarm: what a peer learns of the viewer (issue 13 item 7)', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Two videos of one page (A, then B: other bytes, so other ids), `PIECES` pieces each. */
  async function twoVideos() {
    const bytesOf = (video: number, piece: number) => pieceBytes(piece).map((byte) => byte ^ (video + 1));
    const entry = async (video: number) => ({
      url: `/media/video-${video}.mp4`,
      size: bytes.length,
      contentType: 'video/mp4',
      pieceSize: PIECE,
      pieces: await Promise.all(Array.from({ length: PIECES }, (_, piece) => sha256Hex(bytesOf(video, piece)))),
    });
    const m = await parseManifest({ version: 1, assets: [await entry(0), await entry(1)] }, 'https://site.example/peerfetch-manifest.json');
    return { m, a: m.assets[0]!.id, b: m.assets[1]!.id, bytesOf };
  }

  const outcome = (request: Promise<Uint8Array>) => request.then((data) => data, (error: { details: { reason?: string } }) => error.details.reason);
  const namesAsset = (message: PeerMessage, asset: string) =>
    message.type === 'hello' ? message.holdings.has(asset) : 'asset' in message && message.asset === asset;

  it('a page that read A longer ago than its reading memory, then B tells a peer reading only B nothing of A (hello, haves, losses, readings) and refuses its requests for A; B is told and served', async () => {
    const { m, a, b, bytesOf } = await twoVideos();
    const store = new MemoryPieceStore();
    for (const [video, id] of [[0, a], [1, b]] as const) {
      for (let piece = 0; piece < PIECES - 1; piece++) await store.put({ asset: id, piece, data: bytesOf(video, piece) });
    }
    const swarm = new Swarm(m, store, noCallbacks);
    await swarm.loadHave();
    // The player read A, then moved on to B, reading nothing of A since.
    swarm.announceReading(a, 0);
    await vi.advanceTimersByTimeAsync(1000);
    swarm.announceReading(a, 2);
    await vi.advanceTimersByTimeAsync(READING_MEMORY_MS + 1000);
    swarm.announceReading(b, 0);
    await vi.advanceTimersByTimeAsync(1000);

    const [swarmEnd, remoteEnd] = channelPair();
    const probe = new Peer('us', fakeConnection(), remoteEnd as unknown as RTCDataChannel, remoteHandlers(new Map()));
    swarm.addPeer('probe', fakeConnection(), swarmEnd as unknown as RTCDataChannel);
    probe.hello(new Map());
    probe.announceReading(b, 0, true);
    await vi.advanceTimersByTimeAsync(10);
    expect([0, 1, 2].map((piece) => probe.has(b, piece)), 'B, which the page reads and the peer too').toEqual([true, true, true]);
    // Another tab stores the last piece of each; the store evicts a piece of each.
    for (const [video, id] of [[0, a], [1, b]] as const) {
      await store.put({ asset: id, piece: PIECES - 1, data: bytesOf(video, PIECES - 1) });
      swarm.markHave(id, PIECES - 1);
      await store.delete(id, 1);
    }
    await vi.advanceTimersByTimeAsync(10);
    expect(probe.has(b, PIECES - 1)).toBe(true);
    expect(probe.has(b, 1)).toBe(false);
    // Requests: A refused as if not held (it is held), B served.
    const forA = outcome(probe.request(a, 0, PIECE, new AbortController().signal));
    const forB = outcome(probe.request(b, 2, PIECE, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(1000); // the pieces go at the line's pace (LinePacer)
    expect(await forA).toBe('not-found');
    expect(await forB).toEqual(bytesOf(1, 2));
    expect(swarm.holds(a, 0), 'A is held all along').toBe(true);
    const aboutA = swarmEnd.sent.filter((message) => namesAsset(message, a));
    expect(aboutA, 'nothing the peer was sent names A').toEqual([]);
    expect(swarmEnd.sent.filter((message) => message.type === 'hello').length, 'its hello, and the answer to its ask').toBe(2);

    // Once the peer says it reads A too, it is told of A, and served.
    probe.announceReading(a, 0, true);
    await vi.advanceTimersByTimeAsync(10);
    expect([0, 2].map((piece) => probe.has(a, piece))).toEqual([true, true]);
    const nowForA = outcome(probe.request(a, 0, PIECE, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(1000); // the pieces go at the line's pace (LinePacer)
    expect(await nowForA).toEqual(bytesOf(0, 0));
    swarm.destroy();
  });

  it('a page reading nothing says hello with nothing; a peer reading a video is told what the page holds of it, a peer reading another is not', async () => {
    const { m, a, b, bytesOf } = await twoVideos();
    const store = new MemoryPieceStore();
    for (let piece = 0; piece < PIECES; piece++) await store.put({ asset: a, piece, data: bytesOf(0, piece) });
    const swarm = new Swarm(m, store, noCallbacks);
    await swarm.loadHave();
    const readerOfA = connectEmptyRemote(swarm, 'reads-a');
    const readerOfB = connectEmptyRemote(swarm, 'reads-b');
    await vi.advanceTimersByTimeAsync(10);
    const hellos = (end: FakeChannel) => end.sent.flatMap((message) => (message.type === 'hello' ? [[...message.holdings.keys()]] : []));
    expect(hellos(readerOfA.swarmEnd)).toEqual([[]]);
    readerOfA.remote.announceReading(a, 0, true);
    readerOfB.remote.announceReading(b, 0, true);
    await vi.advanceTimersByTimeAsync(10);
    expect(hellos(readerOfA.swarmEnd)).toEqual([[], [a]]);
    expect(hellos(readerOfB.swarmEnd), 'answered, with nothing of A').toEqual([[], []]);
    expect(readerOfA.remote.has(a, 0)).toBe(true);
    expect(readerOfB.swarmEnd.sent.filter((message) => namesAsset(message, a))).toEqual([]);
    swarm.destroy();
  });

  it('asks in a loop get one hello a second, which answers them all', async () => {
    const { m, b } = await twoVideos();
    const swarm = new Swarm(m, new MemoryPieceStore(), noCallbacks);
    await swarm.loadHave();
    const [swarmEnd, remoteEnd] = channelPair();
    const asker = new Peer('us', fakeConnection(), remoteEnd as unknown as RTCDataChannel, remoteHandlers(new Map()));
    swarm.addPeer('asker', fakeConnection(), swarmEnd as unknown as RTCDataChannel);
    asker.hello(new Map());
    let asks = 0;
    for (let second = 0; second < 10; second++) {
      for (let i = 0; i < 100; i++, asks++) asker.announceReading(b, i, true);
      await vi.advanceTimersByTimeAsync(1000);
    }
    await vi.advanceTimersByTimeAsync(2000);
    const answers = swarmEnd.sent.filter((message): message is Extract<PeerMessage, { type: 'hello' }> => message.type === 'hello').slice(1);
    // A burst of a few, then one a second (10 s of asking, 2 s more to answer the last).
    expect(answers.length).toBeGreaterThan(1);
    expect(answers.length).toBeLessThanOrEqual(4 + 12);
    expect(answers.at(-1)!.asks, 'the last hello answers every ask').toBe(asks);
    expect(swarm.peers.get('asker')!.closed).toBe(false);
    swarm.destroy();
  });

  it('between two pages: the one that begins a video waits for the other to say what it holds of it, then takes it', async () => {
    const { m, a, b, bytesOf } = await twoVideos();
    const seederStore = new MemoryPieceStore();
    for (let piece = 0; piece < PIECES; piece++) {
      await seederStore.put({ asset: a, piece, data: bytesOf(0, piece) });
      await seederStore.put({ asset: b, piece, data: bytesOf(1, piece) });
    }
    const seeder = new Swarm(m, seederStore, noCallbacks);
    const viewer = new Swarm(m, new MemoryPieceStore(), noCallbacks);
    await Promise.all([seeder.loadHave(), viewer.loadHave()]);
    const [seederEnd, viewerEnd] = channelPair();
    seeder.addPeer('viewer', fakeConnection(), seederEnd as unknown as RTCDataChannel);
    viewer.addPeer('seeder', fakeConnection(), viewerEnd as unknown as RTCDataChannel);
    await vi.advanceTimersByTimeAsync(10);
    const seen = viewer.peers.get('seeder')!;
    expect(seen.holdingsPending, 'its hello came').toBe(false);
    expect(viewer.availability(b, 0), 'a seeder reading nothing tells nothing').toBe(0);

    viewer.announceReading(b, 0);
    expect(seen.holdingsPending, 'waiting for its answer').toBe(true);
    await vi.advanceTimersByTimeAsync(10);
    expect(seen.holdingsPending).toBe(false);
    expect(Array.from({ length: PIECES }, (_, piece) => viewer.availability(b, piece))).toEqual(Array(PIECES).fill(1));
    expect(viewer.availability(a, 0), 'nothing of the other video').toBe(0);
    const fetched = viewer.fetchPiece(b, 1, 5000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(1000); // the pieces go at the line's pace (LinePacer)
    expect(await fetched).toEqual({ ok: true, data: bytesOf(1, 1) });
    seeder.destroy();
    viewer.destroy();
  });

  /** A DASH VOD of segment files as ffmpeg names them: an init segment, video and audio segments, and the video's next segment. */
  async function dashSegments() {
    const files = ['init-stream0.m4s', 'chunk-stream0-00001.m4s', 'chunk-stream1-00001.m4s', 'chunk-stream0-00002.m4s'];
    const bytesOf = (file: number, piece: number) => pieceBytes(piece).map((byte) => byte ^ (file + 7));
    const entry = async (file: number) => ({
      url: `/dash/${files[file]}`,
      size: bytes.length,
      contentType: 'video/iso.segment',
      pieceSize: PIECE,
      pieces: await Promise.all(Array.from({ length: PIECES }, (_, piece) => sha256Hex(bytesOf(file, piece)))),
    });
    const m = await parseManifest({ version: 1, assets: await Promise.all(files.map((_, file) => entry(file))) }, 'https://site.example/peerfetch-manifest.json');
    const [init, video, audio, nextVideo] = m.assets.map((asset) => asset.id) as [string, string, string, string];
    return { m, init, video, audio, nextVideo, bytesOf };
  }

  it('a page that reads nothing tells a peer reading a DASH video segment what it holds of that representation’s other segments (one stream), not of its audio or init segment', async () => {
    const { m, init, video, audio, nextVideo, bytesOf } = await dashSegments();
    const store = new MemoryPieceStore();
    for (const [file, id] of [init, video, audio, nextVideo].entries()) {
      for (let piece = 0; piece < PIECES; piece++) await store.put({ asset: id, piece, data: bytesOf(file, piece) });
    }
    const swarm = new Swarm(m, store, noCallbacks);
    await swarm.loadHave();
    const { remote: viewer } = connectEmptyRemote(swarm, 'viewer');
    viewer.announceReading(video, 0, true);
    await vi.advanceTimersByTimeAsync(10);
    // Told at once, so the viewer's next segment needs no ask and no hello of its own (hellos are rate-limited).
    expect([video, nextVideo].map((id) => viewer.has(id, PIECES - 1)), 'the segment read and the next one').toEqual([true, true]);
    expect([audio, init].map((id) => viewer.has(id, 0)), 'other streams of the page').toEqual([false, false]);
    const forNext = outcome(viewer.request(nextVideo, 0, PIECE, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(1000); // the pieces go at the line's pace (LinePacer)
    expect(await forNext).toEqual(bytesOf(3, 0));
    swarm.destroy();
  });

  it('a page whose player reads init, video and audio segments at once tells and serves all three, also the video while it last read audio; none once it read nothing for its reading memory', async () => {
    const { m, init, video, audio, bytesOf } = await dashSegments();
    const store = new MemoryPieceStore();
    for (const [file, id] of [init, video, audio].entries()) {
      for (let piece = 0; piece < PIECES - 1; piece++) await store.put({ asset: id, piece, data: bytesOf(file, piece) });
    }
    const swarm = new Swarm(m, store, noCallbacks);
    await swarm.loadHave();
    // dash.js reads the video's init segment, then its first media segment...
    swarm.announceReading(init, 0);
    await vi.advanceTimersByTimeAsync(500);
    swarm.announceReading(video, 0);
    await vi.advanceTimersByTimeAsync(500);
    // ... when a peer that says nothing of its own reading connects (its player has not started).
    const { remote: probe, swarmEnd } = connectEmptyRemote(swarm, 'probe');
    await vi.advanceTimersByTimeAsync(10);
    expect([init, video].map((id) => probe.has(id, 0)), 'the init segment as well as the video').toEqual([true, true]);
    // The audio begins: the peer is told of it, and still of the video and the init segment.
    swarm.announceReading(audio, 0);
    await vi.advanceTimersByTimeAsync(10);
    expect([init, video, audio].map((id) => probe.has(id, 0)), 'init, video, audio').toEqual([true, true, true]);
    // A video piece stored while the player last read audio is told, and the peer is served it and the init segment.
    await store.put({ asset: video, piece: PIECES - 1, data: bytesOf(1, PIECES - 1) });
    swarm.markHave(video, PIECES - 1);
    await vi.advanceTimersByTimeAsync(10);
    expect(probe.has(video, PIECES - 1)).toBe(true);
    const forVideo = outcome(probe.request(video, PIECES - 1, PIECE, new AbortController().signal));
    const forInit = outcome(probe.request(init, 1, PIECE, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(1000); // the pieces go at the line's pace (LinePacer)
    expect(await forVideo).toEqual(bytesOf(1, PIECES - 1));
    expect(await forInit).toEqual(bytesOf(0, 1));
    expect(swarmEnd.sent.filter((message) => message.type === 'lost'), 'nothing withdrawn').toEqual([]);

    // The player reads nothing for its reading memory (ended, or closed): a peer connecting now learns nothing.
    await vi.advanceTimersByTimeAsync(READING_MEMORY_MS + 1000);
    const { remote: late, swarmEnd: lateEnd } = connectEmptyRemote(swarm, 'late');
    await vi.advanceTimersByTimeAsync(10);
    expect(lateEnd.sent.filter((message) => message.type !== 'hello' || message.holdings.size > 0), 'a hello naming nothing, and no reading').toEqual([]);
    const refused = outcome(late.request(video, 0, PIECE, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(100);
    expect(await refused).toBe('not-found');
    swarm.destroy();
  });
});
