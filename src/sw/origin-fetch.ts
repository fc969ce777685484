import { PeerfetchError } from '../shared/errors.js';
import { pieceSpan } from '../shared/piece-math.js';
import type { ManifestAsset } from '../shared/manifest.js';
import { GrowingPiece } from './growing-piece.js';
import { ORIGIN_PROGRESS_BOUNDS, WatchedRequest, isStall, type ProgressBounds } from './watched-request.js';

/**
 * Requests an origin piece request may make in all when the origin stalls or the connection
 * breaks (count): one retry, since a fresh connection usually gets through a dropped one; after a
 * second failure the origin is down for this piece, and the player gets a network error rather
 * than a longer wait.
 */
const ORIGIN_ATTEMPTS = 2;
/**
 * Largest asset (bytes) whose whole body, sent by an origin that ignores Range, is held in memory
 * while its pieces are stored: 64 MiB, a minute or two of HD video, next to the up to 150 MB that
 * Chromium's own media buffer takes. Above it only the asked piece is taken from the body, which
 * is then dropped: the worker never holds a multi-gigabyte body (each piece then costs a download
 * from the file's start up to it, as a player on that origin pays on every seek).
 */
export const WHOLE_ASSET_MAX_BYTES = 64 * 1024 * 1024;

/**
 * How {@link fetchPieceFromOrigin} asks the origin. Every field has a default.
 */
export interface OriginFetchOptions {
  /**
   * Fetch the piece from this byte on only (peers delivered the bytes before it); the
   * GrowingPiece then holds bytes [from, piece end). Default 0.
   */
  from?: number;
  /**
   * The URL every request for the piece goes to (the first, its retry, the rest of a body that
   * broke off): the asset's URL as the page requested it, whose query may carry a signed URL's
   * token that the manifest ignores but the origin checks. Default: the asset's URL.
   */
  url?: string;
  /** The progress watchdog's bounds. Default ORIGIN_PROGRESS_BOUNDS. */
  bounds?: ProgressBounds;
  /** Default WHOLE_ASSET_MAX_BYTES. */
  wholeAssetMaxBytes?: number;
}

/**
 * Fetches one piece of `asset` from its origin with an HTTP Range request and returns it as soon
 * as the response headers are in: its bytes keep arriving into the returned GrowingPiece.
 * Accepts a 206 for exactly that range, or a 200 with the whole file (a server that ignores
 * Range), which is sliced and also handed over whole (`wholeAsset`). Throws `origin-failed` for
 * anything else.
 * Every request runs under a progress watchdog (`bounds`): an origin that sends no headers, or
 * no bytes for a while, is dropped and asked once more (a body from where it stopped), then the
 * piece fails; a stalled origin never holds a piece, or the player waiting on it, for longer.
 */
export async function fetchPieceFromOrigin(
  asset: ManifestAsset,
  piece: number,
  signal: AbortSignal,
  { from = 0, url = asset.href, bounds = ORIGIN_PROGRESS_BOUNDS, wholeAssetMaxBytes = WHOLE_ASSET_MAX_BYTES }: OriginFetchOptions = {},
): Promise<GrowingPiece> {
  const piecesSpan = pieceSpan(piece, asset.size, asset.pieceSize);
  const span = { start: piecesSpan.start + from, end: piecesSpan.end };
  const length = span.end - span.start;
  if (length <= 0) throw new PeerfetchError('origin-failed', `nothing of piece ${piece} is left after byte ${from}`);
  const attempts = { left: ORIGIN_ATTEMPTS };
  for (;;) {
    attempts.left--;
    const request = new WatchedRequest(bounds, signal);
    try {
      const response = await request.fetch(url, rangeRequest(span.start, span.end));
      const contentRange = response.headers.get('content-range');
      const rangeMatches = contentRange === null || contentRange.startsWith(`bytes ${span.start}-${span.end - 1}/`);
      if (fileChanged(response, asset)) {
        request.end();
        await response.body?.cancel().catch(() => {});
        throw new PeerfetchError('origin-failed', `${asset.href} on the origin is not the file the manifest lists (${response.status})`, {
          status: response.status,
          changed: true,
        });
      }
      if (response.status === 206 && response.body && rangeMatches) {
        const growing = new GrowingPiece(length);
        const resume: Resume = { asset, url, start: span.start, signal, bounds, attempts, etag: response.headers.get('etag') };
        void pump(response.body.getReader(), request, growing, resume);
        return growing;
      }
      if (response.status === 200 && response.body && asset.size > wholeAssetMaxBytes) {
        const growing = new GrowingPiece(length);
        void pumpSlice(response.body.getReader(), request, growing, span.start);
        return growing;
      }
      if (response.status === 200 && response.body) {
        const whole = await readWhole(response.body.getReader(), request, asset.size);
        if (whole) {
          const growing = new GrowingPiece(length);
          growing.wholeAsset = whole;
          growing.append(whole.subarray(span.start, span.end));
          return growing;
        }
      }
      request.end();
      await response.body?.cancel().catch(() => {});
      throw new PeerfetchError('origin-failed', `origin answered ${response.status} for piece ${piece} of ${asset.href}`, {
        status: response.status,
      });
    } catch (error) {
      request.end();
      if (signal.aborted) throw new PeerfetchError('aborted', 'the origin request was cancelled');
      // An answer (a status) is final; a stall or a broken connection is worth one more try.
      const answered = error instanceof PeerfetchError && !isStall(error);
      if (answered || attempts.left <= 0) throw asOriginFailure(error);
    }
  }
}

