import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import { DEFAULT_STORE_CAP_BYTES, RemovalListeners, groupByAsset, removedBy, type PieceStore, type RemovedPieces, type StoredPiece } from './piece-store.js';

/** Database shared by the SW and every page of the origin; bump the version when the schema changes. */
export const DB_NAME = 'peerfetch';
const DB_VERSION = 1;

/** Bookkeeping of one stored piece, kept apart from its bytes so that sizing and eviction never read piece data. */
interface PieceMeta {
  asset: string;
  piece: number;
  size: number;
  /** Milliseconds since the epoch of the last read or write, for LRU eviction. */
  usedAt: number;
}

interface PieceDb extends DBSchema {
  /** Piece bytes, keyed [asset, piece]. */
  data: { key: [string, number]; value: ArrayBuffer };
  meta: {
    key: [string, number];
    value: PieceMeta;
    indexes: { 'by-asset': string; 'by-used-at': number };
  };
}

/**
 * The default cap: DEFAULT_STORE_CAP_BYTES, or half of what the browser grants this origin when
 * that is less (navigator.storage.estimate(); the site's own data needs the other half).
 */
async function defaultCap(): Promise<number> {
  try {
    const { quota } = await navigator.storage.estimate();
    if (quota) return Math.min(DEFAULT_STORE_CAP_BYTES, Math.floor(quota / 2));
  } catch {
    // No StorageManager (older browsers, some private modes): keep the fixed default.
  }
  return DEFAULT_STORE_CAP_BYTES;
}

/** A removal notice from another context of the origin, checked before use. */
function asRemovedPieces(data: unknown): RemovedPieces | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const { asset, pieces } = data as Record<string, unknown>;
  if (asset !== undefined && typeof asset !== 'string') return undefined;
  if (pieces !== undefined && !(Array.isArray(pieces) && pieces.every((piece) => Number.isSafeInteger(piece)))) return undefined;
  if (asset === undefined && pieces !== undefined) return undefined;
  return { asset, pieces } as RemovedPieces;
}

function isQuotaError(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'QuotaExceededError';
}

/**
 * PieceStore on IndexedDB (through idb), usable from the page and the service worker alike.
 *
 * @example
 * const store = await IdbPieceStore.open({ capBytes: 256 * 1024 * 1024 });
 */
export class IdbPieceStore implements PieceStore {
  readonly #db: IDBPDatabase<PieceDb>;
  readonly #capBytes: number;
  readonly #now: () => number;
  /** The last put queued (see put). */
  #puts: Promise<void> = Promise.resolve();
  readonly #removals = new RemovalListeners();
  /**
   * Removals made by every context of the origin: the SW evicts pieces while storing origin
   * pieces, and the page that tells peers what it holds must hear of it. BroadcastChannel reaches
   * the SW and every page of the origin (not the posting object itself: local listeners are
   * called directly). Absent where the platform has none; removals are then local only.
   */
  readonly #broadcast: BroadcastChannel | undefined;

