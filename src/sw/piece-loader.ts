import { streamKey, type ManifestAsset, type ManifestLive } from '../shared/manifest.js';
import { PeerfetchError } from '../shared/errors.js';
import { verifyPiece } from '../shared/integrity.js';
import { pieceSpan } from '../shared/piece-math.js';
import { SharedTasks } from '../shared/shared-tasks.js';
import type { ForwardPart, WorkerToPage } from '../shared/bridge-messages.js';
import { GrowingPiece } from './growing-piece.js';
import { isFileChanged } from './origin-fetch.js';
import type { PieceStore } from '../store/piece-store.js';
import type { PieceLoader } from './asset-response.js';

/**
 * Time (ms) the page engine gets to deliver a piece from peers before the SW goes to the origin.
 * The engine answers at once when no peer can help, so this only bounds a slow or waiting peer;
 * 4 s is about two pieces of 1.2 Mbit/s video, which a playing player has buffered.
 */
export const PEER_DEADLINE_MS = 4000;
/**
 * Deadline (ms) for the first piece of a response: the player is waiting for it right now
 * (startup or seek), so a peer only gets it if it can answer about as fast as the origin.
 */
export const FIRST_PIECE_DEADLINE_MS = 1000;
/**
 * Deadline (ms) for a piece of a live stream. A live player keeps little buffer (hls.js plays
 * three target durations behind the edge and fetches each segment as it appears), so peers get
 * half a segment's play time: 1 s for 2 s segments, never more than PEER_DEADLINE_MS.
 */
export function liveDeadlineMs(live: ManifestLive): number {
  return Math.min(PEER_DEADLINE_MS, Math.max(FIRST_PIECE_DEADLINE_MS, live.segmentMs / 2));
}
/**
 * Longest deadline (ms) of a live piece whose player has buffered ahead: one segment's play time,
 * never more than PEER_DEADLINE_MS. The page's engine gives it what the buffer spares beyond one
 * segment's play time (engine/playback-slack.ts, liveReserveMs). hls.js plays three segments
 * behind the edge, so it has 4-6 s buffered when a new segment appears: a piece of it may wait
 * 2 s for the member fetching it from the origin (0.7 s for 256 KiB at 3 Mbit/s, after it learnt
 * of the segment), where the plain live deadline let it wait 0.7 s.
 */
export function liveMaxDeadlineMs(live: ManifestLive): number {
  return Math.min(PEER_DEADLINE_MS, Math.max(liveDeadlineMs(live), live.segmentMs));
}
/**
 * Longest deadline (ms) of an on-demand piece whose player has buffered far ahead: the page's
 * engine waits for peers up to its buffer minus a reserve (engine/playback-slack.ts), never longer
 * than this. A peer on a home line 1.7x the video's bitrate (2 Mbit/s for 1.2 Mbit/s) sends a
 * 256 KiB piece in about a second: within 4 s it can take one or two pieces behind others; within
 * 8 s a stream's worth. Below hls.js's 10 s time-to-first-byte limit for a fragment.
 */
export const PLAYBACK_MAX_DEADLINE_MS = 8000;
/** A request continues a page's stream when it asks for what follows that stream's last piece within this time (ms). */
const STREAM_CONTINUATION_MS = 30_000;

/** A page engine's answer: verified bytes from peers and whether the asking page's own engine got them. */
export interface PeerDelivery {
  data: Uint8Array;
  byOtherPage: boolean;
}

/** The first bytes of a piece that peers delivered before the deadline, not verified: the origin finishes it. */
export interface PeerPartial {
  partial: Uint8Array;
}

export type PeerAnswer = PeerDelivery | PeerPartial;

