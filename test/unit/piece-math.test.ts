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
  it('sets, tests and counts bits, BitTorrent order', () => {
    const bits = new Bitfield(10);
    bits.set(0);
    bits.set(9);
    bits.set(42);
    expect(bits.has(0)).toBe(true);
    expect(bits.has(1)).toBe(false);
    expect(bits.has(9)).toBe(true);
    expect(bits.has(42)).toBe(false);
    expect(bits.count()).toBe(2);
    expect(bits.toHex()).toBe('8040');
  });

  it('clears one bit and leaves its neighbours', () => {
    const bits = Bitfield.fromHex('ffc0', 10)!;
    bits.clear(8);
    bits.clear(42);
    expect(bits.has(8)).toBe(false);
    expect(bits.has(7)).toBe(true);
    expect(bits.has(9)).toBe(true);
    expect(bits.count()).toBe(9);
  });

  it('round-trips through hex and refuses hex of the wrong length', () => {
    const bits = Bitfield.fromHex('8040', 10);
    expect(bits?.has(9)).toBe(true);
    expect(Bitfield.fromHex('80', 10)).toBeUndefined();
    expect(Bitfield.fromHex('zz40', 10)).toBeUndefined();
  });
});
