/**
 * The WebTorrent WebSocket tracker protocol, as bittorrent-tracker's server speaks it, written once:
 * one pure parser that turns a raw client frame into one normalised shape (or a rejection with a
 * reason) before any logic runs, and the encoders of every frame the tracker sends.
 *
 * info_hash, peer_id, to_peer_id and offer_id travel as 20-character binary strings (one char per
 * byte, latin1); they stay in that form inside the tracker, and are shown as hex (shared/hex.ts) only in stats,
 * allow-lists and Redis keys.
 */

/** Byte counters a peerfetch engine adds to its announces (other trackers ignore the field). */
export interface PeerReport {
  bytesFromPeers: number;
  bytesFromOrigin: number;
  bytesUploaded: number;
}

/** A WebRTC session description as relayed: only these two fields are forwarded. */
export interface SessionDescription {
  type: 'offer' | 'answer';
  sdp: string;
}

export interface RelayOffer {
  offerId: string;
  offer: SessionDescription;
}

export type AnnounceEvent = 'started' | 'stopped' | 'completed' | 'update' | 'paused';

export interface AnnounceMessage {
  action: 'announce';
  infoHash: string;
  peerId: string;
  event: AnnounceEvent;
  /** Bytes left to download; Infinity when absent or not a number (as bittorrent-tracker does). */
  left: number;
  /** Valid offers, at most the configured cap. */
  offers: RelayOffer[];
  /** Present when this announce carries an answer to another peer's offer. */
  answer?: { toPeerId: string; offerId: string; answer: SessionDescription };
  /** Present when the peerfetch counters were sent and valid. */
  report?: PeerReport;
  /** True when a peerfetch field was sent but was invalid (ignored, counted). */
  badReport: boolean;
  /** Offers dropped because they were malformed or over the cap. */
  droppedOffers: number;
}

export interface ScrapeMessage {
  action: 'scrape';
  infoHashes: string[];
}

export type ClientMessage = AnnounceMessage | ScrapeMessage;

/** Why a frame, a connection or an announce was refused; also the `reason` label of the rejection metric. */
export type RejectReason =
  | 'binary-frame'
  | 'invalid-json'
  | 'invalid-action'
  | 'invalid-info-hash'
  | 'invalid-peer-id'
  | 'invalid-event'
  | 'invalid-answer'
  | 'frame-too-large'
  | 'rate-limited'
  | 'origin-not-allowed'
  | 'swarm-not-allowed'
  | 'too-many-connections'
  | 'too-many-connections-from-ip'
  | 'too-many-swarms'
  | 'too-many-swarms-per-connection'
  | 'too-many-peers-per-connection'
  | 'too-many-peers-from-ip'
  | 'swarm-full'
  | 'peer-id-in-use'
  | 'idle-timeout'
  | 'slow-consumer'
  | 'shutting-down';

/** The `failure reason` text clients see for each rejection. */
export const FAILURE_TEXT: Record<RejectReason, string> = {
  'binary-frame': 'binary frames are not supported: send JSON text frames',
  'invalid-json': 'invalid JSON',
  'invalid-action': 'invalid action: expected announce or scrape',
  'invalid-info-hash': 'invalid info_hash: expected a 20-byte binary string',
  'invalid-peer-id': 'invalid peer_id: expected a 20-byte binary string',
  'invalid-event': 'invalid event',
  'invalid-answer': 'invalid answer: needs to_peer_id, offer_id and an answer {type, sdp}',
  'frame-too-large': 'frame too large',
  'rate-limited': 'too many messages: slow down',
  'origin-not-allowed': 'origin not allowed',
  'swarm-not-allowed': 'swarm not allowed on this tracker',
  'too-many-connections': 'tracker is at its connection limit',
  'too-many-connections-from-ip': 'too many connections from this address',
  'too-many-swarms': 'tracker is at its swarm limit',
  'too-many-swarms-per-connection': 'too many swarms on one connection',
  'too-many-peers-per-connection': 'too many peer ids on one connection in this swarm',
  'too-many-peers-from-ip': 'too many peers from this address in this swarm',
  'swarm-full': 'swarm is full',
  'peer-id-in-use': 'peer_id is in use by another connection',
  'idle-timeout': 'idle timeout',
  'slow-consumer': 'client is not reading its messages',
  'shutting-down': 'tracker is shutting down',
};

