/**
 * Messages between the service worker and the page engine. The SW cannot hold WebRTC
 * connections (RTCPeerConnection is window-only, w3c/webrtc-pc#3131), so it asks a page:
 * one MessageChannel per piece request, pull-based, cancellable.
 */
import { isAssetId, MAX_PIECE_SIZE } from './manifest.js';
import { MAX_REQUEST_DEADLINE_MS } from './peer-messages.js';
import { isIndex } from './piece-math.js';

export const BRIDGE_VERSION = 1;

/** Page -> SW, on `navigator.serviceWorker.controller`. */
export type PageToWorker =
  /** This page's engine can answer piece requests (sent at start and whenever the SW asks). */
  | { type: 'engine-ready'; version: number }
  /** This page's engine stopped; send it no more requests. */
  | { type: 'engine-gone' }
  /**
   * Fetch this piece from the local store or the origin ahead of need (the engine decided this
   * page is the one to fetch it for the swarm). Answered with `piece-delivered` like any piece.
   */
  | { type: 'prefetch'; asset: string; piece: number }
  /**
   * Stop that fetch: a peer fetches the piece from the origin itself, and this page takes it from
   * the peer. The SW goes on when a response of its own reads the piece. Workers that do not know
   * this message ignore it.
   */
  | { type: 'prefetch-stop'; asset: string; piece: number }
  /**
   * Send the bytes of this piece's origin transfer, under way in the SW (`piece-arriving`), on the
   * transferred port as they arrive (ForwardPart): a peer asked for the piece. Workers that do not
   * know this message never answer (the page gives up after FORWARD_SILENCE_MS).
   */
  | { type: 'forward'; asset: string; piece: number }
  /**
   * Media elements of this page began loading these URLs before the SW controlled it (a first
   * visit): pass their requests through. Chromium refuses a media resource assembled from a
   * network response and a SW-built one, even for the same URL (measured: PIPELINE_ERROR_READ
   * on the next seek; docs/architecture.md).
   */
  | { type: 'media-direct'; urls: string[] }
  /**
   * The page reloads its element of `url` as a new resource: answer that URL again. The SW
   * acknowledges on the transferred port, and the page reloads only then.
   */
  | { type: 'media-takeover'; url: string }
  /**
   * This page's engine reads ahead into the asset at `url`, which its worker has not described to
   * it yet (a catalog asset: the next segment of a stream): load it and answer with `asset`.
   */
  | { type: 'resolve'; url: string };

/** SW -> page, posted to a window client. */
export type WorkerToPage =
  /** The SW (re)started and lost its list of ready engines: engines answer `engine-ready`. */
  | { type: 'worker-hello'; version: number }
  /** Ask for one piece from peers; the answer comes back on the transferred port. */
  | {
      type: 'piece-request';
      version: number;
      asset: string;
      piece: number;
      deadlineMs: number;
      /**
       * The asking page's own engine may take up to this long (ms) when its player has that much
       * buffered ahead (see engine/playback-slack.ts); absent: `deadlineMs` is the deadline.
       */
      maxDeadlineMs?: number;
      /** The first piece of a response (playback start or a seek): the player is waiting for it now. */
      first: boolean;
    }
  /**
   * Bytes the SW moved for this page, for its stats; `stored` pieces may now be seeded.
   * `peers`: another tab's engine fetched it from peers for this page. 0 bytes from the store: a
   * prefetch found the piece stored already.
   */
  | {
      type: 'piece-delivered';
      asset: string;
      piece: number;
      source: 'origin' | 'store' | 'peers';
      bytes: number;
      stored: boolean;
      /**
       * For origin pieces: ms from the SW's request to the origin's response headers, a sample of
       * this visitor's own request delay (seeding backs off when it rises, see UploadBackoff).
       */
      latencyMs?: number;
    }
  /**
   * The origin's bytes of a piece of a live stream began to arrive for this page (its player's
   * request or its prefetch): the page may offer the piece to peers before it is whole (`forward`).
   */
  | { type: 'piece-arriving'; asset: string; piece: number }
  /** Bytes of an asset the SW handed to one of this page's requests. */
  | { type: 'bytes-served'; bytes: number }
  /**
   * The SW loaded a manifest that differs from its last one (a live stream moved): the raw JSON
   * and the URL it came from, so every page follows at once without fetching it again.
   */
  | { type: 'manifest'; url: string; manifest: unknown }
  /**
   * A catalog asset the SW loaded (its shard entry and verified piece list; see catalog.ts), in a
   * manifest's inline form, to resolve against the manifest's `url`: sent to a page before the
   * SW asks it for a piece of that asset, and in answer to `resolve`.
   */
  | { type: 'asset'; url: string; asset: unknown };