/**
 * Whether the origin's answer shows that the file is no longer the one the manifest lists: a
 * listed file that is gone (404, 410) or shorter than a listed piece (416), a 206 whose total
 * size differs, or a whole body of another size. The piece then fails before any of its bytes
 * reach the player (a response is never assembled from two versions of a file), and the loader
 * reloads the manifest.
 */
export function fileChanged(response: Response, asset: ManifestAsset): boolean {
  if (response.status === 404 || response.status === 410 || response.status === 416) return true;
  if (response.status === 206) {
    const total = /\/(\d+)\s*$/.exec(response.headers.get('content-range') ?? '')?.[1];
    return total !== undefined && Number(total) !== asset.size;
  }
  if (response.status === 200) {
    const length = response.headers.get('content-length');
    return length !== null && response.headers.get('content-encoding') === null && Number(length) !== asset.size;
  }
  return false;
}

/** Whether `error` is a piece that failed because the file changed on the origin (see {@link fileChanged}). */
export function isFileChanged(error: unknown): boolean {
  return error instanceof PeerfetchError && error.details.changed === true;
}

function rangeRequest(start: number, end: number): RequestInit {
  return { headers: { Range: `bytes=${start}-${end - 1}` }, mode: 'cors', credentials: 'same-origin' };
}

function asOriginFailure(error: unknown): PeerfetchError {
  if (error instanceof PeerfetchError) return error;
  return new PeerfetchError('origin-failed', 'the origin request failed', { cause: String(error) });
}

/** What a body that broke off needs to ask the origin for the rest. */
interface Resume {
  asset: ManifestAsset;
  /** Where the first request went (see OriginFetchOptions.url). */
  url: string;
  /** Absolute byte offset of the GrowingPiece's first byte. */
  start: number;
  signal: AbortSignal;
  bounds: ProgressBounds;
  /** Requests left for this piece, shared with the first request's retries. */
  attempts: { left: number };
  /** The first response's ETag: a rest with another one is of another version of the file. */
  etag: string | null;
}

/**
 * Moves a response body into a GrowingPiece. A body that stalls, breaks off or ends short is
 * resumed once from where it stopped (a Range for the rest, of the same version of the file);
 * when that fails too, the piece fails.
 */
async function pump(reader: ReadableStreamDefaultReader<Uint8Array>, request: WatchedRequest, growing: GrowingPiece, resume: Resume): Promise<void> {
  for (;;) {
    let failure: unknown;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        request.progress();
        growing.append(value);
        if (growing.failed) {
          request.end();
          return void (await reader.cancel().catch(() => {}));
        }
      }
      if (growing.received === growing.data.length) return request.end();
      failure = new PeerfetchError('origin-failed', 'the origin response ended before the piece did');
    } catch (error) {
      failure = request.failure(error);
    }
    request.end();
    const next = resume.attempts.left > 0 && !resume.signal.aborted ? await resumeBody(growing, resume) : undefined;
    if (!next) {
      const error = failure instanceof PeerfetchError ? failure : new PeerfetchError('origin-failed', 'the origin response broke off', { cause: String(failure) });
      return growing.fail(error);
    }
    ({ reader, request } = next);
  }
}

