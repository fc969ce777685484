/**
 * The part of STUN (RFC 8489) a public STUN service needs: recognise a Binding request and write
 * its success response carrying XOR-MAPPED-ADDRESS, nothing else.
 *
 * Written here rather than taken from npm: the maintained packages (`stun`, `@msimerson/stun`)
 * parse and build every attribute and pull in four dependencies (binary-data, ip2buf, ipaddr.js,
 * turbo-crc32) to do it; a Binding responder reads a 20-byte header and writes one attribute, and
 * every datagram on this port comes from the open internet, so the less code parses it the better.
 *
 * Hostile input: a datagram is answered only when it is exactly a well-formed Binding request
 * (header bits, length, magic cookie, attribute framing all check out); anything else is ignored
 * without a reply. Responses, indications and other methods are never answered, so two STUN
 * services cannot be set to bounce datagrams at each other, and nothing we send is larger than
 * needed (the response carries no SOFTWARE, FINGERPRINT or echoed attributes: 32 bytes for an
 * IPv4 client, 44 for IPv6), which keeps this port useless for reflection attacks.
 */

/** RFC 8489 §5: the fixed value in bytes 4–7 of every STUN message. */
export const MAGIC_COOKIE = 0x2112a442;
/** STUN message header, bytes. */
export const HEADER_BYTES = 20;
/** Binding request: method 0x001, class request (RFC 8489 §5, §18.2). */
const BINDING_REQUEST = 0x0001;
/** Binding success response: method 0x001, class success response. */
const BINDING_SUCCESS = 0x0101;
/** XOR-MAPPED-ADDRESS attribute type (RFC 8489 §14.2). */
const XOR_MAPPED_ADDRESS = 0x0020;
const FAMILY_IPV4 = 0x01;
const FAMILY_IPV6 = 0x02;

/** Why a datagram is not answered; the label of the ignored-datagram metric. */
export type StunIgnoredReason = 'malformed' | 'not-binding-request';

export type StunParseResult = { ok: true; transactionId: Uint8Array } | { ok: false; reason: StunIgnoredReason };

/**
 * Reads a datagram: a Binding request yields its 96-bit transaction id. Never throws. Attributes
 * are walked only to check their framing: a Binding request needs none of them answered (no
 * authentication here, and XOR-MAPPED-ADDRESS depends on the source address alone).
 */
export function parseBindingRequest(datagram: Uint8Array): StunParseResult {
  if (datagram.length < HEADER_BYTES) return { ok: false, reason: 'malformed' };
  const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  const type = view.getUint16(0);
  const length = view.getUint16(2);
  // The top two bits of every STUN message are zero (RFC 8489 §5), the body is a whole number of
  // 32-bit words, and it fills the datagram exactly.
  if ((type & 0xc000) !== 0 || length % 4 !== 0 || HEADER_BYTES + length !== datagram.length) return { ok: false, reason: 'malformed' };
  if (view.getUint32(4) !== MAGIC_COOKIE) return { ok: false, reason: 'malformed' };
  for (let offset = HEADER_BYTES; offset < datagram.length; ) {
    if (offset + 4 > datagram.length) return { ok: false, reason: 'malformed' };
    const valueLength = view.getUint16(offset + 2);
    // Values are padded to a multiple of 4 bytes (RFC 8489 §14).
    offset += 4 + Math.ceil(valueLength / 4) * 4;
    if (offset > datagram.length) return { ok: false, reason: 'malformed' };
  }
  if (type !== BINDING_REQUEST) return { ok: false, reason: 'not-binding-request' };
  return { ok: true, transactionId: datagram.slice(8, HEADER_BYTES) };
}

/** The 4 or 16 bytes of an IP address in text form; undefined for anything else. */
export function addressBytes(address: string): Uint8Array | undefined {
  // A dual-stack socket reports IPv4 clients as IPv4-mapped IPv6 (::ffff:192.0.2.1): answer IPv4.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const text = mapped ? mapped[1]! : address;
  if (/^\d+\.\d+\.\d+\.\d+$/.test(text)) {
    const parts = text.split('.').map(Number);
    return parts.every((part) => part <= 255) ? Uint8Array.from(parts) : undefined;
  }
  if (!text.includes(':')) return undefined;
  const [head, tail, extra] = text.replace(/%.*$/, '').split('::');
  if (extra !== undefined) return undefined;
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  const left = groups(head);
  const right = groups(tail);
  const missing = 8 - left.length - right.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined;
  const all = [...left, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...right];
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const group = all[i]!;
    if (!/^[0-9a-f]{1,4}$/i.test(group)) return undefined;
    const value = parseInt(group, 16);
    bytes[2 * i] = value >> 8;
    bytes[2 * i + 1] = value & 0xff;
  }
  return bytes;
}

/**
 * The Binding success response telling a client the address and port its request came from,
 * XOR-obfuscated as RFC 8489 §14.2 requires (so NATs that rewrite addresses inside payloads
 * leave it alone). Undefined when `address` is not an IP address.
 */
export function encodeBindingSuccess(transactionId: Uint8Array, address: string, port: number): Uint8Array | undefined {
  const ip = addressBytes(address);
  if (!ip || transactionId.length !== 12 || !Number.isInteger(port) || port < 0 || port > 0xffff) return undefined;
  const valueLength = 4 + ip.length;
  const message = new Uint8Array(HEADER_BYTES + 4 + valueLength);
  const view = new DataView(message.buffer);
  view.setUint16(0, BINDING_SUCCESS);
  view.setUint16(2, 4 + valueLength);
  view.setUint32(4, MAGIC_COOKIE);
  message.set(transactionId, 8);
  view.setUint16(HEADER_BYTES, XOR_MAPPED_ADDRESS);
  view.setUint16(HEADER_BYTES + 2, valueLength);
  view.setUint8(HEADER_BYTES + 5, ip.length === 4 ? FAMILY_IPV4 : FAMILY_IPV6);
  view.setUint16(HEADER_BYTES + 6, port ^ (MAGIC_COOKIE >>> 16));
  // The address is XORed with the magic cookie followed (for IPv6) by the transaction id:
  // exactly bytes 4..19 of the header.
  for (let i = 0; i < ip.length; i++) message[HEADER_BYTES + 8 + i] = ip[i]! ^ message[4 + i]!;
  return message;
}
