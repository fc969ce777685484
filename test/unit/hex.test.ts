import { describe, expect, it } from 'vitest';
import { binaryToHex, bytesToHex, hexToBinary, hexToBytes } from '../../src/shared/hex.js';

describe('hex', () => {
  it.each([
    { bytes: [], hex: '' },
    { bytes: [0], hex: '00' },
    { bytes: [0x0f, 0xf0, 0xff, 0x80, 0x01], hex: '0ff0ff8001' },
  ])('bytes $bytes ⇄ $hex, and the same as a binary string', ({ bytes, hex }) => {
    expect(bytesToHex(new Uint8Array(bytes))).toBe(hex);
    expect(binaryToHex(String.fromCharCode(...bytes))).toBe(hex);
    expect([...hexToBytes(hex)!]).toEqual(bytes);
    expect(hexToBinary(hex)).toBe(String.fromCharCode(...bytes));
  });

  it('encodes all 256 byte values as Node does', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(bytesToHex(all)).toBe(Buffer.from(all).toString('hex'));
    expect(binaryToHex(Buffer.from(all).toString('latin1'))).toBe(Buffer.from(all).toString('hex'));
  });

  it('reads upper case, and refuses what is not whole pairs of hex digits', () => {
    expect(hexToBinary('ABcd')).toBe('\xab\xcd');
    for (const bad of ['a', 'abc', 'zz', '0x00', 'a b ', '\u0661\u0662']) {
      expect(hexToBytes(bad), bad).toBeUndefined();
      expect(hexToBinary(bad), bad).toBeUndefined();
    }
  });
});
