import { PeerfetchError } from './errors.js';
import { sha256Hex } from './integrity.js';
import { PlatformURL, utf8Encoder } from './platform.js';
import { pieceCount } from './piece-math.js';

/** Version of the manifest format written by `peerfetch manifest`. */
export const MANIFEST_VERSION = 1;
/** Default piece size in bytes (256 KiB): a WebRTC-friendly unit, ~1.7 s of 1.2 Mbit/s video. */
export const DEFAULT_PIECE_SIZE = 256 * 1024;
/** Smallest and largest accepted piece sizes (bytes); outside them overhead or latency explode. */
export const MIN_PIECE_SIZE = 16 * 1024;
export const MAX_PIECE_SIZE = 16 * 1024 * 1024;

/** One asset as written in `peerfetch-manifest.json`. */
export interface ManifestAssetJson {
  /** URL path (`/media/film.mp4`) or absolute URL for assets served from a CDN. */
  url: string;
  size: number;
  contentType: string;
  pieceSize: number;
  /** Lower-case hex SHA-256 of every piece, in order. */
  pieces: string[];
}

/** `peerfetch-manifest.json` as written on disk. */
export interface ManifestJson {
  version: number;
  assets: ManifestAssetJson[];
}

/** An asset after parsing: its URL resolved against the manifest's own URL, plus a content id. */
export interface ManifestAsset extends ManifestAssetJson {
  /** Absolute URL the asset is requested at. */
  href: string;
  /** 16 hex chars derived from the piece hashes: equal ids mean equal bytes, across deploys. */
  id: string;
  /** Position in the manifest (which lists files in name order, so HLS segments are in play order). */
  index: number;
}

export interface Manifest {
  version: number;
  assets: ManifestAsset[];
}

const HASH_PATTERN = /^[0-9a-f]{64}$/;

function invalid(message: string, details: Record<string, unknown> = {}): PeerfetchError {
  return new PeerfetchError('manifest-invalid', `invalid manifest: ${message}`, details);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks the shape of one asset entry and returns it typed; throws `manifest-invalid`. */
function checkAsset(raw: unknown, position: number): ManifestAssetJson {
  if (!isRecord(raw)) throw invalid(`asset ${position} is not an object`, { position });
  const { url, size, contentType, pieceSize, pieces } = raw;
  if (typeof url !== 'string' || url.length === 0) throw invalid(`asset ${position} has no url`, { position });
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(`asset ${url} has an invalid size`, { url });
  }
  if (typeof contentType !== 'string') throw invalid(`asset ${url} has no contentType`, { url });
  if (
    typeof pieceSize !== 'number' ||
    !Number.isSafeInteger(pieceSize) ||
    pieceSize < MIN_PIECE_SIZE ||
    pieceSize > MAX_PIECE_SIZE
  ) {
    throw invalid(`asset ${url} has an invalid pieceSize`, { url, pieceSize });
  }
  if (!Array.isArray(pieces) || !pieces.every((hash) => typeof hash === 'string' && HASH_PATTERN.test(hash))) {
    throw invalid(`asset ${url} has invalid piece hashes`, { url });
  }
  if (pieces.length !== pieceCount(size, pieceSize)) {
    throw invalid(`asset ${url} has ${pieces.length} pieces, expected ${pieceCount(size, pieceSize)}`, { url });
  }
  return { url, size, contentType, pieceSize, pieces: pieces as string[] };
}

/** Content id of an asset: the first 16 hex chars of SHA-256 over its size and piece hashes. */
export async function assetId(asset: Pick<ManifestAssetJson, 'size' | 'pieceSize' | 'pieces'>): Promise<string> {
  const text = `${asset.size}:${asset.pieceSize}:${asset.pieces.join('')}`;
  return (await sha256Hex(utf8Encoder.encode(text))).slice(0, 16);
}

/**
 * Validates raw manifest JSON and resolves every asset URL against `manifestUrl`.
 * Throws `PeerfetchError('manifest-invalid')` with a message naming the bad field.
 *
 * @example
 * const manifest = await parseManifest(await response.json(), response.url);
 */
export async function parseManifest(raw: unknown, manifestUrl: string): Promise<Manifest> {
  if (!isRecord(raw)) throw invalid('not a JSON object');
  if (raw.version !== MANIFEST_VERSION) {
    throw invalid(`unsupported version ${String(raw.version)}`, { version: raw.version });
  }
  if (!Array.isArray(raw.assets)) throw invalid('assets is not an array');
  const seen = new Set<string>();
  const assets: ManifestAsset[] = [];
  for (const [position, entry] of raw.assets.entries()) {
    const asset = checkAsset(entry, position);
    let href: string;
    try {
      href = new PlatformURL(asset.url, manifestUrl).href;
    } catch {
      throw invalid(`asset url ${asset.url} is not a URL`, { url: asset.url });
    }
    if (seen.has(href)) throw invalid(`asset ${asset.url} is listed twice`, { url: asset.url });
    seen.add(href);
    assets.push({ ...asset, href, id: await assetId(asset), index: assets.length });
  }
  return { version: MANIFEST_VERSION, assets };
}

/** Finds the asset requested at `href` (query and fragment must match exactly; hash is ignored). */
export function findAsset(manifest: Manifest, href: string): ManifestAsset | undefined {
  const withoutFragment = href.split('#', 1)[0];
  return manifest.assets.find((asset) => asset.href === withoutFragment);
}

/**
 * Assets played one after another share a stream: HLS segments of one rendition are files of one
 * folder and one type. The scheduler prefetches across them, and a request for the next segment
 * continues a stream rather than starting one.
 */
export function streamKey(asset: Pick<ManifestAsset, 'href' | 'contentType'>): string {
  return `${asset.href.slice(0, asset.href.lastIndexOf('/') + 1)}|${asset.contentType}`;
}
