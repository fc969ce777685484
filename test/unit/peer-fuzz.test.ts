import { describe, expect, it, vi } from 'vitest';
import { MAX_PENDING_ASSETS, MAX_PENDING_PIECES, MAX_QUEUED_UPLOADS, MAX_READING_HEADS, Peer, type PeerHandlers } from '../../src/engine/peer.js';
import { Swarm } from '../../src/engine/swarm.js';
import { MAX_HOLDINGS_BYTES, runsOf } from '../../src/shared/holdings.js';
import { PeerfetchError } from '../../src/shared/errors.js';
import { sha256Hex } from '../../src/shared/integrity.js';
import { parseManifest } from '../../src/shared/manifest.js';
import { encodePeerMessage } from '../../src/shared/peer-codec.js';
import { CHUNK_SIZE, PEER_PROTOCOL_VERSION, type PeerMessage } from '../../src/shared/peer-messages.js';
import { LinePacer } from '../../src/engine/line-pacer.js';
import { MemoryPieceStore } from '../../src/store/piece-store.js';
import { fuzzSeed, randomTools, seededRandom } from '../harness/seeded-random.js';
import { channelPair, fakeConnection, type FakeChannel } from './fake-channel.js';

// The peer protocol under a hostile or broken remote peer: random bytes, truncated and oversized
// frames, valid messages with hostile field values, reordered and duplicated messages. Whatever
// arrives, no exception escapes a handler, every request we made ends, the peer keeps answering
// (or closes the channel), and what its messages make us keep stays bounded. Replay a failure
// with PEERFETCH_FUZZ_SEED=<the seed in the test name>.

const seed = fuzzSeed();
const ASSET = '0123456789abcdef';
const PIECES = 10;
const PIECE_BYTES = CHUNK_SIZE * 2 + 5;
/** Remote peers in the run, frames each: 200 × 60 = 12 000 frames, about a second here. */
const SEQUENCES = 200;
const FRAMES_PER_SEQUENCE = 60;
/** Requests we have outstanding at the fuzzed peer, ids 1..3 (chunks and rejects aim at them). */
const OUR_REQUESTS = 3;

type Tools = ReturnType<typeof randomTools>;

const pieceBytes = (piece: number) => Uint8Array.from({ length: PIECE_BYTES }, (_, i) => (i + piece * 13) % 251);

function handlers(overrides: Partial<PeerHandlers> = {}): PeerHandlers {
  return {
    pieceCount: (asset) => (asset === ASSET ? PIECES : undefined),
    onUnknownAsset: () => {},
    readPiece: async (asset, piece) => (asset === ASSET && piece < PIECES ? pieceBytes(piece) : undefined),
    onHave: () => {},
    onUploaded: () => {},
    beforeUpload: async () => {},
    onClose: () => {},
    ...overrides,
  };
}

/** A frame whose JSON header is `header` as given (hostile values included) and `payload` after it. */
function rawFrame(header: unknown, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header) ?? 'null');
  const frame = new Uint8Array(2 + json.length + payload.length);
  frame[0] = (json.length >> 8) & 0xff;
  frame[1] = json.length & 0xff;
  frame.set(json, 2);
  frame.set(payload, 2 + json.length);
  return frame;
}

const HOSTILE_NUMBERS = [NaN, -1, 1.5, Infinity, 2 ** 53, 2 ** 60, 1e300, -0, 65536, 0];

