import { PeerfetchError } from './errors.js';
import { sha256Hex } from './integrity.js';
import { PlatformURL, utf8Encoder } from './platform.js';
import { pieceCount } from './piece-math.js';
import { encodePieceList, isPowerOfTwo, MAX_SHARDS, type CatalogEntryJson, type ManifestCatalogJson } from './catalog.js';

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
  /**
   * Number of the asset within its stream (a live playlist's media sequence number): older assets
   * of a live stream leave the manifest, so positions shift, and this keeps the play order.
   * Absent: the asset's position in the manifest.
   */
  sequence?: number;
  /**
   * URL of the asset that follows this one in its stream, as written (catalog assets, see
   * catalog.ts, whose neighbours are in other shards). Absent: the next asset of the manifest.
   */
  next?: string;
}

/**
 * A live stream whose segments come and go while pages are open: the manifest lists the
 * segments of its playlist window, and pages reload it as the stream moves.
 */
export interface ManifestLiveJson {
  /**
   * URL of the playlist players reload (HLS `.m3u8` or DASH `.mpd`), a path or an absolute URL
   * like asset URLs. A request for it means the stream may have moved; its folder holds the
   * stream's segments.
   */
  playlist: string;
  /** Longest segment duration in ms (HLS EXT-X-TARGETDURATION): the stream moves this often, and the manifest with it. */
  segmentMs: number;
  /** Play time (ms) of the playlist window: segments older than it have left the manifest. */
  windowMs: number;
  /** The stream has ended (EXT-X-ENDLIST, or a static MPD): its segments stay, the manifest no longer changes. */
  ended?: boolean;
}

/** `peerfetch-manifest.json` as written on disk. */
export interface ManifestJson {
  version: number;
  assets: ManifestAssetJson[];
  /** Live streams (absent in manifests of on-demand files only; older readers ignore it). */
  live?: ManifestLiveJson[];
  /**
   * The operator's kill switch: `true` makes every visitor's worker pass every request through
   * and unregister itself, and pages take nothing from peers. `assets` may then be absent.
   */
  disabled?: boolean;
  /**
   * The manifest is kept current while pages are open (`peerfetch manifest --watch`): pages
   * reload it, at most this often (ms), when requests it does not cover come by. So a page opened
   * before a live stream starts learns of it.
   */
  refreshMs?: number;
  /**
   * Names of query parameters that a request URL may carry and that do not change the bytes, such
   * as a CDN's signature and expiry (`?token=…&expires=…`): matching a request to an asset ignores
   * them, and origin fetches keep them. Absent: URLs must match exactly.
   */
  ignoreQuery?: string[];
  /**
   * The site's catalog (see catalog.ts): assets listed in shards and piece lists that a worker
   * loads when an asset is first requested, so that a site of 100,000 assets publishes a manifest
   * of a few hundred bytes. `assets` then lists only what changes while pages are open (live
   * segments). Older readers ignore it and take nothing of the catalog from peers.
   */
  catalog?: ManifestCatalogJson;
}

/** The catalog after parsing: its folders as absolute URLs (ending in `/`). */
export interface ManifestCatalog {
  shardsHref: string;
  piecesHref: string;
  count: number;
}

/** A live stream after parsing: URLs resolved against the manifest's own URL. */
export interface ManifestLive extends ManifestLiveJson {
  /** Absolute URL of the playlist. */
  playlistHref: string;
  /** Absolute URL of the playlist's folder (ends in `/`): the stream's segments are under it. */
  folderHref: string;
  ended: boolean;
}

/** An asset after parsing: its URL resolved against the manifest's own URL, plus a content id. */
export interface ManifestAsset extends ManifestAssetJson {
  /** Absolute URL the asset is requested at. */
  href: string;
  /** 16 hex chars derived from the piece hashes: equal ids mean equal bytes, across deploys. */
  id: string;
  /**
   * Play order within the asset's stream: its `sequence`, or else its position in the manifest
   * (`peerfetch manifest` writes HLS segments in their playlist's order, else in natural name
   * order: seg2 before seg10).
   */
  index: number;
  /** The live stream the asset is a segment of (it is under that stream's folder), if any. */
  live: ManifestLive | undefined;
  /** Absolute URL of the next asset of its stream when the manifest names it (see ManifestAssetJson.next). */
  nextHref?: string;
}

