import { afterEach, describe, expect, it, vi } from 'vitest';
import { Peer, type PeerHandlers } from '../../src/engine/peer.js';
import { decodePeerMessage } from '../../src/shared/peer-codec.js';
import { CHUNK_SIZE, type PeerMessage } from '../../src/shared/peer-messages.js';

// The peer protocol between two Peer objects over an in-memory data channel pair: what the
// engine does with requests, chunks, cancels and rejects, without a browser.

const ASSET = '0123456789abcdef';
const PIECE_BYTES = CHUNK_SIZE * 4 + 10;

/** One end of an ordered, reliable in-memory channel with RTCDataChannel's surface as Peer uses it. */
class FakeChannel extends EventTarget {
  readyState: RTCDataChannelState = 'open';
  binaryType = 'arraybuffer';
  bufferedAmount = 0;
  bufferedAmountLowThreshold = 0;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: (() => void) | null = null;
  onerror: (() => void) | null = null;
  other!: FakeChannel;
  /** Every message this end sent, decoded, for assertions. */
  readonly sent: PeerMessage[] = [];

  send(frame: Uint8Array): void {
    this.sent.push(decodePeerMessage(frame));
    const copy = frame.slice().buffer;
    // Deliver asynchronously, in order, as a data channel does.
    setTimeout(() => this.other.onmessage?.({ data: copy }), 0);
  }

  close(): void {
    if (this.readyState === 'closed') return;
    this.readyState = 'closed';
    this.onclose?.();
    this.other.close();
  }
}

function pair(): [FakeChannel, FakeChannel] {
  const a = new FakeChannel();
  const b = new FakeChannel();
  a.other = b;
  b.other = a;
  return [a, b];
}

const fakeConnection = () => ({ close() {}, connectionState: 'connected', onconnectionstatechange: null }) as unknown as RTCPeerConnection;

function handlers(stored: Map<string, Uint8Array>, overrides: Partial<PeerHandlers> = {}): PeerHandlers {
  return {
    pieceCount: (asset) => (asset === ASSET ? 10 : undefined),
    readPiece: async (asset, piece) => stored.get(`${asset}/${piece}`),
    onHave: () => {},
    onUploaded: () => {},
    beforeUpload: async () => {},
    onClose: () => {},
    ...overrides,
  };
}

function connect(seederPieces: Map<string, Uint8Array>) {
  const [leecherEnd, seederEnd] = pair();
  const closed: string[] = [];
  const leecher = new Peer('seeder', fakeConnection(), leecherEnd as unknown as RTCDataChannel, handlers(new Map(), { onClose: (_p, reason) => closed.push(reason) }));
  const seeder = new Peer('leecher', fakeConnection(), seederEnd as unknown as RTCDataChannel, handlers(seederPieces));
  return { leecher, seeder, leecherEnd, seederEnd, closed };
}

const piece = Uint8Array.from({ length: PIECE_BYTES }, (_, i) => i % 256);

describe('Peer protocol', () => {
  it('learns what the other side holds from hello and have', async () => {
    const { leecher, seeder } = connect(new Map());
    seeder.hello({ [ASSET]: '8000' }); // piece 0
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(leecher.has(ASSET, 0)).toBe(true);
    expect(leecher.has(ASSET, 1)).toBe(false);
    seeder.announceHave(ASSET, 7);
    seeder.announceHave('ffffffffffffffff', 1); // an asset we don't know: ignored
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(leecher.has(ASSET, 7)).toBe(true);
  });

  it('downloads a whole piece in chunks and measures the peer', async () => {
    const { leecher, seederEnd } = connect(new Map([[`${ASSET}/3`, piece]]));
    const data = await leecher.request(ASSET, 3, PIECE_BYTES, new AbortController().signal);
    expect(data).toEqual(piece);
    expect(seederEnd.sent.filter((m) => m.type === 'chunk')).toHaveLength(5);
    expect(leecher.bytesDownloaded).toBe(PIECE_BYTES);
  });

  it('a missing piece is rejected, not left hanging', async () => {
    const { leecher } = connect(new Map());
    await expect(leecher.request(ASSET, 1, PIECE_BYTES, new AbortController().signal)).rejects.toMatchObject({ code: 'peer-closed' });
    expect(leecher.failures).toBe(1);
  });

  it('cancelling a request tells the other side, which stops sending that piece', async () => {
    const { leecher, leecherEnd, seederEnd } = connect(new Map([[`${ASSET}/2`, piece]]));
    // The seeder's channel looks congested, so it pauses after its first chunk and sees the cancel.
    seederEnd.bufferedAmount = 2 * 1024 * 1024;
    const abort = new AbortController();
    const download = leecher.request(ASSET, 2, PIECE_BYTES, abort.signal);
    await new Promise((resolve) => setTimeout(resolve, 5));
    abort.abort();
    await expect(download).rejects.toMatchObject({ code: 'aborted' });
    expect(leecherEnd.sent.map((m) => m.type)).toEqual(['request', 'cancel']);
    await new Promise((resolve) => setTimeout(resolve, 5)); // the cancel reaches the seeder
    seederEnd.bufferedAmount = 0;
    seederEnd.dispatchEvent(new Event('bufferedamountlow'));
    await new Promise((resolve) => setTimeout(resolve, 5));
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
      await new Promise((resolve) => setTimeout(resolve, 5)); // the first chunk arrives
      expect(leecher.bytesDownloaded).toBe(CHUNK_SIZE);
      return {
        leecher,
        fresh,
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
      expect(leecher.expectedDelay(PIECE_BYTES)).toBeCloseTo((PIECE_BYTES * 2) / CHUNK_SIZE, 5);
      expect(leecher.expectedDelay(PIECE_BYTES)).toBeGreaterThan(100 * fresh);
      advance(15_001);
      expect(leecher.expectedDelay(PIECE_BYTES)).toBe(fresh);
    });

    it('a request given up on at once says nothing about the peer', async () => {
      const { leecher, fresh, advance, giveUp } = await stalledDownload();
      advance(100);
      await giveUp();
      expect(leecher.expectedDelay(PIECE_BYTES)).toBe(fresh);
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

  it('closing rejects every download in flight', async () => {
    const { leecher, seederEnd } = connect(new Map());
    seederEnd.bufferedAmount = 0;
    const download = leecher.request(ASSET, 5, PIECE_BYTES, new AbortController().signal);
    leecher.close('test');
    await expect(download).rejects.toMatchObject({ code: 'peer-closed' });
    expect(leecher.closed).toBe(true);
  });
});
