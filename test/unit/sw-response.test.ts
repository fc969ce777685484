import { describe, expect, it, vi } from 'vitest';
import { assetResponse } from '../../src/sw/asset-response.js';
import { FIRST_PIECE_DEADLINE_MS, PieceSources } from '../../src/sw/piece-loader.js';
import { parseManifest, type ManifestAsset } from '../../src/shared/manifest.js';
import { sha256Hex } from '../../src/shared/integrity.js';
import { MemoryPieceStore } from '../../src/store/piece-store.js';
import { SharedTasks } from '../../src/shared/shared-tasks.js';
import type { ForwardPart, WorkerToPage } from '../../src/shared/bridge-messages.js';
import { GrowingPiece } from '../../src/sw/growing-piece.js';
import { PeerfetchError, isPeerfetchError } from '../../src/shared/errors.js';

// The service worker's response logic in Node (which has Response and ReadableStream):
// status, headers and bodies for every kind of Range, and the source order store -> peers -> origin.

const PIECE = 16 * 1024;
const bytes = Uint8Array.from({ length: PIECE * 3 + 100 }, (_, i) => (i * 31) % 251);

async function makeAsset(): Promise<ManifestAsset> {
  const pieces: string[] = [];
  for (let start = 0; start < bytes.length; start += PIECE) pieces.push(await sha256Hex(bytes.subarray(start, start + PIECE)));
  const manifest = await parseManifest(
    { version: 1, assets: [{ url: '/v.mp4', size: bytes.length, contentType: 'video/mp4', pieceSize: PIECE, pieces }] },
    'https://site.example/peerfetch-manifest.json',
  );
  return manifest.assets[0]!;
}

const fromBytes = (piece: number) => bytes.slice(piece * PIECE, (piece + 1) * PIECE);

describe('assetResponse', () => {
  it.each([
    [null, 200, 0, bytes.length - 1, null],
    ['bytes=0-', 206, 0, bytes.length - 1, `bytes 0-${bytes.length - 1}/${bytes.length}`],
    ['bytes=20000-', 206, 20000, bytes.length - 1, `bytes 20000-${bytes.length - 1}/${bytes.length}`],
    ['bytes=100-200', 206, 100, 200, `bytes 100-200/${bytes.length}`],
    ['bytes=-50', 206, bytes.length - 50, bytes.length - 1, `bytes ${bytes.length - 50}-${bytes.length - 1}/${bytes.length}`],
    ['bytes=16383-16384', 206, 16383, 16384, `bytes 16383-16384/${bytes.length}`],
  ])('Range %s -> %i with the exact bytes', async (range, status, start, end, contentRange) => {
    const asset = await makeAsset();
    const asked: number[] = [];
    const response = assetResponse(asset, range, async (piece) => (asked.push(piece), fromBytes(piece)));
    expect(response.status).toBe(status);
    expect(response.headers.get('content-range')).toBe(contentRange);
    expect(response.headers.get('content-length')).toBe(String(end - start + 1));
    expect(response.headers.get('content-type')).toBe('video/mp4');
    expect(response.headers.get('accept-ranges')).toBe('bytes');
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(bytes.subarray(start, end + 1));
    // Only the pieces covering the range were loaded, in order.
    expect(asked).toEqual([...new Set(asked)].sort((a, b) => a - b));
    expect(asked[0]).toBe(Math.floor(start / PIECE));
  });

  it('yields to a new version of the worker: a short answer ends with its first piece, a stopped body fails at once, read or not', async () => {
    const asset = await makeAsset();
    const short = assetResponse(asset, 'bytes=20000-', async (piece) => fromBytes(piece), () => {}, { short: true });
    expect(short.status).toBe(206);
    expect(short.headers.get('content-range')).toBe(`bytes 20000-${2 * PIECE - 1}/${bytes.length}`);
    expect(new Uint8Array(await short.arrayBuffer())).toEqual(bytes.subarray(20000, 2 * PIECE));
    // A whole answer is never shortened.
    expect(assetResponse(asset, null, async (piece) => fromBytes(piece), () => {}, { short: true }).headers.get('content-length')).toBe(String(bytes.length));

    const stop = new AbortController();
    const asked: number[] = [];
    const reading = assetResponse(asset, 'bytes=0-', async (piece) => (asked.push(piece), fromBytes(piece)), () => {}, { stop: stop.signal });
    const reader = reading.body!.getReader();
    expect((await reader.read()).value).toEqual(fromBytes(0));
    stop.abort();
    await expect(reader.read()).rejects.toThrow(/yields to a new version/);
    // A body nobody reads fails too (a player may leave a response open without reading it).
    const unread = assetResponse(asset, 'bytes=0-', async (piece) => fromBytes(piece), () => {}, { stop: stop.signal });
    await expect(unread.arrayBuffer()).rejects.toThrow(/yields to a new version/);
  });

  it('answers 416 with the size past the end', async () => {
    const asset = await makeAsset();
    const response = assetResponse(asset, `bytes=${bytes.length}-`, async () => new Uint8Array());
    expect(response.status).toBe(416);
    expect(response.headers.get('content-range')).toBe(`bytes */${bytes.length}`);
  });

  it('errors the body when a piece cannot be loaded, and stops loading', async () => {
    const asset = await makeAsset();
    const response = assetResponse(asset, null, async (piece) => {
      if (piece === 1) throw new Error('origin down');
      return fromBytes(piece);
    });
    await expect(response.arrayBuffer()).rejects.toThrow();
  });

  it('cancelling the body aborts the pieces still loading', async () => {
    const asset = await makeAsset();
    const aborted: number[] = [];
    const response = assetResponse(asset, null, (piece, signal) =>
      piece === 0
        ? Promise.resolve(fromBytes(0))
        : new Promise((_, reject) => signal.addEventListener('abort', () => (aborted.push(piece), reject(new Error('aborted'))))),
    );
    const reader = response.body!.getReader();
    await reader.read();
    await reader.cancel();
    expect(aborted.length).toBeGreaterThan(0);
  });
});

