import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HELLO_DEADLINE_MS, HOLDINGS_WAIT_MS, Peer, type PeerHandlers } from '../../src/engine/peer.js';
import { JOIN_SETTLE_MS, Scheduler } from '../../src/engine/scheduler.js';
import { Swarm, type PieceResult } from '../../src/engine/swarm.js';
import { runsOf, type Holdings } from '../../src/shared/holdings.js';
import { sha256Hex } from '../../src/shared/integrity.js';
import { parseManifest, type Manifest, type ManifestAsset } from '../../src/shared/manifest.js';
import { MemoryPieceStore } from '../../src/store/piece-store.js';
import { channelPair, fakeConnection } from './fake-channel.js';

// One page path with several videos (issue 11 item 3): the swarm member assigned to fetch a piece
// from the origin is one that wants it (reads near it), so a player never waits for a member
// watching another video, or another part of this one.

const PIECE = 64 * 1024;
const PIECES = 40;

async function twoVideos(): Promise<Manifest> {
  const video = async (name: string) => ({
    url: `/media/${name}.mp4`,
    size: PIECE * PIECES,
    contentType: 'video/mp4',
    pieceSize: PIECE,
    pieces: await Promise.all(Array.from({ length: PIECES }, (_, piece) => sha256Hex(new TextEncoder().encode(`${name}/${piece}`)))),
  });
  return parseManifest({ version: 1, assets: [await video('first'), await video('second')] }, 'https://site.example/peerfetch-manifest.json');
}

const callbacks = { onPeerConnect() {}, onPeerDisconnect() {}, onPieceVerified() {}, onPieceRejected() {}, onUploaded() {}, onPeerHave() {}, onWithdrawn() {}, onUnknownAsset() {}, onPeerFetching() {} };

function remoteHandlers(): PeerHandlers {
  return { pieceCount: () => PIECES, readPiece: async () => undefined, onHave: () => {}, onUploaded: () => {}, beforeUpload: async () => {}, onClose: () => {}, onUnknownAsset: () => {} };
}

/**
 * The far end of a connection as a page's swarm is: it answers a `reading` that asks what it holds
 * (we began a stream, see Swarm.announceReading) with its hello again, as soon as the message arrives.
 */
class RemotePeer extends Peer {
  #holdings: Holdings = new Map();

  constructor(channel: RTCDataChannel, handlers: Partial<PeerHandlers> = {}) {
    super('self', fakeConnection(), channel, {
      ...remoteHandlers(),
      ...handlers,
      onReading: (peer, _asset, ask) => {
        if (ask) (peer as RemotePeer).hello((peer as RemotePeer).#holdings);
      },
    });
  }

  override hello(holdings: Holdings): void {
    this.#holdings = holdings;
    super.hello(holdings);
  }
}

describe('Scheduler: the member assigned a piece wants it', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  async function setUp() {
    const manifest = await twoVideos();
    const [first, second] = manifest.assets as [Manifest['assets'][0], Manifest['assets'][0]];
    const swarm = new Swarm(manifest, new MemoryPieceStore(), callbacks);
    await swarm.loadHave();
    const [ourEnd, remoteEnd] = channelPair();
    const remote = new RemotePeer(remoteEnd as unknown as RTCDataChannel);
    swarm.addPeer('other', fakeConnection(), ourEnd as unknown as RTCDataChannel);
    remote.hello(new Map());
    const scheduler = new Scheduler({ manifest, swarm, selfId: () => 'self', prefetchFromOrigin: () => {} });
    await vi.advanceTimersByTimeAsync(10);
    return { first, second, swarm, remote, scheduler, ourEnd };
  }

  it('a peer reading another video is never assigned a piece of this one, and the player does not wait for it', async () => {
    const { first, second, remote, scheduler } = await setUp();
    remote.announceReading(second.id, 0);
    await vi.advanceTimersByTimeAsync(10);
    for (let piece = 0; piece < PIECES; piece++) expect(scheduler.ownerOf(first.id, piece), `piece ${piece}`).toBe('self');
    // Piece 20 of the first video: nobody holds it, so the player goes to the origin at once.
    let answer: unknown;
    void scheduler.answer(first, 20, 4000, false, new AbortController().signal).then((result) => (answer = result));
    await vi.advanceTimersByTimeAsync(1);
    expect(answer).toEqual({ ok: false, reason: 'no-peer' });
    scheduler.stop();
  });

  it('a peer reading the same video shares its pieces; the player waits only for a piece that peer is about to fetch', async () => {
    const { first, remote, scheduler, ourEnd } = await setUp();
    const toldFetching = (piece: number) => ourEnd.sent.some((message) => message.type === 'reading' && message.asset === first.id && message.piece === piece && message.origin === true);
    remote.announceReading(first.id, 10);
    await vi.advanceTimersByTimeAsync(10);
    const owners = Array.from({ length: PIECES }, (_, piece) => scheduler.ownerOf(first.id, piece));
    expect(owners).toContain('other');
    expect(owners).toContain('self');
    // Assigned to the peer within its read-ahead window (it fetches it now): the player waits for it, bounded.
    const near = 10 + owners.slice(10, 19).indexOf('other');
    expect(near).toBeGreaterThanOrEqual(10);
    let answer: unknown;
    void scheduler.answer(first, near, 4000, false, new AbortController().signal).then((result) => (answer = result));
    await vi.advanceTimersByTimeAsync(100);
    expect(answer, 'waiting for the member that fetches it').toBeUndefined();
    await vi.advanceTimersByTimeAsync(2000);
    expect(answer).toEqual({ ok: false, reason: 'no-peer' });
    // Assigned to the peer far past its window (it reads there only later): no wait.
    const far = 25 + owners.slice(25).indexOf('other');
    expect(far).toBeGreaterThanOrEqual(25);
    let farAnswer: unknown;
    void scheduler.answer(first, far, 4000, false, new AbortController().signal).then((result) => (farAnswer = result));
    await vi.advanceTimersByTimeAsync(1);
    expect(farAnswer).toEqual({ ok: false, reason: 'no-peer' });
    // The SW fetches both from the origin now: the peer is told, so that it does not fetch them too
    // when it reads on to them (it takes them from us).
    expect(toldFetching(near), 'the piece waited for').toBe(true);
    expect(toldFetching(far), 'the piece not waited for').toBe(true);
    scheduler.stop();
  });

  it('a peer that read on just past a piece it is assigned is still fetching it: the player waits for it, not for one it read far past', async () => {
    const { first, remote, scheduler } = await setUp();
    remote.announceReading(first.id, 0);
    await vi.advanceTimersByTimeAsync(10);
    const owners = Array.from({ length: PIECES }, (_, piece) => scheduler.ownerOf(first.id, piece));
    const piece = owners.indexOf('other', 10);
    expect(piece).toBeGreaterThanOrEqual(10);
    // Its SW loads the next pieces with the one it serves: read on by two, it is still fetching this one.
    remote.announceReading(first.id, piece + 2);
    await vi.advanceTimersByTimeAsync(10);
    let answer: unknown;
    void scheduler.answer(first, piece, 4000, false, new AbortController().signal).then((result) => (answer = result));
    await vi.advanceTimersByTimeAsync(100);
    expect(answer, 'waiting for the member that fetches it').toBeUndefined();
    await vi.advanceTimersByTimeAsync(2000);
    expect(answer).toEqual({ ok: false, reason: 'no-peer' });
    // Read on far past it (a seek): it never fetches it, and the player does not wait.
    remote.announceReading(first.id, piece + 6);
    await vi.advanceTimersByTimeAsync(10);
    let farAnswer: unknown;
    void scheduler.answer(first, piece, 4000, false, new AbortController().signal).then((result) => (farAnswer = result));
    await vi.advanceTimersByTimeAsync(1);
    expect(farAnswer).toEqual({ ok: false, reason: 'no-peer' });
    scheduler.stop();
  });

  it('a head is forgotten when it has not moved for READING_MEMORY_MS', async () => {
    const { first, remote, scheduler } = await setUp();
    remote.announceReading(first.id, 10);
    await vi.advanceTimersByTimeAsync(10);
    const owners = () => Array.from({ length: PIECES }, (_, piece) => scheduler.ownerOf(first.id, piece));
    expect(owners()).toContain('other');
    await vi.advanceTimersByTimeAsync(31_000);
    expect(owners().every((owner) => owner === 'self')).toBe(true);
    scheduler.stop();
  });
});

