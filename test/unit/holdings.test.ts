import { describe, expect, it } from 'vitest';
import { isPeerfetchError } from '../../src/shared/errors.js';
import { decodeHoldings, encodeHoldings, forEachRunPiece, MAX_HELD_PIECES, MAX_HOLDINGS_BYTES, runsOf, type PieceRuns } from '../../src/shared/holdings.js';
import { decodePeerMessage, encodePeerMessage } from '../../src/shared/peer-codec.js';
import { PEER_PROTOCOL_VERSION } from '../../src/shared/peer-messages.js';

// The hello's holdings: only what a peer holds, as runs, so that a site of 100,000 assets costs
// a hello the size of one viewer's store, not of the catalog (issue 11 item 3: a v2 hello carried
// a bitfield per manifest asset and passed the 64 KiB frame limit at 5,001 assets).

/** Asset id number `n` (16 hex characters). */
const id = (n: number) => n.toString(16).padStart(16, '0');
const runs = (...values: number[]) => Uint32Array.from(values);

describe('holdings: runs', () => {
  it.each<[string, number[], number[]]>([
    ['nothing', [], []],
    ['one piece', [7], [7, 8]],
    ['a stretch in any order, with repeats', [3, 1, 2, 2, 0], [0, 4]],
    ['stretches and single pieces', [0, 1, 2, 5, 9, 10], [0, 3, 5, 6, 9, 11]],
    ['indexes no hello can carry are left out', [-1, 1.5, MAX_HELD_PIECES, 4], [4, 5]],
  ])('%s', (_name, pieces, expected) => {
    expect([...runsOf(pieces)]).toEqual(expected);
  });

  it('visits the pieces of runs below a limit (an asset\'s piece count)', () => {
    const seen: number[] = [];
    forEachRunPiece(runs(0, 2, 5, 1000), 7, (piece) => seen.push(piece));
    expect(seen).toEqual([0, 1, 5, 6]);
  });
});

describe('holdings: wire form', () => {
  it.each<[string, Map<string, PieceRuns>]>([
    ['none', new Map()],
    ['a whole video', new Map([[id(1), runs(0, 400)]])],
    ['several assets, scattered pieces', new Map([[id(1), runs(0, 3, 5, 6, 200, 4000)], [id(2), runs(MAX_HELD_PIECES - 1, MAX_HELD_PIECES)]])],
  ])('round-trips %s', (_name, holdings) => {
    expect(decodeHoldings(encodeHoldings(holdings))).toEqual(holdings);
  });

  it('costs a few bytes per run: a whole video held is 12 bytes', () => {
    expect(encodeHoldings(new Map([[id(1), runs(0, 400)]]))).toHaveLength(8 + 1 + 1 + 2);
  });

  it('leaves out assets with no pieces, and assets past the byte bound (a smaller one further on still fits)', () => {
    const encoded = encodeHoldings(
      new Map([
        [id(1), runs()],
        [id(2), runs(0, 1)],
        [id(3), runsOf(Array.from({ length: 100 }, (_, n) => n * 2))],
        [id(4), runs(5, 6)],
      ]),
      30,
    );
    expect([...decodeHoldings(encoded).keys()]).toEqual([id(2), id(4)]);
  });

  it.each<[string, number[]]>([
    ['a truncated asset id', [1, 2, 3]],
    ['an asset without runs', [...new Uint8Array(8), 0]],
    ['more runs than bytes left', [...new Uint8Array(8), 50, 0, 1]],
    ['a run cut short', [...new Uint8Array(8), 1, 0]],
    ['a varint longer than 4 bytes', [...new Uint8Array(8), 1, 0x80, 0x80, 0x80, 0x80, 0x01, 1]],
    ['an empty run', [...new Uint8Array(8), 1, 0, 0]],
    ['runs that touch', [...new Uint8Array(8), 2, 0, 1, 0, 1]],
    ['a piece past MAX_HELD_PIECES', [...new Uint8Array(8), 1, 0xff, 0xff, 0xff, 0x07, 2]],
    ['an asset listed twice', [...new Uint8Array(8), 1, 0, 1, ...new Uint8Array(8), 1, 4, 1]],
  ])('refuses %s with codec-invalid', (_name, bytes) => {
    let error: unknown;
    try {
      decodeHoldings(Uint8Array.from(bytes));
    } catch (caught) {
      error = caught;
    }
    expect(isPeerfetchError(error, 'codec-invalid')).toBe(true);
  });

  it('refuses more than MAX_HOLDINGS_BYTES however well-formed', () => {
    const huge = new Map(Array.from({ length: MAX_HOLDINGS_BYTES / 11 + 10 }, (_, n) => [id(n), runs(0, 1)] as const));
    const encoded = encodeHoldings(huge, Infinity);
    expect(encoded.length).toBeGreaterThan(MAX_HOLDINGS_BYTES);
    expect(() => decodeHoldings(encoded)).toThrow(/too large/);
  });

  it('a hostile run count or run length allocates nothing beyond the input', () => {
    // One asset claiming every piece up to the limit: decoded as one run, not 2^24 entries.
    const claimAll = encodeHoldings(new Map([[id(9), runs(0, MAX_HELD_PIECES)]]));
    expect(claimAll.length).toBeLessThan(16);
    const decoded = decodeHoldings(claimAll);
    expect(decoded.get(id(9))).toHaveLength(2);
  });
});

