import { describe, expect, it } from 'vitest';
import { Scheduler } from '../../src/engine/scheduler.js';
import type { PieceResult, Swarm } from '../../src/engine/swarm.js';
import { parseManifest, type Manifest, type ManifestAsset } from '../../src/shared/manifest.js';
import { originMs } from '../../src/engine/playback-slack.js';

// The scheduler's answer to the player's request for a piece nobody holds yet, against a fake
// swarm (only what the scheduler asks of it): how long it waits for the member assigned to fetch
// the piece from the origin.

const SELF = 'member-a';
const OTHER = 'member-b';

/** Live segments (by default one) and one on-demand file, each of 8 pieces (hashes never checked here, only distinct). */
function manifest(segments = ['seg-7']): Promise<Manifest> {
  const asset = (url: string, seed: string) => ({
    url,
    size: 8 * 16_384,
    contentType: url.endsWith('.ts') ? 'video/mp2t' : 'video/mp4',
    pieceSize: 16_384,
    pieces: Array.from({ length: 8 }, (_, i) => `${seed}${i}`.padStart(64, '0')),
  });
  return parseManifest(
    {
      version: 1,
      live: [{ playlist: '/live/index.m3u8', segmentMs: 2000, windowMs: 12_000 }],
      assets: [...segments.map((name, index) => asset(`/live/${name}.ts`, `a${index}`)), asset('/film.mp4', 'b')],
    },
    'https://site.example/peerfetch-manifest.json',
  );
}

/**
 * A swarm of two members where nobody holds anything; records the waits asked of it. The other
 * member's player reads the start of every asset (or where `reads` says), so it plays each stream
 * and wants every piece (see Scheduler.ownerOf): only then is it assigned pieces and waited for.
 * Its hello has arrived (not `holdingsPending`): this member fetches its own pieces from the origin.
 */
function fakeSwarm(m: Manifest, haveArrives: boolean, { connected = true, reads = m.assets.map((asset) => ({ asset: asset.id, piece: 0 })) } = {}) {
  const waits: number[] = [];
  /** Waits for a first connected peer (the join grace), in ms. */
  const peerWaits: number[] = [];
  const fetches: { deadlineMs: number; urgent: boolean | undefined }[] = [];
  /** The `reading` messages asked of the swarm that say we fetch the piece from the origin ourselves. */
  const originReadings: { asset: string; piece: number }[] = [];
  let announced = false;
  const held = new Set<string>();
  /** Assets the swarm has forgotten (they left the manifest). */
  const removed = new Set<string>();
  const swarm = {
    peers: new Map(connected ? [[OTHER, { id: OTHER, holdingsPending: false, readingHeads: () => reads }]] : []),
    asset: (id: string) => (removed.has(id) ? undefined : m.assets.find((asset) => asset.id === id)),
    announceReading: (asset: string, piece: number, origin = false) => {
      if (origin) originReadings.push({ asset, piece });
    },
    availability: () => (announced ? 1 : 0),
    downloading: () => false,
    holds: (asset: string, piece: number) => held.has(`${asset}/${piece}`),
    deliveryMs: () => 50,
    canDeliverWithin: () => true,
    waitForPeer: async (timeoutMs: number) => {
      peerWaits.push(timeoutMs);
      return false;
    },
    waitForHoldings: async () => {},
    waitForHave: async (_asset: string, _piece: number, timeoutMs: number) => {
      waits.push(timeoutMs);
      announced = haveArrives;
      return haveArrives;
    },
    fetchPiece: async (_asset: string, _piece: number, deadlineMs: number, _signal: AbortSignal, options?: { urgent?: boolean; handOver?: boolean }): Promise<PieceResult> => {
      // The player's requests (handed over at the deadline), not the prefetches of announced pieces.
      if (options?.handOver) fetches.push({ deadlineMs, urgent: options.urgent });
      return { ok: true, data: new Uint8Array(1) };
    },
  };
  return { swarm: swarm as unknown as Swarm, waits, peerWaits, fetches, held, removed, originReadings };
}

/** A piece of `asset` whose assigned member is the other one. */
function othersPiece(scheduler: Scheduler, asset: ManifestAsset): number {
  const piece = asset.pieces.findIndex((_, index) => scheduler.ownerOf(asset.id, index) === OTHER);
  expect(piece).toBeGreaterThanOrEqual(0);
  return piece;
}