export interface Manifest {
  version: number;
  assets: ManifestAsset[];
  live: ManifestLive[];
  /** The kill switch is on (see {@link ManifestJson.disabled}): no assets, nothing is peerfetch's. */
  disabled?: true;
  /** See ManifestJson.refreshMs; undefined for a manifest that only changes on deploys. */
  refreshMs?: number;
  /** See ManifestJson.ignoreQuery; absent or empty: URLs must match exactly. */
  ignoreQuery?: string[];
  /** See ManifestJson.catalog. */
  catalog?: ManifestCatalog;
}

/** Most ignored query parameter names: a CDN signature takes two to four (token, expiry, key id, policy). */
const MAX_IGNORED_PARAMETERS = 32;

const HASH_PATTERN = /^[0-9a-f]{64}$/;
/** Longest accepted live duration (ms), one day: a larger segment or window is a typo, not a stream. */
const MAX_LIVE_DURATION_MS = 24 * 60 * 60 * 1000;

function invalid(message: string, details: Record<string, unknown> = {}): PeerfetchError {
  return new PeerfetchError('manifest-invalid', `invalid manifest: ${message}`, details);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks the shape of one asset entry and returns it typed; throws `manifest-invalid`. */
function checkAsset(raw: unknown, position: number, checkPieces = true): ManifestAssetJson {
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
  if (checkPieces && pieces.length !== pieceCount(size, pieceSize)) {
    throw invalid(`asset ${url} has ${pieces.length} pieces, expected ${pieceCount(size, pieceSize)}`, { url });
  }
  const { sequence } = raw;
  if (sequence !== undefined && (typeof sequence !== 'number' || !Number.isSafeInteger(sequence) || sequence < 0)) {
    throw invalid(`asset ${url} has an invalid sequence`, { url, sequence });
  }
  const checked: ManifestAssetJson = { url, size, contentType, pieceSize, pieces: pieces as string[] };
  if (sequence !== undefined) checked.sequence = sequence;
  const { next } = raw;
  if (next !== undefined && (typeof next !== 'string' || next.length === 0)) throw invalid(`asset ${url} has an invalid next`, { url });
  if (next !== undefined) checked.next = next;
  return checked;
}

/**
 * Checks one entry of a catalog shard and returns it typed; throws `manifest-invalid`. Its
 * pieces are checked when its piece list is loaded (decodePieceList).
 */
export function checkCatalogEntry(raw: unknown, position: number): CatalogEntryJson {
  const { pieces: _unused, ...shape } = checkAsset(isRecord(raw) ? { ...raw, pieces: [] } : raw, position, false);
  const { piecesSha256 } = raw as Record<string, unknown>;
  if (typeof piecesSha256 !== 'string' || !HASH_PATTERN.test(piecesSha256)) throw invalid(`asset ${shape.url} has an invalid piecesSha256`, { url: shape.url });
  return { ...shape, piecesSha256 };
}

/** Checks the `catalog` field of a manifest and resolves its folders; throws `manifest-invalid`. */
function checkCatalog(raw: unknown, manifestUrl: string): ManifestCatalog | undefined {
  if (raw === undefined) return undefined;
  if (!isRecord(raw)) throw invalid('catalog is not an object');
  const { shards, pieces, count } = raw;
  if (!isPowerOfTwo(count) || count > MAX_SHARDS) throw invalid(`catalog count must be a power of two up to ${MAX_SHARDS}`, { count });
  const folder = (value: unknown, name: string): string => {
    if (typeof value !== 'string' || value.length === 0) throw invalid(`catalog has no ${name}`);
    try {
      const href = new PlatformURL(value, manifestUrl).href;
      return href.endsWith('/') ? href : `${href}/`;
    } catch {
      throw invalid(`catalog ${name} ${value} is not a URL`, { [name]: value });
    }
  };
  return { shardsHref: folder(shards, 'shards'), piecesHref: folder(pieces, 'pieces'), count };
}

function isDuration(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 && value <= MAX_LIVE_DURATION_MS;
}

/** Checks one live stream entry and resolves its URLs; throws `manifest-invalid`. */
function checkLive(raw: unknown, position: number, manifestUrl: string): ManifestLive {
  if (!isRecord(raw)) throw invalid(`live stream ${position} is not an object`, { position });
  const { playlist, segmentMs, windowMs, ended } = raw;
  if (typeof playlist !== 'string' || playlist.length === 0) throw invalid(`live stream ${position} has no playlist`, { position });
  if (!isDuration(segmentMs)) throw invalid(`live stream ${playlist} has an invalid segmentMs`, { playlist, segmentMs });
  if (!isDuration(windowMs)) throw invalid(`live stream ${playlist} has an invalid windowMs`, { playlist, windowMs });
  if (ended !== undefined && typeof ended !== 'boolean') throw invalid(`live stream ${playlist} has an invalid ended`, { playlist });
  let playlistHref: string;
  try {
    playlistHref = new PlatformURL(playlist, manifestUrl).href;
  } catch {
    throw invalid(`live playlist ${playlist} is not a URL`, { playlist });
  }
  const folderHref = playlistHref.split(/[?#]/, 1)[0]!.replace(/[^/]*$/, '');
  return { playlist, segmentMs, windowMs, ended: ended ?? false, playlistHref, folderHref };
}

/** An asset's content id as {@link assetId} writes it (16 lower-case hex chars). */
const ASSET_ID_PATTERN = /^[0-9a-f]{16}$/;

/** Whether `value` has the form of an asset's content id (see {@link assetId}); what crosses a wire is checked with it. */
export function isAssetId(value: unknown): value is string {
  return typeof value === 'string' && ASSET_ID_PATTERN.test(value);
}

/**
 * Content id of an asset: the first 16 hex chars of SHA-256 over its size, piece size and the
 * SHA-256 of its piece list (catalog.ts), so an asset listed in full and the same asset in a
 * catalog (known by its list's SHA-256 before the list is loaded) have one id.
 */
export async function assetId(asset: Pick<ManifestAssetJson, 'size' | 'pieceSize' | 'pieces'>): Promise<string> {
  return assetIdOf(asset.size, asset.pieceSize, await sha256Hex(encodePieceList(asset.pieces)));
}

/** {@link assetId} from the SHA-256 of the asset's piece list. */
export async function assetIdOf(size: number, pieceSize: number, piecesSha256: string): Promise<string> {
  return (await sha256Hex(utf8Encoder.encode(`${size}:${pieceSize}:${piecesSha256}`))).slice(0, 16);
}

/**
 * An asset after parsing, from its checked JSON: URLs resolved against the manifest's URL
 * (`next` included), its id computed, `position` its place in the manifest (its play order when
 * it has no `sequence`). Throws `manifest-invalid` for a URL that does not parse.
 */
export async function resolveAsset(asset: ManifestAssetJson, manifestUrl: string, position: number, live: ManifestLive | undefined): Promise<ManifestAsset> {
  const resolve = (url: string): string => {
    try {
      return new PlatformURL(url, manifestUrl).href;
    } catch {
      throw invalid(`asset url ${url} is not a URL`, { url });
    }
  };
  const resolved: ManifestAsset = { ...asset, href: resolve(asset.url), id: await assetId(asset), index: asset.sequence ?? position, live };
  if (asset.next !== undefined) resolved.nextHref = resolve(asset.next);
  return resolved;
}

/**
 * Parses one asset given in full (a manifest's inline form, such as a catalog asset whose piece
 * list a worker loaded and hands to its pages). Throws `manifest-invalid`.
 */
export async function parseAsset(raw: unknown, manifestUrl: string): Promise<ManifestAsset> {
  const asset = checkAsset(raw, 0);
  return resolveAsset(asset, manifestUrl, asset.sequence ?? 0, undefined);
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
  if (raw.disabled !== undefined && typeof raw.disabled !== 'boolean') throw invalid('disabled is not a boolean');
  if (raw.disabled === true) return { version: MANIFEST_VERSION, assets: [], live: [], disabled: true };
  if (!Array.isArray(raw.assets)) throw invalid('assets is not an array');
  if (raw.live !== undefined && !Array.isArray(raw.live)) throw invalid('live is not an array');
  if (raw.refreshMs !== undefined && !isDuration(raw.refreshMs)) throw invalid('refreshMs is not a duration', { refreshMs: raw.refreshMs });
  const live = (raw.live ?? []).map((entry: unknown, position: number) => checkLive(entry, position, manifestUrl));
  // The longest folder first: a stream in /live/hd/ owns its segments even when another is in /live/.
  const byFolder = [...live].sort((a, b) => b.folderHref.length - a.folderHref.length);
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
    const stream = byFolder.find((candidate) => href.startsWith(candidate.folderHref));
    assets.push(await resolveAsset(asset, manifestUrl, assets.length, stream));
  }
  const manifest: Manifest = { version: MANIFEST_VERSION, assets, live, refreshMs: raw.refreshMs, ignoreQuery: checkIgnoreQuery(raw.ignoreQuery) };
  const catalog = checkCatalog(raw.catalog, manifestUrl);
  if (catalog) manifest.catalog = catalog;
  return manifest;
}

function checkIgnoreQuery(raw: unknown): string[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw) || raw.length > MAX_IGNORED_PARAMETERS || !raw.every((name) => typeof name === 'string' && name.length > 0)) {
    throw invalid(`ignoreQuery must be a list of at most ${MAX_IGNORED_PARAMETERS} query parameter names`, { ignoreQuery: raw });
  }
  return raw as string[];
}

