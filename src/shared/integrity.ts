import { bytesToHex } from './hex.js';
import { subtle } from './platform.js';

/** SHA-256 of `data` as lower-case hex, the form the manifest stores. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  return bytesToHex(new Uint8Array(await subtle.digest('SHA-256', data)));
}

/** True when `data` hashes to `expectedHex` (the manifest's hash of that piece). */
export async function verifyPiece(data: Uint8Array, expectedHex: string): Promise<boolean> {
  return (await sha256Hex(data)) === expectedHex;
}
