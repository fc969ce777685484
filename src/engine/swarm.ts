import { Bitfield } from '../shared/bitfield.js';
import { PeerfetchError } from '../shared/errors.js';
import { verifyPiece } from '../shared/integrity.js';
import type { Manifest, ManifestAsset } from '../shared/manifest.js';
import { pieceCount, pieceSpan } from '../shared/piece-math.js';
import type { PieceStore } from '../store/piece-store.js';
import { Peer } from './peer.js';

/** Connected peers we aim for: enough sources for parallel pieces, few enough for a phone's radio. */
export const MAX_PEERS = 8;

/** What the swarm reports upwards (the orchestrator turns these into stats and public events). */
export interface SwarmCallbacks {
  onPeerConnect(peer: Peer): void;
  onPeerDisconnect(peer: Peer, reason: string): void;
  onPieceVerified(asset: ManifestAsset, piece: number, peer: Peer, bytes: number): void;
  onPieceRejected(asset: ManifestAsset, piece: number, peer: Peer): void;
  onUploaded(peer: Peer, bytes: number): void;
}

export type PieceResult =
  | { ok: true; data: Uint8Array }
  | { ok: false; reason: 'no-peer' | 'timeout' | 'rejected' | 'unknown-asset' };

/**
 * The peers of this page's swarm, what each holds, and fetching verified pieces from them.
 * Every byte from a peer is checked against the manifest's SHA-256 before it leaves this class;
 * a peer that sends a bad piece is dropped and never accepted again.
 */
export class Swarm {
  readonly peers = new Map<string, Peer>();
  readonly #banned = new Set<string>();
  readonly #manifest: Manifest;
  readonly #assets: Map<string, ManifestAsset>;
  readonly #store: PieceStore;
  readonly #callbacks: SwarmCallbacks;
  /** What we hold, per asset id: sent in hellos, kept current by `markHave`. */
  readonly #have = new Map<string, Bitfield>();

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

  wantedPeers(): number {
    return Math.max(0, MAX_PEERS - this.peers.size);
  }

  /** We now hold `piece` (from the origin via the SW, or from a peer): tell every peer. */
  markHave(assetId: string, piece: number): void {
    const bits = this.#have.get(assetId);
    if (!bits || bits.has(piece)) return;
    bits.set(piece);
    for (const peer of this.peers.values()) peer.announceHave(assetId, piece);
  }

  holds(assetId: string, piece: number): boolean {
    return this.#have.get(assetId)?.has(piece) ?? false;
  }

  addPeer(peerId: string, connection: RTCPeerConnection, channel: RTCDataChannel): void {
    if (this.isConnected(peerId)) {
      connection.close();
      return;
    }
    const peer = new Peer(peerId, connection, channel, {
      pieceCount: (id) => {
        const asset = this.#assets.get(id);
        return asset && pieceCount(asset.size, asset.pieceSize);
      },
      readPiece: (id, piece) => (this.holds(id, piece) ? this.#store.get(id, piece) : Promise.resolve(undefined)),
      onHave: () => {},
      onUploaded: (from, bytes) => this.#callbacks.onUploaded(from, bytes),
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

  /**
   * A verified piece from peers, trying those that hold it (least loaded first) until one
   * delivers good bytes or `deadlineMs` passes. Never rejects.
   */
  async fetchPiece(assetId: string, piece: number, deadlineMs: number, signal: AbortSignal): Promise<PieceResult> {
    const asset = this.#assets.get(assetId);
    if (!asset || piece >= asset.pieces.length) return { ok: false, reason: 'unknown-asset' };
    const deadline = AbortSignal.any([signal, AbortSignal.timeout(deadlineMs)]);
    const span = pieceSpan(piece, asset.size, asset.pieceSize);
    const tried = new Set<string>();
    let rejected = false;
    while (!deadline.aborted) {
      const candidates = [...this.peers.values()]
        .filter((peer) => !tried.has(peer.id) && !peer.closed && peer.has(assetId, piece))
        .sort((a, b) => a.inFlight - b.inFlight);
      const peer = candidates[0];
      if (!peer) break;
      tried.add(peer.id);
      let data: Uint8Array;
      try {
        data = await peer.request(assetId, piece, span.end - span.start, deadline);
      } catch (error) {
        if (error instanceof PeerfetchError && error.code === 'codec-invalid') this.#ban(peer, asset, piece);
        continue;
      }
      if (!(await verifyPiece(data, asset.pieces[piece]!))) {
        rejected = true;
        this.#ban(peer, asset, piece);
        continue;
      }
      await this.#store.put({ asset: assetId, piece, data }).catch(() => {});
      this.#callbacks.onPieceVerified(asset, piece, peer, data.length);
      this.markHave(assetId, piece);
      return { ok: true, data };
    }
    if (deadline.aborted) return { ok: false, reason: 'timeout' };
    return { ok: false, reason: rejected ? 'rejected' : tried.size === 0 ? 'no-peer' : 'timeout' };
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
