import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ForwardedPiece } from '../../src/engine/forwarded-piece.js';
import { Peer, type PeerHandlers } from '../../src/engine/peer.js';
import { sha256Hex } from '../../src/shared/integrity.js';
import { MAX_SEND_QUEUE_BYTES, MIN_SEND_QUEUE_BYTES } from '../../src/engine/send-pacer.js';
import { UploadTurns } from '../../src/engine/upload-turns.js';
import { CHUNK_SIZE } from '../../src/shared/peer-messages.js';
import { channelPair, fakeConnection, SharedLine } from './fake-channel.js';

// Uploads over a slow line (a fake data channel that drains at a fixed rate, on fake timers):
// the send queue stays short, a cancel stops a piece at once, an urgent request overtakes.

const ASSET = '0123456789abcdef';
const PIECE_BYTES = 256 * 1024;
/** A 2 Mbit/s home uplink, in bytes per second. */
const SLOW_LINE = 250_000;
/** Bytes of framing per chunk message (length prefix and JSON header) on top of its data. */
const FRAME_OVERHEAD = 100;

const pieces = new Map(Array.from({ length: 4 }, (_, index) => [`${ASSET}/${index}`, new Uint8Array(PIECE_BYTES).fill(index)]));

function handlers(stored: Map<string, Uint8Array>): PeerHandlers {
  return {
    pieceCount: () => 4,
    readPiece: async (asset, piece) => stored.get(`${asset}/${piece}`),
    onHave: () => {},
    onUploaded: () => {},
    beforeUpload: async () => {},
    onClose: () => {},
  };
}

function connect(seederRate: number, eventLagMs = 0) {
  const [leecherEnd, seederEnd] = channelPair(undefined, seederRate, eventLagMs);
  const leecher = new Peer('seeder', fakeConnection(), leecherEnd as unknown as RTCDataChannel, handlers(new Map()));
  const seeder = new Peer('leecher', fakeConnection(), seederEnd as unknown as RTCDataChannel, handlers(pieces));
  // Both say hello, as every peer does when its channel opens: one silent past the hello deadline is closed.
  seeder.hello(new Map());
  leecher.hello(new Map());
  return { leecher, seederEnd };
}

const never = () => new AbortController().signal;