export type ParseResult =
  | { ok: true; message: ClientMessage }
  | { ok: false; reason: RejectReason; action?: 'announce' | 'scrape'; infoHash?: string };

/** A scrape may name at most this many swarms: bounds the work one frame can cause. */
export const MAX_SCRAPE_HASHES = 100;
/** Longest accepted offer_id, in characters (clients send 20); bounds what is relayed. */
const MAX_OFFER_ID_LENGTH = 64;

const BINARY_20 = /^[\u0000-\u00ff]{20}$/;
const EVENTS = new Set(['started', 'stopped', 'completed', 'update', 'paused']);

/** True for a 20-character string of chars 0–255: the wire form of info_hash and peer_id. */
export function isBinaryId(value: unknown): value is string {
  return typeof value === 'string' && value.length === 20 && BINARY_20.test(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseDescription(value: unknown, type: 'offer' | 'answer'): SessionDescription | undefined {
  if (!isRecord(value) || typeof value.sdp !== 'string') return undefined;
  // simple-peer and browsers always send the type; accept a missing one as the expected type.
  if (value.type !== undefined && value.type !== type) return undefined;
  return { type, sdp: value.sdp };
}

function isOfferId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_OFFER_ID_LENGTH;
}

function validCounter(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= Number.MAX_SAFE_INTEGER;
}

/** Validates the peerfetch counters; undefined when any of them is not a finite non-negative number. */
export function parseReport(value: unknown): PeerReport | undefined {
  if (!isRecord(value)) return undefined;
  const { bytesFromPeers, bytesFromOrigin, bytesUploaded } = value;
  if (!validCounter(bytesFromPeers) || !validCounter(bytesFromOrigin) || !validCounter(bytesUploaded)) return undefined;
  return { bytesFromPeers, bytesFromOrigin, bytesUploaded };
}

/**
 * Parses one client frame. Never throws: anything malformed becomes `{ ok: false, reason }`.
 *
 * @example
 * const result = parseClientFrame(JSON.stringify({ action: 'scrape', info_hash: hash }), 10);
 * if (result.ok && result.message.action === 'scrape') console.log(result.message.infoHashes);
 */
export function parseClientFrame(text: string, maxOffers: number): ParseResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'invalid-json' };
  }
  if (!isRecord(raw)) return { ok: false, reason: 'invalid-json' };

  if (raw.action === 'scrape') {
    const hashes = typeof raw.info_hash === 'string' ? [raw.info_hash] : raw.info_hash;
    if (!Array.isArray(hashes) || hashes.length === 0 || hashes.length > MAX_SCRAPE_HASHES || !hashes.every(isBinaryId)) {
      return { ok: false, reason: 'invalid-info-hash', action: 'scrape' };
    }
    return { ok: true, message: { action: 'scrape', infoHashes: hashes } };
  }
  if (raw.action !== 'announce') return { ok: false, reason: 'invalid-action' };

  const infoHash = raw.info_hash;
  if (!isBinaryId(infoHash)) return { ok: false, reason: 'invalid-info-hash', action: 'announce' };
  if (!isBinaryId(raw.peer_id)) return { ok: false, reason: 'invalid-peer-id', action: 'announce', infoHash };

  let event: AnnounceEvent = 'update';
  if (raw.event !== undefined && raw.event !== null && raw.event !== 'empty' && raw.event !== '') {
    if (typeof raw.event !== 'string' || !EVENTS.has(raw.event)) return { ok: false, reason: 'invalid-event', action: 'announce', infoHash };
    event = raw.event as AnnounceEvent;
  }

  const leftNumber = Number(raw.left);
  const left = Number.isNaN(leftNumber) ? Infinity : leftNumber;

  let answer: AnnounceMessage['answer'];
  if (raw.answer !== undefined && raw.answer !== null && raw.answer !== false) {
    const description = parseDescription(raw.answer, 'answer');
    if (!isBinaryId(raw.to_peer_id) || !isOfferId(raw.offer_id) || !description) {
      return { ok: false, reason: 'invalid-answer', action: 'announce', infoHash };
    }
    answer = { toPeerId: raw.to_peer_id, offerId: raw.offer_id, answer: description };
  }

  const offers: RelayOffer[] = [];
  let droppedOffers = 0;
  // Offers are not sent with stopped/completed (bittorrent-tracker's client never does either).
  if (Array.isArray(raw.offers) && event !== 'stopped') {
    for (const item of raw.offers) {
      if (offers.length >= maxOffers) {
        droppedOffers++;
        continue;
      }
      const offer = isRecord(item) ? parseDescription(item.offer, 'offer') : undefined;
      if (!offer || !isRecord(item) || !isOfferId(item.offer_id)) {
        droppedOffers++;
        continue;
      }
      offers.push({ offerId: item.offer_id, offer });
    }
  }

  const report = raw.peerfetch === undefined ? undefined : parseReport(raw.peerfetch);
  return {
    ok: true,
    message: {
      action: 'announce',
      infoHash,
      peerId: raw.peer_id,
      event,
      left,
      offers,
      ...(answer ? { answer } : {}),
      ...(report ? { report } : {}),
      badReport: raw.peerfetch !== undefined && report === undefined,
      droppedOffers,
    },
  };
}

