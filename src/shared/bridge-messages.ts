/**
 * Messages between the service worker and the page engine. The SW cannot hold WebRTC
 * connections (RTCPeerConnection is window-only, w3c/webrtc-pc#3131), so it asks a page:
 * one MessageChannel per piece request, pull-based, cancellable.
 */
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
  | { type: 'media-takeover'; url: string };

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
      /** The first piece of a response (playback start or a seek): the player is waiting for it now. */
      first: boolean;
    }
  /**
   * Bytes the SW moved for this page, for its stats; `stored` pieces may now be seeded.
   * `peers`: another tab's engine fetched it from peers for this page.
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
  /** Bytes of an asset the SW handed to one of this page's requests. */
  | { type: 'bytes-served'; bytes: number }
  /**
   * The SW loaded a manifest that differs from its last one (a live stream moved): the raw JSON
   * and the URL it came from, so every page follows at once without fetching it again.
   */
  | { type: 'manifest'; url: string; manifest: unknown };

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

/** SW -> page on a piece request's port: the stream that wanted the piece is gone. */
export type PieceCancel = { type: 'cancel' };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** Narrows a message event's data to a WorkerToPage message (or undefined for foreign messages). */
export function asWorkerToPage(data: unknown): WorkerToPage | undefined {
  if (!isRecord(data) || typeof data.type !== 'string') return undefined;
  switch (data.type) {
    case 'worker-hello':
    case 'piece-request':
    case 'piece-delivered':
    case 'bytes-served':
      return data as WorkerToPage;
    case 'manifest':
      return typeof data.url === 'string' ? (data as WorkerToPage) : undefined;
    default:
      return undefined;
  }
}

/** Narrows a message event's data to a PageToWorker message (or undefined). */
export function asPageToWorker(data: unknown): PageToWorker | undefined {
  if (!isRecord(data)) return undefined;
  if (data.type === 'engine-ready' || data.type === 'engine-gone') return data as PageToWorker;
  if (data.type === 'prefetch' && typeof data.asset === 'string' && typeof data.piece === 'number') {
    return data as PageToWorker;
  }
  if (data.type === 'media-direct' && Array.isArray(data.urls) && data.urls.every((url) => typeof url === 'string')) {
    return data as PageToWorker;
  }
  if (data.type === 'media-takeover' && typeof data.url === 'string') return data as PageToWorker;
  return undefined;
}

/** Narrows a port message to a PieceAnswer (or undefined). */
export function asPieceAnswer(data: unknown): PieceAnswer | undefined {
  if (!isRecord(data)) return undefined;
  if (data.type === 'piece' && data.data instanceof ArrayBuffer) return data as PieceAnswer;
  if (data.type === 'piece-miss' && typeof data.reason === 'string' && (data.partial === undefined || data.partial instanceof ArrayBuffer)) {
    return data as PieceAnswer;
  }
  return undefined;
}
