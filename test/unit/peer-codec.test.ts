import { describe, expect, it } from 'vitest';
import { decodePeerMessage, encodePeerMessage } from '../../src/shared/peer-codec.js';
import { CHUNK_SIZE, MAX_REQUEST_DEADLINE_MS, PEER_PROTOCOL_VERSION, type PeerMessage } from '../../src/shared/peer-messages.js';
import { runsOf } from '../../src/shared/holdings.js';
import { isPeerfetchError } from '../../src/shared/errors.js';

const ASSET = '0123456789abcdef';

describe('peer codec', () => {
  it.each<PeerMessage>([
    { type: 'hello', version: PEER_PROTOCOL_VERSION, holdings: new Map([[ASSET, runsOf([0, 1, 2, 3, 4, 5, 6, 7, 8])]]) },
    { type: 'hello', version: PEER_PROTOCOL_VERSION, holdings: new Map() },
    { type: 'hello', version: PEER_PROTOCOL_VERSION, holdings: new Map(), asks: 3 },
    { type: 'reading', asset: ASSET, piece: 12 },
    { type: 'reading', asset: ASSET, piece: 12, ask: true },
    { type: 'reading', asset: ASSET, piece: 12, origin: true },
    { type: 'have', asset: ASSET, piece: 3 },
    { type: 'request', id: 7, asset: ASSET, piece: 0 },
    { type: 'request', id: 8, asset: ASSET, piece: 2, from: 32768, deadlineMs: 4000 },
    { type: 'lost', asset: ASSET, piece: 3 },
    { type: 'listed', asset: ASSET },
    { type: 'cancel', id: 7 },
    { type: 'chunk', id: 7, offset: 16384, total: 40000, data: new Uint8Array([1, 2, 3]) },
    { type: 'chunk', id: 7, offset: 16384, total: 40000, data: new Uint8Array([1, 2, 3]), at: 1_796_596_965_214 },
    { type: 'received', bytes: 32768, ms: 104, delayMs: 37 },
    { type: 'received', bytes: 0, ms: 0, delayMs: -2_999_961 }, // a receiver whose clock is behind ours
    { type: 'reject', id: 7, reason: 'not-found' },
  ])('round-trips $type', (message) => {
    expect(decodePeerMessage(encodePeerMessage(message))).toEqual(message);
  });

  const header = (value: unknown) => {
    const json = new TextEncoder().encode(JSON.stringify(value));
    return new Uint8Array([json.length >> 8, json.length & 0xff, ...json]);
  };

  it.each([
    ['an empty frame', new Uint8Array(0)],
    ['a truncated header', new Uint8Array([0, 50, 123])],
    ['a header that is not JSON', new Uint8Array([0, 3, 1, 2, 3])],
    ['a JSON array', header([1, 2])],
    ['an unknown type', header({ type: 'gossip' })],
    ['a have with a bad asset id', header({ type: 'have', asset: '../x', piece: 1 })],
    ['a negative piece', header({ type: 'request', id: 1, asset: ASSET, piece: -1 })],
    ['a fractional id', header({ type: 'cancel', id: 1.5 })],
    ['a chunk without data', header({ type: 'chunk', id: 1, offset: 0, total: 10 })],
    ['a hello without version', header({ type: 'hello', have: {} })],
    ['a hello whose holdings are cut short', new Uint8Array([...header({ type: 'hello', version: PEER_PROTOCOL_VERSION, have: {} }), 1, 2, 3])],
    ['a reading without a piece', header({ type: 'reading', asset: ASSET })],
    ['a reading whose ask is not true', header({ type: 'reading', asset: ASSET, piece: 1, ask: 'yes' })],
    ['a reading whose origin is not true', header({ type: 'reading', asset: ASSET, piece: 1, origin: 1 })],
    ['a hello answering a negative number of asks', header({ type: 'hello', version: PEER_PROTOCOL_VERSION, have: {}, asks: -1 })],
    ['a reject with an unknown reason', header({ type: 'reject', id: 1, reason: 'nope' })],
    ['a lost without a piece', header({ type: 'lost', asset: ASSET })],
    ['a listed with a bad asset id', header({ type: 'listed', asset: '../x' })],
    ['a request starting at a negative byte', header({ type: 'request', id: 1, asset: ASSET, piece: 1, from: -5 })],
    ['a request with a fractional deadline', header({ type: 'request', id: 1, asset: ASSET, piece: 1, deadlineMs: 0.5 })],
    ['a chunk sent at a negative time', new Uint8Array([...header({ type: 'chunk', id: 1, offset: 0, total: 10, at: -1 }), 1])],
    ['a received report without a delay', header({ type: 'received', bytes: 10, ms: 100 })],
    ['a received report with a fractional delay', header({ type: 'received', bytes: 10, ms: 100, delayMs: 0.5 })],
    ['a received report of negative bytes', header({ type: 'received', bytes: -10, ms: 100, delayMs: 5 })],
  ])('rejects %s with codec-invalid', (_name, frame) => {
    let error: unknown;
    try {
      decodePeerMessage(frame);
    } catch (caught) {
      error = caught;
    }
    expect(isPeerfetchError(error, 'codec-invalid')).toBe(true);
  });

  it('reads a hello of another version no further (the peer closes on the version, and does not ban for it)', () => {
    // What a peer of protocol version 2 sent: a hex bitfield per asset in the header, no payload.
    const older = header({ type: 'hello', version: 2, have: { [ASSET]: 'ff80' } });
    expect(decodePeerMessage(older)).toEqual({ type: 'hello', version: 2, holdings: new Map() });
    // And ours carries the empty `have` object version 2 requires, so such a peer reads our version too.
    const ours = encodePeerMessage({ type: 'hello', version: PEER_PROTOCOL_VERSION, holdings: new Map([[ASSET, runsOf([1])]]) });
    const headerLength = (ours[0]! << 8) | ours[1]!;
    expect(JSON.parse(new TextDecoder().decode(ours.subarray(2, 2 + headerLength)))).toEqual({ type: 'hello', version: PEER_PROTOCOL_VERSION, have: {} });
  });

  it('ask and asks are extra header fields: the frames stay what a peer of this version that does not know them reads', () => {
    const reading = encodePeerMessage({ type: 'reading', asset: ASSET, piece: 4, ask: true });
    const hello = encodePeerMessage({ type: 'hello', version: PEER_PROTOCOL_VERSION, holdings: new Map([[ASSET, runsOf([1])]]), asks: 2 });
    const headerOf = (frame: Uint8Array) => JSON.parse(new TextDecoder().decode(frame.subarray(2, 2 + ((frame[0]! << 8) | frame[1]!)))) as Record<string, unknown>;
    expect(headerOf(reading)).toEqual({ type: 'reading', asset: ASSET, piece: 4, ask: true });
    expect(headerOf(hello)).toEqual({ type: 'hello', version: PEER_PROTOCOL_VERSION, have: {}, asks: 2 });
  });

  it('clamps a request deadline to MAX_REQUEST_DEADLINE_MS, so a peer cannot push its requests behind everyone on purpose', () => {
    const frame = encodePeerMessage({ type: 'request', id: 1, asset: ASSET, piece: 1, deadlineMs: 10 ** 12 });
    expect(decodePeerMessage(frame)).toMatchObject({ deadlineMs: MAX_REQUEST_DEADLINE_MS });
  });

  it('rejects a chunk past its piece or larger than CHUNK_SIZE', () => {
    const past = encodePeerMessage({ type: 'chunk', id: 1, offset: 8, total: 10, data: new Uint8Array(4) });
    expect(() => decodePeerMessage(past)).toThrow(/outside/);
    const huge = encodePeerMessage({ type: 'chunk', id: 1, offset: 0, total: CHUNK_SIZE * 2, data: new Uint8Array(CHUNK_SIZE + 1) });
    expect(() => decodePeerMessage(huge)).toThrow(/outside/);
  });
});
