import {
  catalogShard,
  decodePieceList,
  pieceListFileName,
  shardFileName,
  type CatalogEntryJson,
} from '../shared/catalog.js';
import {
  assetIdOf,
  checkCatalogEntry,
  resolveAsset,
  splitSignedUrl,
  type Manifest,
  type ManifestAsset,
  type ManifestAssetJson,
  type ManifestCatalog,
} from '../shared/manifest.js';

/**
 * Shards kept in memory (count): each is a few dozen entries (about 12 KiB), and a page plays a
 * few videos at a time, so 32 covers every shard a session touches without growing with the site.
 */
const MAX_CACHED_SHARDS = 32;
/**
 * Catalog assets kept loaded (count), with their piece hashes (32 bytes each, as hex): a few
 * videos and the segments a player reads ahead into; the least recently requested goes first.
 */
const MAX_CACHED_ASSETS = 512;
/** Longest time (ms) one shard or piece list fetch may take before the asset counts as not listed. */
const CATALOG_FETCH_TIMEOUT_MS = 10_000;
/** Largest shard (bytes) read: 64 entries are about 12 KiB; a much larger file is not a shard. */
const MAX_SHARD_BYTES = 4 * 1024 * 1024;

/** A shard as loaded: its entries by absolute URL (without the query parameters the manifest ignores). */
type LoadedShard = Map<string, CatalogEntryJson>;

/** What a CatalogSource needs (injected, so it runs in Node tests). */
export interface CatalogSourceOptions {
  /** The platform's fetch. */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
}

/**
 * The assets of a manifest's catalog (see shared/catalog.ts), loaded when first requested: the
 * shard that lists the URL, then the asset's piece list, checked against the SHA-256 its entry
 * names. A URL the catalog does not list, a shard or list that fails to load or to match: the
 * asset is not peerfetch's (its requests go to the origin), and stays so for this catalog, so
 * one media resource is never answered both ways.
 */
export class CatalogSource {
  readonly catalog: ManifestCatalog;
  readonly #manifestUrl: string;
  readonly #ignoreQuery: string[];
  readonly #fetch: (url: string, init: RequestInit) => Promise<Response>;
  readonly #shards = new Map<number, Promise<LoadedShard | undefined>>();
  /** Per URL, the asset being loaded or loaded (undefined: not listed, or failed). */
  readonly #assets = new Map<string, Promise<ManifestAsset | undefined>>();
  readonly #loaded = new Map<string, ManifestAsset>();
  readonly #byId = new Map<string, ManifestAsset>();
  /** The JSON handed to pages per asset id (see describe). */
  readonly #described = new Map<string, ManifestAssetJson>();

  constructor(manifest: Manifest & { catalog: ManifestCatalog }, manifestUrl: string, options: CatalogSourceOptions = {}) {
    this.catalog = manifest.catalog;
    this.#manifestUrl = manifestUrl;
    this.#ignoreQuery = manifest.ignoreQuery ?? [];
    this.#fetch = options.fetch ?? ((url, init) => fetch(url, init));
  }

  /** The asset at `href` when it is loaded already (decided without waiting), else undefined. */
  peek(href: string): ManifestAsset | undefined {
    return this.#loaded.get(splitSignedUrl(href, this.#ignoreQuery).url);
  }

  /** A loaded asset by id (a page's prefetch names assets by id). */
  byId(id: string): ManifestAsset | undefined {
    return this.#byId.get(id);
  }

  /** Ids of the assets loaded now. */
  ids(): Set<string> {
    return new Set(this.#byId.keys());
  }

  /** The asset at `href`, loading its shard and piece list on first use; undefined when the catalog does not list it or a file fails. Never rejects. */
  resolve(href: string): Promise<ManifestAsset | undefined> {
    const key = splitSignedUrl(href, this.#ignoreQuery).url;
    let loading = this.#assets.get(key);
    if (loading) {
      // Most recently requested last: the first in the map goes when it is full.
      this.#assets.delete(key);
      this.#assets.set(key, loading);
      return loading;
    }
    loading = this.#load(key).catch(() => undefined);
    this.#assets.set(key, loading);
    void loading.then((asset) => {
      if (!asset || this.#assets.get(key) !== loading) return;
      this.#loaded.set(key, asset);
      this.#byId.set(asset.id, asset);
    });
    while (this.#assets.size > MAX_CACHED_ASSETS) {
      const oldest = this.#assets.keys().next().value!;
      this.#assets.delete(oldest);
      const asset = this.#loaded.get(oldest);
      this.#loaded.delete(oldest);
      if (asset) {
        this.#byId.delete(asset.id);
        this.#described.delete(asset.id);
      }
    }
    return loading;
  }

  /** A loaded asset in the inline form a page parses (see the bridge's `asset` message). */
  describe(asset: ManifestAsset): ManifestAssetJson | undefined {
    return this.#described.get(asset.id);
  }

  async #load(href: string): Promise<ManifestAsset | undefined> {
    let pathname: string;
    try {
      pathname = new URL(href).pathname;
    } catch {
      return undefined;
    }
    const shard = await this.#shard(catalogShard(pathname, this.catalog.count));
    const entry = shard?.get(href);
    if (!entry) return undefined;
    const response = await this.#get(this.catalog.piecesHref + pieceListFileName(entry.piecesSha256));
    if (!response) return undefined;
    const pieces = await decodePieceList(new Uint8Array(await response.arrayBuffer()), entry);
    if (!pieces) return undefined;
    const json: ManifestAssetJson = { url: entry.url, size: entry.size, contentType: entry.contentType, pieceSize: entry.pieceSize, pieces };
    if (entry.sequence !== undefined) json.sequence = entry.sequence;
    if (entry.next !== undefined) json.next = entry.next;
    const asset = await resolveAsset(json, this.#manifestUrl, entry.sequence ?? 0, undefined);
    // The id the entry's list SHA-256 makes is the one the pieces make (decodePieceList checked the list).
    if (asset.id !== (await assetIdOf(entry.size, entry.pieceSize, entry.piecesSha256))) return undefined;
    this.#described.set(asset.id, json);
    return asset;
  }

  #shard(number: number): Promise<LoadedShard | undefined> {
    let loading = this.#shards.get(number);
    if (!loading) {
      loading = this.#loadShard(number).catch(() => undefined);
      this.#shards.set(number, loading);
      if (this.#shards.size > MAX_CACHED_SHARDS) this.#shards.delete(this.#shards.keys().next().value!);
    }
    return loading;
  }

  async #loadShard(number: number): Promise<LoadedShard | undefined> {
    const response = await this.#get(this.catalog.shardsHref + shardFileName(number));
    if (!response) return undefined;
    const text = await response.text();
    if (text.length > MAX_SHARD_BYTES) return undefined;
    const raw: unknown = JSON.parse(text);
    const assets = typeof raw === 'object' && raw !== null ? (raw as { assets?: unknown }).assets : undefined;
    if (!Array.isArray(assets)) return undefined;
    const entries: LoadedShard = new Map();
    for (const [position, value] of assets.entries()) {
      // One bad entry makes the whole shard untrusted, as one bad asset makes a manifest invalid.
      const entry = checkCatalogEntry(value, position);
      entries.set(splitSignedUrl(new URL(entry.url, this.#manifestUrl).href, this.#ignoreQuery).url, entry);
    }
    return entries;
  }

  async #get(url: string): Promise<Response | undefined> {
    const response = await this.#fetch(url, { credentials: 'same-origin', signal: AbortSignal.timeout(CATALOG_FETCH_TIMEOUT_MS) });
    return response.ok ? response : undefined;
  }
}