/**
 * Page -> SW on a piece request's port. `data` is transferred, not copied. `partial`: the first
 * bytes of the piece, received from peers before the deadline and NOT verified (transferred):
 * the SW fetches the rest from the origin and verifies the whole piece before any byte of it
 * reaches the player.
 */
export type PieceAnswer =
  | { type: 'piece'; data: ArrayBuffer }
  | {
      type: 'piece-miss';
      reason: 'no-peer' | 'slow-peers' | 'timeout' | 'rejected' | 'not-ready' | 'unknown-asset';
      partial?: ArrayBuffer;
    };

/**
 * SW -> page on a forward's port: the piece's next bytes (transferred, NOT verified) until the whole
 * piece is there, or `forward-failed` (no transfer under way and nothing stored, or it failed):
 * nothing more comes.
 */
export type ForwardPart = { type: 'forward-bytes'; data: ArrayBuffer } | { type: 'forward-failed' };

/** SW -> page on a piece request's port: the stream that wanted the piece is gone. */
export type PieceCancel = { type: 'cancel' };

/**
 * Longest URL accepted in a message (chars): far above any media URL a site uses (signed CDN
 * URLs run to about 2 KiB), and it bounds what one message can make the SW keep.
 */
export const MAX_MESSAGE_URL_LENGTH = 8 * 1024;
/**
 * Most URLs in one `media-direct` (count): media elements that began loading before the SW took
 * control of a page; a page with more is not a real page. The SW keeps at most this many per page.
 */
export const MAX_DIRECT_MEDIA_URLS = 256;
/** Longest deadline (ms) a piece request may carry: the longest the SW waits for peers (a prefetch's budget fits). */
const MAX_PIECE_DEADLINE_MS = MAX_REQUEST_DEADLINE_MS;
const PIECE_MISS_REASONS: ReadonlySet<unknown> = new Set(['no-peer', 'slow-peers', 'timeout', 'rejected', 'not-ready', 'unknown-asset']);
const PIECE_SOURCES: ReadonlySet<unknown> = new Set(['origin', 'store', 'peers']);

// Every message crossing the bridge is checked field by field before anything acts on it: the
// other side may be another version of peerfetch (a page and a SW from two deploys), or a
// site's own script posting to the same worker. A message that fails is dropped (the parsers
// return undefined and never throw); the receiver counts it.

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

const isVersion = (value: unknown): value is number => isIndex(value) && value > 0;
const isUrl = (value: unknown): value is string => typeof value === 'string' && value.length > 0 && value.length <= MAX_MESSAGE_URL_LENGTH;
/** A byte count or duration: finite, not negative. */
const isAmount = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value) && value >= 0;
/** Piece bytes: an ArrayBuffer no larger than the largest piece a manifest may have. */
const isPieceBuffer = (value: unknown): value is ArrayBuffer => value instanceof ArrayBuffer && value.byteLength <= MAX_PIECE_SIZE;