describe('uploads on a slow line', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('keep the send queue to a small target sized from the line rate, not megabytes', async () => {
    const { leecher, seederEnd } = connect(SLOW_LINE);
    const all = Promise.all([0, 1, 2, 3].map((index) => leecher.request(ASSET, index, PIECE_BYTES, never())));
    await vi.advanceTimersByTimeAsync(6000); // 1 MiB at 250 kB/s: 4.2 s
    expect((await all).map((data) => data[0])).toEqual([0, 1, 2, 3]);
    // 100 ms of a 2 Mbit/s line is less than the smallest target: the queue never held more.
    expect(seederEnd.maxBufferedAmount).toBeLessThanOrEqual(MIN_SEND_QUEUE_BYTES + CHUNK_SIZE + FRAME_OVERHEAD);
    // The receiver measured the line, not the assumed rate.
    expect(leecher.throughput).toBeGreaterThan(SLOW_LINE * 0.8);
    expect(leecher.throughput).toBeLessThan(SLOW_LINE * 1.2);
  });

  it('keep it within a quarter second of a 1 Mbit/s line on a busy page, which refills it late', async () => {
    const line = 125_000;
    // The queue's low event is handled 300 ms late: every refill finds the queue empty.
    const { leecher, seederEnd } = connect(line, 300);
    const all = Promise.all([0, 1, 2, 3].map((index) => leecher.request(ASSET, index, PIECE_BYTES, never())));
    // Until a wait finds bytes left in the queue, the line's rate is unknown and the target grows.
    await vi.advanceTimersByTimeAsync(3000);
    expect(seederEnd.maxBufferedAmount).toBeLessThanOrEqual(128 * 1024 + CHUNK_SIZE + FRAME_OVERHEAD);
    seederEnd.maxBufferedAmount = 0;
    await vi.advanceTimersByTimeAsync(20_000);
    expect((await all).map((data) => data[0])).toEqual([0, 1, 2, 3]);
    // Then a quarter second of this line, less than the smallest target (before: it grew to 1 MiB).
    expect(seederEnd.maxBufferedAmount).toBeLessThanOrEqual(MIN_SEND_QUEUE_BYTES + CHUNK_SIZE + FRAME_OVERHEAD);
  });

  it('grow the target on a fast line, up to its cap', async () => {
    const fast = 20_000_000;
    const { leecher, seederEnd } = connect(fast);
    const all = Promise.all([0, 1, 2, 3].map((index) => leecher.request(ASSET, index, PIECE_BYTES, never())));
    await vi.advanceTimersByTimeAsync(1000);
    await all;
    expect(seederEnd.maxBufferedAmount).toBeGreaterThan(MIN_SEND_QUEUE_BYTES + CHUNK_SIZE + FRAME_OVERHEAD);
    expect(seederEnd.maxBufferedAmount).toBeLessThanOrEqual(MAX_SEND_QUEUE_BYTES + CHUNK_SIZE + FRAME_OVERHEAD);
  });

  it('stop a cancelled piece at once: only what was already queued reaches the line', async () => {
    const { leecher, seederEnd } = connect(SLOW_LINE);
    const abort = new AbortController();
    const download = leecher.request(ASSET, 0, PIECE_BYTES, abort.signal).catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(300);
    const chunksAtCancel = seederEnd.sent.filter((message) => message.type === 'chunk').length;
    expect(chunksAtCancel).toBeGreaterThan(0);
    abort.abort();
    await download;
    const receivedAtCancel = leecher.bytesDownloaded;
    await vi.advanceTimersByTimeAsync(2000);
    const chunksAfter = seederEnd.sent.filter((message) => message.type === 'chunk').length - chunksAtCancel;
    // The cancel crossed the (unlimited) return path at once; at most the chunk being handed over went after it.
    expect(chunksAfter).toBeLessThanOrEqual(1);
    expect(seederEnd.bufferedAmount).toBe(0);
    // Bytes on the line after the cancel: the short queue only (they arrive, and are dropped, as late chunks).
    expect((chunksAtCancel + chunksAfter) * CHUNK_SIZE - receivedAtCancel).toBeLessThanOrEqual(MIN_SEND_QUEUE_BYTES + 2 * CHUNK_SIZE);
  });

  it('serve an urgent request before the prefetches queued ahead of it', async () => {
    const { leecher } = connect(SLOW_LINE);
    const finished: string[] = [];
    const finishedAt = new Map<string, number>();
    const track = (name: string, deadlineMs: number, index: number) =>
      leecher.request(ASSET, index, PIECE_BYTES, never(), { deadlineMs }).then(() => {
        finished.push(name);
        finishedAt.set(name, performance.now());
      });
    const prefetches = [track('prefetch 0', 10_000, 0), track('prefetch 1', 10_000, 1)];
    await vi.advanceTimersByTimeAsync(200); // prefetch 0 is being sent
    const urgentAt = performance.now();
    const urgent = track('urgent', 4000, 2);
    await vi.advanceTimersByTimeAsync(6000);
    await Promise.all([...prefetches, urgent]);
    expect(finished).toEqual(['urgent', 'prefetch 0', 'prefetch 1']);
    // It waited for the short queue only, not for the ~450 KiB of prefetches still ahead of it.
    const lineMs = (bytes: number) => (bytes / SLOW_LINE) * 1000;
    expect(finishedAt.get('urgent')! - urgentAt).toBeLessThanOrEqual(lineMs(PIECE_BYTES + MIN_SEND_QUEUE_BYTES + 2 * CHUNK_SIZE) + 50);
  });

  it('send a piece still arriving from the origin as its bytes come, and other pieces while it waits for more', async () => {
    const forwarded = new ForwardedPiece(PIECE_BYTES, await sha256Hex(pieces.get(`${ASSET}/0`)!));
    const [leecherEnd, seederEnd] = channelPair(undefined, SLOW_LINE);
    const leecher = new Peer('seeder', fakeConnection(), leecherEnd as unknown as RTCDataChannel, handlers(new Map()));
    const seederHandlers = handlers(pieces);
    const seeder = new Peer('leecher', fakeConnection(), seederEnd as unknown as RTCDataChannel, {
      ...seederHandlers,
      readPiece: async (asset, piece) => (piece === 0 ? forwarded : seederHandlers.readPiece(asset, piece)),
    });
    seeder.hello(new Map());
    leecher.hello(new Map());
    const finished: string[] = [];
    // The arriving piece is the more urgent one: it still holds back no piece that can be sent.
    const arriving = leecher.request(ASSET, 0, PIECE_BYTES, never(), { deadlineMs: 2000 }).then((data) => (finished.push('arriving'), data));
    const stored = leecher.request(ASSET, 1, PIECE_BYTES, never(), { deadlineMs: 8000 }).then(() => finished.push('stored'));
    forwarded.append(pieces.get(`${ASSET}/0`)!.subarray(0, 40_000));
    await vi.advanceTimersByTimeAsync(300);
    // What had arrived went out at once...
    expect(leecher.partial(ASSET, 0)).toHaveLength(40_000);
    await vi.advanceTimersByTimeAsync(1500);
    // ...and the line then sent the stored piece instead of waiting.
    expect(finished).toEqual(['stored']);
    forwarded.append(pieces.get(`${ASSET}/0`)!.subarray(40_000));
    // Its last byte goes out once the whole piece matched its hash here: WebCrypto works on real
    // time, not the fake clock, and on a loaded machine finished after the clock had moved on, so
    // the line never sent the byte.
    await vi.waitUntil(() => forwarded.settled, { timeout: 10_000 });
    await vi.advanceTimersByTimeAsync(1500);
    expect(await arriving).toEqual(pieces.get(`${ASSET}/0`));
    await stored;
    expect(finished).toEqual(['stored', 'arriving']);
  });
});