describe('Scheduler: waiting for the member assigned to fetch a piece from the origin', () => {
  it('a live piece waits for it all of its deadline but the transfer time; an on-demand piece half of it', async () => {
    const m = await manifest();
    const [segment, film] = m.assets as [ManifestAsset, ManifestAsset];
    const { swarm, waits } = fakeSwarm(m, false);
    const scheduler = new Scheduler({ manifest: m, swarm, selfId: () => SELF, prefetchFromOrigin: () => {} });
    const signal = new AbortController().signal;

    expect(await scheduler.answer(segment, othersPiece(scheduler, segment), 1000, false, signal)).toEqual({ ok: false, reason: 'no-peer' });
    expect(await scheduler.answer(film, othersPiece(scheduler, film), 1000, false, signal)).toEqual({ ok: false, reason: 'no-peer' });
    // At the live edge the assigned member fetches the piece from the origin while the others ask
    // for it: 0.7 s for 256 KiB at 3 Mbit/s, more than half of the 1 s live deadline.
    expect(waits[0]).toBeGreaterThan(500);
    expect(waits[0]).toBeLessThanOrEqual(1000);
    expect(waits[1]).toBe(500);
    scheduler.stop();
  });

  it('a live piece waits for it no longer than the player\'s buffer leaves the origin to deliver the piece', async () => {
    const m = await manifest();
    const segment = m.assets[0]!;
    const { swarm, waits } = fakeSwarm(m, false);
    const scheduler = new Scheduler({ manifest: m, swarm, selfId: () => SELF, prefetchFromOrigin: () => {} });
    const piece = othersPiece(scheduler, segment);
    const ask = (bufferMs: number | undefined) => scheduler.answer(segment, piece, 2000, false, new AbortController().signal, () => bufferMs);
    // The origin is assumed to take originMs(16 KiB) for the piece, the member's transfer LIVE_TRANSFER_MS (300 ms).
    const originForPiece = originMs(16_384);
    for (const bufferMs of [5000, 2000, 700, 0, undefined]) expect(await ask(bufferMs)).toEqual({ ok: false, reason: 'no-peer' });
    // 5 s buffered: the whole deadline but the transfer, as without a buffer (nothing plays yet).
    expect(waits[0]).toBeGreaterThan(1600);
    expect(waits[0]).toBeLessThanOrEqual(1700);
    // 2 s buffered: what the origin leaves of them, less the transfer.
    expect(waits[1]).toBeGreaterThan(2000 - originForPiece - 300 - 100);
    expect(waits[1]).toBeLessThanOrEqual(2000 - originForPiece - 300);
    // 0.7 s buffered (the origin's 0.44 s and the transfer's 0.3 s do not fit), or stalled: no wait at all (each was a rebuffer).
    expect(waits[2]).toBe(0);
    expect(waits[3]).toBe(0);
    expect(waits[4]).toBeGreaterThan(1600);
    scheduler.stop();
  });

  it('a live player that cannot wait for the assigned member any longer tells its peers it fetches the piece itself', async () => {
    const m = await manifest();
    const [segment, film] = m.assets as [ManifestAsset, ManifestAsset];
    const { swarm, waits, originReadings } = fakeSwarm(m, false);
    const scheduler = new Scheduler({ manifest: m, swarm, selfId: () => SELF, prefetchFromOrigin: () => {} });
    const signal = new AbortController().signal;
    const livePiece = othersPiece(scheduler, segment);
    // 0.7 s buffered: no wait at all, the SW goes to the origin while the owner is fetching the piece.
    expect(await scheduler.answer(segment, livePiece, 2000, false, signal, () => 700)).toEqual({ ok: false, reason: 'no-peer' });
    expect(waits).toEqual([0]);
    expect(originReadings).toEqual([{ asset: segment.id, piece: livePiece }]);
    // On demand too, once the SW goes to the origin for a piece assigned to another member, that
    // member is told: reading on, it would reach the piece and fetch it for the swarm as well.
    const filmPiece = othersPiece(scheduler, film);
    expect(await scheduler.answer(film, filmPiece, 1000, false, signal)).toEqual({ ok: false, reason: 'no-peer' });
    expect(originReadings).toEqual([
      { asset: segment.id, piece: livePiece },
      { asset: film.id, piece: filmPiece },
    ]);
    scheduler.stop();
  });

  it('a live piece that arrives from the assigned member is not said to be fetched from the origin', async () => {
    const m = await manifest();
    const segment = m.assets[0]!;
    const { swarm, originReadings } = fakeSwarm(m, true);
    const scheduler = new Scheduler({ manifest: m, swarm, selfId: () => SELF, prefetchFromOrigin: () => {} });
    expect((await scheduler.answer(segment, othersPiece(scheduler, segment), 1000, false, new AbortController().signal)).ok).toBe(true);
    expect(originReadings).toEqual([]);
    scheduler.stop();
  });

  it('a live request the player dropped during the wait is not said to be fetched from the origin: nobody fetches it', async () => {
    const m = await manifest();
    const segment = m.assets[0]!;
    const { swarm, originReadings } = fakeSwarm(m, false);
    const scheduler = new Scheduler({ manifest: m, swarm, selfId: () => SELF, prefetchFromOrigin: () => {} });
    // The wait ends empty because hls.js aborted the fragment (its signal), as a wait on an abort does.
    const dropped = new AbortController();
    dropped.abort();
    expect(await scheduler.answer(segment, othersPiece(scheduler, segment), 2000, false, dropped.signal, () => 5000)).toMatchObject({ ok: false });
    expect(originReadings).toEqual([]);
    scheduler.stop();
  });

  it('a live piece announced while it waited is fetched from that member in the time left', async () => {
    const m = await manifest();
    const segment = m.assets[0]!;
    const { swarm, waits, fetches } = fakeSwarm(m, true);
    const scheduler = new Scheduler({ manifest: m, swarm, selfId: () => SELF, prefetchFromOrigin: () => {} });
    const result = await scheduler.answer(segment, othersPiece(scheduler, segment), 1000, false, new AbortController().signal);
    expect(result.ok).toBe(true);
    expect(waits).toHaveLength(1);
    // Announced meanwhile: asked of that member even before it earned trust (not `urgent`).
    expect(fetches).toEqual([{ deadlineMs: expect.any(Number), urgent: false }]);
    expect(fetches[0]!.deadlineMs).toBeLessThanOrEqual(1000);
    scheduler.stop();
  });

  it('a piece of a segment the swarm took and the scheduler has not heard of yet waits for its version, then for the member assigned it', async () => {
    const next = await manifest(['seg-7', 'seg-8']);
    const [segment, newSegment] = next.assets as [ManifestAsset, ManifestAsset];
    // The other member reads the last piece of seg-7: it wants seg-8 as the next segment of its window.
    const { swarm, waits } = fakeSwarm(next, false, { reads: [{ asset: segment.id, piece: 7 }] });
    const scheduler = new Scheduler({ manifest: { ...next, assets: next.assets.filter((asset) => asset !== newSegment) }, swarm, selfId: () => SELF, prefetchFromOrigin: () => {} });
    const answering = scheduler.answer(newSegment, othersPiece(scheduler, newSegment), 2000, false, new AbortController().signal, () => 5000);
    // The swarm reads what the store holds of seg-8 before the scheduler hears of the version.
    await new Promise((resolve) => setTimeout(resolve, 0));
    scheduler.setManifest(next);
    expect(await answering).toEqual({ ok: false, reason: 'no-peer' });
    // With 5 s buffered, the deadline (2 s) but the transfer: answered before the version, it did not wait at all.
    expect(waits).toHaveLength(1);
    expect(waits[0]).toBeGreaterThan(1500);
    scheduler.stop();
  });

  it('the player\'s first piece never waits for another member', async () => {
    const m = await manifest();
    const segment = m.assets[0]!;
    const { swarm, waits } = fakeSwarm(m, true);
    const scheduler = new Scheduler({ manifest: m, swarm, selfId: () => SELF, prefetchFromOrigin: () => {} });
    expect(await scheduler.answer(segment, othersPiece(scheduler, segment), 1000, true, new AbortController().signal)).toEqual({ ok: false, reason: 'no-peer' });
    expect(waits).toEqual([]);
    scheduler.stop();
  });
});

