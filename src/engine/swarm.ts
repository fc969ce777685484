import { Bitfield } from '../shared/bitfield.js';
import { PeerfetchError } from '../shared/errors.js';
import { verifyPiece } from '../shared/integrity.js';
import type { Manifest, ManifestAsset } from '../shared/manifest.js';
import { pieceCount, pieceSpan } from '../shared/piece-math.js';
import type { PieceStore } from '../store/piece-store.js';
import { SharedTasks } from '../shared/shared-tasks.js';
import { Peer } from './peer.js';
import { UploadLimiter } from './upload-limiter.js';

/** Connected peers we aim for: enough sources for parallel pieces, few enough for a phone's radio. */
export const MAX_PEERS = 8;

/**
 * Longest time (ms) one peer gets for one piece before the next peer is tried: a 256 KiB piece
 * takes ~50 ms at the 5 MB/s a channel carries here, so 3 s only trips on a stalled peer.
 */
const PEER_ATTEMPT_TIMEOUT_MS = 3000;

/** What the swarm reports upwards (the orchestrator turns these into stats and public events). */
export interface SwarmCallbacks {
  onPeerConnect(peer: Peer): void;
  onPeerDisconnect(peer: Peer, reason: string): void;
  onPieceVerified(asset: ManifestAsset, piece: number, peer: Peer, bytes: number): void;
  onPieceRejected(asset: ManifestAsset, piece: number, peer: Peer): void;
  onUploaded(peer: Peer, bytes: number): void;
  /** A peer announced new pieces (the scheduler may have new work). */
  onPeerHave(peer: Peer): void;
}

export type PieceResult =
  | { ok: true; data: Uint8Array }
  | { ok: false; reason: 'no-peer' | 'slow-peers' | 'timeout' | 'rejected' | 'unknown-asset' };

/**
 * The peers of this page's swarm, what each holds, and fetching verified pieces from them.
 * Every byte from a peer is checked against the manifest's SHA-256 before it leaves this class;
 * a peer that sends a bad piece is dropped and never accepted again.
 */
export class Swarm {
  readonly peers = new Map<string, Peer>();
  /** The cap on what this page uploads to all peers together. */
  readonly uploads = new UploadLimiter();
  readonly #banned = new Set<string>();
  /** Connections being made (see reservePeerSlot). */
  #connecting = 0;
  readonly #manifest: Manifest;
  readonly #assets: Map<string, ManifestAsset>;
  readonly #store: PieceStore;
  readonly #callbacks: SwarmCallbacks;
  /** What we hold, per asset id: sent in hellos, kept current by `markHave`. */
  readonly #have = new Map<string, Bitfield>();
  /** Peer downloads in progress, one per piece, shared by every caller that wants that piece. */
  readonly #downloads = new SharedTasks<PieceResult, AbortSignal>();
  /** Callers waiting for some peer to announce a piece. */
  readonly #haveWaiters = new Set<{ asset: string; piece: number; resolve(): void }>();

  constructor(manifest: Manifest, store: PieceStore, callbacks: SwarmCallbacks) {
    this.#manifest = manifest;
    this.#assets = new Map(manifest.assets.map((asset) => [asset.id, asset]));
    this.#store = store;
    this.#callbacks = callbacks;
  }

