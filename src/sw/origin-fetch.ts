import { PeerfetchError } from '../shared/errors.js';
import { pieceSpan } from '../shared/piece-math.js';
import type { ManifestAsset } from '../shared/manifest.js';
import { GrowingPiece } from './growing-piece.js';

/**
 * Fetches one piece of `asset` from its origin with an HTTP Range request and returns it as soon
 * as the response headers are in: its bytes keep arriving into the returned GrowingPiece.
 * `from`: fetch the piece from this byte on only (peers delivered the bytes before it); the
 * GrowingPiece then holds bytes [from, piece end).
 * Accepts a 206 for exactly that range, or a 200 with the whole file (a server that ignores
 * Range), which is sliced and also handed over whole (`wholeAsset`). Throws `origin-failed` for
 * anything else.
 */
export async function fetchPieceFromOrigin(asset: ManifestAsset, piece: number, signal: AbortSignal, from = 0): Promise<GrowingPiece> {
  const piecesSpan = pieceSpan(piece, asset.size, asset.pieceSize);
  const span = { start: piecesSpan.start + from, end: piecesSpan.end };
  const length = span.end - span.start;
  if (length <= 0) throw new PeerfetchError('origin-failed', `nothing of piece ${piece} is left after byte ${from}`);
  const response = await fetch(asset.href, {
    headers: { Range: `bytes=${span.start}-${span.end - 1}` },
    mode: 'cors',
    credentials: 'same-origin',
    signal,
  });
  const contentRange = response.headers.get('content-range');
  const rangeMatches = contentRange === null || contentRange.startsWith(`bytes ${span.start}-${span.end - 1}/`);
  if (response.status === 206 && response.body && rangeMatches) {
    const growing = new GrowingPiece(length);
    void pump(response.body.getReader(), growing);
    return growing;
  }
  if (response.status === 200) {
    const whole = new Uint8Array(await response.arrayBuffer());
    if (whole.length === asset.size) {
      const growing = new GrowingPiece(length);
      growing.wholeAsset = whole;
      growing.append(whole.subarray(span.start, span.end));
      return growing;
    }
  }
  await response.body?.cancel().catch(() => {});
  throw new PeerfetchError('origin-failed', `origin answered ${response.status} for piece ${piece} of ${asset.href}`, {
    status: response.status,
  });
}

/** Moves a response body into a GrowingPiece; a short or failed body fails the piece. */
async function pump(reader: ReadableStreamDefaultReader<Uint8Array>, growing: GrowingPiece): Promise<void> {
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      growing.append(value);
    }
    if (growing.received !== growing.data.length) {
      growing.fail(new PeerfetchError('origin-failed', 'the origin response ended before the piece did'));
    }
  } catch (error) {
    growing.fail(new PeerfetchError('origin-failed', 'the origin response broke off', { cause: String(error) }));
  }
}

/**
 * Whether the SW can fetch `asset` itself. Same-origin assets always can; a cross-origin (CDN)
 * asset needs CORS on that CDN. Without it the SW must leave every request for that URL
 * untouched, because Chromium refuses a media resource assembled from responses of different
 * origins (measured, docs/architecture.md "Decisions").
 */
export async function originAllowsFetch(asset: ManifestAsset, scopeOrigin: string): Promise<boolean> {
  if (new URL(asset.href).origin === scopeOrigin) return true;
  try {
    const response = await fetch(asset.href, { headers: { Range: 'bytes=0-0' }, mode: 'cors', credentials: 'omit' });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}
