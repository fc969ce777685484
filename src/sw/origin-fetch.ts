import { PeerfetchError } from '../shared/errors.js';
import { pieceSpan } from '../shared/piece-math.js';
import type { ManifestAsset } from '../shared/manifest.js';

/**
 * Fetches one piece of `asset` from its origin with an HTTP Range request. Accepts a 206 for
 * exactly that range, or a 200 with the whole file (a server that ignores Range) and slices it.
 * Throws `origin-failed` for anything else.
 */
export async function fetchPieceFromOrigin(
  asset: ManifestAsset,
  piece: number,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const span = pieceSpan(piece, asset.size, asset.pieceSize);
  const response = await fetch(asset.href, {
    headers: { Range: `bytes=${span.start}-${span.end - 1}` },
    mode: 'cors',
    credentials: 'same-origin',
    signal,
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (response.status === 206 && bytes.length === span.end - span.start) return bytes;
  if (response.status === 200 && bytes.length === asset.size) return bytes.slice(span.start, span.end);
  throw new PeerfetchError('origin-failed', `origin answered ${response.status} for piece ${piece} of ${asset.href}`, {
    status: response.status,
    bytes: bytes.length,
  });
}

/**
 * Whether the SW can fetch `asset` itself. Same-origin assets always can; a cross-origin (CDN)
 * asset needs CORS on that CDN. Without it the SW must leave every request for that URL
 * untouched, because Chromium refuses a media resource assembled from responses of different
 * origins (measured, DESIGN.md).
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