/** One video of real bytes (so that a peer holding them serves pieces that pass their hash) and its manifest. */
async function oneVideo() {
  const bytes = Uint8Array.from({ length: PIECE * PIECES }, (_, i) => (i * 13 + (i >> 8)) % 251);
  const pieceBytes = (piece: number) => bytes.slice(piece * PIECE, (piece + 1) * PIECE);
  const pieces = await Promise.all(Array.from({ length: PIECES }, (_, piece) => sha256Hex(pieceBytes(piece))));
  const manifest = await parseManifest(
    { version: 1, assets: [{ url: '/media/video.mp4', size: bytes.length, contentType: 'video/mp4', pieceSize: PIECE, pieces }] },
    'https://site.example/peerfetch-manifest.json',
  );
  return { manifest, asset: manifest.assets[0]!, pieceBytes };
}

describe('Scheduler: a peer that has just connected', () => {
  /** One video, a swarm and its scheduler; `connect` adds a remote peer that serves any piece. */
  async function setUp() {
    const { manifest, asset, pieceBytes } = await oneVideo();
    const fromOrigin: number[] = [];
    const disconnects: string[] = [];
    let scheduler: Scheduler | undefined;
    const swarm = new Swarm(manifest, new MemoryPieceStore(), {
      ...callbacks,
      onPeerConnect: () => scheduler?.reschedule(),
      onPeerHave: () => scheduler?.reschedule(),
      onPeerDisconnect: (peer, reason) => disconnects.push(`${peer.id}: ${reason}`),
    });
    await swarm.loadHave();
    scheduler = new Scheduler({ manifest, swarm, selfId: () => 'self', prefetchFromOrigin: (_asset, piece) => fromOrigin.push(piece) });
    const connect = (id: string) => {
      const [ourEnd, remoteEnd] = channelPair();
      const remote = new RemotePeer(remoteEnd as unknown as RTCDataChannel, { readPiece: async (_asset, piece) => pieceBytes(piece) });
      swarm.addPeer(id, fakeConnection(), ourEnd as unknown as RTCDataChannel);
      return { remote, ourEnd };
    };
    /** A peer that plays the same video from its start and holds none of it: with it, this page owns some of the pieces ahead. */
    const watcher = async () => {
      const peer = connect('watcher');
      peer.remote.hello(new Map());
      peer.remote.announceReading(asset.id, 0);
      await vi.waitFor(() => expect(swarm.peers.get('watcher')?.readingHeads(60_000)).toHaveLength(1));
      return peer;
    };
    return { asset, swarm, scheduler, fromOrigin, disconnects, connect, watcher };
  }

  it('no piece is fetched from the origin as its owner before every connected peer said what it holds', async () => {
    const { asset, swarm, scheduler, fromOrigin, connect, watcher } = await setUp();
    await watcher();
    const owners = Array.from({ length: 8 }, (_, index) => scheduler.ownerOf(asset.id, index + 1));
    expect(owners, 'this page owns pieces of the window: the check below could not pass by chance').toContain('self');
    // A peer that holds the whole video connects; its hello comes a moment after its channel
    // opened, and the player reads its first piece in between (the plan runs before the hello).
    const seeder = connect('seeder');
    seeder.remote.hello(new Map([[asset.id, runsOf(Array.from({ length: PIECES }, (_, piece) => piece))]]));
    // The first piece waits for the hello, and comes from that peer though it has not earned trust yet.
    const first = await scheduler.answer(asset, 0, 1000, true, new AbortController().signal);
    expect(first).toMatchObject({ ok: true });
    expect(seeder.ourEnd.sent.filter((message) => message.type === 'request' && message.piece === 0)).toHaveLength(1);
    // Once it said so, the pieces ahead come from it, and none was asked of the origin meanwhile.
    await vi.waitFor(() => expect(seeder.ourEnd.sent.filter((message) => message.type === 'request').length).toBeGreaterThan(0));
    expect(fromOrigin).toEqual([]);
    scheduler.stop();
    swarm.destroy();
  });

  it('a piece this page fetches from the origin for the swarm is not asked of a peer meanwhile', async () => {
    const { asset, swarm, scheduler, fromOrigin, connect, watcher } = await setUp();
    await watcher();
    // The player reads piece 0 (nobody holds it): the owned pieces ahead go to the origin, whose SW
    // has not stored them yet (nothing answers the prefetches here).
    const reading = new AbortController();
    void scheduler.answer(asset, 0, 1000, true, reading.signal);
    await vi.waitFor(() => expect(fromOrigin.length).toBeGreaterThan(0));
    // A peer holding the whole video connects: the plan asks it for the other pieces, not for those.
    const seeder = connect('seeder');
    seeder.remote.hello(new Map([[asset.id, runsOf(Array.from({ length: PIECES }, (_, piece) => piece))]]));
    const asked = () => seeder.ourEnd.sent.flatMap((message) => (message.type === 'request' ? [message.piece] : []));
    await vi.waitFor(() => expect(asked().filter((piece) => piece > 0).length).toBeGreaterThan(0));
    expect(asked().filter((piece) => fromOrigin.includes(piece))).toEqual([]);
    reading.abort();
    scheduler.stop();
    swarm.destroy();
  });

  it("a player's wait for what a new peer holds is no longer than its buffer leaves the origin", async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    try {
      const { asset, swarm, scheduler } = await setUp();
      // A peer whose channel opened and whose hello has not come (nothing listens at its end).
      const [silentEnd] = channelPair();
      swarm.addPeer('silent', fakeConnection(), silentEnd as unknown as RTCDataChannel);
      const answerAfter = async (piece: number, bufferMs: number | undefined) => {
        let answer: unknown;
        void scheduler.answer(asset, piece, 4000, false, new AbortController().signal, () => bufferMs).then((result) => (answer = result));
        await vi.advanceTimersByTimeAsync(1);
        return answer;
      };
      // Half a second buffered: the origin needs all of it for a 64 KiB piece, so no wait.
      expect(await answerAfter(5, 500)).toEqual({ ok: false, reason: 'no-peer' });
      // Nothing playing: the piece waits for the peer's answer (HOLDINGS_ANSWER_WAIT_MS).
      expect(await answerAfter(6, undefined)).toBeUndefined();
      scheduler.stop();
      swarm.destroy();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a peer that never says hello holds the owner fetches back HOLDINGS_WAIT_MS only, and is closed after HELLO_DEADLINE_MS', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    try {
      const { asset, swarm, scheduler, fromOrigin, disconnects, connect } = await setUp();
      const watcher = connect('watcher');
      watcher.remote.hello(new Map());
      watcher.remote.announceReading(asset.id, 0);
      await vi.advanceTimersByTimeAsync(10);
      expect(swarm.peers.get('watcher')?.readingHeads(60_000)).toHaveLength(1);
      // A peer whose channel opened and that never sends a byte (nothing listens at its end).
      const [silentEnd] = channelPair();
      swarm.addPeer('silent', fakeConnection(), silentEnd as unknown as RTCDataChannel);
      // The player's first piece waits for the peers' holdings a moment only (HOLDINGS_ANSWER_WAIT_MS), then goes to the origin.
      let first: unknown;
      void scheduler.answer(asset, 0, 1000, true, new AbortController().signal).then((result) => (first = result));
      await vi.advanceTimersByTimeAsync(300);
      expect(first).toMatchObject({ ok: false, reason: 'no-peer' });
      // The watcher answers what our reading asked (see the `reading` message): only the silent peer is awaited.
      await vi.advanceTimersByTimeAsync(10);
      watcher.remote.hello(new Map());
      // 310 ms of the silent peer's wait went by above.
      await vi.advanceTimersByTimeAsync(HOLDINGS_WAIT_MS - 510);
      expect(swarm.peers.get('watcher')!.holdingsPending).toBe(false);
      expect(swarm.peers.get('silent')!.holdingsPending).toBe(true);
      expect(fromOrigin, 'nothing fetched for the swarm while its hello may still come').toEqual([]);
      // Past the wait the plan goes on without it: this page fetches the pieces it owns.
      await vi.advanceTimersByTimeAsync(200);
      const owned = Array.from({ length: 8 }, (_, index) => index + 1).filter((piece) => scheduler.ownerOf(asset.id, piece) === 'self');
      expect(owned.length).toBeGreaterThan(0);
      expect(fromOrigin.length).toBeGreaterThan(0);
      expect(fromOrigin.every((piece) => owned.includes(piece))).toBe(true);
      expect(swarm.peers.has('silent'), 'kept until its deadline: its page may only be busy').toBe(true);
      await vi.advanceTimersByTimeAsync(HELLO_DEADLINE_MS - HOLDINGS_WAIT_MS);
      expect(swarm.peers.has('silent')).toBe(false);
      expect(disconnects).toEqual(['silent: no hello']);
      expect(swarm.peers.has('watcher'), 'a peer that said hello stays').toBe(true);
      scheduler.stop();
      swarm.destroy();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('Scheduler: prefetches leave the lines of viewers far ahead to the viewers behind them', () => {
  /**
   * One video, a swarm and its scheduler; `connect` adds a remote peer holding `held` and reading at
   * `readingAt` (none: it says hello and nothing more), and returns the pieces we asked it for and its end.
   */
  async function setUp() {
    const { manifest, asset, pieceBytes } = await oneVideo();
    let scheduler: Scheduler | undefined;
    const swarm = new Swarm(manifest, new MemoryPieceStore(), {
      ...callbacks,
      onPeerConnect: () => scheduler?.reschedule(),
      onPeerHave: () => scheduler?.reschedule(),
      onPeerReading: () => scheduler?.onPeerReading(),
    });
    await swarm.loadHave();
    scheduler = new Scheduler({ manifest, swarm, selfId: () => 'self', prefetchFromOrigin: () => {} });
    const connect = async (id: string, held: number[], readingAt?: number) => {
      const [ourEnd, remoteEnd] = channelPair();
      const remote = new RemotePeer(remoteEnd as unknown as RTCDataChannel, { readPiece: async (_asset, piece) => pieceBytes(piece) });
      swarm.addPeer(id, fakeConnection(), ourEnd as unknown as RTCDataChannel);
      remote.hello(new Map([[asset.id, runsOf(held)]]));
      if (readingAt === undefined) {
        await vi.waitFor(() => expect(swarm.peers.get(id)?.has(asset.id, held[0]!)).toBe(true));
      } else {
        remote.announceReading(asset.id, readingAt);
        await vi.waitFor(() => expect(swarm.peers.get(id)?.readingHeads(60_000)).toHaveLength(1));
      }
      /** The pieces we asked this peer for. */
      const asked = () => ourEnd.sent.flatMap((message) => (message.type === 'request' ? [message.piece] : []));
      return Object.assign(asked, { remote });
    };
    return { asset, swarm, scheduler, connect };
  }

  const all = Array.from({ length: PIECES }, (_, piece) => piece);

  it('asks the holder furthest behind in the stream, not the one far ahead whose line the viewers between need', async () => {
    const { asset, swarm, scheduler, connect } = await setUp();
    // Connected first, so that without the rule it is asked first (both lines unmeasured, equally fast).
    const askedOfAhead = await connect('ahead', all, 30);
    const askedOfNear = await connect('near', all, 5);
    await scheduler.answer(asset, 0, 4000, true, new AbortController().signal);
    // The first piece and the read-ahead window (pieces 1-8) come from the peer nearer us.
    await vi.waitFor(() => expect(new Set(askedOfNear())).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7, 8])));
    expect(askedOfAhead()).toEqual([]);
    scheduler.stop();
    swarm.destroy();
  });

  it('a holder whose hello came and its `reading` not yet is not taken for one that reads nowhere', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    try {
      const { asset, swarm, scheduler, connect } = await setUp();
      const askedOfNear = await connect('near', all, 5);
      // The viewer far ahead connects: its hello is handled, and the plan runs, before its `reading`
      // arrives (each message is a task of its own, as on a data channel).
      const askedOfAhead = await connect('ahead', all);
      void scheduler.answer(asset, 0, 4000, true, new AbortController().signal);
      await vi.advanceTimersByTimeAsync(100);
      askedOfAhead.remote.announceReading(asset.id, 30);
      // Waited for, not timed: each piece verified (WebCrypto, off the fake clock) makes room for the next ask.
      await vi.waitFor(() => expect(new Set(askedOfNear())).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7, 8])));
      expect(askedOfAhead()).toEqual([]);
      scheduler.stop();
      swarm.destroy();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a holder that said hello HOLDINGS_WAIT_MS ago and never where it reads counts as reading nowhere: its line is asked first', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    try {
      const { asset, swarm, scheduler, connect } = await setUp();
      const askedOfSeeder = await connect('seeder', all);
      await vi.advanceTimersByTimeAsync(HOLDINGS_WAIT_MS);
      const askedOfNear = await connect('near', all, 5);
      void scheduler.answer(asset, 0, 4000, true, new AbortController().signal);
      // Waited for, not timed: each piece verified (WebCrypto, off the fake clock) makes room for the next ask.
      await vi.waitFor(() => expect(new Set(askedOfSeeder())).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7, 8])));
      expect(askedOfNear()).toEqual([]);
      scheduler.stop();
      swarm.destroy();
    } finally {
      vi.useRealTimers();
    }
  });

  /**
   * A member joining a swarm of `members` (the tracker's count, us included): its player's first
   * piece, asked before any peer connected, goes to the origin, and the stream's head is noted.
   */
  async function joinSwarmOf(members: number) {
    const joined = await setUp();
    joined.scheduler.onSwarmSize(members);
    expect(await joined.scheduler.answer(joined.asset, 0, 1000, true, new AbortController().signal)).toEqual({ ok: false, reason: 'no-peer' });
    return joined;
  }

  it('a joining member waits for the peers the tracker reported before it takes a line: the first to connect, far ahead, is not given the read-ahead window', async () => {
    const { swarm, scheduler, connect } = await joinSwarmOf(3);
    // The viewer far ahead connects first, as in the WAN benchmark, and the plan runs on its hello
    // and on its `reading` (connect waits for both) before the viewer near us connects.
    const askedOfAhead = await connect('ahead', all, 30);
    const askedOfNear = await connect('near', all, 5);
    await vi.waitFor(() => expect(new Set(askedOfNear())).toEqual(new Set([1, 2, 3, 4, 5, 6, 7, 8])));
    expect(askedOfAhead()).toEqual([]);
    scheduler.stop();
    swarm.destroy();
  });

  it('a joining member whose other reported peers never connect prefetches from the one it has after JOIN_SETTLE_MS', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance', 'Date'] });
    try {
      const { swarm, scheduler, connect } = await joinSwarmOf(3);
      const askedOfAhead = await connect('ahead', all, 30);
      await vi.advanceTimersByTimeAsync(JOIN_SETTLE_MS - 50);
      expect(askedOfAhead(), 'still waiting for the others').toEqual([]);
      await vi.advanceTimersByTimeAsync(100);
      await vi.waitFor(() => expect(askedOfAhead().length).toBeGreaterThan(0));
      scheduler.stop();
      swarm.destroy();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a joining member with one other member in the swarm asks it at once, though it reads nothing (a seeder)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance', 'Date'] });
    try {
      const { swarm, scheduler, connect } = await joinSwarmOf(2);
      const askedOfSeeder = await connect('seeder', all);
      await vi.advanceTimersByTimeAsync(10);
      expect(askedOfSeeder().length, 'asked before JOIN_SETTLE_MS').toBeGreaterThan(0);
      scheduler.stop();
      swarm.destroy();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a piece only the viewer far ahead holds is still prefetched from it', async () => {
    const { asset, swarm, scheduler, connect } = await setUp();
    const askedOfAhead = await connect('ahead', all, 30);
    const askedOfNear = await connect('near', [0, 1, 2, 3, 4], 2);
    await scheduler.answer(asset, 0, 4000, true, new AbortController().signal);
    await vi.waitFor(() => expect(new Set([...askedOfNear(), ...askedOfAhead()])).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7, 8])));
    expect(new Set(askedOfNear())).toEqual(new Set([0, 1, 2, 3, 4]));
    expect(new Set(askedOfAhead())).toEqual(new Set([5, 6, 7, 8]));
    scheduler.stop();
    swarm.destroy();
  });
});

