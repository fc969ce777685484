/**
 * Verified pieces, keyed by asset id and piece index. Only bytes that passed their SHA-256
 * check are ever put here, so readers (the SW answering the player, the engine seeding peers)
 * trust what they get. Implementations: `IdbPieceStore` (IndexedDB, shared by the SW and the
 * pages of one origin) and `MemoryPieceStore` (tests, and a fallback where IndexedDB is unavailable).
 */
export interface StoredPiece {
  asset: string;
  piece: number;
  data: Uint8Array;
}

/**
 * Pieces a store no longer holds: `pieces` of `asset`, every piece of `asset` when `pieces` is
 * absent, every piece of every asset when `asset` is absent too.
 */
export interface RemovedPieces {
  asset?: string;
  pieces?: number[];
}

export interface PieceStore {
  /** The piece's bytes, or undefined when it is not stored. Marks it recently used. */
  get(asset: string, piece: number): Promise<Uint8Array | undefined>;
  /** Stores a verified piece; evicts least recently used pieces to stay under the cap. Never throws for quota. */
  put(piece: StoredPiece): Promise<void>;
  /** Indexes of the pieces of `asset` that are stored. */
  list(asset: string): Promise<number[]>;
  /** Every stored piece, as indexes per asset id (keys only: no piece bytes are read). */
  held(): Promise<Map<string, number[]>>;
  /** Removes one piece (for example one found corrupt), or every piece when called without arguments. */
  delete(asset?: string, piece?: number): Promise<void>;
  /** Bytes currently stored. */
  size(): Promise<number>;
  /**
   * Calls `listener` whenever pieces leave the store (evicted for the cap or deleted), so what
   * peers are told stays true. The IndexedDB store also reports removals made by the other
   * contexts of the origin (the SW evicts while storing origin pieces). Returns the unsubscribe.
   */
  onRemoved(listener: (removed: RemovedPieces) => void): () => void;
  close(): void;
}

/** The listeners of a store's removals (one helper for both implementations). */
export class RemovalListeners {
  readonly #listeners = new Set<(removed: RemovedPieces) => void>();

  add(listener: (removed: RemovedPieces) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get size(): number {
    return this.#listeners.size;
  }

  emit(removed: RemovedPieces): void {
    for (const listener of this.#listeners) {
      try {
        listener(removed);
      } catch {
        // A failing listener must not break the store's own work (a put that evicted).
      }
    }
  }
}

/** Default cap on stored bytes (512 MiB): several long videos, well inside Chromium's per-origin quota. */
export const DEFAULT_STORE_CAP_BYTES = 512 * 1024 * 1024;

/** In-memory PieceStore with the same LRU behaviour as the IndexedDB one. */
export class MemoryPieceStore implements PieceStore {
  readonly #pieces = new Map<string, StoredPiece>();
  readonly #capBytes: number;
  readonly #removals = new RemovalListeners();
  #bytes = 0;

  constructor(capBytes = DEFAULT_STORE_CAP_BYTES) {
    this.#capBytes = capBytes;
  }

  async get(asset: string, piece: number): Promise<Uint8Array | undefined> {
    const key = `${asset}/${piece}`;
    const stored = this.#pieces.get(key);
    if (!stored) return undefined;
    // Map keeps insertion order: re-inserting makes it the most recently used.
    this.#pieces.delete(key);
    this.#pieces.set(key, stored);
    return stored.data;
  }

  async put(piece: StoredPiece): Promise<void> {
    if (piece.data.length > this.#capBytes) return;
    const key = `${piece.asset}/${piece.piece}`;
    const previous = this.#pieces.get(key);
    if (previous) {
      this.#bytes -= previous.data.length;
      this.#pieces.delete(key);
    }
    const evicted: StoredPiece[] = [];
    for (const [oldKey, old] of this.#pieces) {
      if (this.#bytes + piece.data.length <= this.#capBytes) break;
      this.#pieces.delete(oldKey);
      this.#bytes -= old.data.length;
      evicted.push(old);
    }
    this.#pieces.set(key, { ...piece, data: piece.data.slice() });
    this.#bytes += piece.data.length;
    for (const asset of new Set(evicted.map((old) => old.asset))) {
      this.#removals.emit({ asset, pieces: evicted.filter((old) => old.asset === asset).map((old) => old.piece) });
    }
  }

  async list(asset: string): Promise<number[]> {
    return [...this.#pieces.values()].filter((p) => p.asset === asset).map((p) => p.piece).sort((a, b) => a - b);
  }

  async held(): Promise<Map<string, number[]>> {
    return groupByAsset([...this.#pieces.values()].map(({ asset, piece }) => [asset, piece] as const));
  }

  async delete(asset?: string, piece?: number): Promise<void> {
    for (const [key, stored] of this.#pieces) {
      if ((asset === undefined || stored.asset === asset) && (piece === undefined || stored.piece === piece)) {
        this.#pieces.delete(key);
        this.#bytes -= stored.data.length;
      }
    }
    this.#removals.emit(removedBy(asset, piece));
  }

  async size(): Promise<number> {
    return this.#bytes;
  }

  onRemoved(listener: (removed: RemovedPieces) => void): () => void {
    return this.#removals.add(listener);
  }

  close(): void {}
}

/** Piece keys grouped per asset, indexes in order (PieceStore.held). */
export function groupByAsset(keys: Iterable<readonly [string, number]>): Map<string, number[]> {
  const grouped = new Map<string, number[]>();
  for (const [asset, piece] of keys) {
    const pieces = grouped.get(asset);
    if (pieces) pieces.push(piece);
    else grouped.set(asset, [piece]);
  }
  for (const pieces of grouped.values()) pieces.sort((a, b) => a - b);
  return grouped;
}

/** What `delete(asset, piece)` removes, as a RemovedPieces notice. */
export function removedBy(asset: string | undefined, piece: number | undefined): RemovedPieces {
  if (asset === undefined) return {};
  return piece === undefined ? { asset } : { asset, pieces: [piece] };
}
