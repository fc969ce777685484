/** A fixed-size set of piece indexes, one bit each (bit 7 of byte 0 is piece 0, as in BitTorrent). */
export class Bitfield {
  readonly bytes: Uint8Array;
  readonly length: number;

  constructor(length: number, bytes?: Uint8Array) {
    this.length = length;
    this.bytes = bytes ?? new Uint8Array(Math.ceil(length / 8));
  }

  has(index: number): boolean {
    if (index < 0 || index >= this.length) return false;
    return ((this.bytes[index >> 3] ?? 0) & (0x80 >> (index & 7))) !== 0;
  }

  set(index: number): void {
    if (index < 0 || index >= this.length) return;
    this.bytes[index >> 3] = (this.bytes[index >> 3] ?? 0) | (0x80 >> (index & 7));
  }

  clear(index: number): void {
    if (index < 0 || index >= this.length) return;
    this.bytes[index >> 3] = (this.bytes[index >> 3] ?? 0) & ~(0x80 >> (index & 7));
  }
}
