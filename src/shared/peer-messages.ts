import type { Holdings } from './holdings.js';

/**
 * The peerfetch peer-to-peer protocol, spoken over one ordered WebRTC data channel per peer pair.
 * `hello` is always the first message and carries the protocol version; everything else is
 * pull-based: a peer asks for one piece, the other answers it in chunks or rejects it.
 * Version 3: the hello lists only what the sender holds, in binary runs (version 2 sent a hex
 * bitfield for every asset of the manifest, which passed the 64 KiB header limit at a few
 * thousand assets, so no connection of a large site ever got past its hello); `reading` and
 * `listed` are new in it.
 */
export const PEER_PROTOCOL_VERSION = 3;

/**
 * Longest `deadlineMs` a request may carry: a prefetch's whole budget fits (10 s); anything
 * larger is clamped, so a peer cannot push its requests behind everyone else's on purpose or
 * make them look more urgent than any real request (see Peer's upload order).
 */
export const MAX_REQUEST_DEADLINE_MS = 60_000;

/**
 * Bytes of piece data per `chunk` message. 16 KiB is the message size every WebRTC stack
 * accepts (Chromium's SCTP max-message-size is 256 KiB, Firefox's older builds less), and
 * small chunks keep `bufferedAmount` smooth.
 */
export const CHUNK_SIZE = 16 * 1024;

export type PeerMessage =
  /**
   * First message on a channel: version and what the sender holds (see holdings.ts), in the
   * frame's payload. Its header also carries an empty `have` object, the field version 2 required,
   * so that a peer of the older version reads it, sees the version and closes without taking it
   * for garbage (which would ban our address).
   */
  | { type: 'hello'; version: number; holdings: Holdings }
  /** The sender now holds `piece` of `asset`. */
  | { type: 'have'; asset: string; piece: number }
  /**
   * The sender's player now reads `asset` at `piece` (a stream's head moved: the next piece, a
   * seek, another video of the page). The sender fetches from the origin, for the swarm, only
   * pieces within its read-ahead window of such a head, so a piece is assigned only to members
   * that read near it (see Scheduler.ownerOf), and no player waits for a member that does not want
   * the piece (one page path may serve many videos).
   */
  | { type: 'reading'; asset: string; piece: number }
  /** The sender no longer holds `piece` of `asset` (its store evicted or cleared it). */
  | { type: 'lost'; asset: string; piece: number }
  /**
   * The sender's manifest, as its origin published it, now lists `asset`: a new segment of a live
   * stream. A hint and nothing more: a receiver whose manifest does not list it fetches the
   * manifest again from its origin (the only source of the hashes it uses), so the member assigned
   * to fetch the segment's pieces from the origin starts at once instead of at its own next
   * playlist reload. Since version 3.
   */
  | { type: 'listed'; asset: string }
  /**
   * Ask for one piece; `id` is chosen by the requester and unique per channel. `from`: send the
   * piece from this byte on (the requester already has the bytes before it, from another peer).
   * `deadlineMs`: how soon the requester needs it; the sender serves the most urgent request first.
   */
  | { type: 'request'; id: number; asset: string; piece: number; from?: number; deadlineMs?: number }
  /** The requester no longer needs request `id`. */
  | { type: 'cancel'; id: number }
  /** Part of the answer to request `id`: bytes `[offset, offset + data.length)` of a piece of `total` bytes. */
  | { type: 'chunk'; id: number; offset: number; total: number; data: Uint8Array }
  /** Request `id` will not be answered. */
  | { type: 'reject'; id: number; reason: 'not-found' | 'busy' };

export type PeerMessageType = PeerMessage['type'];
