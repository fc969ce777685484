/**
 * Lower-case hex, the one encoder and decoder of peerfetch: piece hashes and bitfields (bytes),
 * WebTorrent info hashes and peer ids (binary strings: one character per byte, latin1) in stats,
 * allow-lists, Redis keys and logs, and random ids.
 */

/** Two hex digits of each byte value, so encoding is one lookup per byte. */
const BYTE_HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));
const HEX_DIGITS = /^(?:[0-9a-fA-F]{2})*$/;

/** Lower-case hex of `bytes`. */
export function bytesToHex(bytes: Uint8Array): string {
  let hex = '';
  for (const byte of bytes) hex += BYTE_HEX[byte];
  return hex;
}

/** Lower-case hex of a binary string (each character one byte, 0–255). */
export function binaryToHex(binary: string): string {
  let hex = '';
  for (let i = 0; i < binary.length; i++) hex += BYTE_HEX[binary.charCodeAt(i) & 0xff];
  return hex;
}

/** The bytes of `hex` (either case); undefined unless it is whole pairs of hex digits. */
export function hexToBytes(hex: string): Uint8Array | undefined {
  if (!HEX_DIGITS.test(hex)) return undefined;
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/** The binary string of `hex` (either case); undefined unless it is whole pairs of hex digits. */
export function hexToBinary(hex: string): string | undefined {
  const bytes = hexToBytes(hex);
  if (!bytes) return undefined;
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return binary;
}