  private constructor(db: IDBPDatabase<PieceDb>, capBytes: number, now: () => number, name: string) {
    this.#db = db;
    this.#capBytes = capBytes;
    this.#now = now;
    this.#broadcast = typeof BroadcastChannel === 'function' ? new BroadcastChannel(`peerfetch-store:${name}`) : undefined;
    if (this.#broadcast) {
      this.#broadcast.onmessage = (event: MessageEvent) => {
        const removed = asRemovedPieces(event.data);
        if (removed) this.#removals.emit(removed);
      };
    }
  }

  onRemoved(listener: (removed: RemovedPieces) => void): () => void {
    return this.#removals.add(listener);
  }

  #removed(removed: RemovedPieces): void {
    this.#removals.emit(removed);
    this.#broadcast?.postMessage(removed);
  }

  static async open(options: { capBytes?: number; now?: () => number; name?: string } = {}): Promise<IdbPieceStore> {
    const db = await openDB<PieceDb>(options.name ?? DB_NAME, DB_VERSION, {
      upgrade(database) {
        database.createObjectStore('data');
        const meta = database.createObjectStore('meta', { keyPath: ['asset', 'piece'] });
        meta.createIndex('by-asset', 'asset');
        meta.createIndex('by-used-at', 'usedAt');
      },
      // Another context (a page or the SW) wants a newer schema: let it, and stop using this handle.
      blocking() {
        db.close();
      },
    });
    const name = options.name ?? DB_NAME;
    return new IdbPieceStore(db, options.capBytes ?? (await defaultCap()), options.now ?? Date.now, name);
  }

  async get(asset: string, piece: number): Promise<Uint8Array | undefined> {
    const data = await this.#db.get('data', [asset, piece]);
    if (!data) return undefined;
    // Refreshing usedAt is bookkeeping: a failure here must not fail the read.
    this.#db.put('meta', { asset, piece, size: data.byteLength, usedAt: this.#now() }).catch(() => {});
    return new Uint8Array(data);
  }

  /**
   * Puts run one after another: each evicts down to the cap and then writes, so two at once
   * could both find room for themselves and leave the store over its cap.
   */
  put(piece: StoredPiece): Promise<void> {
    const putting = this.#puts.then(() => this.#put(piece));
    this.#puts = putting.catch(() => {});
    return putting;
  }

  async #put(piece: StoredPiece): Promise<void> {
    if (piece.data.length > this.#capBytes) return;
    const data = piece.data.slice().buffer as ArrayBuffer;
    await this.#evict(this.#capBytes - data.byteLength);
    try {
      await this.#write(piece.asset, piece.piece, data);
    } catch (error) {
      if (!isQuotaError(error)) throw error;
      // The browser's quota is tighter than our cap: free a quarter of what we hold and retry once.
      await this.#evict(Math.floor(((await this.size()) * 3) / 4));
      await this.#write(piece.asset, piece.piece, data).catch(() => {});
    }
  }

  async #write(asset: string, piece: number, data: ArrayBuffer): Promise<void> {
    const tx = this.#db.transaction(['data', 'meta'], 'readwrite');
    void tx.objectStore('data').put(data, [asset, piece]);
    void tx.objectStore('meta').put({ asset, piece, size: data.byteLength, usedAt: this.#now() });
    await tx.done;
  }

  /** Deletes least recently used pieces until at most `targetBytes` are stored. */
  async #evict(targetBytes: number): Promise<void> {
    let total = await this.size();
    if (total <= targetBytes) return;
    const tx = this.#db.transaction(['data', 'meta'], 'readwrite');
    let cursor = await tx.objectStore('meta').index('by-used-at').openCursor();
    const evicted = new Map<string, number[]>();
    while (cursor && total > targetBytes) {
      total -= cursor.value.size;
      const [asset, piece] = cursor.primaryKey;
      evicted.set(asset, [...(evicted.get(asset) ?? []), piece]);
      void tx.objectStore('data').delete(cursor.primaryKey);
      await cursor.delete();
      cursor = await cursor.continue();
    }
    await tx.done;
    for (const [asset, pieces] of evicted) this.#removed({ asset, pieces });
  }

  async list(asset: string): Promise<number[]> {
    const keys = await this.#db.getAllKeysFromIndex('meta', 'by-asset', asset);
    return keys.map(([, piece]) => piece).sort((a, b) => a - b);
  }

  async held(): Promise<Map<string, number[]>> {
    return groupByAsset(await this.#db.getAllKeys('meta'));
  }

  async delete(asset?: string, piece?: number): Promise<void> {
    const tx = this.#db.transaction(['data', 'meta'], 'readwrite');
    const keys =
      asset === undefined
        ? await tx.objectStore('meta').getAllKeys()
        : piece === undefined
          ? await tx.objectStore('meta').index('by-asset').getAllKeys(asset)
          : [[asset, piece] as [string, number]];
    for (const key of keys) {
      void tx.objectStore('data').delete(key);
      void tx.objectStore('meta').delete(key);
    }
    await tx.done;
    this.#removed(removedBy(asset, piece));
  }

  async size(): Promise<number> {
    const metas = await this.#db.getAll('meta');
    return metas.reduce((total, meta) => total + meta.size, 0);
  }

  close(): void {
    this.#broadcast?.close();
    this.#db.close();
  }
}
