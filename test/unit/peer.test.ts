import { afterEach, describe, expect, it, vi } from 'vitest';
import { HELLO_DEADLINE_MS, HOLDINGS_WAIT_MS, MAX_READING_HEADS, Peer, READING_MEMORY_MS, type PeerHandlers } from '../../src/engine/peer.js';
import { encodePeerMessage } from '../../src/shared/peer-codec.js';
import { CHUNK_SIZE } from '../../src/shared/peer-messages.js';
import { runsOf } from '../../src/shared/holdings.js';
import { channelPair, fakeConnection, FakeChannel } from './fake-channel.js';

// The peer protocol between two Peer objects over an in-memory data channel pair: what the
// engine does with requests, chunks, cancels and rejects, without a browser.

const ASSET = '0123456789abcdef';
const PIECE_BYTES = CHUNK_SIZE * 4 + 10;

function handlers(stored: Map<string, Uint8Array>, overrides: Partial<PeerHandlers> = {}): PeerHandlers {
  return {
    pieceCount: (asset) => (asset === ASSET ? 10 : undefined),
    readPiece: async (asset, piece) => stored.get(`${asset}/${piece}`),
    onHave: () => {},
    onUploaded: () => {},
    beforeUpload: async () => {},
    onClose: () => {},
    onUnknownAsset: () => {},
    ...overrides,
  };
}

function connect(seederPieces: Map<string, Uint8Array>, seederRate?: number) {
  const [leecherEnd, seederEnd] = channelPair(undefined, seederRate);
  const closed: string[] = [];
  const leecher = new Peer('seeder', fakeConnection(), leecherEnd as unknown as RTCDataChannel, handlers(new Map(), { onClose: (_p, reason) => closed.push(reason) }));
  const seeder = new Peer('leecher', fakeConnection(), seederEnd as unknown as RTCDataChannel, handlers(seederPieces));
  return { leecher, seeder, leecherEnd, seederEnd, closed };
}

const piece = Uint8Array.from({ length: PIECE_BYTES }, (_, i) => i % 256);

