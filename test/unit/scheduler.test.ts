import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Peer, type PeerHandlers } from '../../src/engine/peer.js';
import { Scheduler } from '../../src/engine/scheduler.js';
import { Swarm } from '../../src/engine/swarm.js';
import { sha256Hex } from '../../src/shared/integrity.js';
import { parseManifest, type Manifest } from '../../src/shared/manifest.js';
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

const callbacks = { onPeerConnect() {}, onPeerDisconnect() {}, onPieceVerified() {}, onPieceRejected() {}, onUploaded() {}, onPeerHave() {}, onWithdrawn() {}, onUnknownAsset() {} };

function remoteHandlers(): PeerHandlers {
  return { pieceCount: () => PIECES, readPiece: async () => undefined, onHave: () => {}, onUploaded: () => {}, beforeUpload: async () => {}, onClose: () => {}, onUnknownAsset: () => {} };
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
    const remote = new Peer('self', fakeConnection(), remoteEnd as unknown as RTCDataChannel, remoteHandlers());
    swarm.addPeer('other', fakeConnection(), ourEnd as unknown as RTCDataChannel);
    remote.hello(new Map());
    const scheduler = new Scheduler({ manifest, swarm, selfId: () => 'self', prefetchFromOrigin: () => {} });
    await vi.advanceTimersByTimeAsync(10);
    return { first, second, swarm, remote, scheduler };
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
    const { first, remote, scheduler } = await setUp();
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
