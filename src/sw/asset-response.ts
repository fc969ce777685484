import { pieceSpan, piecesCovering } from '../shared/piece-math.js';
import { contentRange, parseRange, type ByteRange } from '../shared/range.js';
import type { ManifestAsset } from '../shared/manifest.js';
import { GrowingPiece } from './growing-piece.js';
import { PeerfetchError } from '../shared/errors.js';

/**
 * Fetches the bytes of one whole piece; rejects when no source can deliver it. `first` marks
 * the first piece of a response: the player is waiting for it now.
 */
export type PieceLoader = (piece: number, signal: AbortSignal, first: boolean) => Promise<Uint8Array | GrowingPiece>;

/**
 * Pieces requested ahead of the one being read (count). Two keep the next piece's round trip
 * (peer or origin) hidden behind the player's consumption of the current one without
 * committing much bandwidth to a stream the player may drop on a seek.
 */
const LOOKAHEAD_PIECES = 2;

/** How a response yields to a new version of its worker (see {@link assetResponse}). */
export interface YieldOptions {
  /**
   * A 206 answers at most to the end of the range's first piece, as an HTTP server may answer
   * `bytes=N-` with less than the rest of the file; the player asks again for what follows.
   */
  short?: boolean;
  /**
   * Aborted when the response must yield: the body fails at once, pulled or not (a player may
   * leave a response open without reading it), and the player asks again from where it stopped.
   */
  stop?: AbortSignal;
}

/**
 * Answers a request for `asset` the way an HTTP server honouring Range would: 200 for no or an
 * ignorable Range, 206 with Content-Range for one satisfiable range, 416 past the end. The body
 * streams piece by piece from `loadPiece`, in order, each piece as soon as it is available.
 *
 * @example
 * const response = assetResponse(asset, request.headers.get('range'), loadPiece, (n) => served += n);
 */
export function assetResponse(
  asset: ManifestAsset,
  rangeHeader: string | null,
  loadPiece: PieceLoader,
  onBytes: (bytes: number) => void = () => {},
  { short = false, stop }: YieldOptions = {},
): Response {
  const request = parseRange(rangeHeader, asset.size);
  const headers = new Headers({
    'Content-Type': asset.contentType,
    'Accept-Ranges': 'bytes',
  });
  if (request.kind === 'unsatisfiable') {
    headers.set('Content-Range', `bytes */${asset.size}`);
    return new Response(null, { status: 416, statusText: 'Range Not Satisfiable', headers });
  }
  const range: ByteRange = request.kind === 'partial' ? { ...request.range } : { start: 0, end: asset.size - 1 };
  if (short && request.kind === 'partial') range.end = Math.min(range.end, pieceSpan(Math.floor(range.start / asset.pieceSize), asset.size, asset.pieceSize).end - 1);
  const length = asset.size === 0 ? 0 : range.end - range.start + 1;
  headers.set('Content-Length', String(length));
  if (request.kind === 'partial') headers.set('Content-Range', contentRange(range, asset.size));
  const body = length === 0 ? null : pieceStream(asset, range, loadPiece, onBytes, stop);
  return request.kind === 'partial'
    ? new Response(body, { status: 206, statusText: 'Partial Content', headers })
    : new Response(body, { status: 200, statusText: 'OK', headers });
}

/** A byte stream of `range` of `asset`, assembled from whole pieces with a small lookahead. */
export function pieceStream(
  asset: ManifestAsset,
  range: ByteRange,
  loadPiece: PieceLoader,
  onBytes: (bytes: number) => void,
  stop?: AbortSignal,
): ReadableStream<Uint8Array> {
  const pieces = piecesCovering(range.start, range.end + 1, asset.pieceSize);
  const abort = new AbortController();
  const pending: Promise<Uint8Array | GrowingPiece>[] = [];
  let nextToLoad = 0;

  const fill = () => {
    while (nextToLoad < pieces.length && pending.length < LOOKAHEAD_PIECES + 1) {
      const loading = loadPiece(pieces[nextToLoad]!, abort.signal, nextToLoad === 0);
      // A lookahead piece may be abandoned by a cancel; its rejection is then nobody's business.
      loading.catch(() => {});
      pending.push(loading);
      nextToLoad++;
    }
  };

  let onStop = () => {};
  const stopped = () => stop?.removeEventListener('abort', onStop);
  return new ReadableStream<Uint8Array>({
    start(controller) {
      onStop = () => {
        abort.abort();
        controller.error(new PeerfetchError('origin-failed', 'the response yields to a new version of the worker', { url: asset.href }));
      };
      if (stop?.aborted) onStop();
      else stop?.addEventListener('abort', onStop, { once: true });
    },
    async pull(controller) {
      fill();
      const loading = pending.shift();
      if (!loading) return controller.close();
      const index = pieces[nextToLoad - pending.length - 1]!;
      const span = pieceSpan(index, asset.size, asset.pieceSize);
      const from = Math.max(range.start, span.start) - span.start;
      const to = Math.min(range.end + 1, span.end) - span.start;
      // Counted once per piece, not per network chunk: each count is a message to the page.
      let delivered = 0;
      try {
        const data = await loading;
        if (!(data instanceof GrowingPiece)) {
          // Whole pieces come verified (store, peers, an origin piece finished after peers).
          controller.enqueue(data.subarray(from, to));
          delivered = to - from;
        } else if (index === pieces[0]) {
          // The first piece of a response streams from the origin as it arrives (startup and seeks
          // as fast as plain HTTP); when it then fails its hash, the response fails before any
          // other piece joins it.
          for await (const part of data.read(from, to)) {
            controller.enqueue(part);
            delivered += part.length;
          }
          if (!(await data.verify(asset.pieces[index]!))) throw changedFile(asset, index);
        } else {
          // Any later origin piece is verified before its first byte joins the response: the file
          // may have changed on the origin since the pieces before it were read (from the store,
          // peers or the origin), and a response is never assembled from two versions of a file.
          if (!(await data.verify(asset.pieces[index]!))) throw changedFile(asset, index);
          const part = data.data.subarray(from, to);
          controller.enqueue(part);
          delivered = part.length;
        }
      } catch (error) {
        abort.abort();
        stopped();
        // Failed already when it yielded (see `stop`).
        if (stop?.aborted) return;
        throw error;
      } finally {
        if (delivered > 0) onBytes(delivered);
      }
      if (nextToLoad === pieces.length && pending.length === 0) {
        stopped();
        controller.close();
      }
    },
    cancel() {
      abort.abort();
      stopped();
    },
  });
}

/** A piece from the origin that does not match the manifest: the file changed there (the loader reloads the manifest). */
const changedFile = (asset: ManifestAsset, piece: number) => new PeerfetchError('origin-failed', 'the file changed on the origin', { url: asset.href, piece, changed: true });