describe('holdings: the hello of a site with 100,000 assets', () => {
  /** Piece counts of a catalog of 100,000 assets and 10 TB: 100 MB each on average, at 256 KiB pieces. */
  const CATALOG_ASSETS = 100_000;
  const PIECES_PER_ASSET = Math.ceil(100_000_000 / (256 * 1024));

  it('a viewer holding a realistic share (its 512 MiB store: three videos whole, others in stretches) sends a hello well under 64 KiB', () => {
    // 2048 pieces of 256 KiB: three whole videos (1146 pieces), 200 stretches of 4 pieces of other
    // videos left after seeks, and 100 single pieces scattered over the catalog.
    const holdings = new Map<string, PieceRuns>();
    for (let video = 0; video < 3; video++) holdings.set(id(video), runs(0, PIECES_PER_ASSET));
    for (let n = 0; n < 200; n++) holdings.set(id(1000 + n * 97), runs(n % 300, (n % 300) + 4));
    for (let n = 0; n < 100; n++) holdings.set(id(50_000 + n * 331), runs((n * 7) % PIECES_PER_ASSET, ((n * 7) % PIECES_PER_ASSET) + 1));
    const frame = encodePeerMessage({ type: 'hello', version: PEER_PROTOCOL_VERSION, holdings });
    expect(frame.length).toBeLessThan(4 * 1024);
    const decoded = decodePeerMessage(frame);
    expect(decoded.type === 'hello' && decoded.holdings).toEqual(holdings);
  });

  it('the worst a default store allows (2048 assets of one piece each, across the catalog) still fits one frame', () => {
    const holdings = new Map<string, PieceRuns>();
    for (let n = 0; n < 2048; n++) holdings.set(id((n * 48_271) % CATALOG_ASSETS), runs(n % PIECES_PER_ASSET, (n % PIECES_PER_ASSET) + 1));
    const frame = encodePeerMessage({ type: 'hello', version: PEER_PROTOCOL_VERSION, holdings });
    expect(frame.length).toBeLessThan(32 * 1024);
    const decoded = decodePeerMessage(frame);
    expect(decoded.type === 'hello' && decoded.holdings.size).toBe(2048);
  });

  it('whatever a store holds, the hello stays within MAX_HOLDINGS_BYTES (what does not fit is left out)', () => {
    const holdings = new Map<string, PieceRuns>();
    // Every other piece of 1000 assets: far more runs than a hello carries.
    for (let n = 0; n < 1000; n++) holdings.set(id(n), runsOf(Array.from({ length: 200 }, (_, piece) => piece * 2)));
    const frame = encodePeerMessage({ type: 'hello', version: PEER_PROTOCOL_VERSION, holdings });
    expect(frame.length).toBeLessThanOrEqual(MAX_HOLDINGS_BYTES + 64);
    const decoded = decodePeerMessage(frame);
    expect(decoded.type === 'hello' && decoded.holdings.size).toBeGreaterThan(0);
  });
});