/**
 * A request URL split into the URL that names its asset (no fragment, none of the query
 * parameters the manifest ignores: see ManifestJson.ignoreQuery) and those parameters as written
 * (`token=abc&expires=9`, empty when there are none). The rest of the query is kept byte for byte:
 * it must match the manifest's URL exactly.
 *
 * @example
 * splitSignedUrl('https://cdn.example/v.mp4?token=abc&q=hd#t=5', ['token'])
 * // { url: 'https://cdn.example/v.mp4?q=hd', signature: 'token=abc' }
 */
export function splitSignedUrl(href: string, ignoreQuery: readonly string[] = []): { url: string; signature: string } {
  const url = href.split('#', 1)[0]!;
  const queryAt = url.indexOf('?');
  if (queryAt < 0 || ignoreQuery.length === 0) return { url, signature: '' };
  const kept: string[] = [];
  const ignored: string[] = [];
  for (const part of url.slice(queryAt + 1).split('&')) (ignoreQuery.includes(part.split('=', 1)[0]!) ? ignored : kept).push(part);
  return { url: url.slice(0, queryAt) + (kept.length > 0 ? `?${kept.join('&')}` : ''), signature: ignored.join('&') };
}

/** `href` with a signed URL's parameters (see {@link splitSignedUrl}) appended to its query. */
export function withSignature(href: string, signature: string): string {
  return signature ? `${href}${href.includes('?') ? '&' : '?'}${signature}` : href;
}