/** What the sources need from their surroundings (injected, so they run in tests without a SW). */
export interface PieceSourcesComponents {
  /** The local store, or undefined when IndexedDB is unavailable. */
  store: PieceStore | undefined;
  /** Asks a page engine for the piece from peers (verified there); undefined = no. */
  fromPeers(
    clientId: string,
    asset: ManifestAsset,
    piece: number,
    options: { deadlineMs: number; maxDeadlineMs?: number; first: boolean; signal: AbortSignal },
  ): Promise<PeerAnswer | undefined>;
  /** Starts an origin fetch of the piece from byte `from` on (default 0); resolves once its bytes start arriving. */
  fromOrigin(asset: ManifestAsset, piece: number, signal: AbortSignal, from?: number): Promise<GrowingPiece>;
  /** Stats and "stored" notices for a page. */
  notify(clientId: string, message: WorkerToPage): void;
  /** Origin bytes did not match the manifest: it is probably stale. */
  onStaleManifest(asset: ManifestAsset, piece: number): void;
}

/**
 * Where a piece's bytes come from, in order: local store, peers (through a page engine), origin.
 * Store and peer failures fall through to the next source; only an origin failure rejects.
 * Origin transfers are shared: a stream and a prefetch wanting the same piece share one fetch,
 * and its bytes flow to every reader as they arrive.
 */
export class PieceSources {
  readonly #components: PieceSourcesComponents;
  /** Origin fetches waiting for their response headers. */
  readonly #originFetches = new SharedTasks<GrowingPiece, AbortSignal>();
  /** Origin pieces whose bytes are arriving, until they are complete (and stored). */
  readonly #arriving = new Map<string, GrowingPiece>();
  /** Origin transfers a page's prefetch started that no response has read yet: they may be stopped (see stopPrefetch). */
  readonly #unread = new Set<string>();
  /** Per asset, settled once its first origin response is in (see #fromOrigin). */
  readonly #firstOriginResponse = new Map<string, Promise<void>>();
  /** Whole assets from an origin that ignores Range, held while their pieces are being stored. */
  readonly #wholeAssets = new Map<string, Uint8Array>();
  /** Per page and stream, the last piece asked for: tells a new segment of a playing stream from a real start. */
  readonly #streamHeads = new Map<string, { index: number; piece: number; at: number }>();

  constructor(components: PieceSourcesComponents) {
    this.#components = components;
  }

  /** The loader of one response to the page `clientId`. */
  loaderFor(asset: ManifestAsset, clientId: string): PieceLoader {
    return async (piece, signal, firstOfResponse) => {
      const { notify } = this.#components;
      const continues = this.#continues(clientId, asset, piece);
      const first = firstOfResponse && !continues;
      const stored = await this.#fromStore(asset, piece);
      if (stored) {
        notify(clientId, { type: 'piece-delivered', asset: asset.id, piece, source: 'store', bytes: stored.length, stored: true });
        return stored;
      }
      // This worker is fetching the piece from the origin already (a prefetch for the swarm, or
      // another response): join that transfer. Asking peers first let it complete and leave
      // #arriving meanwhile, and the origin sent the piece a second time (LAN benchmark, 2026-12-05:
      // the first viewer got seg-013's first piece twice, 0.8 s apart).
      if (this.#originUnderWay(asset, piece)) return this.#fromOrigin(asset, piece, clientId);
      const deadlineMs = first ? FIRST_PIECE_DEADLINE_MS : asset.live ? liveDeadlineMs(asset.live) : PEER_DEADLINE_MS;
      // A piece read ahead may wait longer when the player has buffered enough.
      const maxDeadlineMs = first ? undefined : asset.live ? liveMaxDeadlineMs(asset.live) : PLAYBACK_MAX_DEADLINE_MS;
      const delivery = await this.#components
        .fromPeers(clientId, asset, piece, { deadlineMs, maxDeadlineMs, first, signal })
        .catch(() => undefined);
      // The engine verified it, but the page is another context that any script of the site (or a
      // page of another deploy) can answer from: a piece that fails its hash here goes to the origin.
      // One SHA-256 per peer piece (about 1 ms per 256 KiB with WebCrypto).
      if (delivery && 'data' in delivery && (await verifyPiece(delivery.data, asset.pieces[piece]!))) {
        // The engine that fetched it counted it; tell the asking page when that was another tab.
        if (delivery.byOtherPage) {
          notify(clientId, { type: 'piece-delivered', asset: asset.id, piece, source: 'peers', bytes: delivery.data.length, stored: true });
        }
        return delivery.data;
      }
      if (signal.aborted) throw new PeerfetchError('aborted', 'the response was cancelled');
      if (delivery && 'partial' in delivery) {
        const finished = await this.#finishFromOrigin(asset, piece, delivery.partial, clientId).catch(() => undefined);
        if (finished) return finished;
      }
      // What arrived from the origin while peers were asked (a prefetch that completed meanwhile) is in the store.
      const storedMeanwhile = this.#originUnderWay(asset, piece) ? undefined : await this.#fromStore(asset, piece);
      if (storedMeanwhile) {
        notify(clientId, { type: 'piece-delivered', asset: asset.id, piece, source: 'store', bytes: storedMeanwhile.length, stored: true });
        return storedMeanwhile;
      }
      return this.#fromOrigin(asset, piece, clientId);
    };
  }

  /** Whether an origin transfer of the piece is under way in this worker (waiting for headers, or its bytes arriving). */
  #originUnderWay(asset: ManifestAsset, piece: number): boolean {
    const key = `${asset.id}/${piece}`;
    return this.#originFetches.has(key) || this.#arriving.has(key);
  }