/** A well-formed message of a random kind, with plausible and not so plausible values. */
function plausibleMessage({ int, pick, random, bytes }: Tools): PeerMessage {
  const asset = random() < 0.7 ? ASSET : Array.from({ length: 16 }, () => '0123456789abcdef'[int(16)]).join('');
  const piece = random() < 0.8 ? int(PIECES + 2) : int(10_000);
  switch (int(8)) {
    case 0: {
      const pieces = Array.from(bytes(random() < 0.6 ? 2 : int(40)), (byte) => (random() < 0.8 ? byte % (PIECES + 2) : byte * 1000));
      return { type: 'hello', version: random() < 0.9 ? PEER_PROTOCOL_VERSION : int(5), holdings: new Map([[asset, runsOf(pieces)]]), ...(random() < 0.3 ? { asks: int(10) } : {}) };
    }
    case 1: return { type: 'have', asset, piece };
    case 2: return { type: 'lost', asset, piece };
    case 3: return { type: 'request', id: int(40), asset, piece, ...(random() < 0.3 ? { from: int(PIECE_BYTES + 10) } : {}), ...(random() < 0.5 ? { deadlineMs: int(120_000) } : {}) };
    case 4: return { type: 'cancel', id: int(40) };
    case 5: {
      // A chunk for one of our requests: sometimes the right continuation, mostly not.
      const offset = pick([0, CHUNK_SIZE, CHUNK_SIZE * 2, int(PIECE_BYTES)]);
      const total = random() < 0.7 ? PIECE_BYTES : int(PIECE_BYTES * 2) + 1;
      const length = Math.max(1, Math.min(CHUNK_SIZE, total - offset, int(CHUNK_SIZE) + 1));
      if (offset >= total) return { type: 'reject', id: 1 + int(OUR_REQUESTS), reason: 'busy' };
      return { type: 'chunk', id: 1 + int(OUR_REQUESTS + 1), offset, total, data: bytes(length), ...(random() < 0.5 ? { at: int(2 ** 42) } : {}) };
    }
    case 6: return { type: 'reject', id: int(OUR_REQUESTS + 2), reason: pick(['not-found', 'busy'] as const) };
    default: {
      const other = Array.from({ length: 16 }, () => '0123456789abcdef'[int(16)]).join('');
      const draw = random();
      if (draw < 0.4) return { type: 'have', asset: other, piece: int(5000) };
      if (draw < 0.7) return { type: 'reading', asset: random() < 0.5 ? ASSET : other, piece: int(5000), ...(random() < 0.5 ? { ask: true as const } : {}) };
      // A report on how our chunks reached it: any size, any delay (its clock is its own).
      if (draw < 0.8) return { type: 'received', bytes: int(2 ** 40), ms: int(100_000), delayMs: int(2 ** 40) - 2 ** 39 };
      return { type: 'listed', asset: random() < 0.5 ? ASSET : other };
    }
  }
}

/** One frame as a hostile or broken peer might send it. */
function hostileFrame(tools: Tools, previous: ArrayBuffer | string | undefined, garbageRate: number): ArrayBuffer | string {
  const { int, pick, random, bytes } = tools;
  const buffer = (frame: Uint8Array) => frame.slice().buffer;
  const draw = random() < garbageRate ? 55 + int(45) : int(55);
  if (draw < 55) return buffer(encodePeerMessage(plausibleMessage(tools)));
  if (draw < 62 && previous !== undefined) return previous; // duplicated
  if (draw < 70) return buffer(bytes(int(300))); // random bytes
  if (draw < 76) {
    const frame = encodePeerMessage(plausibleMessage(tools));
    return buffer(frame.subarray(0, int(frame.length))); // truncated
  }
  if (draw < 80) {
    // Oversized: a chunk larger than CHUNK_SIZE, a header length past the frame, a 1 MiB frame.
    switch (int(3)) {
      case 0: return buffer(rawFrame({ type: 'chunk', id: 1, offset: 0, total: 10 * CHUNK_SIZE }, bytes(CHUNK_SIZE + 1 + int(1000))));
      case 1: return buffer(Uint8Array.from([0xff, 0xff, ...bytes(100)]));
      default: return buffer(new Uint8Array(1024 * 1024).fill(int(256)));
    }
  }
  if (draw < 95) {
    // A valid message with one field given a hostile value (or an extra prototype key).
    const message = { ...(plausibleMessage(tools) as unknown as Record<string, unknown>) };
    delete message.data;
    const key = pick(Object.keys(message));
    message[key] = random() < 0.7 ? pick(HOSTILE_NUMBERS) : pick([null, 'x', [], {}, { __proto__: { polluted: 1 } }, 'a'.repeat(70_000)]);
    return buffer(rawFrame(message, message.type === 'chunk' ? bytes(int(100)) : undefined));
  }
  if (draw < 97) return 'a text frame';
  if (random() < 0.5) {
    // A hello of this version whose holdings are garbage, cut short, or claim huge runs.
    const holdings = pick([bytes(int(64)), Uint8Array.from([...bytes(8), 0xff, 0xff, 0xff, 0xff, 0x7f]), Uint8Array.from([...bytes(8), 1, 0, 0x80, 0x80, 0x80, 0x08])]);
    return buffer(rawFrame({ type: 'hello', version: PEER_PROTOCOL_VERSION, have: {} }, holdings));
  }
  return buffer(rawFrame(pick([null, 42, [1, 2], 'hello', { type: '__proto__' }, { type: 'hello', version: 2, have: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [i.toString(16).padStart(16, '0'), '00'])) }])));
}