describe('Scheduler: prefetches sized to the time the player gives a piece', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] }));
  afterEach(() => vi.useRealTimers());

  /** A swarm and its scheduler, and one peer behind a home line sending `bytesPerSecond`, holding `held`. */
  async function homeLine(bytesPerSecond: number, held: (piece: number) => boolean) {
    const { manifest, asset, pieceBytes } = await oneVideo();
    const swarm = new Swarm(manifest, new MemoryPieceStore(), callbacks);
    await swarm.loadHave();
    /** Pieces fetched from the origin for the swarm. */
    const fromOrigin: number[] = [];
    const scheduler = new Scheduler({ manifest, swarm, selfId: () => 'self', prefetchFromOrigin: (_asset, piece) => fromOrigin.push(piece) });
    const [ourEnd, remoteEnd] = channelPair(undefined, bytesPerSecond);
    const remote = new RemotePeer(remoteEnd as unknown as RTCDataChannel, { readPiece: async (_asset, piece) => pieceBytes(piece) });
    swarm.addPeer('home', fakeConnection(), ourEnd as unknown as RTCDataChannel);
    remote.hello(new Map([[asset.id, runsOf(Array.from({ length: PIECES }, (_, piece) => piece).filter(held))]]));
    await vi.advanceTimersByTimeAsync(10);
    return { asset, swarm, scheduler, ourEnd, remote, fromOrigin };
  }

  it("the player's first piece from a fresh peer slower than the origin is handed to the origin once the line is measured", async () => {
    // A home line of 384 kbit/s holding the whole video: a 64 KiB piece takes 1.4 s on it, the origin 0.6 s.
    const { asset, swarm, scheduler, ourEnd } = await homeLine(48_000, () => true);
    let answer: PieceResult | undefined;
    void scheduler.answer(asset, 0, 1000, true, new AbortController().signal).then((result) => (answer = result));
    await vi.advanceTimersByTimeAsync(100);
    expect(ourEnd.sent.filter((message) => message.type === 'request' && message.piece === 0), 'asked of the fresh peer').toHaveLength(1);
    expect(answer).toBeUndefined();
    // Nothing plays yet: as soon as the line is measured slower than the origin (the piece shares
    // it with the prefetches of the pieces after it), the origin finishes the piece.
    await vi.advanceTimersByTimeAsync(800);
    expect(answer, 'before its 1 s deadline').toMatchObject({ ok: false, reason: 'slow-peers' });
    scheduler.stop();
    swarm.destroy();
  });

  it('a piece held by a line too slow for the queue but in time for its playback is not fetched for the swarm', async () => {
    // A home line of 128 kbit/s holding every piece but pieces 1 and 5: a 64 KiB piece takes 4.1 s on
    // it, in time for a piece the player plays 10 s from now (its pace unknown), not for the 4 s queue.
    const held = (piece: number) => piece !== 1 && piece !== 5;
    const { asset, swarm, scheduler, remote, fromOrigin } = await homeLine(16_000, held);
    const measuring = swarm.fetchPiece(asset.id, 0, 20_000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(6000);
    expect(await measuring).toMatchObject({ ok: true });
    // The home's player reads the video too: the pieces ahead are split between it and us.
    remote.announceReading(asset.id, 0);
    await vi.advanceTimersByTimeAsync(10);
    const window = Array.from({ length: 8 }, (_, index) => index + 2);
    const ours = window.filter((piece) => scheduler.ownerOf(asset.id, piece) === 'self');
    expect(ours.filter((piece) => piece !== 5).length, 'we own held pieces: the check below could not pass by chance').toBeGreaterThan(0);

    // The player reads piece 1 (nobody holds it; its answer is not what this test is about).
    const reading = new AbortController();
    void scheduler.answer(asset, 1, 4000, false, reading.signal);
    await vi.advanceTimersByTimeAsync(10);
    // The home answers where we read with what it holds (see the `reading` message).
    remote.hello(new Map([[asset.id, runsOf(Array.from({ length: PIECES }, (_, piece) => piece).filter(held))]]));
    await vi.advanceTimersByTimeAsync(10);
    expect(swarm.peers.get('home')!.holdingsPending).toBe(false);
    scheduler.reschedule(); // this swarm tells the scheduler nothing by itself
    await vi.advanceTimersByTimeAsync(10);
    // Only a piece nobody holds is ours to fetch for the swarm.
    expect(fromOrigin).toEqual(ours.filter((piece) => piece === 5));
    reading.abort();
    scheduler.stop();
    swarm.destroy();
  });

  it('a line too slow for the plain 4 s but fast enough for what the buffer spares gets prefetches', async () => {
    // A home line of 128 kbit/s holding every piece but piece 1: a 64 KiB piece takes 4.1 s on it.
    const { asset, swarm, scheduler, ourEnd } = await homeLine(16_000, (piece) => piece !== 1);
    // One piece measures the line.
    const measuring = swarm.fetchPiece(asset.id, 0, 20_000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(6000);
    expect(await measuring).toMatchObject({ ok: true });
    expect(swarm.peers.get('home')!.throughputMeasured).toBe(true);
    const asked = () => ourEnd.sent.filter((message) => message.type === 'request' && message.piece === 2).length;

    // The player reads piece 1 (nobody holds it) with the plain 4 s deadline: piece 2 is not queued on the line.
    const answering = scheduler.answer(asset, 1, 4000, false, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(10);
    expect(await answering).toEqual({ ok: false, reason: 'no-peer' });
    expect(asked(), 'a piece the line sends in more than 4 s').toBe(0);
    // The same with 8 s (its buffer spares that much): the line gets piece 2 ahead of the player.
    expect(await scheduler.answer(asset, 1, 8000, false, new AbortController().signal)).toEqual({ ok: false, reason: 'no-peer' });
    await vi.advanceTimersByTimeAsync(10);
    expect(asked()).toBe(1);
    scheduler.stop();
    swarm.destroy();
  });
});

describe('Scheduler: a player with a buffer to spare waits for the viewer ahead that is fetching the piece', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] }));
  afterEach(() => vi.useRealTimers());

  /**
   * Two viewers ahead of us, as in the uplinks benchmark: `far` holds the whole video behind a line
   * of 64 kB/s (a 64 KiB piece in 1 s), `near` holds pieces 0-11 on a line without limit and reads
   * at piece 10 (it fetches 10-18 now). Both delivered a piece (trusted, lines measured). Our player
   * read piece 2 when it met them (`nearReadsAt` for where `near` read then). Each answer is awaited
   * while its deadline is still ahead on the fake clock: the hash of a piece is checked on the real one.
   */
  async function setUp(nearReadsAt = 10) {
    const { manifest, asset, pieceBytes } = await oneVideo();
    let scheduler: Scheduler | undefined;
    const swarm = new Swarm(manifest, new MemoryPieceStore(), { ...callbacks, onPeerConnect: () => scheduler?.reschedule(), onPeerHave: () => scheduler?.reschedule() });
    await swarm.loadHave();
    scheduler = new Scheduler({ manifest, swarm, selfId: () => 'self', prefetchFromOrigin: () => {} });
    const connect = async (id: string, rate: number | undefined, held: number[], readingAt: number) => {
      const [ourEnd, remoteEnd] = channelPair(undefined, rate);
      const remote = new Peer('self', fakeConnection(), remoteEnd as unknown as RTCDataChannel, { ...remoteHandlers(), readPiece: async (_asset, piece) => pieceBytes(piece) });
      swarm.addPeer(id, fakeConnection(), ourEnd as unknown as RTCDataChannel);
      remote.hello(new Map([[asset.id, runsOf(held)]]));
      remote.announceReading(asset.id, readingAt);
      await vi.advanceTimersByTimeAsync(10);
      /** The pieces we asked this peer for. */
      const asked = () => ourEnd.sent.flatMap((message) => (message.type === 'request' ? [message.piece] : []));
      return { remote, asked };
    };
    const far = await connect('far', 64_000, Array.from({ length: PIECES }, (_, piece) => piece), 30);
    const near = await connect('near', undefined, Array.from({ length: 12 }, (_, piece) => piece), nearReadsAt);
    for (const [id, piece] of [['far', 0], ['near', 1]] as const) {
      const fetched = swarm.fetchPiece(asset.id, piece, 20_000, new AbortController().signal, { from: new Set([id]) });
      await vi.advanceTimersByTimeAsync(3000);
      expect(await fetched).toMatchObject({ ok: true });
    }
    expect(swarm.peers.get('far')!.throughputMeasured).toBe(true);
    // Our player's first piece, from `near`; the plan then prefetches 3-10 from it (it holds them and reads behind `far`).
    const first = scheduler.answer(asset, 2, 4000, true, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(1000);
    expect(await first).toMatchObject({ ok: true });
    return { asset, swarm, scheduler, far, near };
  }

  /**
   * The player asks for `piece` with `deadlineMs` (what its buffer spares, see playbackDeadlineMs):
   * `answered()` peeks at the answer, `answer` resolves with it.
   */
  function ask(scheduler: Scheduler, asset: ManifestAsset, piece: number, deadlineMs: number) {
    let result: PieceResult | undefined;
    const answer = scheduler.answer(asset, piece, deadlineMs, false, new AbortController().signal).then((answered) => (result = answered));
    return { answered: () => result, answer };
  }

  it('takes the piece from the viewer ahead once it has it, not from the slower line it is fetching it from', async () => {
    const { asset, swarm, scheduler, far, near } = await setUp();
    // 8 s to spare (12 s buffered): piece 12, which `near` is fetching now and `far` holds.
    const { answered, answer } = ask(scheduler, asset, 12, 8000);
    await vi.advanceTimersByTimeAsync(1500);
    expect(answered(), 'waiting for the viewer ahead').toBeUndefined();
    // Nor is any piece `near` is fetching prefetched from `far` meanwhile; the ones past its window are.
    expect(far.asked().filter((piece) => piece >= 12 && piece <= 18)).toEqual([]);
    near.remote.announceHave(asset.id, 12);
    await vi.advanceTimersByTimeAsync(100);
    expect(await answer).toMatchObject({ ok: true });
    expect(near.asked()).toContain(12);
    expect(swarm.holds(asset.id, 12)).toBe(true);
    scheduler.stop();
    swarm.destroy();
  });

  it('waits only the time its buffer spares beyond the plain deadline, and not at all without it', async () => {
    const { asset, swarm, scheduler, far } = await setUp();
    // `near` never announces piece 12: after the 4 s spared, the piece comes from `far` in the plain 4 s.
    const spared = ask(scheduler, asset, 12, 8000);
    await vi.advanceTimersByTimeAsync(3900);
    expect(far.asked()).not.toContain(12);
    await vi.advanceTimersByTimeAsync(200);
    expect(far.asked()).toContain(12);
    await vi.advanceTimersByTimeAsync(2500);
    expect(await spared.answer).toMatchObject({ ok: true });
    // With no time to spare (the plain deadline), piece 13 is asked of `far` at once.
    const plain = ask(scheduler, asset, 13, 4000);
    await vi.advanceTimersByTimeAsync(10);
    expect(far.asked()).toContain(13);
    await vi.advanceTimersByTimeAsync(2500);
    expect(await plain.answer).toMatchObject({ ok: true });
    scheduler.stop();
    swarm.destroy();
  });

  it('with no buffer to spare, the pieces it reads ahead into that the viewer ahead is fetching are left to that viewer', async () => {
    const { asset, swarm, scheduler, far, near } = await setUp();
    // The plain deadline (2-4 s buffered, a viewer just started): piece 9, and the read-ahead window
    // to 17, past `near`'s holdings (0-11); its pieces are needed later than the plain 4 s (no pace
    // yet: 10 s). `far`'s line is the one `near` fetches 12-18 on.
    const { answer } = ask(scheduler, asset, 9, 4000);
    await vi.advanceTimersByTimeAsync(1500);
    expect(await answer).toMatchObject({ ok: true });
    expect(far.asked().filter((piece) => piece >= 12 && piece <= 17)).toEqual([]);
    // Once `near` has piece 12 it is prefetched from `near`.
    near.remote.announceHave(asset.id, 12);
    await vi.advanceTimersByTimeAsync(100);
    expect(near.asked()).toContain(12);
    expect(far.asked()).not.toContain(12);
    scheduler.stop();
    swarm.destroy();
  });

  it('a viewer that was behind us when we met is not waited for', async () => {
    // `near` read at piece 1 when our player (at 2) met it; it reads at 10 now.
    const { asset, swarm, scheduler, far, near } = await setUp(1);
    near.remote.announceReading(asset.id, 10);
    await vi.advanceTimersByTimeAsync(10);
    const { answer } = ask(scheduler, asset, 12, 8000);
    await vi.advanceTimersByTimeAsync(10);
    expect(far.asked()).toContain(12);
    await vi.advanceTimersByTimeAsync(2500);
    expect(await answer).toMatchObject({ ok: true });
    scheduler.stop();
    swarm.destroy();
  });
});