  /**
   * Whether `piece` of `asset` follows the last piece this page's stream asked for: hls.js asks
   * for each segment in its own request, but only the stream's first segment is a start the
   * player waits on; the next ones are read ahead and may wait for peers like any later piece.
   */
  #continues(clientId: string, asset: ManifestAsset, piece: number): boolean {
    const key = `${clientId}|${streamKey(asset)}`;
    const last = this.#streamHeads.get(key);
    const now = Date.now();
    this.#streamHeads.set(key, { index: asset.index, piece, at: now });
    if (this.#streamHeads.size > 256) this.#streamHeads.delete(this.#streamHeads.keys().next().value!);
    if (!last || now - last.at > STREAM_CONTINUATION_MS) return false;
    return piece === 0 ? last.index === asset.index - 1 : last.index === asset.index && last.piece === piece - 1;
  }

  /** The manifest changed: forgets what it kept about assets no longer in it (a live stream's window moved on). */
  forget(kept: ReadonlySet<string>): void {
    for (const id of this.#firstOriginResponse.keys()) if (!kept.has(id)) this.#firstOriginResponse.delete(id);
  }

  /**
   * Fetches a piece into the store ahead of need (store, else origin); never rejects. A piece the
   * store holds already is reported too (0 bytes moved): the page may not know it holds it (another
   * tab's request stored it), and a takeover waiting for it waited its whole 8 s for a notice.
   */
  async prefetch(asset: ManifestAsset, piece: number, clientId: string): Promise<void> {
    if (await this.#fromStore(asset, piece)) {
      return this.#components.notify(clientId, { type: 'piece-delivered', asset: asset.id, piece, source: 'store', bytes: 0, stored: true });
    }
    const key = `${asset.id}/${piece}`;
    if (!this.#originUnderWay(asset, piece)) this.#unread.add(key);
    const arriving = await this.#fromOrigin(asset, piece, clientId, true).catch(() => undefined);
    await arriving?.done.catch(() => {});
    this.#unread.delete(key);
  }

  /**
   * Stops the origin transfer of a piece that only a prefetch wants (a peer fetches it from the
   * origin itself, see the `reading` message's `origin`): the bytes not yet sent are not fetched
   * twice. A transfer a response reads goes on. Nothing is stored or reported for it.
   */
  stopPrefetch(assetId: string, piece: number): void {
    const key = `${assetId}/${piece}`;
    if (!this.#unread.delete(key)) return;
    this.#originFetches.abort(key);
    this.#arriving.get(key)?.fail(new PeerfetchError('aborted', 'a peer fetches the piece from the origin'));
  }

  /**
   * Passes the bytes of the piece's origin transfer under way here on to `port` as they arrive (see
   * the bridge's `forward`): the page offers them to peers before the piece is whole. A transfer that
   * ended meanwhile is read from the store; `forward-failed` when neither has it or the transfer fails.
   */
  async forward(assetId: string, piece: number, port: MessagePort): Promise<void> {
    const send = (data: Uint8Array) => {
      const buffer = data.slice().buffer;
      port.postMessage({ type: 'forward-bytes', data: buffer } satisfies ForwardPart, [buffer]);
    };
    try {
      const growing = this.#arriving.get(`${assetId}/${piece}`);
      if (growing) {
        for await (const part of growing.read(0, growing.data.length)) send(part);
        return;
      }
      const stored = await this.#components.store?.get(assetId, piece);
      if (!stored) throw new PeerfetchError('aborted', 'the piece is neither arriving nor stored');
      send(stored);
    } catch {
      port.postMessage({ type: 'forward-failed' } satisfies ForwardPart);
    } finally {
      port.close();
    }
  }

  async #fromStore(asset: ManifestAsset, piece: number): Promise<Uint8Array | undefined> {
    return this.#components.store?.get(asset.id, piece).catch(() => undefined);
  }

  /**
   * The piece from the origin, joining a transfer already under way. The page that started the
   * transfer is told once it is complete (its stats count the bytes once), and verified bytes
   * are stored.
   *
   * An origin transfer is never cancelled when the player drops the response that asked for it
   * (a seek, hls.js aborting a fragment): the origin has usually written most of a piece into
   * the socket already, so cancelling saves little and the player's next request for the piece
   * would fetch it a second time (measured in the flash-crowd benchmark: two origin copies of one
   * piece for one viewer). The completed piece is stored and shared instead.
   */
  async #fromOrigin(asset: ManifestAsset, piece: number, clientId: string, prefetch = false): Promise<GrowingPiece> {
    const key = `${asset.id}/${piece}`;
    // Until the asset's first origin response is in, it is unknown whether its origin honours
    // Range: other pieces wait for it (one round trip) rather than each risking a whole download.
    const first = this.#firstOriginResponse.get(asset.id);
    if (first && !this.#originFetches.has(key)) await first;
    // A response reads it: no longer stopped for a peer (see stopPrefetch). After the wait, as a
    // prefetch of the piece may have come meanwhile and marked it unread, and a stop would then
    // abort the transfer this response is about to share.
    if (!prefetch) this.#unread.delete(key);
    const arriving = this.#arriving.get(key);
    if (arriving) return arriving;
    const whole = this.#wholeAssets.get(asset.id);
    if (whole) {
      // Being stored piece by piece (see #keepWholeAsset): already here, no second download.
      const span = pieceSpan(piece, asset.size, asset.pieceSize);
      const growing = new GrowingPiece(span.end - span.start);
      growing.append(whole.subarray(span.start, span.end));
      return growing;
    }
    const fetching = this.#originFetches.run(
      key,
      async (shared) => {
        const askedAt = Date.now();
        const growing = await this.#components.fromOrigin(asset, piece, shared).catch((error: unknown) => {
          // The file changed on the origin: the manifest is stale, fetch it again (throttled).
          if (isFileChanged(error)) this.#components.onStaleManifest(asset, piece);
          throw error;
        });
        const latencyMs = Date.now() - askedAt;
        this.#arriving.set(key, growing);
        // At the live edge every member wants the piece now: the page offers it to peers as it arrives (see `forward`).
        if (asset.live) this.#components.notify(clientId, { type: 'piece-arriving', asset: asset.id, piece });
        // Every next piece is in this body already: none may start another whole download.
        if (growing.wholeAsset && !this.#wholeAssets.has(asset.id)) this.#wholeAssets.set(asset.id, growing.wholeAsset);
        void growing.done
          .then(async (data) => {
            const stored = await this.#verifyAndStore(asset, piece, data, growing);
            this.#components.notify(clientId, { type: 'piece-delivered', asset: asset.id, piece, source: 'origin', bytes: data.length, stored, latencyMs });
            if (growing.wholeAsset) await this.#keepWholeAsset(asset, piece, growing.wholeAsset, clientId);
          })
          .catch(() => {})
          .finally(() => this.#arriving.delete(key));
        return growing;
      },
    );
    if (!first) {
      this.#firstOriginResponse.set(
        asset.id,
        fetching.then(
          () => {},
          () => {},
        ),
      );
    }
    return fetching;
  }