/** Lets timers and microtasks run: the peer's async upload loop and the fake channel deliver on timer turns. */
const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

describe(`peer protocol fuzz (seed ${seed})`, () => {
  it('no exception escapes, every request ends, the peer answers or closes, and what it keeps stays bounded', async () => {
    const tools = randomTools(seededRandom(seed));
    const totals = { reachedEnd: 0, closedInvalid: 0, answeredAfter: 0, frames: 0 };
    for (let sequence = 0; sequence < SEQUENCES; sequence++) {
      const where = `seed ${seed}, sequence ${sequence}`;
      const [ourEnd, theirEnd] = channelPair();
      const closeReasons: string[] = [];
      // Its `received` reports reach a real pace, which must stay a rate whatever they say.
      const pace = new LinePacer();
      const peer = new Peer('remote', fakeConnection(), ourEnd as unknown as RTCDataChannel, handlers({
        onClose: (_peer, reason) => closeReasons.push(reason),
        onReceived: (_peer, delayMs, bytes, ms) => pace.report('remote', delayMs, bytes, ms, true),
      }));
      // The remote end reads nothing: frames we send are recorded in ourEnd.sent.
      (theirEnd as FakeChannel).onmessage = () => {};
      const aborts = Array.from({ length: OUR_REQUESTS }, () => new AbortController());
      const requests = aborts.map((abort, index) => peer.request(ASSET, index, PIECE_BYTES, abort.signal).then(
        () => 'resolved',
        (error: unknown) => {
          // A request ends with a PeerfetchError, never another kind of exception.
          expect(error, where).toBeInstanceOf(PeerfetchError);
          return (error as PeerfetchError).code;
        },
      ));
      // Half the peers send mostly well-formed frames, so runs reach deep states before a close.
      const garbageRate = sequence % 2 === 0 ? 0.02 : 0.5;
      let previous: ArrayBuffer | string | undefined;
      for (let frame = 0; frame < FRAMES_PER_SEQUENCE && !peer.closed; frame++) {
        const data = hostileFrame(tools, previous, garbageRate);
        previous = data;
        totals.frames++;
        expect(() => ourEnd.onmessage!({ data }), where).not.toThrow();
        const kept = peer.keptState;
        expect(kept.uploads, where).toBeLessThanOrEqual(MAX_QUEUED_UPLOADS);
        expect(kept.parkedAssets, where).toBeLessThanOrEqual(MAX_PENDING_ASSETS);
        expect(kept.parkedPieces, where).toBeLessThanOrEqual(MAX_PENDING_ASSETS * MAX_PENDING_PIECES);
        expect(kept.helloAssets, where).toBeLessThanOrEqual(MAX_HOLDINGS_BYTES / 9);
        expect(kept.readingHeads, where).toBeLessThanOrEqual(MAX_READING_HEADS);
        expect(peer.inFlight, where).toBeLessThanOrEqual(OUR_REQUESTS);
        expect(pace.rate, where).toBeGreaterThanOrEqual(16 * 1024);
        expect(Number.isFinite(pace.rate), where).toBe(true);
        if (frame % 8 === 0) await turn();
      }
      if (peer.closed) {
        expect(closeReasons.length, where).toBe(1);
        if (/invalid message|text frame|protocol version/.test(closeReasons[0]!)) totals.closedInvalid++;
      } else {
        totals.reachedEnd++;
        // Still open: it answers a fresh request (a piece, or `busy` when its queue is full).
        ourEnd.onmessage!({ data: encodePeerMessage({ type: 'request', id: 999, asset: ASSET, piece: 0 }).slice().buffer });
        await vi.waitFor(() => expect(ourEnd.sent.some((message) => 'id' in message && message.id === 999 && message.type !== 'cancel'), where).toBe(true));
        totals.answeredAfter++;
        for (const abort of aborts) abort.abort();
      }
      // Every request we made has ended: resolved (unverified bytes; the swarm checks them), or rejected.
      const outcomes = await Promise.all(requests);
      expect(outcomes.every((outcome) => ['resolved', 'aborted', 'peer-closed', 'codec-invalid'].includes(outcome)), `${where}: ${outcomes}`).toBe(true);
      peer.close('test over');
      await turn();
    }
    // The run went deep (peers that stayed open through every frame) and wide (peers closed for garbage).
    expect(totals.reachedEnd, JSON.stringify(totals)).toBeGreaterThan(0);
    expect(totals.closedInvalid, JSON.stringify(totals)).toBeGreaterThan(0);
    expect(totals.answeredAfter).toBe(totals.reachedEnd);
  });

  it('a flood of state-making messages (haves of unknown assets, requests never read, chunks of no request) keeps bounded state and stays responsive', async () => {
    const tools = randomTools(seededRandom(seed + 1));
    const [ourEnd] = channelPair();
    let unknownAssets = 0;
    const peer = new Peer('flooder', fakeConnection(), ourEnd as unknown as RTCDataChannel, handlers({
      onUnknownAsset: () => unknownAssets++,
      // Uploads never start: every request stays queued.
      beforeUpload: () => new Promise(() => {}),
    }));
    const send = (message: PeerMessage) => ourEnd.onmessage!({ data: encodePeerMessage(message).slice().buffer });
    // Spread over 100 s (about 1150 messages a second): under the rate at which a peer is closed
    // as flooding (see peer.test.ts), so what is tested is the state kept for a peer that stays.
    let now = performance.now();
    const clock = vi.spyOn(performance, 'now').mockImplementation(() => now);
    for (let i = 0; i < 50_000; i++) {
      now += 2;
      const asset = Array.from({ length: 16 }, () => '0123456789abcdef'[tools.int(16)]).join('');
      send({ type: 'have', asset, piece: tools.int(MAX_PENDING_PIECES) });
      send({ type: 'have', asset: 'fedcba9876543210', piece: i % MAX_PENDING_PIECES });
      if (i % 10 === 0) send({ type: 'request', id: i, asset: ASSET, piece: i % PIECES });
      if (i % 10 === 5) send({ type: 'chunk', id: 100_000 + i, offset: 0, total: 10, data: new Uint8Array(10) });
    }
    expect(peer.closed).toBe(false);
    const kept = peer.keptState;
    expect(kept.uploads).toBeLessThanOrEqual(MAX_QUEUED_UPLOADS);
    expect(kept.parkedAssets).toBeLessThanOrEqual(MAX_PENDING_ASSETS);
    expect(kept.parkedPieces).toBeLessThanOrEqual(MAX_PENDING_ASSETS * MAX_PENDING_PIECES);
    // Requests past the queue were answered `busy` at once, not queued.
    await turn();
    expect(ourEnd.sent.filter((message) => message.type === 'reject' && message.reason === 'busy').length).toBeGreaterThanOrEqual(5000 - MAX_QUEUED_UPLOADS);
    expect(unknownAssets).toBeGreaterThan(MAX_PENDING_ASSETS);
    peer.close('test over');
    clock.mockRestore();
  });
});