/**
 * The live stream a request at `href` belongs to: its playlist, or a URL under its folder (a
 * segment the manifest may not list yet). Undefined for everything else.
 */
export function findLiveStream(manifest: Manifest, href: string): ManifestLive | undefined {
  const withoutFragment = splitSignedUrl(href, manifest.ignoreQuery).url;
  let found: ManifestLive | undefined;
  for (const stream of manifest.live) {
    if (withoutFragment === stream.playlistHref) return stream;
    if (withoutFragment.startsWith(stream.folderHref) && (!found || stream.folderHref.length > found.folderHref.length)) found = stream;
  }
  return found;
}

/**
 * Finds the asset requested at `href`: the fragment and the query parameters the manifest
 * ignores (signed URLs) do not count, the rest of the URL must match exactly.
 */
export function findAsset(manifest: Manifest, href: string): ManifestAsset | undefined {
  const wanted = splitSignedUrl(href, manifest.ignoreQuery).url;
  return manifest.assets.find((asset) => asset.href === wanted);
}

/**
 * A segment's name: an extension of formats that exist only as segments of a stream (MPEG-TS,
 * fMP4 media segments `.m4s` of DASH and HLS, HLS packed audio `.aac`, CMAF tracks), or a segment
 * word in a name of a container that is also a whole-file format (`.mp4`, `.m4a`, `.webm`): Apple's
 * mediafilesegmenter writes `fileSequence0.mp4`, ffmpeg's DASH muxer `chunk-stream0-00001.webm`
 * (VP9, Opus), Bento4 `segment-1.m4a`, others `seg-1.mp4` or `frag-1.mp4`.
 */