describe('PieceSources', () => {
  async function setup(
    options: { peers?: (piece: number) => Uint8Array | { partial: Uint8Array } | undefined; origin?: (piece: number) => Uint8Array } = {},
  ) {
    const asset = await makeAsset();
    const store = new MemoryPieceStore();
    const notices: WorkerToPage[] = [];
    const calls = { peers: 0, origin: 0, stale: 0, originFrom: [] as number[] };
    const sources = new PieceSources({
      store,
      fromPeers: async (_client, _asset, piece) => {
        calls.peers++;
        const data = options.peers?.(piece);
        return data && ('partial' in data ? data : { data, byOtherPage: false });
      },
      fromOrigin: async (_asset, piece, _signal, from = 0) => {
        calls.origin++;
        calls.originFrom.push(from);
        const data = (options.origin ?? fromBytes)(piece).subarray(from);
        const growing = new GrowingPiece(data.length);
        // Bytes arrive in two parts, as from a network.
        growing.append(data.subarray(0, 100));
        setTimeout(() => growing.append(data.subarray(100)), 1);
        return growing;
      },
      notify: (_client, message) => notices.push(message),
      onStaleManifest: () => calls.stale++,
    });
    return { asset, store, notices, calls, load: sources.loaderFor(asset, 'page-1'), sources };
  }
  const signal = () => new AbortController().signal;
  const bytesOf = async (loaded: Uint8Array | GrowingPiece) => (loaded instanceof GrowingPiece ? loaded.done : loaded);

  it('takes the store first, then peers, then the origin, and stores verified origin bytes', async () => {
    const { load, calls, store, asset, notices } = await setup({ peers: (piece) => (piece === 1 ? fromBytes(1) : undefined) });
    await store.put({ asset: asset.id, piece: 0, data: fromBytes(0) });
    expect(await load(0, signal(), true)).toEqual(fromBytes(0));
    expect(calls).toMatchObject({ peers: 0, origin: 0 });
    expect(await load(1, signal(), false)).toEqual(fromBytes(1));
    expect(calls).toMatchObject({ peers: 1, origin: 0 });
    expect(await bytesOf(await load(2, signal(), false))).toEqual(fromBytes(2));
    expect(calls).toMatchObject({ peers: 2, origin: 1 });
    await vi.waitFor(async () => expect(await store.list(asset.id)).toEqual([0, 2]));
    await vi.waitFor(() => expect(notices.map((notice) => notice.type === 'piece-delivered' && notice.source)).toEqual(['store', 'origin']));
  });

  it('a piece a page engine hands over is verified again: wrong bytes (another deploy, a site script) go to the origin instead', async () => {
    const forged = new Uint8Array(PIECE).fill(9);
    const { load, calls } = await setup({ peers: (piece) => (piece === 1 ? forged : undefined) });
    expect(await bytesOf(await load(1, signal(), false))).toEqual(fromBytes(1));
    expect(calls).toMatchObject({ peers: 1, origin: 1 });
  });

  it('passes origin bytes that fail the hash to the player but never stores them', async () => {
    const bad = new Uint8Array(PIECE).fill(1);
    const { load, calls, store, asset, notices } = await setup({ origin: () => bad });
    expect(await bytesOf(await load(0, signal(), true))).toEqual(bad);
    await vi.waitFor(() => expect(notices[0]).toMatchObject({ type: 'piece-delivered', source: 'origin', stored: false }));
    expect(await store.list(asset.id)).toEqual([]);
    expect(calls.stale).toBe(1);
  });

  it('shares one origin fetch between a stream and a prefetch of the same piece, and counts it once', async () => {
    const { load, calls, sources, asset, notices, store } = await setup();
    const [first, , second] = await Promise.all([load(1, signal(), false), sources.prefetch(asset, 1, 'page-1'), load(1, signal(), false)]);
    expect(calls.origin).toBe(1);
    expect(await bytesOf(first)).toEqual(fromBytes(1));
    expect(await bytesOf(second)).toEqual(fromBytes(1));
    await vi.waitFor(async () => expect(await store.list(asset.id)).toEqual([1]));
    await vi.waitFor(() => expect(notices.filter((notice) => notice.type === 'piece-delivered')).toHaveLength(1));
  });

  it('a prefetch of a piece the store holds already reports it stored, with no bytes moved and no origin fetch', async () => {
    const { calls, sources, asset, notices, store } = await setup();
    await store.put({ asset: asset.id, piece: 1, data: fromBytes(1) });
    await sources.prefetch(asset, 1, 'page-1');
    expect(calls.origin).toBe(0);
    expect(notices).toEqual([{ type: 'piece-delivered', asset: asset.id, piece: 1, source: 'store', bytes: 0, stored: true }]);
  });

  it('a piece this worker is prefetching from the origin is never fetched twice: a request joins the transfer, or takes it from the store once it completed', async () => {
    const asset = await makeAsset();
    const store = new MemoryPieceStore();
    let originCalls = 0;
    const peerCalls: number[] = [];
    let answerPeers!: () => void;
    const peersAnswer = new Promise<void>((resolve) => (answerPeers = resolve));
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const sources = new PieceSources({
      store,
      // For piece 2 the engine answers "no peer" only once the prefetch below has completed.
      fromPeers: async (_client, _asset, piece) => {
        peerCalls.push(piece);
        if (piece === 2) await peersAnswer;
        return undefined;
      },
      fromOrigin: async (_asset, piece) => {
        originCalls++;
        const growing = new GrowingPiece(fromBytes(piece).length);
        void held.then(() => growing.append(fromBytes(piece)));
        return growing;
      },
      notify: () => {},
      onStaleManifest: () => {},
    });
    const load = sources.loaderFor(asset, 'page-1');
    // Piece 1: the prefetch is under way when the player asks: it joins at once, peers are not asked.
    const prefetch1 = sources.prefetch(asset, 1, 'page-1');
    await vi.waitFor(() => expect(originCalls).toBe(1));
    const joined = load(1, signal(), false);
    release();
    expect(await bytesOf(await joined)).toEqual(fromBytes(1));
    await prefetch1;
    expect(peerCalls).toEqual([]);
    // Piece 2: the player asked peers before the prefetch started; it completes while they answer.
    const asked = load(2, signal(), false);
    await vi.waitFor(() => expect(peerCalls).toEqual([2]));
    await sources.prefetch(asset, 2, 'page-1');
    answerPeers();
    expect(await bytesOf(await asked)).toEqual(fromBytes(2));
    expect(originCalls).toBe(2);
  });

  it("tells its page when a live piece's origin bytes begin to arrive, and forwards them to the page as they come", async () => {
    const onDemand = await makeAsset();
    const live = { ...onDemand, live: { playlist: 'https://site.example/live/index.m3u8', segmentMs: 2000, windowMs: 12_000 } } as ManifestAsset;
    const store = new MemoryPieceStore();
    const notices: WorkerToPage[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const sources = new PieceSources({
      store,
      fromPeers: async () => undefined,
      fromOrigin: async (_asset, piece) => {
        const growing = new GrowingPiece(fromBytes(piece).length);
        growing.append(fromBytes(piece).subarray(0, 100));
        void held.then(() => growing.append(fromBytes(piece).subarray(100)));
        return growing;
      },
      notify: (_client, message) => notices.push(message),
      onStaleManifest: () => {},
    });
    const forward = (piece: number) => {
      const channel = new MessageChannel();
      const parts: ForwardPart[] = [];
      channel.port1.onmessage = (event: MessageEvent) => parts.push(event.data as ForwardPart);
      return { parts, done: sources.forward(live.id, piece, channel.port2), close: () => channel.port1.close() };
    };
    const joined = (parts: ForwardPart[]) => Buffer.concat(parts.map((part) => (part.type === 'forward-bytes' ? new Uint8Array(part.data) : new Uint8Array())));

    const prefetch = sources.prefetch(live, 1, 'page-1');
    await vi.waitFor(() => expect(notices).toContainEqual({ type: 'piece-arriving', asset: live.id, piece: 1 }));
    const arriving = forward(1);
    // The first bytes go to the page before the rest has come.
    await vi.waitFor(() => expect(arriving.parts).toHaveLength(1));
    expect(joined(arriving.parts)).toEqual(Buffer.from(fromBytes(1).subarray(0, 100)));
    release();
    await Promise.all([arriving.done, prefetch]);
    await vi.waitFor(() => expect(joined(arriving.parts)).toEqual(Buffer.from(fromBytes(1))));
    // Asked for once it is stored: the whole piece; asked for one never fetched: refused.
    const stored = forward(1);
    const never = forward(2);
    await Promise.all([stored.done, never.done]);
    await vi.waitFor(() => expect(stored.parts.length + never.parts.length).toBe(2));
    expect(joined(stored.parts)).toEqual(Buffer.from(fromBytes(1)));
    expect(never.parts).toEqual([{ type: 'forward-failed' }]);
    for (const { close } of [arriving, stored, never]) close();
    // An on-demand piece is not announced before it is whole.
    await sources.prefetch(onDemand, 2, 'page-1');
    expect(notices.filter((notice) => notice.type === 'piece-arriving')).toHaveLength(1);
  });

  it('stops a prefetch no response reads when a peer fetches the piece itself, before or after its headers; one a response reads goes on', async () => {
    const asset = await makeAsset();
    const store = new MemoryPieceStore();
    const notices: WorkerToPage[] = [];
    const transfers = new Map<number, { growing: GrowingPiece; signal: AbortSignal }>();
    /** Pieces whose origin response does not come until their signal aborts. */
    const noHeaders = new Set([3]);
    const waitingForHeaders: number[] = [];
    const aborted: number[] = [];
    const sources = new PieceSources({
      store,
      fromPeers: async () => undefined,
      fromOrigin: async (_asset, piece, signal) => {
        if (noHeaders.has(piece)) {
          waitingForHeaders.push(piece);
          return new Promise((_resolve, reject) =>
            signal.addEventListener('abort', () => {
              aborted.push(piece);
              reject(new Error('aborted'));
            }),
          );
        }
        const growing = new GrowingPiece(fromBytes(piece).length);
        growing.append(fromBytes(piece).subarray(0, 100));
        transfers.set(piece, { growing, signal });
        return growing;
      },
      notify: (_client, message) => notices.push(message),
      onStaleManifest: () => {},
    });
    const load = sources.loaderFor(asset, 'page-1');

    // Piece 1, a prefetch only: its transfer fails, nothing is stored or reported.
    const prefetch1 = sources.prefetch(asset, 1, 'page-1');
    await vi.waitFor(() => expect(transfers.has(1)).toBe(true));
    sources.stopPrefetch(asset.id, 1);
    await prefetch1;
    expect(transfers.get(1)!.growing.failed).toBe(true);
    // Piece 2, a prefetch the player's response joined: it goes on.
    const prefetch2 = sources.prefetch(asset, 2, 'page-1');
    await vi.waitFor(() => expect(transfers.has(2)).toBe(true));
    // The response has the transfer's GrowingPiece (it joined) before the rest of the bytes arrive.
    const joined = await load(2, signal(), false);
    sources.stopPrefetch(asset.id, 2);
    transfers.get(2)!.growing.append(fromBytes(2).subarray(100));
    expect(await bytesOf(joined)).toEqual(fromBytes(2));
    await prefetch2;
    // Piece 3, stopped while its request waits for the origin's headers.
    const prefetch3 = sources.prefetch(asset, 3, 'page-1');
    await vi.waitFor(() => expect(waitingForHeaders).toEqual([3]));
    sources.stopPrefetch(asset.id, 3);
    await prefetch3;
    expect(aborted).toEqual([3]);

    await vi.waitFor(async () => expect(await store.list(asset.id)).toEqual([2]));
    expect(notices.flatMap((notice) => (notice.type === 'piece-delivered' ? [notice.piece] : []))).toEqual([2]);
    // A stop for a piece no prefetch fetches changes nothing; the stopped piece is fetched anew when the player asks.
    sources.stopPrefetch(asset.id, 0);
    const again = load(1, signal(), false);
    await vi.waitFor(() => expect(transfers.get(1)!.growing.failed).toBe(false));
    transfers.get(1)!.growing.append(fromBytes(1).subarray(100));
    expect(await bytesOf(await again)).toEqual(fromBytes(1));
  });

  it("a stop never aborts a transfer a response shares, when the prefetch came while the response waited for the asset's first origin headers", async () => {
    const asset = await makeAsset();
    const transfers = new Map<number, GrowingPiece>();
    let firstHeaders!: () => void;
    const fromPeersAsked: number[] = [];
    const sources = new PieceSources({
      store: new MemoryPieceStore(),
      fromPeers: async (_client, _asset, piece) => (fromPeersAsked.push(piece), undefined),
      fromOrigin: async (_asset, piece) => {
        // The asset's first origin response (piece 0) keeps the others waiting until its headers come.
        if (piece === 0) await new Promise<void>((resolve) => (firstHeaders = resolve));
        const growing = new GrowingPiece(fromBytes(piece).length);
        growing.append(fromBytes(piece).subarray(0, 100));
        transfers.set(piece, growing);
        return growing;
      },
      notify: () => {},
      onStaleManifest: () => {},
    });
    const load = sources.loaderFor(asset, 'page-1');
    void sources.prefetch(asset, 0, 'page-1');
    await vi.waitFor(() => expect(firstHeaders).toBeDefined());
    // The player's response for piece 2 waits for those headers; a prefetch of piece 2 comes meanwhile.
    const reading = load(2, signal(), false);
    await vi.waitFor(() => expect(fromPeersAsked).toContain(2));
    const prefetch = sources.prefetch(asset, 2, 'page-1');
    firstHeaders();
    await vi.waitFor(() => expect(transfers.has(2)).toBe(true));
    // A peer says it fetches piece 2 itself: the transfer goes on, the response reads it whole.
    sources.stopPrefetch(asset.id, 2);
    transfers.get(2)!.append(fromBytes(2).subarray(100));
    expect(await bytesOf(await reading)).toEqual(fromBytes(2));
    await prefetch;
  });

  it('finishes a piece peers half-delivered with an origin Range from where they stopped, verified whole before the player gets it', async () => {
    const half = fromBytes(1).slice(0, 5000);
    const { load, calls, store, asset, notices } = await setup({ peers: (piece) => (piece === 1 ? { partial: half } : undefined) });
    const loaded = await load(1, signal(), false);
    // Whole and verified bytes, not a stream of origin bytes: the peers' part was unverified until now.
    expect(loaded).toBeInstanceOf(Uint8Array);
    expect(loaded).toEqual(fromBytes(1));
    expect(calls.originFrom).toEqual([5000]);
    expect(await store.list(asset.id)).toEqual([1]);
    const delivered = notices.flatMap((notice) => (notice.type === 'piece-delivered' ? [[notice.source, notice.bytes, notice.stored]] : []));
    expect(delivered).toEqual([
      ['origin', PIECE - 5000, true],
      ['peers', 5000, false],
    ]);
  });

  it('a half-delivered piece whose whole fails its hash: the player gets the origin piece, never the peer bytes', async () => {
    const forged = new Uint8Array(5000).fill(7);
    const { load, calls, store, asset } = await setup({ peers: (piece) => (piece === 1 ? { partial: forged } : undefined) });
    expect(await bytesOf(await load(1, signal(), false))).toEqual(fromBytes(1));
    expect(calls.originFrom).toEqual([5000, 0]);
    await vi.waitFor(async () => expect(await store.list(asset.id)).toEqual([1]));
    expect(await store.get(asset.id, 1)).toEqual(fromBytes(1));
  });

  it('a response streams origin bytes before the piece is complete', async () => {
    const asset = await makeAsset();
    const growing = new GrowingPiece(PIECE);
    const response = assetResponse(asset, 'bytes=0-99', async () => growing);
    const reader = response.body!.getReader();
    growing.append(fromBytes(0).subarray(0, 50));
    const firstPart = await reader.read();
    expect(firstPart.value).toEqual(fromBytes(0).subarray(0, 50));
    growing.append(fromBytes(0).subarray(50));
    const secondPart = await reader.read();
    expect(secondPart.value).toEqual(fromBytes(0).subarray(50, 100));
    expect((await reader.read()).done).toBe(true);
  });

  it('an origin body that breaks off errors the response', async () => {
    const asset = await makeAsset();
    const growing = new GrowingPiece(PIECE);
    const response = assetResponse(asset, null, async () => growing);
    growing.append(new Uint8Array(10));
    growing.fail(new Error('connection reset'));
    await expect(response.arrayBuffer()).rejects.toThrow();
  });
});

describe('PieceSources and HLS segments', () => {
  it('the next segment of a playing stream is not a start; the first segment and a jump are', async () => {
    const pieces = [await sha256Hex(fromBytes(0))];
    const segment = (name: string) => ({ url: `/hls/${name}`, size: PIECE, contentType: 'video/mp2t', pieceSize: PIECE, pieces });
    const manifest = await parseManifest(
      { version: 1, assets: [segment('seg-000.ts'), segment('seg-001.ts'), segment('seg-002.ts'), segment('seg-003.ts')] },
      'https://site.example/peerfetch-manifest.json',
    );
    const firsts: boolean[] = [];
    const sources = new PieceSources({
      store: undefined,
      fromPeers: async (_client, _asset, _piece, options) => (firsts.push(options.first), { data: fromBytes(0), byOtherPage: false }),
      fromOrigin: async () => new GrowingPiece(0),
      notify: () => {},
      onStaleManifest: () => {},
    });
    const play = (index: number) => sources.loaderFor(manifest.assets[index]!, 'page-1')(0, new AbortController().signal, true);
    await play(0);
    await play(1);
    await play(3);
    expect(firsts).toEqual([true, false, true]);
  });

  it('a live piece read ahead may wait up to one segment for peers when the player has buffered enough; a first piece only the first-piece deadline', async () => {
    const pieces = [await sha256Hex(fromBytes(0))];
    const segment = (name: string) => ({ url: `/live/${name}`, size: PIECE, contentType: 'video/mp2t', pieceSize: PIECE, pieces });
    const manifest = await parseManifest(
      { version: 1, live: [{ playlist: '/live/index.m3u8', segmentMs: 2000, windowMs: 12_000 }], assets: [segment('seg-7.ts'), segment('seg-8.ts')] },
      'https://site.example/peerfetch-manifest.json',
    );
    const asked: { deadlineMs: number; maxDeadlineMs: number | undefined }[] = [];
    const sources = new PieceSources({
      store: undefined,
      fromPeers: async (_client, _asset, _piece, { deadlineMs, maxDeadlineMs }) => (asked.push({ deadlineMs, maxDeadlineMs }), { data: fromBytes(0), byOtherPage: false }),
      fromOrigin: async () => new GrowingPiece(0),
      notify: () => {},
      onStaleManifest: () => {},
    });
    const play = (index: number) => sources.loaderFor(manifest.assets[index]!, 'page-1')(0, new AbortController().signal, true);
    await play(0);
    await play(1);
    expect(asked).toEqual([
      { deadlineMs: FIRST_PIECE_DEADLINE_MS, maxDeadlineMs: undefined },
      { deadlineMs: 1000, maxDeadlineMs: 2000 },
    ]);
  });
});

describe('SharedTasks', () => {
  it('runs one task per key; the last waiter to leave aborts it', async () => {
    const tasks = new SharedTasks<string>();
    let started = 0;
    let abortedTask = false;
    const start = (taskSignal: { aborted: boolean; addEventListener(t: 'abort', l: () => void): void }) => {
      started++;
      return new Promise<string>((_, reject) => taskSignal.addEventListener('abort', () => ((abortedTask = true), reject(new Error('x')))));
    };
    const a = new AbortController();
    const b = new AbortController();
    const first = tasks.run('k', start, a.signal);
    const second = tasks.run('k', start, b.signal);
    expect(started).toBe(1);
    a.abort();
    await expect(first).rejects.toMatchObject({ code: 'aborted' });
    expect(abortedTask).toBe(false);
    b.abort();
    await expect(second).rejects.toMatchObject({ code: 'aborted' });
    expect(abortedTask).toBe(true);
    expect(tasks.has('k')).toBe(false);
  });

  it('a waiter leaving after the task settled aborts nothing (an origin body keeps arriving)', async () => {
    const tasks = new SharedTasks<string>();
    let aborted = false;
    const caller = new AbortController();
    const result = await tasks.run('k', async (signal) => {
      signal.addEventListener('abort', () => (aborted = true));
      return 'headers';
    }, caller.signal);
    caller.abort();
    expect(result).toBe('headers');
    expect(aborted).toBe(false);
  });

  it('gives every waiter the same result', async () => {
    const tasks = new SharedTasks<number>();
    const results = await Promise.all([tasks.run('k', async () => 42), tasks.run('k', async () => 7)]);
    expect(results).toEqual([42, 42]);
  });
});

describe('a file that changed on the origin', () => {
  const growingOf = (data: Uint8Array, parts = 2) => {
    const growing = new GrowingPiece(data.length);
    const step = Math.ceil(data.length / parts);
    for (let at = 0; at < data.length; at += step) setTimeout(() => growing.append(data.subarray(at, at + step)), 1);
    return growing;
  };
  /** Reads a response body to its end or its error: the bytes that reached the reader, and whether it failed. */
  async function readAll(response: Response): Promise<{ bytes: Uint8Array; failed: boolean }> {
    const reader = response.body!.getReader();
    const parts: Uint8Array[] = [];
    let failed = false;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parts.push(value);
      }
    } catch {
      failed = true;
    }
    const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
    let at = 0;
    for (const part of parts) (bytes.set(part, at), (at += part.length));
    return { bytes, failed };
  }

  it('a later origin piece of another version never joins the response: it fails before any byte of that piece', async () => {
    const asset = await makeAsset();
    const newVersion = fromBytes(1).map((byte) => byte ^ 0xff);
    // Piece 0 verified (the store or peers, the old version), piece 1 from the origin, which now has the new one.
    const response = assetResponse(asset, null, async (piece) => (piece === 0 ? fromBytes(0) : piece === 1 ? growingOf(newVersion) : fromBytes(piece)));
    const { bytes: received, failed } = await readAll(response);
    expect(failed).toBe(true);
    expect(received).toEqual(fromBytes(0));
  });

  it('a first origin piece that fails its hash fails the response before the next piece', async () => {
    const asset = await makeAsset();
    const newVersion = fromBytes(0).map((byte) => byte ^ 0xff);
    const response = assetResponse(asset, null, async (piece) => (piece === 0 ? growingOf(newVersion) : fromBytes(piece)));
    const { bytes: received, failed } = await readAll(response);
    expect(failed).toBe(true);
    // Its bytes streamed as they arrived (startup as fast as plain HTTP), and nothing after them.
    expect(received.length).toBeLessThanOrEqual(PIECE);
  });

  it('origin pieces of the listed version stream to the end', async () => {
    const asset = await makeAsset();
    const response = assetResponse(asset, 'bytes=100-', async (piece) => growingOf(fromBytes(piece), 3));
    const { bytes: received, failed } = await readAll(response);
    expect(failed).toBe(false);
    expect(received).toEqual(bytes.subarray(100));
  });

  it('fails the piece and asks for the manifest again', async () => {
    const asset = await makeAsset();
    let stale = 0;
    const sources = new PieceSources({
      store: undefined,
      fromPeers: async () => undefined,
      fromOrigin: async () => {
        throw new PeerfetchError('origin-failed', 'the file changed', { status: 206, changed: true });
      },
      notify: () => {},
      onStaleManifest: () => stale++,
    });
    const error = await sources.loaderFor(asset, 'page-1')(1, new AbortController().signal, true).catch((caught: unknown) => caught);
    expect(isPeerfetchError(error, 'origin-failed')).toBe(true);
    expect(stale).toBe(1);
  });
});