describe('Scheduler: a prefetch says when its player needs the piece', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] }));
  afterEach(() => vi.useRealTimers());

  /**
   * A scheduler over a fake swarm where a peer holds every piece and delivers it at once, but for
   * the prefetches of `slow` pieces, in flight until `deliver` ends them, and the pieces in `noRoom`,
   * which its line has no room for (not asked while there); records the urgency each prefetch asked
   * with. `play` has the player read the pieces `from`..`to`, one every `everyMs`, with
   * `bufferAt(piece)` ms of play time buffered when it asks.
   */
  async function setUp(slow = new Set<number>(), noRoom = new Set<number>()) {
    const { manifest, asset } = await oneVideo();
    const held = new Set<number>();
    const urgencies = new Map<number, number | undefined>();
    const inFlight = new Map<number, () => void>();
    const swarm = {
      peers: new Map(),
      asset: () => asset,
      announceReading: () => {},
      availability: () => 1,
      downloading: (_asset: string, piece: number) => inFlight.has(piece),
      holds: (_asset: string, piece: number) => held.has(piece),
      canDeliverWithin: (_asset: string, piece: number) => !noRoom.has(piece),
      fetchPiece: async (_asset: string, piece: number, _deadlineMs: number, _signal: AbortSignal, options?: { handOver?: boolean; urgencyMs?: number }): Promise<PieceResult> => {
        if (!options?.handOver) {
          urgencies.set(piece, options?.urgencyMs);
          if (slow.has(piece)) await new Promise<void>((resolve) => inFlight.set(piece, resolve));
          inFlight.delete(piece);
          held.add(piece);
        }
        return { ok: true, data: new Uint8Array(1) };
      },
    };
    const deliver = (piece: number) => inFlight.get(piece)?.();
    const scheduler = new Scheduler({ manifest, swarm: swarm as unknown as Swarm, selfId: () => 'self', prefetchFromOrigin: () => {}, now: () => performance.now() });
    const play = async (from: number, to: number, everyMs: number, bufferAt: (piece: number) => number | undefined) => {
      for (let piece = from; piece <= to; piece++) {
        await scheduler.answer(asset, piece, 4000, piece === 0, new AbortController().signal, () => bufferAt(piece));
        await vi.advanceTimersByTimeAsync(everyMs);
      }
    };
    return { scheduler, urgencies, play, deliver };
  }

  it("from the player's buffer and the play time of the bytes before the piece, less the origin's reserve, within 4-10 s", async () => {
    // 1 s of play per 64 KiB piece, 2 s buffered: the player reads a piece a second.
    const short = await setUp();
    await short.play(0, 9, 1000, () => 2000);
    // Before 4 s of play time were read, the pace is not known: the plain 10 s, and the pieces asked
    // together as the player starts each 0.1 s after the one before it, so the peer sends them in
    // the order the player reads them.
    expect([1, 2, 3, 4, 5, 6].map((piece) => short.urgencies.get(piece))).toEqual([10_000, 10_100, 10_200, 10_300, 10_400, 10_500]);
    expect(short.urgencies.get(9)).toBe(10_000);
    // Piece 17 entered the window when the player read piece 9: it plays 2 s + 8 pieces from now, 6 s after the reserve.
    expect(short.urgencies.get(17)).toBe(6000);
    short.scheduler.stop();

    // The same stream with 20 s buffered: no sooner than any prefetch's bound.
    const comfortable = await setUp();
    await comfortable.play(0, 9, 1000, () => 20_000);
    expect(comfortable.urgencies.get(17)).toBe(10_000);
    comfortable.scheduler.stop();

    // A player filling its buffer reads two pieces a second while its buffer grows by half a second
    // with each: still 1 s of play per piece. Read at piece 9 with 5.5 s buffered, piece 17 plays in 13.5 s.
    const filling = await setUp();
    await filling.play(0, 9, 500, (piece) => 1000 + 500 * piece);
    expect(filling.urgencies.get(17)).toBe(9500);
    filling.scheduler.stop();
  });

  it("is due no sooner than the stream's earlier pieces still in flight, asked before the pace was known", async () => {
    // Pieces 5 and 6, asked with the plain 10 s as the player starts, stay in flight on a busy line.
    const { scheduler, urgencies, play, deliver } = await setUp(new Set([5, 6]));
    // 0.5 s buffered, a piece a second: the pace is known when piece 4 is read, at 4 s.
    await play(0, 4, 1000, () => 500);
    expect([urgencies.get(5), urgencies.get(6)]).toEqual([10_400, 10_500]);
    // Piece 12 plays in 0.5 s + 8 pieces: needed in 4.5 s after the reserve, but it would then be
    // due before pieces 5 and 6, asked at 0 s: it is due 0.1 s after them, 6.6 s from now.
    expect(urgencies.get(12)).toBe(6600);
    // Read on to piece 6, whose prefetch the player joins: what follows is due after it too.
    await play(5, 6, 1000, () => 500);
    expect(urgencies.get(13)).toBe(5600);
    expect(urgencies.get(14)).toBe(4600);
    // With them delivered, the next piece says its own need.
    deliver(5);
    deliver(6);
    await vi.advanceTimersByTimeAsync(0);
    await play(7, 7, 1000, () => 500);
    expect(urgencies.get(15)).toBe(4500);
    scheduler.stop();
  });

  it('is due no later than the later pieces of its stream in flight, asked while its line had no room for it', async () => {
    // Piece 2 does not fit the line's queue when the player starts (a large piece among small
    // ones): pieces 3-6 are asked without it, the plain 10 s each 0.1 s apart, and stay in flight.
    const noRoom = new Set([2]);
    const { scheduler, urgencies, play } = await setUp(new Set([3, 4, 5, 6]), noRoom);
    await play(0, 0, 1000, () => 2000);
    expect(urgencies.has(2)).toBe(false);
    expect([3, 4, 5, 6].map((piece) => urgencies.get(piece))).toEqual([10_100, 10_200, 10_300, 10_400]);
    // A second later it fits. The pace is not known yet (10 s), but the peer sends the most urgent
    // request first, and the player reads piece 2 before them: it is due 0.1 s before piece 3,
    // asked 1 s ago with 10.1 s, so 9 s from now (main: 10 s, behind all four).
    noRoom.delete(2);
    await play(1, 1, 1000, () => 2000);
    expect(urgencies.get(2)).toBe(9000);
    scheduler.stop();
  });

  it('the pace is measured again after a seek, and not used while nothing plays', async () => {
    const { scheduler, urgencies, play } = await setUp();
    await play(0, 9, 1000, () => 2000);
    expect(urgencies.get(17)).toBe(6000);
    // A seek to piece 20: the pieces after it wait for a new pace (4 s of play time read from there).
    await play(20, 22, 1000, () => 2000);
    expect(urgencies.get(30)).toBe(10_000);
    // Paused (nothing plays): the plain 10 s.
    await play(23, 28, 1000, () => undefined);
    expect(urgencies.get(36)).toBe(10_000);
    scheduler.stop();
  });
});
