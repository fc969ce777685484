/**
 * The peerfetch peer-to-peer protocol, spoken over one ordered WebRTC data channel per peer pair.
 * `hello` is always the first message and carries the protocol version; everything else is
 * pull-based: a peer asks for one piece, the other answers it in chunks or rejects it.
 */
export const PEER_PROTOCOL_VERSION = 1;

/**
 * Bytes of piece data per `chunk` message. 16 KiB is the message size every WebRTC stack
 * accepts (Chromium's SCTP max-message-size is 256 KiB, Firefox's older builds less), and
 * small chunks keep `bufferedAmount` smooth.
 */
export const CHUNK_SIZE = 16 * 1024;

export type PeerMessage =
  /** First message on a channel: version and, per asset id, a hex bitfield of the pieces held. */
  | { type: 'hello'; version: number; have: Record<string, string> }
  /** The sender now holds `piece` of `asset`. */
  | { type: 'have'; asset: string; piece: number }
  /** Ask for one whole piece; `id` is chosen by the requester and unique per channel. */
  | { type: 'request'; id: number; asset: string; piece: number }
  /** The requester no longer needs request `id`. */
  | { type: 'cancel'; id: number }
  /** Part of the answer to request `id`: bytes `[offset, offset + data.length)` of a piece of `total` bytes. */
  | { type: 'chunk'; id: number; offset: number; total: number; data: Uint8Array }
  /** Request `id` will not be answered. */
  | { type: 'reject'; id: number; reason: 'not-found' | 'busy' };

export type PeerMessageType = PeerMessage['type'];
