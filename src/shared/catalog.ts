/**
 * The catalog form of a manifest, for sites with many assets (100,000 and 10 TB of media): the
 * manifest names the catalog instead of listing every asset with every piece hash, and a worker
 * loads what one request needs when that asset is first requested:
 *
 * - **shards** (`<shards>shard-<n>.json`): the assets, spread by a hash of their URL path over a
 *   power-of-two number of files of a few dozen assets each; an entry has the asset's URL, size,
 *   type, piece size and the SHA-256 of its piece list (no piece hashes);
 * - **piece lists** (`<pieces><sha256>.bin`): per asset, the SHA-256 of every piece, 32 bytes
 *   each, back to back, named by their own SHA-256 (so they never change under a name: an
 *   unchanged file keeps its list across deploys, and caches may keep them forever).
 *
 * The trust anchor stays the site's origin: the manifest, the shards and the lists all come from
 * it, and a list is used only when its SHA-256 is the one its shard entry names (which is what
 * makes the asset's id). Anything that fails to load or to match means the asset is not
 * peerfetch's: its requests go to the origin as they would without peerfetch.
 */
import { bytesToHex } from './hex.js';
import { sha256Hex } from './integrity.js';
import { pieceCount } from './piece-math.js';
import { fnv1a } from './string-hash.js';

/** Bytes of one piece hash in a piece list (a raw SHA-256). */
export const PIECE_HASH_BYTES = 32;
/**
 * Assets per shard the builder aims for (at most, on average): 64 entries of about 200 bytes are
 * about 12 KiB of JSON (a few KiB compressed), so what a page loads before its first frame is
 * one shard of that size, whether the site has 100 assets or 100,000.
 */
export const SHARD_TARGET_ASSETS = 64;
/** Most shards a catalog may have: 2^20 shards of 64 assets is 67 million assets. */
export const MAX_SHARDS = 2 ** 20;

/** The `catalog` field of a manifest. */
export interface ManifestCatalogJson {
  /** Folder of the shards (a URL path or absolute URL, relative URLs resolve against the manifest's URL). */
  shards: string;
  /** How many shards: a power of two. */
  count: number;
  /** Folder of the piece lists. */
  pieces: string;
}

/** One asset in a shard. */
export interface CatalogEntryJson {
  url: string;
  size: number;
  contentType: string;
  pieceSize: number;
  /** Lower-case hex SHA-256 of the asset's piece list (see encodePieceList). */
  piecesSha256: string;
  /** Position of the asset in the site's play order (see ManifestAsset.index). */
  sequence?: number;
  /** URL of the asset that follows this one in its stream (the next segment of a rendition), as written. */
  next?: string;
}

/** A shard file. */
export interface CatalogShardJson {
  assets: CatalogEntryJson[];
}

/**
 * The shard that lists the asset at `pathname` (a URL's path as `URL.pathname` writes it, so
 * percent-encoded; origin, query and fragment do not count: assets that differ only in those
 * share a shard). Every path of one folder spreads over all shards.
 *
 * @example
 * catalogShard('/media/film.mp4', 64) // a number from 0 to 63
 */
export function catalogShard(pathname: string, count: number): number {
  return fnv1a(pathname) % count;
}

/** How many shards the builder writes for `assets` assets: the least power of two that keeps shards at SHARD_TARGET_ASSETS on average. */
export function shardCountFor(assets: number): number {
  let count = 1;
  while (count < MAX_SHARDS && assets / count > SHARD_TARGET_ASSETS) count *= 2;
  return count;
}

export function isPowerOfTwo(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 && (value & (value - 1)) === 0;
}

/** File name of shard number `shard` within the shards folder. */
export function shardFileName(shard: number): string {
  return `shard-${shard}.json`;
}

/** File name of a piece list within the piece lists folder. */
export function pieceListFileName(piecesSha256: string): string {
  return `${piecesSha256}.bin`;
}

/** A piece list: the raw SHA-256 of every piece, in order (32 bytes each), from their hex form. */
export function encodePieceList(pieces: readonly string[]): Uint8Array {
  const list = new Uint8Array(pieces.length * PIECE_HASH_BYTES);
  pieces.forEach((hex, index) => {
    for (let byte = 0; byte < PIECE_HASH_BYTES; byte++) list[index * PIECE_HASH_BYTES + byte] = parseInt(hex.slice(byte * 2, byte * 2 + 2), 16);
  });
  return list;
}

/**
 * The hex piece hashes of a piece list, when it is the one `entry` names: its SHA-256 matches and
 * it has exactly one hash per piece of the asset. Undefined otherwise (a stale or damaged file,
 * an error page served in its place): the asset is then not taken from peers.
 */
export async function decodePieceList(list: Uint8Array, entry: Pick<CatalogEntryJson, 'size' | 'pieceSize' | 'piecesSha256'>): Promise<string[] | undefined> {
  if (list.length !== pieceCount(entry.size, entry.pieceSize) * PIECE_HASH_BYTES) return undefined;
  if ((await sha256Hex(list)) !== entry.piecesSha256) return undefined;
  const pieces: string[] = [];
  for (let at = 0; at < list.length; at += PIECE_HASH_BYTES) pieces.push(bytesToHex(list.subarray(at, at + PIECE_HASH_BYTES)));
  return pieces;
}
