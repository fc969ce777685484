/** An inclusive byte range of an asset, as HTTP Range and Content-Range write it. */
export interface ByteRange {
  start: number;
  /** Inclusive last byte. */
  end: number;
}

/**
 * What a Range header asks of an asset of `size` bytes (RFC 9110 §14):
 * - `{ kind: 'full' }`: no header, or one we answer with the whole body (several ranges, other units);
 * - `{ kind: 'partial', range }`: one satisfiable byte range;
 * - `{ kind: 'unsatisfiable' }`: a well-formed range that starts past the end (answer 416).
 *
 * @example
 * parseRange('bytes=100-', 1000) // { kind: 'partial', range: { start: 100, end: 999 } }
 */
export type RangeRequest =
  | { kind: 'full' }
  | { kind: 'partial'; range: ByteRange }
  | { kind: 'unsatisfiable' };

const SINGLE_RANGE = /^bytes=(\d*)-(\d*)$/;

export function parseRange(header: string | null, size: number): RangeRequest {
  if (header === null) return { kind: 'full' };
  const match = SINGLE_RANGE.exec(header.trim());
  // Multi-range and unknown units: RFC 9110 lets a server ignore Range and send 200.
  if (!match) return { kind: 'full' };
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return { kind: 'full' };
  if (first === '') {
    // Suffix range: the last N bytes.
    const length = Number(last);
    if (length === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', range: { start: Math.max(0, size - length), end: size - 1 } };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== '' && Number(last) < start) return { kind: 'full' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', range: { start, end } };
}

/** `Content-Range` value for `range` of an asset of `size` bytes. */
export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`;
}
