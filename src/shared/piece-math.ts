/** Byte range of a piece, `end` exclusive. */
export interface ByteSpan {
  start: number;
  end: number;
}

/** Whether `value` can be a piece index, request id or byte offset: a non-negative safe integer (not NaN, -1, 1.5 or 2^60). */
export function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Number of pieces an asset of `size` bytes has with pieces of `pieceSize` bytes. */
export function pieceCount(size: number, pieceSize: number): number {
  return size === 0 ? 0 : Math.ceil(size / pieceSize);
}

/** Byte span of piece `index` (the last piece may be shorter). */
export function pieceSpan(index: number, size: number, pieceSize: number): ByteSpan {
  const start = index * pieceSize;
  return { start, end: Math.min(start + pieceSize, size) };
}

/** Indexes of the pieces that cover bytes `[start, end)`, in order. */
export function piecesCovering(start: number, end: number, pieceSize: number): number[] {
  if (end <= start) return [];
  const first = Math.floor(start / pieceSize);
  const last = Math.floor((end - 1) / pieceSize);
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}