  /** Loads what the store already holds (pieces kept from earlier visits are seeded again). */
  async loadHave(): Promise<void> {
    for (const asset of this.#manifest.assets) {
      const bits = new Bitfield(pieceCount(asset.size, asset.pieceSize));
      for (const piece of await this.#store.list(asset.id).catch(() => [])) bits.set(piece);
      this.#have.set(asset.id, bits);
    }
  }

  asset(id: string): ManifestAsset | undefined {
    return this.#assets.get(id);
  }

  isConnected(peerId: string): boolean {
    return this.peers.has(peerId) || this.#banned.has(peerId);
  }

  /** Peers still wanted: MAX_PEERS less the connected ones and those being connected. */
  wantedPeers(): number {
    return Math.max(0, MAX_PEERS - this.peers.size - this.#connecting);
  }

  /**
   * Takes a slot for a connection being made (an offer out, an offer being answered), so that the
   * page never holds more than MAX_PEERS connections, pending ones included: each
   * RTCPeerConnection costs memory, sockets and ICE work, and offers arrive as fast as a tracker
   * sends them. Returns the function that gives the slot back (once), or undefined when none is free.
   */
  reservePeerSlot(): (() => void) | undefined {
    if (this.wantedPeers() === 0) return undefined;
    this.#connecting++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#connecting--;
    };
  }

  /** We now hold `piece` (from the origin via the SW, or from a peer): tell every peer. */
  markHave(assetId: string, piece: number): void {
    const bits = this.#have.get(assetId);
    if (!bits || bits.has(piece)) return;
    bits.set(piece);
    for (const peer of this.peers.values()) peer.announceHave(assetId, piece);
  }

  /** Piece indexes held of `assetId`. */
  *held(assetId: string): Generator<number> {
    const bits = this.#have.get(assetId);
    if (bits) for (let piece = 0; piece < bits.length; piece++) if (bits.has(piece)) yield piece;
  }

  /** Forgets every held piece (the store was cleared); peers asking for them are told `not-found`. */
  forgetAll(): void {
    for (const [id, bits] of this.#have) this.#have.set(id, new Bitfield(bits.length));
  }

  /**
   * A held piece's bytes for upload. The SW evicts pieces from the shared store to stay under its
   * cap without telling the page: a piece found gone is no longer held (stats and the hellos to
   * new peers say so; the asking peer gets `not-found` and takes it elsewhere).
   */
  async #readHeld(assetId: string, piece: number): Promise<Uint8Array | undefined> {
    const data = await this.#store.get(assetId, piece);
    if (!data) this.#have.get(assetId)?.clear(piece);
    return data;
  }

  holds(assetId: string, piece: number): boolean {
    return this.#have.get(assetId)?.has(piece) ?? false;
  }

  addPeer(peerId: string, connection: RTCPeerConnection, channel: RTCDataChannel): void {
    if (this.isConnected(peerId) || this.peers.size >= MAX_PEERS) {
      connection.close();
      return;
    }
    const peer = new Peer(peerId, connection, channel, {
      pieceCount: (id) => {
        const asset = this.#assets.get(id);
        return asset && pieceCount(asset.size, asset.pieceSize);
      },
      readPiece: (id, piece) => (this.holds(id, piece) ? this.#readHeld(id, piece) : Promise.resolve(undefined)),
      onHave: (from) => {
        for (const waiter of this.#haveWaiters) if (waiter.piece < 0 || from.has(waiter.asset, waiter.piece)) waiter.resolve();
        this.#callbacks.onPeerHave(from);
      },
      onUploaded: (from, bytes) => this.#callbacks.onUploaded(from, bytes),
      beforeUpload: (bytes) => this.uploads.take(bytes),
      onClose: (closed, reason) => {
        if (this.peers.get(closed.id) !== closed) return;
        this.peers.delete(closed.id);
        this.#callbacks.onPeerDisconnect(closed, reason);
      },
    });
    this.peers.set(peerId, peer);
    peer.hello(Object.fromEntries([...this.#have].map(([id, bits]) => [id, bits.toHex()])));
    this.#callbacks.onPeerConnect(peer);
  }

  /** Connected peers that hold `piece`. */
  availability(assetId: string, piece: number): number {
    let count = 0;
    for (const peer of this.peers.values()) if (!peer.closed && peer.has(assetId, piece)) count++;
    return count;
  }

  /** Whether a peer holding `piece` is expected to deliver it within `ms` (see Peer.expectedDelay). */
  canDeliverWithin(assetId: string, piece: number, ms: number): boolean {
    const asset = this.#assets.get(assetId);
    if (!asset) return false;
    const span = pieceSpan(piece, asset.size, asset.pieceSize);
    return this.#holders(assetId, piece, new Set()).some((peer) => peer.expectedDelay(span.end - span.start) * 1000 <= ms);
  }

  /** Whether a peer download of `piece` is in progress. */
  downloading(assetId: string, piece: number): boolean {
    return this.#downloads.has(`${assetId}/${piece}`);
  }

  /** Resolves true once some peer is connected and has said what it holds, false after `timeoutMs` or an abort. */
  waitForPeer(timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    if (this.peers.size > 0) return Promise.resolve(true);
    return this.waitForHave('', -1, timeoutMs, signal);
  }

  /**
   * Resolves true as soon as a connected peer holds `piece` (any peer's hello when `piece` is -1),
   * false after `timeoutMs` or an abort.
   */
  waitForHave(assetId: string, piece: number, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    if (piece >= 0 && this.availability(assetId, piece) > 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (found: boolean) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.#haveWaiters.delete(waiter);
        resolve(found);
      };
      const waiter = { asset: assetId, piece, resolve: () => finish(true) };
      const onAbort = () => finish(false);
      const timer = setTimeout(() => finish(false), timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      this.#haveWaiters.add(waiter);
    });
  }

  /**
   * A verified piece from peers, trying those that hold it (fastest expected first) until one
   * delivers good bytes or `deadlineMs` passes. Callers wanting the same piece share one
   * transfer; the transfer is cancelled at the peer when every caller has gone. Never rejects.
   * When no peer holding the piece is expected to deliver it within `deadlineMs` (all measured
   * too slow), answers `slow-peers` at once instead of waiting the deadline out.
   */
  async fetchPiece(assetId: string, piece: number, deadlineMs: number, signal: AbortSignal): Promise<PieceResult> {
    const asset = this.#assets.get(assetId);
    if (!asset || piece >= asset.pieces.length) return { ok: false, reason: 'unknown-asset' };
    if (this.availability(assetId, piece) > 0 && !this.canDeliverWithin(assetId, piece, deadlineMs)) return { ok: false, reason: 'slow-peers' };
    const deadline = AbortSignal.any([signal, AbortSignal.timeout(deadlineMs)]);
    try {
      return await this.#downloads.run(`${assetId}/${piece}`, (shared) => this.#download(asset, piece, shared), deadline);
    } catch {
      return { ok: false, reason: 'timeout' };
    }
  }

  async #download(asset: ManifestAsset, piece: number, signal: AbortSignal): Promise<PieceResult> {
    const span = pieceSpan(piece, asset.size, asset.pieceSize);
    const bytes = span.end - span.start;
    const tried = new Set<string>();
    let rejected = false;
    while (!signal.aborted) {
      const candidates = this.#holders(asset.id, piece, tried).sort((a, b) => a.expectedDelay(bytes) - b.expectedDelay(bytes));
      const peer = candidates[0];
      if (!peer) break;
      tried.add(peer.id);
      let data: Uint8Array;
      try {
        const attempt = AbortSignal.any([signal, AbortSignal.timeout(PEER_ATTEMPT_TIMEOUT_MS)]);
        data = await peer.request(asset.id, piece, bytes, attempt);
      } catch (error) {
        if (error instanceof PeerfetchError && error.code === 'codec-invalid') this.#ban(peer, asset, piece);
        continue;
      }
      if (!(await verifyPiece(data, asset.pieces[piece]!))) {
        rejected = true;
        this.#ban(peer, asset, piece);
        continue;
      }
      await this.#store.put({ asset: asset.id, piece, data }).catch(() => {});
      this.#callbacks.onPieceVerified(asset, piece, peer, data.length);
      this.markHave(asset.id, piece);
      return { ok: true, data };
    }
    if (signal.aborted) return { ok: false, reason: 'timeout' };
    return { ok: false, reason: rejected ? 'rejected' : tried.size === 0 ? 'no-peer' : 'timeout' };
  }

  /** Open peers that hold `piece` of `assetId`, other than those in `except`. */
  #holders(assetId: string, piece: number, except: ReadonlySet<string>): Peer[] {
    return [...this.peers.values()].filter((peer) => !except.has(peer.id) && !peer.closed && peer.has(assetId, piece));
  }

  #ban(peer: Peer, asset: ManifestAsset, piece: number): void {
    this.#banned.add(peer.id);
    this.#callbacks.onPieceRejected(asset, piece, peer);
    peer.close('sent a piece that failed its hash');
  }

  destroy(): void {
    for (const peer of [...this.peers.values()]) peer.close('destroyed');
    this.peers.clear();
  }
}
