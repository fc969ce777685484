import { PeerfetchError } from './errors.js';
import { CHUNK_SIZE, MAX_REQUEST_DEADLINE_MS, PEER_PROTOCOL_VERSION, type PeerMessage } from './peer-messages.js';
import { isAssetId } from './manifest.js';
import { decodeHoldings, encodeHoldings } from './holdings.js';
import { isIndex } from './piece-math.js';
import { utf8Decoder, utf8Encoder } from './platform.js';

/**
 * Wire format of one data-channel message: a 2-byte big-endian header length, a UTF-8 JSON
 * header (the message without `data`), then the raw `data` bytes of a `chunk`. Binary framing
 * keeps piece bytes out of JSON (no base64 inflation).
 */
const MAX_HEADER_BYTES = 64 * 1024 - 1;

export function encodePeerMessage(message: PeerMessage): Uint8Array {
  let data: Uint8Array | undefined;
  let header: Record<string, unknown>;
  if (message.type === 'hello') {
    // An absent `asks` is left out by JSON.stringify.
    header = { type: 'hello', version: message.version, have: {}, asks: message.asks };
    data = encodeHoldings(message.holdings);
  } else {
    ({ data, ...header } = message as PeerMessage & { data?: Uint8Array });
  }
  const headerBytes = utf8Encoder.encode(JSON.stringify(header));
  if (headerBytes.length > MAX_HEADER_BYTES) {
    throw new PeerfetchError('codec-invalid', 'peer message header too large', { bytes: headerBytes.length });
  }
  const payload = data ?? new Uint8Array(0);
  const frame = new Uint8Array(2 + headerBytes.length + payload.length);
  frame[0] = headerBytes.length >> 8;
  frame[1] = headerBytes.length & 0xff;
  frame.set(headerBytes, 2);
  frame.set(payload, 2 + headerBytes.length);
  return frame;
}

function bad(reason: string): PeerfetchError {
  return new PeerfetchError('codec-invalid', `invalid peer message: ${reason}`);
}

/** An optional flag of a message: present, it is true. */
function isFlag(value: unknown): value is true | undefined {
  return value === undefined || value === true;
}

/** An optional count or index of a message. */
function isOptionalIndex(value: unknown): value is number | undefined {
  return value === undefined || isIndex(value);
}

/** Decodes and validates one frame; throws `codec-invalid` for anything malformed. */
export function decodePeerMessage(frame: Uint8Array): PeerMessage {
  if (frame.length < 2) throw bad('short frame');
  const headerLength = ((frame[0] ?? 0) << 8) | (frame[1] ?? 0);
  if (frame.length < 2 + headerLength) throw bad('truncated header');
  let header: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(utf8Decoder.decode(frame.subarray(2, 2 + headerLength)));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad('header not an object');
    header = parsed as Record<string, unknown>;
  } catch (error) {
    throw error instanceof PeerfetchError ? error : bad('header not JSON');
  }
  const payload = frame.subarray(2 + headerLength);
  const { type } = header;
  switch (type) {
    case 'hello': {
      const { version } = header;
      if (!isIndex(version)) throw bad('hello without version');
      // Another version's hello is read no further: the peer closes the channel on the version alone.
      if (version !== PEER_PROTOCOL_VERSION) return { type, version, holdings: new Map() };
      const { asks } = header;
      if (!isOptionalIndex(asks)) throw bad('invalid hello');
      return { type, version, holdings: decodeHoldings(payload), asks };
    }
    case 'have':
    case 'lost': {
      const { asset, piece } = header;
      if (!isAssetId(asset) || !isIndex(piece)) throw bad(`invalid ${type}`);
      return { type, asset, piece };
    }
    case 'reading': {
      const { asset, piece, ask, origin } = header;
      if (!isAssetId(asset) || !isIndex(piece) || !isFlag(ask) || !isFlag(origin)) throw bad('invalid reading');
      // An absent flag stays undefined (it is left out of JSON when encoded again).
      return { type, asset, piece, ask, origin };
    }
    case 'listed': {
      const { asset } = header;
      if (!isAssetId(asset)) throw bad('invalid listed');
      return { type, asset };
    }
    case 'request': {
      const { id, asset, piece, from, deadlineMs } = header;
      if (!isIndex(id) || !isAssetId(asset) || !isIndex(piece) || !isOptionalIndex(from) || !isOptionalIndex(deadlineMs)) throw bad('invalid request');
      // Absent fields stay undefined (left out of JSON when encoded again); a `from` of 0 is none.
      return { type, id, asset, piece, from: from || undefined, deadlineMs: deadlineMs && Math.min(deadlineMs, MAX_REQUEST_DEADLINE_MS) };
    }
    case 'cancel': {
      if (!isIndex(header.id)) throw bad('invalid cancel');
      return { type, id: header.id };
    }
    case 'chunk': {
      const { id, offset, total, at } = header;
      if (!isIndex(id) || !isIndex(offset) || !isIndex(total) || !isOptionalIndex(at)) throw bad('invalid chunk');
      if (payload.length === 0 || payload.length > CHUNK_SIZE || offset + payload.length > total) {
        throw bad('chunk outside its piece');
      }
      // An absent `at` stays undefined (left out of JSON when encoded again).
      return { type, id, offset, total, data: payload, at };
    }
    case 'received': {
      const { bytes, ms, delayMs } = header;
      if (!isIndex(bytes) || !isIndex(ms) || !Number.isSafeInteger(delayMs)) throw bad('invalid received');
      return { type, bytes, ms, delayMs: delayMs as number };
    }
    case 'reject': {
      const { id, reason } = header;
      if (!isIndex(id) || (reason !== 'not-found' && reason !== 'busy')) throw bad('invalid reject');
      return { type, id, reason };
    }
    default:
      throw bad(`unknown type ${String(type)}`);
  }
}
