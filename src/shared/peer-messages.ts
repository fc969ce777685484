import type { Holdings } from './holdings.js';

/**
 * The peerfetch peer-to-peer protocol, spoken over one ordered WebRTC data channel per peer pair.
 * `hello` is always the first message and carries the protocol version; everything else is
 * pull-based: a peer asks for one piece, the other answers it in chunks or rejects it.
 * Version 3: the hello lists only what the sender holds, in binary runs (version 2 sent a hex
 * bitfield for every asset of the manifest, which passed the 64 KiB header limit at a few
 * thousand assets, so no connection of a large site ever got past its hello); `reading` and
 * `listed` are new in it. `reading`'s `ask` and `origin` and `hello`'s `asks` came later within version 3:
 * optional header fields, which earlier builds of it ignore (they keep telling every peer all
 * they hold and never answer an ask, which the asker waits for only HOLDINGS_WAIT_MS).
 * Version 4: a `chunk` carries its send time (`at`) and its receiver reports how the chunks
 * reached it (`received`), from which the sender paces its uploads to its line (LinePacer); a
 * version 3 peer would take `received` for garbage.
 */
export const PEER_PROTOCOL_VERSION = 4;

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
   *
   * A sender tells a peer only what it holds of the streams its own players read now (each one
   * read within the last 30 s) and of those the peer said it reads (`reading`): never the viewer's
   * history. So a hello is sent again when
   * the peer may know more (it replaces what the peer knew we hold). `asks`: how many `reading`
   * messages that asked (`ask`) the sender had received when it sent this hello; the hello answers
   * them. Absent (a sender that does not know `ask`, which lists all it holds): it answers all.
   */
  | { type: 'hello'; version: number; holdings: Holdings; asks?: number }
  /** The sender now holds `piece` of `asset`. */
  | { type: 'have'; asset: string; piece: number }
  /**
   * The sender's player now reads `asset` at `piece` (a stream's head moved: the next piece, a
   * seek, another video of the page). The sender fetches from the origin, for the swarm, only
   * pieces within its read-ahead window of such a head, so a piece is assigned only to members
   * that read near it (see Scheduler.ownerOf), and no player waits for a member that does not want
   * the piece (one page path may serve many videos). The receiver may now tell the sender what it
   * holds of that stream (see `hello`); a request for a piece of a stream the requester never said
   * it reads is refused `not-found`, as if the piece were not held. `ask`: the sender just began
   * reading the stream (or just connected) and waits for a hello in answer, which the receiver
   * sends even when it holds nothing of the stream, so that the sender knows when it has heard
   * what every peer holds of it (see `hello`'s `asks`). Peers that do not know `ask` ignore it.
   * `origin`: the sender's player cannot wait for the member assigned to the piece (a live viewer
   * with little buffered, an on-demand player whose assigned member reads behind it) and the
   * sender is fetching it from the origin itself, so that member stops or skips its own origin
   * fetch of it and takes it from the sender; sent again for the same piece when so. Peers that
   * do not know `origin` ignore it (the piece is then fetched twice).
   */
  | { type: 'reading'; asset: string; piece: number; ask?: true; origin?: true }
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
  /**
   * Part of the answer to request `id`: bytes `[offset, offset + data.length)` of a piece of
   * `total` bytes. `at`: when the sender handed it to the channel (ms since the epoch, its clock).
   */
  | { type: 'chunk'; id: number; offset: number; total: number; data: Uint8Array; at?: number }
  /**
   * How the sender's chunks reached the receiver: `bytes` of them over its last `ms`, and the least
   * one-way delay (ms) of the full-sized ones among them, `delayMs`: the receiver's clock at arrival
   * less their `at`. The clocks differ by a constant, so only how the delay moves says anything
   * (queueing on the path, see LinePacer); it may be negative.
   */
  | { type: 'received'; bytes: number; ms: number; delayMs: number }
  /** Request `id` will not be answered. */
  | { type: 'reject'; id: number; reason: 'not-found' | 'busy' };

export type PeerMessageType = PeerMessage['type'];
