import { PeerfetchError } from './errors.js';
import { bytesToHex, hexToBytes } from './hex.js';
import { isAssetId } from './manifest.js';

/**
 * What a peer holds, as its hello says it: per asset id, the pieces held as sorted, disjoint runs
 * `[start, end)`, flat (`start0, end0, start1, end1, …`). Only assets with at least one piece are
 * listed, so a hello costs what the peer holds, not what the site's catalog lists: a viewer plays
 * whole stretches of a video, which are one run each.
 */
export type PieceRuns = Uint32Array;
export type Holdings = ReadonlyMap<string, PieceRuns>;

/**
 * Most bytes of holdings in one hello. Peer messages have a 64 KiB header limit and data channels
 * a 256 KiB message limit in Chromium; 48 KiB stays well under both. A default store (512 MiB of
 * 256 KiB pieces: 2048 pieces) spread over 2048 assets of one piece each is about 22 KiB; held
 * runs of whole videos are a few bytes each. Holdings past the bound are left out of the hello
 * (peers learn of later pieces from `have` messages); see encodeHoldings.
 */
export const MAX_HOLDINGS_BYTES = 48 * 1024;
/**
 * Piece indexes in holdings are below this: 2^24 pieces is 256 GiB at the smallest piece size
 * (16 KiB), larger than any one media file. Keeps every value within 4 bytes of varint.
 */
export const MAX_HELD_PIECES = 2 ** 24;
/** Bytes of an asset id on the wire (its 16 hex characters). */
const ASSET_ID_BYTES = 8;
/** Longest varint accepted: 4 bytes of 7 bits cover MAX_HELD_PIECES. */
const MAX_VARINT_BYTES = 4;

function bad(reason: string): PeerfetchError {
  return new PeerfetchError('codec-invalid', `invalid holdings: ${reason}`);
}

/**
 * The runs of a set of piece indexes (any order, repeats allowed); indexes outside
 * `[0, MAX_HELD_PIECES)` are left out.
 *
 * @example
 * runsOf([5, 0, 1, 2]) // Uint32Array [0, 3, 5, 6]
 */
export function runsOf(pieces: Iterable<number>): PieceRuns {
  const sorted = [...new Set(pieces)].filter((piece) => Number.isSafeInteger(piece) && piece >= 0 && piece < MAX_HELD_PIECES).sort((a, b) => a - b);
  const runs: number[] = [];
  for (const piece of sorted) {
    if (runs.length > 0 && runs[runs.length - 1] === piece) runs[runs.length - 1] = piece + 1;
    else runs.push(piece, piece + 1);
  }
  return Uint32Array.from(runs);
}

/** Calls `visit` with every piece index of `runs`, in order, below `limit`. */
export function forEachRunPiece(runs: PieceRuns, limit: number, visit: (piece: number) => void): void {
  for (let i = 0; i + 1 < runs.length; i += 2) {
    const end = Math.min(runs[i + 1]!, limit);
    for (let piece = runs[i]!; piece < end; piece++) visit(piece);
  }
}

/** Bytes of `value` as an unsigned LEB128 varint. */
function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    length++;
  }
  return length;
}

function writeVarint(out: Uint8Array, at: number, value: number): number {
  while (value >= 0x80) {
    out[at++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 0x80);
  }
  out[at++] = value;
  return at;
}

/**
 * The binary form of holdings, in a hello's payload: per asset, its 8-byte id, a varint count of
 * runs, then per run a varint gap (from the end of the run before it, or from 0) and a varint
 * length. Assets are written in the order given until the next would pass `maxBytes`; the rest are
 * left out (the caller lists what matters most first). Assets without pieces are skipped.
 *
 * @example
 * encodeHoldings(new Map([['0123456789abcdef', runsOf([0, 1, 2])]])) // 8 id bytes, 1, 0, 3
 */
export function encodeHoldings(holdings: Iterable<readonly [string, PieceRuns]>, maxBytes = MAX_HOLDINGS_BYTES): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (const [asset, runs] of holdings) {
    const id = isAssetId(asset) ? hexToBytes(asset) : undefined;
    const count = Math.floor(runs.length / 2);
    if (!id || count === 0) continue;
    let length = ASSET_ID_BYTES + varintLength(count);
    let previousEnd = 0;
    for (let i = 0; i < count; i++) {
      length += varintLength(runs[2 * i]! - previousEnd) + varintLength(runs[2 * i + 1]! - runs[2 * i]!);
      previousEnd = runs[2 * i + 1]!;
    }
    if (total + length > maxBytes) continue; // a smaller asset further on may still fit
    const part = new Uint8Array(length);
    part.set(id, 0);
    let at = writeVarint(part, ASSET_ID_BYTES, count);
    previousEnd = 0;
    for (let i = 0; i < count; i++) {
      at = writeVarint(part, at, runs[2 * i]! - previousEnd);
      at = writeVarint(part, at, runs[2 * i + 1]! - runs[2 * i]!);
      previousEnd = runs[2 * i + 1]!;
    }
    parts.push(part);
    total += length;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Parses the binary form written by {@link encodeHoldings}. Throws `codec-invalid` for anything a
 * correct peer never sends: more than MAX_HOLDINGS_BYTES, a truncated entry, a varint longer than
 * 4 bytes, an asset listed twice or with no runs, runs that are empty, touch or overlap, and pieces
 * at or past MAX_HELD_PIECES. What it returns is no larger than its input in runs (never expanded
 * to one entry per piece), so a hostile hello costs its own size at most.
 */
export function decodeHoldings(bytes: Uint8Array): Map<string, PieceRuns> {
  if (bytes.length > MAX_HOLDINGS_BYTES) throw bad('too large');
  const holdings = new Map<string, PieceRuns>();
  let at = 0;
  const readVarint = (): number => {
    let value = 0;
    for (let shift = 0; shift < MAX_VARINT_BYTES; shift++) {
      if (at >= bytes.length) throw bad('truncated');
      const byte = bytes[at++]!;
      value += (byte & 0x7f) * 2 ** (7 * shift);
      if ((byte & 0x80) === 0) return value;
    }
    throw bad('varint too long');
  };
  while (at < bytes.length) {
    if (at + ASSET_ID_BYTES > bytes.length) throw bad('truncated asset id');
    const asset = bytesToHex(bytes.subarray(at, at + ASSET_ID_BYTES));
    at += ASSET_ID_BYTES;
    if (holdings.has(asset)) throw bad('asset listed twice');
    const count = readVarint();
    // Each run takes at least two bytes: a count past what is left is a lie, not a reason to allocate.
    if (count === 0 || count * 2 > bytes.length - at) throw bad('bad run count');
    const runs = new Uint32Array(count * 2);
    let previousEnd = 0;
    for (let i = 0; i < count; i++) {
      const gap = readVarint();
      const length = readVarint();
      if (length === 0 || (i > 0 && gap === 0)) throw bad('empty or touching runs');
      const start = previousEnd + gap;
      const end = start + length;
      if (end > MAX_HELD_PIECES) throw bad('piece index too large');
      runs[2 * i] = start;
      runs[2 * i + 1] = end;
      previousEnd = end;
    }
    holdings.set(asset, runs);
  }
  return holdings;
}