  /**
   * A piece that peers delivered part of before the deadline: the origin sends the rest (a Range
   * from where the peers stopped), and the whole piece is verified before any byte of it goes to
   * the player (the peers' bytes are not trusted until then), then stored. Undefined when the
   * piece is arriving from the origin anyway (the caller joins that transfer) or when the whole
   * fails its hash (some peer sent bad bytes, or the manifest is stale): the caller then fetches
   * the whole piece from the origin.
   */
  async #finishFromOrigin(asset: ManifestAsset, piece: number, prefix: Uint8Array, clientId: string): Promise<Uint8Array | undefined> {
    const key = `${asset.id}/${piece}`;
    const span = pieceSpan(piece, asset.size, asset.pieceSize);
    if (prefix.length >= span.end - span.start || this.#arriving.has(key) || this.#originFetches.has(key) || this.#wholeAssets.has(asset.id)) return undefined;
    // Like any origin transfer, the rest is not cancelled with the player's request (see #fromOrigin).
    const askedAt = Date.now();
    const rest = await this.#components.fromOrigin(asset, piece, new AbortController().signal, prefix.length);
    const latencyMs = Date.now() - askedAt;
    const tail = await rest.done;
    const data = new Uint8Array(span.end - span.start);
    data.set(prefix);
    data.set(tail, prefix.length);
    if (!(await verifyPiece(data, asset.pieces[piece]!))) return undefined;
    const { store, notify } = this.#components;
    const stored = store ? await store.put({ asset: asset.id, piece, data }).then(() => true, () => false) : false;
    notify(clientId, { type: 'piece-delivered', asset: asset.id, piece, source: 'origin', bytes: tail.length, stored, latencyMs });
    notify(clientId, { type: 'piece-delivered', asset: asset.id, piece, source: 'peers', bytes: prefix.length, stored: false });
    return data;
  }