describe('uploads to several peers over one line', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Two leechers of one seeder page whose channels to them share one 2 Mbit/s line; `turns`: the page's UploadTurns. */
  function twoLeechers(turns: UploadTurns | undefined) {
    const line = new SharedLine(SLOW_LINE);
    const leecher = (name: string) => {
      const [leecherEnd, seederEnd] = channelPair();
      line.add(seederEnd);
      const leecherPeer = new Peer('seeder', fakeConnection(), leecherEnd as unknown as RTCDataChannel, handlers(new Map()));
      const seeder = new Peer(name, fakeConnection(), seederEnd as unknown as RTCDataChannel, { ...handlers(pieces), uploadTurn: turns?.turn() });
      seeder.hello(new Map());
      leecherPeer.hello(new Map());
      return leecherPeer;
    };
    return [leecher('a'), leecher('b')] as const;
  }

  /** Ms from when leecher b asks for a piece due in 2 s until it has it, while leecher a's three prefetches (due in 10 s) are being sent. */
  async function urgentBesidePrefetches(turns: UploadTurns | undefined): Promise<number> {
    const [a, b] = twoLeechers(turns);
    const prefetches = [0, 1, 2].map((index) => a.request(ASSET, index, PIECE_BYTES, never(), { deadlineMs: 10_000 }));
    await vi.advanceTimersByTimeAsync(200);
    const askedAt = performance.now();
    let tookMs = Infinity;
    const urgent = b.request(ASSET, 3, PIECE_BYTES, never(), { deadlineMs: 2000 }).then(() => (tookMs = performance.now() - askedAt));
    await vi.advanceTimersByTimeAsync(6000);
    await Promise.all([...prefetches, urgent]);
    return tookMs;
  }

  it("send another peer's more urgent piece first: it waits for what a's channel had queued, not for half the line", async () => {
    const lineMs = (bytes: number) => (bytes / SLOW_LINE) * 1000;
    // Sharing the line, the piece took twice its line time (2.1 s); in turn, its own time and a short queue's.
    expect(await urgentBesidePrefetches(undefined)).toBeGreaterThan(lineMs(2 * PIECE_BYTES) * 0.9);
    expect(await urgentBesidePrefetches(new UploadTurns())).toBeLessThanOrEqual(lineMs(PIECE_BYTES + 2 * (2 * MIN_SEND_QUEUE_BYTES + CHUNK_SIZE)) + 50);
  });
});