const SEGMENT_NAME = /\.(ts|m4s|aac|cmf[av])$|(?<![a-z])(seg(ment)?|chunk|frag(ment)?)(?![a-z])|sequence/i;

/**
 * The last run of digits before the name's extension: the segment number, which packagers write
 * last (`seg10.ts`, `chunk-stream0-00041.m4s`, Bento4's `segment-1.0041.m4s`), after a
 * rendition's. The extension's own digits are none: taking the `4` of `.m4s` made every DASH
 * segment a stream of its own.
 */
const SEGMENT_NUMBER = /\d+(?=\D*(\.[^.]*)?$)/;

/**
 * Assets played one after another share a stream: the segments of one rendition, files of one
 * folder and one type whose names differ only in their segment number (ffmpeg `seg-%03d.ts` and
 * DASH `chunk-stream$RepresentationID$-$Number$.m4s`, where the representation's number comes
 * first). So renditions, or DASH video and audio, that share a folder are streams of their own, and
 * so is a DASH init segment (`init-stream0.m4s`: it is read once, before the segments, so there is
 * nothing to prefetch after it). Only segments share a stream (SEGMENT_NAME): numbered whole files
 * (`video-0.mp4`, `video-1.mp4`, `12.mp4` of a catalog) are different videos, each a stream of its
 * own: a stream is what a peer is told of while the viewer plays it (see Swarm), and a peer must
 * not learn from video-1 that the viewer watched video-0; nor should video-0 be prefetched past its
 * end. The scheduler prefetches across a stream's assets in manifest order, and a request for the
 * next segment continues a stream rather than starting one.
 *
 * @example
 * streamKey({ href: 'https://site.example/dash/chunk-stream1-00007.m4s', contentType: 'video/iso.segment' })
 * // 'https://site.example/dash/chunk-stream1-.m4s|video/iso.segment'
 */
export function streamKey(asset: Pick<ManifestAsset, 'href' | 'contentType'>): string {
  const path = asset.href.split('?', 1)[0]!;
  const folderEnd = path.lastIndexOf('/') + 1;
  const name = path.slice(folderEnd);
  return `${path.slice(0, folderEnd)}${SEGMENT_NAME.test(name) ? name.replace(SEGMENT_NUMBER, '') : name}|${asset.contentType}`;
}

/**
 * Whether `candidate` is an older version of `current`, a live manifest: a live stream's newest
 * segment in `candidate` is one `current` lists too, and `current` reaches a later segment (its
 * `index`, the sequence number) or has ended there while `candidate` has not. Versions of a live
 * manifest come from several fetches (the worker's and the page's own) that may finish out of
 * order; applying an older one after a newer one would drop the newest segment and the pieces
 * stored of it. A stream that restarted (new segments, numbered from 0 again) is not older.
 *
 * @example
 * isOlderLiveVersion(manifestListingSegments0to5, manifestListingSegments1to6) // true
 */
export function isOlderLiveVersion(candidate: Manifest, current: Manifest): boolean {
  const newest = (manifest: Manifest, playlistHref: string) => {
    let found: ManifestAsset | undefined;
    for (const asset of manifest.assets) if (asset.live?.playlistHref === playlistHref && (!found || asset.index > found.index)) found = asset;
    return found;
  };
  const known = new Set(current.assets.map((asset) => asset.id));
  for (const stream of current.live) {
    const other = candidate.live.find((candidateStream) => candidateStream.playlistHref === stream.playlistHref);
    const theirs = other && newest(candidate, stream.playlistHref);
    const ours = newest(current, stream.playlistHref);
    if (!other || !theirs || !ours || !known.has(theirs.id)) continue;
    if (theirs.index < ours.index || (stream.ended && !other.ended)) return true;
  }
  return false;
}