describe(`swarm under peers answering with random chunks (seed ${seed})`, () => {
  it('takes only verified bytes: a hostile peer\'s answer ends in a miss and its close, never in wrong bytes; the honest peer then delivers every piece', async () => {
    const tools = randomTools(seededRandom(seed + 2));
    const SWARM_PIECE = 32 * 1024;
    const content = Uint8Array.from({ length: SWARM_PIECE * 4 }, (_, i) => (i * 7) % 253);
    const piece = (index: number) => content.slice(index * SWARM_PIECE, (index + 1) * SWARM_PIECE);
    const hashes = await Promise.all([0, 1, 2, 3].map((index) => sha256Hex(piece(index))));
    const manifest = await parseManifest(
      { version: 1, assets: [{ url: '/v.mp4', size: content.length, contentType: 'video/mp4', pieceSize: SWARM_PIECE, pieces: hashes }] },
      'https://site.example/peerfetch-manifest.json',
    );
    const assetId = manifest.assets[0]!.id;
    const verifiedFrom: string[] = [];
    const swarm = new Swarm(manifest, new MemoryPieceStore(), {
      onPeerConnect() {}, onPeerDisconnect() {}, onPieceRejected() {}, onUploaded() {}, onPeerHave() {}, onWithdrawn() {}, onUnknownAsset() {}, onPeerFetching() {},
      onPieceVerified: (_asset, _index, from) => verifiedFrom.push(from.id),
    });
    const all = new Map([[assetId, runsOf([0, 1, 2, 3])]]);

    // Hostile peers, one at a time the only holder: each claims every piece and answers a request
    // with chunks from the fuzzer (random offsets, totals, lengths and bytes, sometimes plausible),
    // then a chunk past the piece's end, so that it never just stalls (a stall only costs time).
    for (let round = 0; round < 20; round++) {
      const where = `seed ${seed}, round ${round}`;
      const [swarmEnd, hostileEnd] = channelPair();
      hostileEnd.onmessage = (event) => {
        const frame = new Uint8Array(event.data as ArrayBuffer);
        const header = JSON.parse(new TextDecoder().decode(frame.subarray(2, 2 + ((frame[0]! << 8) | frame[1]!)))) as { type: string; id: number };
        if (header.type !== 'request') return;
        for (let sent = 0, count = tools.int(4); sent < count; sent++) {
          const offset = tools.pick([0, 0, CHUNK_SIZE, tools.int(SWARM_PIECE)]);
          const total = tools.random() < 0.8 ? SWARM_PIECE : tools.int(SWARM_PIECE * 2) + 1;
          if (offset >= total) continue;
          hostileEnd.send(encodePeerMessage({ type: 'chunk', id: header.id, offset, total, data: tools.bytes(Math.max(1, Math.min(CHUNK_SIZE, total - offset))) }));
        }
        // Past FakeChannel.send, which decodes what it sends and would refuse this frame.
        const invalid = rawFrame({ type: 'chunk', id: header.id, offset: SWARM_PIECE, total: SWARM_PIECE }, new Uint8Array(1)).buffer;
        setTimeout(() => swarmEnd.onmessage?.({ data: invalid }), 0);
      };
      swarm.addPeer(`hostile-${round}`, fakeConnection(), swarmEnd as unknown as RTCDataChannel);
      hostileEnd.send(encodePeerMessage({ type: 'hello', version: PEER_PROTOCOL_VERSION, holdings: all }));
      const index = tools.int(4);
      await vi.waitFor(() => expect(swarm.availability(assetId, index), where).toBe(1));
      const result = await swarm.fetchPiece(assetId, index, 10_000, new AbortController().signal);
      if (result.ok) expect(result.data, where).toEqual(piece(index));
      else expect(['rejected', 'timeout', 'no-peer'], where).toContain(result.reason);
      // It is gone: dropped for a bad hash, or closed for a frame outside its piece.
      await vi.waitFor(() => expect(swarm.peers.has(`hostile-${round}`), where).toBe(false));
    }
    expect(verifiedFrom).toEqual([]);

    const [honestSwarmEnd, honestEnd] = channelPair();
    const honest = new Peer('us', fakeConnection(), honestEnd as unknown as RTCDataChannel, {
      ...handlers(),
      pieceCount: () => 4,
      readPiece: async (_asset, index) => piece(index),
    });
    swarm.addPeer('honest', fakeConnection(), honestSwarmEnd as unknown as RTCDataChannel);
    honest.hello(all);
    await vi.waitFor(() => expect(swarm.availability(assetId, 3)).toBe(1));
    for (let index = 0; index < 4; index++) {
      const result = await swarm.fetchPiece(assetId, index, 10_000, new AbortController().signal);
      expect(result.ok, `seed ${seed}, piece ${index}: ${JSON.stringify(result)}`).toBe(true);
      if (result.ok) expect(result.data).toEqual(piece(index));
    }
    expect(verifiedFrom).toEqual(['honest', 'honest', 'honest', 'honest']);
    swarm.destroy();
  });
});