/** Asks the origin for the rest of a piece whose body broke off; undefined when it cannot give exactly that. */
async function resumeBody(growing: GrowingPiece, resume: Resume): Promise<{ reader: ReadableStreamDefaultReader<Uint8Array>; request: WatchedRequest } | undefined> {
  resume.attempts.left--;
  const start = resume.start + growing.received;
  const end = resume.start + growing.data.length;
  const request = new WatchedRequest(resume.bounds, resume.signal);
  try {
    const response = await request.fetch(resume.url, rangeRequest(start, end));
    const etag = response.headers.get('etag');
    const sameVersion = resume.etag === null || etag === null || etag === resume.etag;
    const contentRange = response.headers.get('content-range');
    if (response.status === 206 && response.body && sameVersion && !fileChanged(response, resume.asset) && (contentRange === null || contentRange.startsWith(`bytes ${start}-${end - 1}/`))) {
      return { reader: response.body.getReader(), request };
    }
    request.end();
    await response.body?.cancel().catch(() => {});
  } catch {
    request.end();
  }
  return undefined;
}

/**
 * Moves bytes [skip, skip + piece length) of a whole-file body into a GrowingPiece, dropping the
 * bytes before them as they pass, then stops reading: memory stays one piece.
 */
async function pumpSlice(reader: ReadableStreamDefaultReader<Uint8Array>, request: WatchedRequest, growing: GrowingPiece, skip: number): Promise<void> {
  let position = 0;
  try {
    while (growing.received < growing.data.length && !growing.failed) {
      const { done, value } = await reader.read();
      if (done) break;
      request.progress();
      const from = Math.max(0, skip - position);
      const to = Math.min(value.length, skip + growing.data.length - position);
      position += value.length;
      if (to > from) growing.append(value.subarray(from, to));
    }
    if (growing.received < growing.data.length) growing.fail(new PeerfetchError('origin-failed', 'the origin response ended before the piece did'));
  } catch (error) {
    const failure = request.failure(error);
    growing.fail(failure instanceof PeerfetchError ? failure : new PeerfetchError('origin-failed', 'the origin response broke off', { cause: String(failure) }));
  } finally {
    request.end();
    await reader.cancel().catch(() => {});
  }
}

/** Reads a whole-file body (an origin that ignored Range) under the watchdog; undefined when it is not `size` bytes. */
async function readWhole(reader: ReadableStreamDefaultReader<Uint8Array>, request: WatchedRequest, size: number): Promise<Uint8Array | undefined> {
  const whole = new Uint8Array(size);
  let received = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      request.progress();
      if (value.length > size - received) {
        await reader.cancel().catch(() => {});
        return undefined;
      }
      whole.set(value, received);
      received += value.length;
    }
  } catch (error) {
    throw request.failure(error);
  } finally {
    request.end();
  }
  return received === size ? whole : undefined;
}

/**
 * Whether the SW can fetch `asset` itself. Same-origin assets always can; a cross-origin (CDN)
 * asset needs CORS on that CDN. Without it the SW must leave every request for that URL
 * untouched, because Chromium refuses a media resource assembled from responses of different
 * origins (measured, docs/architecture.md "Decisions"). `url`: see OriginFetchOptions.url.
 */
export async function originAllowsFetch(
  asset: ManifestAsset,
  scopeOrigin: string,
  { url = asset.href, bounds = ORIGIN_PROGRESS_BOUNDS }: Pick<OriginFetchOptions, 'url' | 'bounds'> = {},
): Promise<boolean> {
  if (new URL(asset.href).origin === scopeOrigin) return true;
  // Under the watchdog: every request for the asset waits on this answer. A CDN that does not
  // answer it in time counts as one without CORS, so the player's own requests go to it untouched.
  const request = new WatchedRequest(bounds);
  try {
    const response = await request.fetch(url, { headers: { Range: 'bytes=0-0' }, mode: 'cors', credentials: 'omit' });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  } finally {
    request.end();
  }
}
