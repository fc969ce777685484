import { subtle } from './platform.js';

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let hex = '';
  for (const byte of bytes) hex += HEX[byte];
  return hex;
}

/** SHA-256 of `data` as lower-case hex, the form the manifest stores. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  return toHex(new Uint8Array(await subtle.digest('SHA-256', data)));
}

/** True when `data` hashes to `expectedHex` (the manifest's hash of that piece). */
export async function verifyPiece(data: Uint8Array, expectedHex: string): Promise<boolean> {
  return (await sha256Hex(data)) === expectedHex;
}