describe('Scheduler: a live player before its first frame', () => {
  // hls.js appends a segment only once all of it is loaded, and its latency is set by the first
  // frame for the whole session: the second piece of the first segment is as urgent as the first.
  const notPlaying = () => undefined;

  it('waits for no other member for any piece it asks for; after its first frame, and on demand, it does', async () => {
    const m = await manifest();
    const [segment, film] = m.assets as [ManifestAsset, ManifestAsset];
    const { swarm, waits } = fakeSwarm(m, false);
    const scheduler = new Scheduler({ manifest: m, swarm, selfId: () => SELF, prefetchFromOrigin: () => {} });
    const ask = (asset: ManifestAsset, starting: boolean) =>
      scheduler.answer(asset, othersPiece(scheduler, asset), 1000, false, new AbortController().signal, notPlaying, () => starting);
    expect(await ask(segment, true)).toEqual({ ok: false, reason: 'no-peer' });
    expect(waits).toEqual([]);
    expect(await ask(segment, false)).toEqual({ ok: false, reason: 'no-peer' });
    expect(waits).toHaveLength(1);
    // An on-demand player's start costs only its startup: it still waits for the assigned member.
    expect(await ask(film, true)).toEqual({ ok: false, reason: 'no-peer' });
    expect(waits).toHaveLength(2);
    scheduler.stop();
  });

  it('waits for no first peer while the swarm is being joined; after its first frame it does', async () => {
    const m = await manifest();
    const segment = m.assets[0]!;
    const { swarm, peerWaits } = fakeSwarm(m, false, { connected: false });
    const scheduler = new Scheduler({ manifest: m, swarm, selfId: () => SELF, prefetchFromOrigin: () => {} });
    // The tracker says 4 are in the swarm; none is connected yet.
    scheduler.onSwarmSize(4);
    const ask = (starting: boolean) => scheduler.answer(segment, 1, 1000, false, new AbortController().signal, notPlaying, () => starting);
    expect(await ask(true)).toEqual({ ok: false, reason: 'no-peer' });
    expect(peerWaits).toEqual([]);
    expect(await ask(false)).toEqual({ ok: false, reason: 'no-peer' });
    expect(peerWaits).toEqual([500]);
    scheduler.stop();
  });
});

