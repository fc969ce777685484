import { describe, expect, it } from 'vitest';
import { pieceCount, pieceSpan, piecesCovering } from '../../src/shared/piece-math.js';
import { Bitfield } from '../../src/shared/bitfield.js';

describe('piece math', () => {
  it.each([
    [0, 10, 0],
    [1, 10, 1],
    [10, 10, 1],
    [11, 10, 2],
    [100, 10, 10],
  ])('pieceCount(%i, %i) = %i', (size, pieceSize, count) => {
    expect(pieceCount(size, pieceSize)).toBe(count);
  });

  it.each([
    [0, 25, 10, { start: 0, end: 10 }],
    [2, 25, 10, { start: 20, end: 25 }],
  ])('pieceSpan(%i) of %i bytes', (index, size, pieceSize, span) => {
    expect(pieceSpan(index, size, pieceSize)).toEqual(span);
  });

  it.each([
    [0, 10, 10, [0]],
    [0, 11, 10, [0, 1]],
    [9, 21, 10, [0, 1, 2]],
    [10, 20, 10, [1]],
    [5, 5, 10, []],
  ])('piecesCovering(%i, %i)', (start, end, pieceSize, pieces) => {
    expect(piecesCovering(start, end, pieceSize)).toEqual(pieces);
  });
});

describe('Bitfield', () => {
  it('sets and tests bits, BitTorrent order, and ignores indexes outside it', () => {
    const bits = new Bitfield(10);
    bits.set(0);
    bits.set(9);
    bits.set(42);
    expect(bits.has(0)).toBe(true);
    expect(bits.has(1)).toBe(false);
    expect(bits.has(9)).toBe(true);
    expect(bits.has(42)).toBe(false);
    expect([...bits.bytes]).toEqual([0x80, 0x40]);
  });

  it('clears one bit and leaves its neighbours', () => {
    const bits = new Bitfield(10, Uint8Array.from([0xff, 0xc0]));
    bits.clear(8);
    bits.clear(42);
    expect(bits.has(8)).toBe(false);
    expect(bits.has(7)).toBe(true);
    expect(bits.has(9)).toBe(true);
    expect([...bits.bytes]).toEqual([0xff, 0x40]);
  });
});
