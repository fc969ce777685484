import { subtle, utf8Encoder } from './platform.js';

/**
 * The WebTorrent tracker protocol names a swarm by a 20-byte info hash sent as a 20-character
 * binary (latin1) string. peerfetch's swarm id is the SHA-1 of the swarm key (by default the
 * page's origin + path), so one page is one swarm on any WebTorrent tracker.
 */
export async function swarmInfoHash(swarmKey: string): Promise<string> {
  const digest = new Uint8Array(await subtle.digest('SHA-1', utf8Encoder.encode(swarmKey)));
  return String.fromCharCode(...digest);
}

/** Peer id prefix in the Azureus style every WebTorrent client uses: client `PF`, version 0.1.0.0. */
const PEER_ID_PREFIX = '-PF0100-';
const PEER_ID_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** A fresh random 20-character peer id, printable so it survives any JSON path unchanged. */
export function randomPeerId(randomBytes: (length: number) => Uint8Array): string {
  const bytes = randomBytes(20 - PEER_ID_PREFIX.length);
  let id = PEER_ID_PREFIX;
  for (const byte of bytes) id += PEER_ID_ALPHABET[byte % PEER_ID_ALPHABET.length];
  return id;
}