  /**
   * The origin ignored Range and sent the whole asset for one piece: stores every other piece of
   * it (verified), so the next pieces come from the store instead of another whole download each,
   * and serves them from memory until then (see #fromOrigin).
   */
  async #keepWholeAsset(asset: ManifestAsset, fetched: number, whole: Uint8Array, clientId: string): Promise<void> {
    if (this.#wholeAssets.get(asset.id) !== whole) return; // another request's copy is being stored
    // Farthest from the fetched piece first, the next ones last: when the asset is larger than the
    // store's cap, its LRU eviction drops the far pieces, not the ones the player reads next.
    const order: number[] = [];
    for (let piece = fetched - 1; piece >= 0; piece--) order.push(piece);
    for (let piece = asset.pieces.length - 1; piece > fetched; piece--) order.push(piece);
    try {
      for (const piece of order) {
        const span = pieceSpan(piece, asset.size, asset.pieceSize);
        const data = whole.slice(span.start, span.end);
        const stored = await this.#verifyAndStore(asset, piece, data);
        this.#components.notify(clientId, { type: 'piece-delivered', asset: asset.id, piece, source: 'origin', bytes: data.length, stored });
      }
    } finally {
      this.#wholeAssets.delete(asset.id);
    }
  }

  /**
   * Only verified origin bytes are stored and shared; a mismatch means the file changed on the
   * origin (the response that reads the piece fails on it too, see pieceStream).
   */
  async #verifyAndStore(asset: ManifestAsset, piece: number, data: Uint8Array, growing?: GrowingPiece): Promise<boolean> {
    const hash = asset.pieces[piece]!;
    if (!(await (growing ? growing.verify(hash) : verifyPiece(data, hash)))) {
      this.#components.onStaleManifest(asset, piece);
      return false;
    }
    const { store } = this.#components;
    if (!store) return false;
    return store.put({ asset: asset.id, piece, data }).then(
      () => true,
      () => false,
    );
  }
}