/** Narrows a message event's data to a WorkerToPage message (or undefined for foreign or invalid messages). */
export function asWorkerToPage(data: unknown): WorkerToPage | undefined {
  if (!isRecord(data)) return undefined;
  switch (data.type) {
    case 'worker-hello':
      return isVersion(data.version) ? { type: data.type, version: data.version } : undefined;
    case 'piece-request': {
      const { version, asset, piece, deadlineMs, maxDeadlineMs, first } = data;
      if (!isVersion(version) || !isAssetId(asset) || !isIndex(piece) || typeof first !== 'boolean') return undefined;
      if (!isAmount(deadlineMs) || deadlineMs > MAX_PIECE_DEADLINE_MS) return undefined;
      const request: WorkerToPage = { type: data.type, version, asset, piece, deadlineMs, first };
      if (maxDeadlineMs === undefined) return request;
      if (!isAmount(maxDeadlineMs) || maxDeadlineMs < deadlineMs || maxDeadlineMs > MAX_PIECE_DEADLINE_MS) return undefined;
      return { ...request, maxDeadlineMs };
    }
    case 'piece-delivered': {
      const { asset, piece, source, bytes, stored, latencyMs } = data;
      if (!isAssetId(asset) || !isIndex(piece) || !PIECE_SOURCES.has(source) || !isIndex(bytes) || bytes > MAX_PIECE_SIZE) return undefined;
      if (typeof stored !== 'boolean' || (latencyMs !== undefined && !isAmount(latencyMs))) return undefined;
      const message: WorkerToPage = { type: data.type, asset, piece, source: source as 'origin' | 'store' | 'peers', bytes, stored };
      if (latencyMs !== undefined) message.latencyMs = latencyMs;
      return message;
    }
    case 'piece-arriving':
      return isAssetId(data.asset) && isIndex(data.piece) ? { type: data.type, asset: data.asset, piece: data.piece } : undefined;
    case 'bytes-served':
      return isIndex(data.bytes) ? { type: data.type, bytes: data.bytes } : undefined;
    case 'manifest':
      // The manifest itself is checked by parseManifest where it is used.
      return isUrl(data.url) && isRecord(data.manifest) ? { type: data.type, url: data.url, manifest: data.manifest } : undefined;
    case 'asset':
      // The asset itself is checked by parseAsset where it is used.
      return isUrl(data.url) && isRecord(data.asset) ? { type: data.type, url: data.url, asset: data.asset } : undefined;
    default:
      return undefined;
  }
}

/** Narrows a message event's data to a PageToWorker message (or undefined for foreign or invalid messages). */
export function asPageToWorker(data: unknown): PageToWorker | undefined {
  if (!isRecord(data)) return undefined;
  switch (data.type) {
    case 'engine-ready':
      return isVersion(data.version) ? { type: data.type, version: data.version } : undefined;
    case 'engine-gone':
      return { type: data.type };
    case 'prefetch':
    case 'prefetch-stop':
    case 'forward':
      return isAssetId(data.asset) && isIndex(data.piece) ? { type: data.type, asset: data.asset, piece: data.piece } : undefined;
    case 'media-direct': {
      const { urls } = data;
      if (!Array.isArray(urls) || urls.length > MAX_DIRECT_MEDIA_URLS || !urls.every(isUrl)) return undefined;
      return { type: data.type, urls: [...urls] };
    }
    case 'media-takeover':
    case 'resolve':
      return isUrl(data.url) ? { type: data.type, url: data.url } : undefined;
    default:
      return undefined;
  }
}

/** Narrows a port message to a PieceAnswer (or undefined). */
export function asPieceAnswer(data: unknown): PieceAnswer | undefined {
  if (!isRecord(data)) return undefined;
  if (data.type === 'piece') return isPieceBuffer(data.data) ? { type: data.type, data: data.data } : undefined;
  if (data.type !== 'piece-miss' || !PIECE_MISS_REASONS.has(data.reason)) return undefined;
  const reason = data.reason as Extract<PieceAnswer, { type: 'piece-miss' }>['reason'];
  if (data.partial === undefined) return { type: data.type, reason };
  return isPieceBuffer(data.partial) ? { type: data.type, reason, partial: data.partial } : undefined;
}

/** Narrows a forward port message to a ForwardPart (or undefined). */
export function asForwardPart(data: unknown): ForwardPart | undefined {
  if (!isRecord(data)) return undefined;
  if (data.type === 'forward-bytes') return isPieceBuffer(data.data) ? { type: data.type, data: data.data } : undefined;
  return data.type === 'forward-failed' ? { type: data.type } : undefined;
}