describe('Scheduler: origin prefetches for the swarm', () => {
  it('a piece assigned to this member that arrived otherwise (a peer, the player) frees its origin prefetch slot at once', async () => {
    const m = await manifest();
    const segment = m.assets[0]!;
    const { swarm, held } = fakeSwarm(m, false);
    const asked: number[] = [];
    const scheduler = new Scheduler({ manifest: m, swarm, selfId: () => SELF, prefetchFromOrigin: (_asset, piece) => asked.push(piece) });
    const ours = segment.pieces.map((_, piece) => piece).filter((piece) => piece > 0 && scheduler.ownerOf(segment.id, piece) === SELF);
    expect(ours.length).toBeGreaterThan(2);
    // The player reads piece 0: the pieces after it that this member is assigned are fetched from the origin, two at a time.
    await scheduler.answer(segment, 0, 1000, true, new AbortController().signal);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(asked).toEqual(ours.slice(0, 2));
    // Both arrive from a peer before the SW reports anything (it reports nothing for a prefetch the store answers).
    for (const piece of asked) held.add(`${segment.id}/${piece}`);
    scheduler.reschedule();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(asked).toEqual(ours.slice(0, 4));
    scheduler.stop();
  });

  it('a piece assigned to this member that a peer fetches from the origin itself is not fetched, or stops', async () => {
    const m = await manifest();
    const segment = m.assets[0]!;
    const { swarm, held } = fakeSwarm(m, false);
    const asked: number[] = [];
    const stopped: number[] = [];
    const scheduler = new Scheduler({
      manifest: m,
      swarm,
      selfId: () => SELF,
      prefetchFromOrigin: (_asset, piece) => asked.push(piece),
      stopOriginPrefetch: (_asset, piece) => stopped.push(piece),
    });
    const pieces = segment.pieces.map((_, piece) => piece).filter((piece) => piece > 0);
    const ours = pieces.filter((piece) => scheduler.ownerOf(segment.id, piece) === SELF);
    const theirs = pieces.filter((piece) => scheduler.ownerOf(segment.id, piece) === OTHER);
    expect(ours.length).toBeGreaterThan(3);
    expect(theirs.length).toBeGreaterThan(0);
    const plan = async () => {
      scheduler.reschedule();
      await new Promise((resolve) => setTimeout(resolve, 0));
    };
    // The peer says so before our plan starts the piece (the edge viewer asks first), and of a piece the other member owns.
    scheduler.onPeerFetching(segment.id, ours[0]!);
    scheduler.onPeerFetching(segment.id, theirs[0]!);
    await scheduler.answer(segment, 0, 1000, true, new AbortController().signal);
    await plan();
    expect(asked).toEqual([ours[1], ours[2]]);
    expect(stopped).toEqual([]);
    // And while our fetch of a piece is under way: it is stopped, and its slot goes to the next piece.
    scheduler.onPeerFetching(segment.id, ours[1]!);
    expect(stopped).toEqual([ours[1]]);
    await plan();
    // The piece the peer fetched before is never asked of the origin.
    expect(asked).toEqual([ours[1], ours[2], ours[3]]);
    scheduler.stop();
  });

  it('past its bound, the notices of pieces peers fetch themselves lose the oldest, never the newest', async () => {
    const m = await manifest();
    const segment = m.assets[0]!;
    const { swarm } = fakeSwarm(m, false);
    const asked: number[] = [];
    const scheduler = new Scheduler({ manifest: m, swarm, selfId: () => SELF, prefetchFromOrigin: (_asset, piece) => asked.push(piece) });
    const ours = segment.pieces.map((_, piece) => piece).filter((piece) => piece > 0 && scheduler.ownerOf(segment.id, piece) === SELF);
    // A peer floods notices of pieces of an asset nobody plays, then says it fetches one of ours.
    for (let piece = 0; piece < 64; piece++) scheduler.onPeerFetching('flooded', piece);
    scheduler.onPeerFetching(segment.id, ours[0]!);
    await scheduler.answer(segment, 0, 1000, true, new AbortController().signal);
    scheduler.reschedule();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(asked.length).toBeGreaterThan(0);
    expect(asked).not.toContain(ours[0]);
    scheduler.stop();
  });

  it('the player waits for a peer that fetches a piece assigned to this member; a piece nobody said so of goes to the origin at once', async () => {
    const m = await manifest();
    const segment = m.assets[0]!;
    const { swarm, waits } = fakeSwarm(m, true);
    const scheduler = new Scheduler({ manifest: m, swarm, selfId: () => SELF, prefetchFromOrigin: () => {} });
    const [left, fetchedByPeer] = segment.pieces.map((_, piece) => piece).filter((piece) => scheduler.ownerOf(segment.id, piece) === SELF);
    expect(fetchedByPeer).toBeDefined();
    const ask = (piece: number) => scheduler.answer(segment, piece, 2000, false, new AbortController().signal, () => 5000);
    // Asked of the engine, a piece assigned to us is one our SW is not fetching: nobody to wait for.
    expect(await ask(left!)).toEqual({ ok: false, reason: 'no-peer' });
    expect(waits).toEqual([]);
    scheduler.onPeerFetching(segment.id, fetchedByPeer!);
    expect((await ask(fetchedByPeer!)).ok).toBe(true);
    expect(waits).toHaveLength(1);
    expect(waits[0]).toBeGreaterThan(0);
    scheduler.stop();
  });

  it('a segment that left the window is not fetched for the swarm while the plan still reads it', async () => {
    const m = await manifest();
    const segment = m.assets[0]!;
    const { swarm, removed } = fakeSwarm(m, false);
    const asked: number[] = [];
    const scheduler = new Scheduler({ manifest: m, swarm, selfId: () => SELF, prefetchFromOrigin: (_asset, piece) => asked.push(piece) });
    await scheduler.answer(segment, 0, 1000, true, new AbortController().signal);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(asked.length).toBe(2);
    // The swarm applied a manifest without the segment; the scheduler hears of it only once the
    // swarm has loaded what the store holds of the new segments, and plans meanwhile (peers' haves).
    removed.add(segment.id);
    for (let plan = 0; plan < 3; plan++) {
      scheduler.reschedule();
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    expect(asked.length).toBe(2);
    scheduler.stop();
  });
});

describe('Scheduler: the member that fetches a piece from the origin for the swarm', () => {
  it('members that count different members (a swarm not fully connected) agree on the owner of every piece whose owner both count', async () => {
    const m = await manifest();
    const { swarm } = fakeSwarm(m, false);
    const scheduler = new Scheduler({ manifest: m, swarm, selfId: () => SELF, prefetchFromOrigin: () => {} });
    const everyone = Array.from({ length: 8 }, (_, index) => `-PF0100-viewer${index}abcdef`);
    const owned = new Map(everyone.map((id) => [id, 0]));
    for (let piece = 0; piece < 400; piece++) {
      const owner = scheduler.ownerOf('live-segment', piece, everyone)!;
      owned.set(owner, owned.get(owner)! + 1);
      // A member not connected to one of the others still names the same owner.
      for (const missing of everyone.filter((id) => id !== owner)) {
        expect(scheduler.ownerOf('live-segment', piece, everyone.filter((id) => id !== missing)), `piece ${piece} without ${missing}`).toBe(owner);
      }
    }
    // Each of the 8 members owns about an eighth of the pieces (50 of 400).
    for (const [id, count] of owned) expect(count, id).toBeGreaterThan(25);
    for (const [id, count] of owned) expect(count, id).toBeLessThan(75);
    scheduler.stop();
  });
});