describe('Peer protocol', () => {
  it('learns what the other side holds from hello and have', async () => {
    const { leecher, seeder } = connect(new Map());
    seeder.hello(new Map([[ASSET, runsOf([0])]]));
    await vi.waitFor(() => expect(leecher.has(ASSET, 0)).toBe(true));
    expect(leecher.has(ASSET, 1)).toBe(false);
    seeder.announceHave(ASSET, 7);
    seeder.announceHave('ffffffffffffffff', 1); // an asset we don't know: ignored
    await vi.waitFor(() => expect(leecher.has(ASSET, 7)).toBe(true));
  });

  it('parks haves for an asset our manifest does not list yet (a new live segment) and takes them once it does', async () => {
    const LATER = 'fedcba9876543210';
    const known = new Set([ASSET]);
    const unknown: string[] = [];
    const [leecherEnd, seederEnd] = channelPair();
    const leecher = new Peer('seeder', fakeConnection(), leecherEnd as unknown as RTCDataChannel, handlers(new Map(), {
      pieceCount: (asset) => (known.has(asset) ? 4 : undefined),
      onUnknownAsset: (_peer, asset) => unknown.push(asset),
    }));
    const seeder = new Peer('leecher', fakeConnection(), seederEnd as unknown as RTCDataChannel, handlers(new Map()));
    seeder.hello(new Map([[ASSET, runsOf([0])], [LATER, runsOf([1])]]));
    seeder.announceHave(LATER, 3);
    seeder.announceHave(ASSET, 2);
    await vi.waitFor(() => expect(leecher.has(ASSET, 2)).toBe(true)); // every earlier message has arrived
    expect([leecher.has(LATER, 1), leecher.has(LATER, 3)]).toEqual([false, false]);
    expect(unknown).toEqual([LATER]); // once per asset, so the engine reloads its manifest once

    known.add(LATER);
    leecher.adopt(LATER);
    expect([leecher.has(LATER, 0), leecher.has(LATER, 1), leecher.has(LATER, 3)]).toEqual([false, true, true]);

    // The asset leaves the manifest (the live window moved on): the peer forgets what it held of it.
    known.delete(LATER);
    leecher.forget(LATER);
    expect(leecher.has(LATER, 1)).toBe(false);
  });

  it('a peer listing a segment our manifest lacks (a new live segment) asks the engine, once, to reload it; one we know changes nothing', async () => {
    const LATER = 'fedcba9876543210';
    const unknown: string[] = [];
    const [leecherEnd, seederEnd] = channelPair();
    const leecher = new Peer('seeder', fakeConnection(), leecherEnd as unknown as RTCDataChannel, handlers(new Map(), {
      onUnknownAsset: (_peer, asset) => unknown.push(asset),
    }));
    const seeder = new Peer('leecher', fakeConnection(), seederEnd as unknown as RTCDataChannel, handlers(new Map()));
    seeder.hello(new Map());
    seeder.announceListed(ASSET); // our manifest lists it already
    seeder.announceListed(LATER);
    seeder.announceListed(LATER); // every member announces a new segment: repeats cost nothing
    seeder.announceHave(ASSET, 2);
    await vi.waitFor(() => expect(leecher.has(ASSET, 2)).toBe(true)); // every earlier message has arrived
    expect(unknown).toEqual([LATER]);
    // Listing is no have: the peer is not asked for pieces it did not say it holds.
    leecher.adopt(LATER);
    expect(leecher.has(LATER, 0)).toBe(false);
    expect(leecher.closed).toBe(false);
  });

  it('parks haves of a bounded number of unknown assets, the oldest dropped first', async () => {
    const unknown: string[] = [];
    const { seeder, leecher } = (() => {
      const [leecherEnd, seederEnd] = channelPair();
      return {
        leecher: new Peer('seeder', fakeConnection(), leecherEnd as unknown as RTCDataChannel, handlers(new Map(), {
          pieceCount: () => undefined,
          onUnknownAsset: (_peer, asset) => unknown.push(asset),
        })),
        seeder: new Peer('leecher', fakeConnection(), seederEnd as unknown as RTCDataChannel, handlers(new Map())),
      };
    })();
    seeder.hello(new Map());
    for (let n = 0; n < 100; n++) seeder.announceHave(n.toString(16).padStart(16, '0'), 0);
    await vi.waitFor(() => expect(unknown).toHaveLength(100));
    // The first asset's have was dropped to make room: announcing it again parks it anew.
    seeder.announceHave('0'.repeat(16), 0);
    await vi.waitFor(() => expect(unknown).toHaveLength(101));
    expect(leecher.closed).toBe(false);
  });

  it('a hello claiming pieces past an asset\'s end is taken only within it', async () => {
    const { leecher, seeder } = connect(new Map());
    seeder.hello(new Map([[ASSET, runsOf([8, 9, 10, 11, 5000])]]));
    await vi.waitFor(() => expect(leecher.has(ASSET, 9)).toBe(true));
    expect([leecher.has(ASSET, 8), leecher.has(ASSET, 10), leecher.has(ASSET, 5000)]).toEqual([true, false, false]);
  });

  it('keeps where the other side reads, a bounded number of assets, for a limited time', async () => {
    let now = 1000;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    try {
      const { leecher, seeder } = connect(new Map());
      seeder.hello(new Map());
      for (let n = 0; n < MAX_READING_HEADS + 5; n++) seeder.announceReading(n.toString(16).padStart(16, '0'), n);
      seeder.announceReading(ASSET, 3);
      seeder.announceReading(ASSET, 4);
      await vi.waitFor(() => expect(leecher.readingHeads(READING_MEMORY_MS).some((head) => head.asset === ASSET)).toBe(true));
      const heads = leecher.readingHeads(READING_MEMORY_MS);
      expect(heads).toHaveLength(MAX_READING_HEADS);
      expect(heads.filter((head) => head.asset === ASSET)).toEqual([{ asset: ASSET, piece: 4 }]);
      now += READING_MEMORY_MS + 1;
      expect(leecher.readingHeads(READING_MEMORY_MS)).toEqual([]);
    } finally {
      vi.restoreAllMocks();
    }
  });

  it('downloads a whole piece in chunks and measures the peer', async () => {
    const { leecher, seederEnd } = connect(new Map([[`${ASSET}/3`, piece]]));
    const data = await leecher.request(ASSET, 3, PIECE_BYTES, new AbortController().signal);
    expect(data).toEqual(piece);
    expect(seederEnd.sent.filter((m) => m.type === 'chunk')).toHaveLength(5);
    expect(leecher.bytesDownloaded).toBe(PIECE_BYTES);
  });

  it("tells the sender how its chunks came (at most every 0.1 s: bytes, time, least delay of a full chunk), which reaches the sender's pace", async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    try {
      const RATE = 100_000; // bytes/s: a chunk every 164 ms
      const [leecherEnd, seederEnd] = channelPair(undefined, RATE);
      const reports: { delayMs: number; bytes: number; ms: number }[] = [];
      const leecher = new Peer('seeder', fakeConnection(), leecherEnd as unknown as RTCDataChannel, handlers(new Map()));
      new Peer('leecher', fakeConnection(), seederEnd as unknown as RTCDataChannel, handlers(new Map([[`${ASSET}/1`, piece], [`${ASSET}/2`, piece]]), {
        onReceived: (_peer, delayMs, bytes, ms) => reports.push({ delayMs, bytes, ms }),
      }));
      const first = leecher.request(ASSET, 1, PIECE_BYTES, new AbortController().signal);
      await vi.advanceTimersByTimeAsync(1000);
      expect(await first).toEqual(piece);
      const sent = leecherEnd.sent.filter((message) => message.type === 'received');
      // Four full chunks and a 10-byte one: the first opens the span and reports its delay alone
      // (no bytes over no time), each later full one is a report of the span.
      expect(sent.length).toBe(4);
      expect(sent[0]).toMatchObject({ bytes: 0, ms: 0 });
      expect(sent.reduce((sum, report) => sum + report.bytes, 0)).toBe(3 * CHUNK_SIZE);
      for (const report of sent.slice(1)) expect(report.ms).toBeGreaterThanOrEqual(100);
      // Both ends share this process's clock, so the delay is the true one: the time in the
      // sender's short queue and on the line, less than the whole piece's line time.
      for (const report of sent) expect(report.delayMs).toBeGreaterThanOrEqual(0);
      for (const report of sent) expect(report.delayMs).toBeLessThan((PIECE_BYTES * 1000) / RATE);
      expect(reports).toEqual(sent.map(({ delayMs, bytes, ms }) => ({ delayMs, bytes, ms })));

      // A line that kept a chunk waiting 0.5 s longer (its queue) reports the longer delay.
      seederEnd.silent = true;
      const second = leecher.request(ASSET, 2, PIECE_BYTES, new AbortController().signal);
      await vi.advanceTimersByTimeAsync(500);
      seederEnd.silent = false;
      await vi.advanceTimersByTimeAsync(1000);
      expect(await second).toEqual(piece);
      expect(Math.max(...reports.map((report) => report.delayMs))).toBeGreaterThanOrEqual(500);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a line sending under a chunk per half second still reports each chunk\'s delay (a pace at its floor hears how its line is)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    try {
      const RATE = 12_000; // bytes/s: a chunk every 1.4 s
      const [leecherEnd, seederEnd] = channelPair(undefined, RATE);
      const reports: { delayMs: number; bytes: number }[] = [];
      const leecher = new Peer('seeder', fakeConnection(), leecherEnd as unknown as RTCDataChannel, handlers(new Map()));
      new Peer('leecher', fakeConnection(), seederEnd as unknown as RTCDataChannel, handlers(new Map([[`${ASSET}/1`, piece]]), {
        onReceived: (_peer, delayMs, bytes) => reports.push({ delayMs, bytes }),
      }));
      const download = leecher.request(ASSET, 1, PIECE_BYTES, new AbortController().signal, { deadlineMs: 60_000 });
      await vi.advanceTimersByTimeAsync(8000);
      expect(await download).toEqual(piece);
      // Four full chunks, each after a silence: four delays (the chunk's time in the sender's
      // short queue and on the line: both ends share this process's clock).
      expect(reports).toHaveLength(4);
      for (const report of reports) expect(report).toMatchObject({ bytes: 0 });
      for (const report of reports) expect(report.delayMs).toBeGreaterThanOrEqual((CHUNK_SIZE * 1000) / RATE - 50);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a report from a peer we never sent anything is not about our line', async () => {
    const [remoteEnd, localEnd] = channelPair();
    const reports: number[] = [];
    const local = new Peer('remote', fakeConnection(), localEnd as unknown as RTCDataChannel, handlers(new Map(), { onReceived: (_peer, delayMs) => reports.push(delayMs) }));
    remoteEnd.send(encodePeerMessage({ type: 'received', bytes: 16384, ms: 100, delayMs: 5 }));
    remoteEnd.send(encodePeerMessage({ type: 'have', asset: ASSET, piece: 4 }));
    await vi.waitFor(() => expect(local.has(ASSET, 4)).toBe(true)); // the report came before it
    expect(reports).toEqual([]);
    expect(local.closed).toBe(false);
  });

  it('a piece the peer no longer holds is answered not-found: no longer expected there, and no failure', async () => {
    const { leecher, seeder } = connect(new Map());
    seeder.hello(new Map([[ASSET, runsOf([1])]])); // claims piece 1, which its store has lost meanwhile
    await vi.waitFor(() => expect(leecher.has(ASSET, 1)).toBe(true));
    await expect(leecher.request(ASSET, 1, PIECE_BYTES, new AbortController().signal)).rejects.toMatchObject({
      code: 'peer-closed',
      details: { reason: 'not-found' },
    });
    expect(leecher.has(ASSET, 1)).toBe(false);
    expect(leecher.failures).toBe(0);
  });

  it('a lost piece is withdrawn from what the other side expects of us', async () => {
    const { leecher, seeder } = connect(new Map());
    seeder.hello(new Map([[ASSET, runsOf([0, 1])]]));
    await vi.waitFor(() => expect(leecher.has(ASSET, 1)).toBe(true));
    seeder.announceLost(ASSET, 1);
    await vi.waitFor(() => expect(leecher.has(ASSET, 1)).toBe(false));
    expect(leecher.has(ASSET, 0)).toBe(true);
  });

  it('counts ahead of a piece the requests due before it, by when they are due, not by the deadline they were sent with', () => {
    let now = 1000;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    try {
      const [leecherEnd] = channelPair();
      const leecher = new Peer('remote', fakeConnection(), leecherEnd as unknown as RTCDataChannel, handlers(new Map()));
      const alone = leecher.expectedDelay(PIECE_BYTES, 5000);
      void leecher.request(ASSET, 1, PIECE_BYTES, new AbortController().signal, { deadlineMs: 10_000 }).catch(() => {});
      // Just sent, it is due in 10 s: after a piece needed within 5 s.
      expect(leecher.expectedDelay(PIECE_BYTES, 5000)).toBeCloseTo(alone, 5);
      // 6 s later it is due in 4 s, and the peer sends it first.
      now += 6000;
      expect(leecher.expectedDelay(PIECE_BYTES, 5000)).toBeGreaterThan(alone + PIECE_BYTES / leecher.throughput - 1e-9);
      // Without a deadline everything outstanding counts.
      expect(leecher.expectedDelay(PIECE_BYTES)).toBeCloseTo(leecher.expectedDelay(PIECE_BYTES, 5000), 5);
    } finally {
      vi.restoreAllMocks();
    }
  });

  it('failures decay: a peer that failed once is ranked as before a minute or two later', async () => {
    let now = 1000;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    try {
      const [leecherEnd, remoteEnd] = channelPair();
      const leecher = new Peer('remote', fakeConnection(), leecherEnd as unknown as RTCDataChannel, handlers(new Map()));
      const before = leecher.expectedDelay(PIECE_BYTES);
      const failed = leecher.request(ASSET, 1, PIECE_BYTES, new AbortController().signal);
      remoteEnd.send(encodePeerMessage({ type: 'reject', id: 1, reason: 'busy' }));
      await expect(failed).rejects.toMatchObject({ code: 'peer-closed' });
      expect(leecher.failures).toBe(1);
      expect(leecher.expectedDelay(PIECE_BYTES)).toBeGreaterThan(before);
      now += 30_000;
      expect(leecher.failures).toBeCloseTo(0.5, 5);
      now += 5 * 60_000;
      expect(leecher.failures).toBeLessThan(0.01);
    } finally {
      vi.restoreAllMocks();
    }
  });

  it('a request given up on hands over what arrived; a request with that prefix gets only the rest', async () => {
    const { leecher, seederEnd } = connect(new Map([[`${ASSET}/2`, piece]]));
    // The seeder's line is congested after two chunks (its queue never drains), like a slow uplink.
    const send = seederEnd.send.bind(seederEnd);
    seederEnd.send = (frame) => {
      send(frame);
      if (seederEnd.sent.filter((m) => m.type === 'chunk').length >= 2) seederEnd.bufferedAmount = 2 * 1024 * 1024;
    };
    const abort = new AbortController();
    const first = leecher.request(ASSET, 2, PIECE_BYTES, abort.signal);
    await vi.waitFor(() => expect(leecher.partial(ASSET, 2)?.length).toBe(2 * CHUNK_SIZE));
    abort.abort();
    const error = (await first.catch((caught: unknown) => caught)) as { code: string; details: { partial?: Uint8Array } };
    expect(error.code).toBe('aborted');
    expect(error.details.partial).toEqual(piece.subarray(0, 2 * CHUNK_SIZE));

    // Another peer finishes it from there: it sends only the bytes after the prefix.
    const other = connect(new Map([[`${ASSET}/2`, piece]]));
    const whole = await other.leecher.request(ASSET, 2, PIECE_BYTES, new AbortController().signal, { prefix: error.details.partial });
    expect(whole).toEqual(piece);
    expect(other.seederEnd.sent.filter((m) => m.type === 'chunk').map((m) => (m as { offset: number }).offset)).toEqual([
      2 * CHUNK_SIZE,
      3 * CHUNK_SIZE,
      4 * CHUNK_SIZE,
    ]);
    expect(other.leecher.bytesDownloaded).toBe(PIECE_BYTES - 2 * CHUNK_SIZE);
  });

  it('a chunk that does not continue the piece (a gap or an overlap) fails the request', async () => {
    const [leecherEnd, remoteEnd] = channelPair();
    const leecher = new Peer('remote', fakeConnection(), leecherEnd as unknown as RTCDataChannel, handlers(new Map()));
    const download = leecher.request(ASSET, 1, PIECE_BYTES, new AbortController().signal);
    remoteEnd.send(encodePeerMessage({ type: 'chunk', id: 1, offset: CHUNK_SIZE, total: PIECE_BYTES, data: new Uint8Array(CHUNK_SIZE) }));
    await expect(download).rejects.toMatchObject({ code: 'codec-invalid' });
  });

  it('cancelling a request tells the other side, which stops sending that piece', async () => {
    const { leecher, leecherEnd, seederEnd } = connect(new Map([[`${ASSET}/2`, piece]]));
    // The seeder's channel looks congested, so it pauses after its first chunk and sees the cancel.
    seederEnd.bufferedAmount = 2 * 1024 * 1024;
    const deliver = seederEnd.onmessage!;
    let arrived = 0;
    seederEnd.onmessage = (event) => (arrived++, deliver(event));
    const abort = new AbortController();
    const download = leecher.request(ASSET, 2, PIECE_BYTES, abort.signal);
    await vi.waitFor(() => expect(arrived).toBe(1)); // the request is queued at the seeder
    abort.abort();
    await expect(download).rejects.toMatchObject({ code: 'aborted' });
    expect(leecherEnd.sent.map((m) => m.type)).toEqual(['request', 'cancel']);
    await vi.waitFor(() => expect(arrived).toBe(2)); // the cancel reaches the seeder
    seederEnd.bufferedAmount = 0;
    seederEnd.dispatchEvent(new Event('bufferedamountlow'));
    // Its upload loop ran again with nothing left to send.
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(seederEnd.sent.filter((m) => m.type === 'chunk')).toHaveLength(0);
  });

  describe('a request given up on measures the peer', () => {
    afterEach(() => {
      vi.restoreAllMocks();
    });

    /** A seeder whose channel is congested after its first chunk, and a clock the test moves. */
    async function stalledDownload() {
      let now = 1000;
      vi.spyOn(performance, 'now').mockImplementation(() => now);
      const { leecher, seederEnd } = connect(new Map([[`${ASSET}/2`, piece]]));
      /** Expected delay of a piece from this peer before anything was measured, nothing in flight. */
      const fresh = leecher.expectedDelay(PIECE_BYTES);
      // Congested once its first chunk is out: the seeder then waits for `bufferedamountlow`.
      const send = seederEnd.send.bind(seederEnd);
      seederEnd.send = (frame) => {
        send(frame);
        if (seederEnd.sent.at(-1)?.type === 'chunk') seederEnd.bufferedAmount = 2 * 1024 * 1024;
      };
      const abort = new AbortController();
      const download = leecher.request(ASSET, 2, PIECE_BYTES, abort.signal).catch(() => undefined);
      await vi.waitFor(() => expect(leecher.bytesDownloaded).toBe(CHUNK_SIZE)); // the first chunk arrives
      return {
        leecher,
        fresh,
        /** The channel drains and stays free from now on. */
        unclog: () => {
          seederEnd.send = send;
          seederEnd.bufferedAmount = 0;
          seederEnd.dispatchEvent(new Event('bufferedamountlow'));
        },
        advance: (ms: number) => (now += ms),
        giveUp: async () => {
          abort.abort();
          await download;
        },
      };
    }

    it('one chunk in 2 s: the peer is expected to be that slow, then gets another chance', async () => {
      const { leecher, fresh, advance, giveUp } = await stalledDownload();
      advance(2000);
      await giveUp();
      // The rate seen: CHUNK_SIZE bytes in 2 s; the next piece is expected to take that long.
      expect(leecher.expectedDelay(PIECE_BYTES)).toBeCloseTo(leecher.rttMs / 1000 + (PIECE_BYTES * 2) / CHUNK_SIZE, 5);
      expect(leecher.expectedDelay(PIECE_BYTES)).toBeGreaterThan(10 * fresh);
      advance(15_001);
      // Another chance: no slower than a peer never measured.
      expect(leecher.expectedDelay(PIECE_BYTES)).toBeLessThanOrEqual(fresh);
    });

    it('a request that completes after the stall ends it: the line delivers again', async () => {
      const { leecher, fresh, advance, giveUp, unclog } = await stalledDownload();
      advance(2000);
      await giveUp();
      expect(leecher.expectedDelay(PIECE_BYTES)).toBeGreaterThan(10 * fresh);
      // The line is free again: the next request comes through whole.
      unclog();
      advance(100);
      await leecher.request(ASSET, 2, PIECE_BYTES, new AbortController().signal);
      expect(leecher.expectedDelay(PIECE_BYTES)).toBeLessThan(10 * fresh);
    });

    it('stalls in a row double the time the peer is not waited for', async () => {
      const { leecher, fresh, advance, giveUp } = await stalledDownload();
      advance(2000);
      await giveUp();
      advance(15_001);
      expect(leecher.expectedDelay(PIECE_BYTES)).toBeLessThanOrEqual(fresh);
      // Asked again, it sends nothing at all (its line stays congested): the second stall counts 30 s.
      const abort = new AbortController();
      const again = leecher.request(ASSET, 2, PIECE_BYTES, abort.signal).catch(() => undefined);
      advance(2000);
      abort.abort();
      await again;
      advance(15_001);
      expect(leecher.expectedDelay(PIECE_BYTES)).toBeGreaterThan(10 * fresh);
      advance(15_000);
      expect(leecher.expectedDelay(PIECE_BYTES)).toBeLessThanOrEqual(fresh);
    });

    it("measures the line, not the request: a more urgent request of ours it sent meanwhile counts", async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
      try {
        const RATE = 50_000; // bytes/s: a piece takes 1.3 s
        const { leecher } = connect(new Map([[`${ASSET}/1`, piece], [`${ASSET}/2`, piece]]), RATE);
        // A prefetch of piece 1 (due in 10 s) is being sent ...
        const prefetch = new AbortController();
        const prefetched = leecher.request(ASSET, 1, PIECE_BYTES, prefetch.signal, { deadlineMs: 10_000 }).catch(() => undefined);
        await vi.advanceTimersByTimeAsync(400);
        expect(leecher.bytesDownloaded).toBeGreaterThan(0);
        // ... when the player needs piece 2 within 2 s: the peer sends that one first, whole.
        const urgent = leecher.request(ASSET, 2, PIECE_BYTES, new AbortController().signal, { deadlineMs: 2000 });
        // (The line may take up to four chunks of piece 1 first: those in its queue when piece 2 is asked.)
        await vi.advanceTimersByTimeAsync(2500);
        expect(await urgent).toEqual(piece);
        // Piece 1, which got the line only before and after piece 2, is given up (handed to the origin).
        prefetch.abort();
        await prefetched;
        // Its own bytes over the time since its first chunk would say 24 kB/s; the line sent 55 kB/s.
        expect(leecher.expectedDelay(PIECE_BYTES) - leecher.rttMs / 1000).toBeLessThan((1.5 * PIECE_BYTES) / RATE);
      } finally {
        vi.useRealTimers();
      }
    });

    it('a line measured sending that goes silent is not waited for 4 s, then 8 s after its next stall (a line never measured: 15 s, above)', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
      try {
        const RATE = 50_000; // bytes/s: a piece takes 1.3 s
        const { leecher, seederEnd } = connect(new Map([[`${ASSET}/1`, piece], [`${ASSET}/2`, piece]]), RATE);
        const fresh = leecher.expectedDelay(PIECE_BYTES);
        const whole = leecher.request(ASSET, 1, PIECE_BYTES, new AbortController().signal);
        await vi.advanceTimersByTimeAsync(2000);
        expect(await whole).toEqual(piece);
        const measured = leecher.expectedDelay(PIECE_BYTES);
        /** Asks for piece 2 while the line is silent, and gives up after 1 s. */
        const stall = async () => {
          const abort = new AbortController();
          const download = leecher.request(ASSET, 2, PIECE_BYTES, abort.signal).catch(() => undefined);
          await vi.advanceTimersByTimeAsync(1000);
          abort.abort();
          await download;
        };
        // The transport goes silent for a while (a capped router's queue): nothing comes for 1 s.
        seederEnd.silent = true;
        await stall();
        expect(leecher.expectedDelay(PIECE_BYTES), 'not waited for meanwhile').toBeGreaterThan(10 * fresh);
        await vi.advanceTimersByTimeAsync(4001);
        expect(leecher.expectedDelay(PIECE_BYTES), 'its measured rate again after 4 s, not 15 s').toBeCloseTo(measured, 5);
        // Still silent when asked again: the next stall in a row counts twice as long.
        await stall();
        await vi.advanceTimersByTimeAsync(7000);
        expect(leecher.expectedDelay(PIECE_BYTES)).toBeGreaterThan(10 * fresh);
        await vi.advanceTimersByTimeAsync(1001);
        expect(leecher.expectedDelay(PIECE_BYTES)).toBeCloseTo(measured, 5);
        seederEnd.silent = false;
      } finally {
        vi.useRealTimers();
      }
    });

    it('a request the player could not wait for (excused: another source takes the piece over) measures no stall', async () => {
      const { leecher, fresh, advance, giveUp } = await stalledDownload();
      advance(2000);
      leecher.excuse(ASSET, 2);
      await giveUp();
      expect(leecher.expectedDelay(PIECE_BYTES)).toBeLessThanOrEqual(fresh);
    });

    it('a request given up on at once says nothing about the peer', async () => {
      const { leecher, fresh, advance, giveUp } = await stalledDownload();
      advance(100);
      await giveUp();
      expect(leecher.expectedDelay(PIECE_BYTES)).toBeLessThanOrEqual(fresh);
    });
  });

  it('a piece of the wrong size fails the request and closes nothing silently', async () => {
    const { leecher } = connect(new Map([[`${ASSET}/4`, piece.subarray(0, 100)]]));
    await expect(leecher.request(ASSET, 4, PIECE_BYTES, new AbortController().signal)).rejects.toMatchObject({ code: 'codec-invalid' });
  });

  it('garbage on the channel closes the peer', async () => {
    const { leecherEnd, closed } = connect(new Map());
    leecherEnd.onmessage?.({ data: new Uint8Array([0, 9, 1, 2]).buffer });
    expect(closed).toEqual(['invalid message']);
  });

  it('a flood of control messages closes the peer as misbehaving; an honest rate does not', async () => {
    let now = 1000;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    const { leecher, leecherEnd, closed } = connect(new Map());
    const have = (piece: number) => leecherEnd.onmessage?.({ data: encodePeerMessage({ type: 'have', asset: ASSET, piece }).slice().buffer });
    // 1000 haves a second for 10 s: a busy honest peer.
    for (let i = 0; i < 10_000; i++) {
      have(i % 10);
      now += 1;
    }
    expect(closed).toEqual([]);
    // The same piece announced 10 000 times at once.
    for (let i = 0; i < 10_000; i++) have(3);
    expect(closed).toEqual(['flooding']);
    expect(leecher.misbehaved).toBe(true);
    vi.restoreAllMocks();
  });

  it('a peer that never says hello is waited for HOLDINGS_WAIT_MS, then closed at HELLO_DEADLINE_MS; one that said hello stays', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    try {
      const settled: number[] = [];
      const closed: string[] = [];
      const [silentEnd] = channelPair();
      const silent = new Peer('silent', fakeConnection(), silentEnd as unknown as RTCDataChannel, handlers(new Map(), {
        onHave: () => settled.push(performance.now()),
        onClose: (_peer, reason) => closed.push(reason),
      }));
      const { leecher, seeder } = connect(new Map());
      leecher.hello(new Map());
      seeder.hello(new Map());
      await vi.advanceTimersByTimeAsync(10);
      expect(leecher.holdingsPending, 'its hello came').toBe(false);
      expect(silent.holdingsPending).toBe(true);
      await vi.advanceTimersByTimeAsync(HOLDINGS_WAIT_MS);
      expect(silent.holdingsPending, 'no longer waited for').toBe(false);
      expect(settled, 'the engine is told to plan without it').toHaveLength(1);
      expect(closed).toEqual([]);
      await vi.advanceTimersByTimeAsync(HELLO_DEADLINE_MS - HOLDINGS_WAIT_MS);
      expect(closed).toEqual(['no hello']);
      expect(silent.misbehaved, 'closed, not banned: its page may have been busy').toBe(false);
      expect([leecher.closed, seeder.closed]).toEqual([false, false]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('closing rejects every download in flight', async () => {
    const { leecher, seederEnd } = connect(new Map());
    seederEnd.bufferedAmount = 0;
    const download = leecher.request(ASSET, 5, PIECE_BYTES, new AbortController().signal);
    leecher.close('test');
    await expect(download).rejects.toMatchObject({ code: 'peer-closed' });
    expect(leecher.closed).toBe(true);
  });
});