/** The reply to an announce (never sent for an answer-only announce, as bittorrent-tracker does). */
export function encodeAnnounceReply(infoHash: string, complete: number, incomplete: number, intervalSec: number, peerfetch?: object): string {
  return JSON.stringify({ action: 'announce', interval: intervalSec, info_hash: infoHash, complete, incomplete, ...(peerfetch ? { peerfetch } : {}) });
}

/** A relayed offer, as the receiving peer sees it. */
export function encodeOffer(infoHash: string, fromPeerId: string, offer: RelayOffer): string {
  return JSON.stringify({ action: 'announce', offer: offer.offer, offer_id: offer.offerId, peer_id: fromPeerId, info_hash: infoHash });
}

/**
 * The relayed offers of one announce, byte-identical to {@link encodeOffer}: the part shared by all
 * of them (sender and swarm ids, JSON-escaped once) is built once per announce, since offer relay
 * is the tracker's hottest path.
 */
export function encodeOffers(infoHash: string, fromPeerId: string, offers: RelayOffer[]): string[] {
  const tail = `,"peer_id":${JSON.stringify(fromPeerId)},"info_hash":${JSON.stringify(infoHash)}}`;
  return offers.map((o) => `{"action":"announce","offer":{"type":"offer","sdp":${JSON.stringify(o.offer.sdp)}},"offer_id":${JSON.stringify(o.offerId)}${tail}`);
}

/** A relayed answer, as the peer that made the offer sees it. */
export function encodeAnswer(infoHash: string, fromPeerId: string, offerId: string, answer: SessionDescription): string {
  return JSON.stringify({ action: 'announce', answer, offer_id: offerId, peer_id: fromPeerId, info_hash: infoHash });
}

export function encodeScrapeReply(files: Array<{ infoHash: string; complete: number; incomplete: number }>, intervalSec: number): string {
  const out: Record<string, { complete: number; incomplete: number; downloaded: number }> = {};
  // `downloaded` is a lower bound, as in bittorrent-tracker: the peers that are complete now.
  for (const f of files) out[f.infoHash] = { complete: f.complete, incomplete: f.incomplete, downloaded: f.complete };
  return JSON.stringify({ action: 'scrape', files: out, flags: { min_request_interval: intervalSec } });
}

/**
 * A `failure reason` frame. With the action and info_hash, bittorrent-tracker's client reports it as
 * a warning and keeps the socket; without an action it treats the frame as a socket error.
 */
export function encodeFailure(reason: RejectReason, action?: 'announce' | 'scrape', infoHash?: string): string {
  const body: Record<string, string> = {};
  if (action) body.action = action;
  body['failure reason'] = FAILURE_TEXT[reason];
  if (infoHash !== undefined) body.info_hash = infoHash;
  return JSON.stringify(body);
}

