import type { ManifestAsset } from '../shared/manifest.js';
import { verifyPiece } from '../shared/integrity.js';
import type { WorkerToPage } from '../shared/bridge-messages.js';
import type { PieceStore } from '../store/piece-store.js';
import type { PieceLoader } from './asset-response.js';

/**
 * Time (ms) the page engine gets to deliver a piece from peers before the SW goes to the origin.
 * The engine answers at once when no peer has the piece, so this only bounds a slow peer; 4 s
 * is about two pieces of 1.2 Mbit/s video, which a player's buffer covers once playing.
 */
export const PEER_DEADLINE_MS = 4000;

/** What the loader needs from its surroundings (injected, so it runs in tests without a SW). */
export interface PieceLoaderComponents {
  /** The local store, or undefined when IndexedDB is unavailable. */
  store: PieceStore | undefined;
  /** Asks a page engine for the piece from peers (already verified there); undefined = no. */
  fromPeers(asset: ManifestAsset, piece: number, signal: AbortSignal): Promise<Uint8Array | undefined>;
  fromOrigin(asset: ManifestAsset, piece: number, signal: AbortSignal): Promise<Uint8Array>;
  /** Stats and "stored" notices for the requesting page. */
  notify(message: WorkerToPage): void;
  /** Origin bytes did not match the manifest: it is probably stale. */
  onStaleManifest(asset: ManifestAsset, piece: number): void;
}

/**
 * The source order for one piece: local store, then peers (through a page engine), then origin.
 * Store and peer failures fall through to the next source; only an origin failure rejects.
 */
export function createPieceLoader(asset: ManifestAsset, components: PieceLoaderComponents): PieceLoader {
  const { store } = components;
  return async (piece, signal) => {
    const stored = await store?.get(asset.id, piece).catch(() => undefined);
    if (stored) {
      components.notify({ type: 'piece-delivered', asset: asset.id, piece, source: 'store', bytes: stored.length, stored: true });
      return stored;
    }
    const fromPeers = await components.fromPeers(asset, piece, signal).catch(() => undefined);
    if (fromPeers) return fromPeers;
    const fromOrigin = await components.fromOrigin(asset, piece, signal);
    // The origin is the authority: its bytes go to the player either way; only verified bytes
    // are stored and so shared with peers.
    const verified = await verifyPiece(fromOrigin, asset.pieces[piece]!);
    let storedLocally = false;
    if (verified && store) {
      storedLocally = await store.put({ asset: asset.id, piece, data: fromOrigin }).then(
        () => true,
        () => false,
      );
    }
    if (!verified) components.onStaleManifest(asset, piece);
    components.notify({
      type: 'piece-delivered',
      asset: asset.id,
      piece,
      source: 'origin',
      bytes: fromOrigin.length,
      stored: storedLocally,
    });
    return fromOrigin;
  };
}
