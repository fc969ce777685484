import { describe, expect, it } from 'vitest';
import { addressKey, clientAddress, trustedProxyList } from '../../src/tracker/client-address.js';
import { localityPrefix } from '../../src/tracker/locality.js';
import { chooseTransport } from '../../src/tracker/native-transport.js';
import { loadNativeServer, NATIVE_PACKAGES } from '../../src/tracker/native-package.js';
import { resolveOptions } from '../../src/tracker/options.js';
import { shareCappedSum, Swarm, type SwarmMember } from '../../src/tracker/swarm.js';
import { encodeFailure, parseClientFrame } from '../../src/tracker/tracker-messages.js';
import { randomId } from './helpers.js';

describe('localityPrefix', () => {
  it.each([
    ['192.0.2.17', '4:192.0.2'],
    ['::ffff:192.0.2.200', '4:192.0.2'],
    ['2001:db8:1:2::5', '6:2001:db8:1'],
    ['2001:0db8:0001:ffff::', '6:2001:db8:1'],
    ['::1', '6:0:0:0'],
    ['fe80::1%eth0', '6:fe80:0:0'],
    ['not-an-ip', '?'],
    ['', '?'],
  ])('%s -> %s', (ip, prefix) => {
    expect(localityPrefix(ip)).toBe(prefix);
  });
});

describe('addressKey', () => {
  it.each([
    ['192.0.2.17', '192.0.2.17'],
    ['::ffff:192.0.2.17', '192.0.2.17'],
    ['2001:db8:1:2::5', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:aaaa:bbbb:cccc:dddd', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['not-an-ip', 'not-an-ip'],
  ])('%s -> %s', (ip, key) => {
    expect(addressKey(ip)).toBe(key);
  });
});

describe('clientAddress', () => {
  const chain = trustedProxyList(['10.0.0.0/8', '192.0.2.1', 'fd00::/8']);
  it.each([
    // [TCP peer, X-Forwarded-For, trusted, client]
    ['198.51.100.1', '203.0.113.9', undefined, '198.51.100.1'],
    ['127.0.0.1', '203.0.113.9, 198.51.100.7', 'any', '198.51.100.7'],
    ['127.0.0.1', ' 198.51.100.7 ', 'any', '198.51.100.7'],
    ['127.0.0.1', undefined, 'any', '127.0.0.1'],
    ['127.0.0.1', 'not-an-ip', 'any', '127.0.0.1'],
    ['10.0.0.2', '203.0.113.9, 198.51.100.7, 10.9.9.9, 192.0.2.1', chain, '198.51.100.7'],
    ['10.0.0.2', '10.1.1.1, 10.2.2.2', chain, '10.1.1.1'],
    ['fd00::2', '2001:db8::1', chain, '2001:db8::1'],
    ['198.51.100.1', '203.0.113.9', chain, '198.51.100.1'],
    ['::ffff:10.0.0.2', '203.0.113.9', chain, '203.0.113.9'],
  ] as const)('peer %s, X-Forwarded-For %s -> %s', (peer, header, trusted, expected) => {
    expect(clientAddress(peer, header, trusted === 'any' || trusted === undefined ? trusted : chain)).toBe(expected);
  });

  it('refuses a trusted proxy that is neither an address nor a subnet', () => {
    for (const bad of ['10.0.0.0/33', 'proxy.example', '10.0.0.0/', '::1/200', '1.2.3.4/8/9']) expect(() => trustedProxyList([bad])).toThrow(RangeError);
  });
});

describe('parseClientFrame', () => {
  const h = randomId();
  const p = randomId();
  it.each([
    ['{"action":"announce"', 'invalid-json'],
    ['[]', 'invalid-json'],
    ['null', 'invalid-json'],
    ['{"action":"announce","info_hash":1}', 'invalid-info-hash'],
    [JSON.stringify({ action: 'announce', info_hash: h, peer_id: 'x'.repeat(21) }), 'invalid-peer-id'],
    [JSON.stringify({ action: 'announce', info_hash: h, peer_id: p, event: 5 }), 'invalid-event'],
    [JSON.stringify({ action: 'announce', info_hash: h, peer_id: p, answer: { sdp: 'x' }, to_peer_id: randomId() }), 'invalid-answer'],
    [JSON.stringify({ action: 'announce', info_hash: h, peer_id: p, answer: { type: 'offer', sdp: 'x' }, to_peer_id: randomId(), offer_id: 'o' }), 'invalid-answer'],
    [JSON.stringify({ action: 'scrape' }), 'invalid-info-hash'],
    [JSON.stringify({ action: 'scrape', info_hash: [] }), 'invalid-info-hash'],
    [JSON.stringify({ action: 'stats' }), 'invalid-action'],
  ])('rejects %s as %s', (text, reason) => {
    const r = parseClientFrame(text, 10);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toBe(reason);
  });

  it('normalises an announce the way bittorrent-tracker does', () => {
    const r = parseClientFrame(JSON.stringify({ action: 'announce', info_hash: h, peer_id: p, event: 'empty', left: 'abc', offers: [{ offer: { type: 'offer', sdp: 's', extra: 1 }, offer_id: 'o1' }] }), 10);
    expect(r).toEqual({
      ok: true,
      message: { action: 'announce', infoHash: h, peerId: p, event: 'update', left: Infinity, offers: [{ offerId: 'o1', offer: { type: 'offer', sdp: 's' } }], badReport: false, droppedOffers: 0 },
    });
    const stopped = parseClientFrame(JSON.stringify({ action: 'announce', info_hash: h, peer_id: p, event: 'stopped', left: 0, offers: [{ offer: { type: 'offer', sdp: 's' }, offer_id: 'o1' }] }), 10);
    expect(stopped.ok && stopped.message.action === 'announce' && stopped.message.offers).toEqual([]);
    const scrape = parseClientFrame(JSON.stringify({ action: 'scrape', info_hash: h }), 10);
    expect(scrape).toEqual({ ok: true, message: { action: 'scrape', infoHashes: [h] } });
  });

  it('encodes failures with the action and info_hash so stock clients keep their socket', () => {
    expect(JSON.parse(encodeFailure('swarm-full', 'announce', h))).toEqual({ action: 'announce', 'failure reason': 'swarm is full', info_hash: h });
    expect(JSON.parse(encodeFailure('invalid-json'))).toEqual({ 'failure reason': 'invalid JSON' });
  });
});

describe('Swarm', () => {
  const member = (prefix: string, complete = false): SwarmMember => ({ peerId: randomId(), prefix, address: prefix, complete, report: undefined, listIndex: -1, bucketIndex: -1 });

  it('keeps counts and aggregates through add, complete, report and remove', () => {
    const s = new Swarm<SwarmMember>('h');
    const [a, b] = [member('x'), member('y', true)];
    s.add(a);
    s.add(b);
    expect([s.size, s.complete, s.incomplete]).toEqual([2, 1, 1]);
    s.setComplete(a, true);
    expect([s.complete, s.incomplete]).toEqual([2, 0]);
    const bounds = { maxBytesPerSec: 1000, burstBytes: 0 };
    s.setReport(a, { bytesFromPeers: 5, bytesFromOrigin: 5, bytesUploaded: 1 }, 1000, 0, bounds);
    s.setReport(a, { bytesFromPeers: 7, bytesFromOrigin: 5, bytesUploaded: 1 }, 2000, 0, bounds);
    expect(s.bytesFromPeers).toBe(7);
    s.remove(a);
    s.remove(a);
    expect([s.size, s.complete, s.bytesFromPeers, s.bytesFromOrigin]).toEqual([1, 1, 0, 0]);
  });

  it('bounds report growth by time, and restarts a counter that went down from its new value', () => {
    const s = new Swarm<SwarmMember>('h');
    const a = member('x');
    s.add(a);
    const bounds = { maxBytesPerSec: 100, burstBytes: 50 };
    // Joined at 0, first report at 1 s: at most 100 + 50 bytes per counter.
    s.setReport(a, { bytesFromPeers: 1e12, bytesFromOrigin: 20, bytesUploaded: 0 }, 1000, 0, bounds);
    expect([s.bytesFromPeers, s.bytesFromOrigin]).toEqual([150, 20]);
    // 2 s later: +250 at most; a counter that went down adds nothing and becomes the new base.
    s.setReport(a, { bytesFromPeers: 2e12, bytesFromOrigin: 10, bytesUploaded: 0 }, 3000, 0, bounds);
    expect([s.bytesFromPeers, s.bytesFromOrigin]).toEqual([400, 20]);
    s.setReport(a, { bytesFromPeers: 2e12, bytesFromOrigin: 15, bytesUploaded: 0 }, 3000, 0, bounds);
    expect([s.bytesFromPeers, s.bytesFromOrigin]).toEqual([400, 25]);
  });

  it('caps one address at its share of the figures once there are more addresses than 1 / share', () => {
    expect(shareCappedSum([100, 1, 1, 1, 1, 1], 0.25)).toBeCloseTo(5 / 0.75, 9);
    expect(shareCappedSum([1, 1, 1, 1, 1], 0.25)).toBe(5);
    expect(shareCappedSum([100, 100, 1, 1, 1, 1, 1, 1, 1, 1], 0.25)).toBeCloseTo(16, 9); // two at the cap of 4
    const s = new Swarm<SwarmMember>('h');
    const bounds = { maxBytesPerSec: 1e9, burstBytes: 0 };
    const honest = Array.from({ length: 4 }, (_, i) => ({ ...member('x'), address: `192.0.2.${i}` }));
    const forger = { ...member('x'), address: '198.51.100.1' };
    for (const m of [...honest, forger]) s.add(m);
    for (const m of honest) s.setReport(m, { bytesFromPeers: 0, bytesFromOrigin: 1000, bytesUploaded: 0 }, 1000, 0, bounds);
    s.setReport(forger, { bytesFromPeers: 1e9, bytesFromOrigin: 0, bytesUploaded: 0 }, 1000, 0, bounds);
    // Only the forger reports peer bytes: 5 addresses, so its share of them is capped at 0 (nothing
    // else to be a quarter of); origin bytes are untouched.
    expect(s.figures(1000, 0.25)).toEqual({ bytesFromPeers: 0, bytesFromOrigin: 4000, bytesUploaded: 0 });
    expect(s.bytesFromPeers).toBe(1e9);
  });

  it('selects distinct peers, never self, same prefix first with one random slot', () => {
    const s = new Swarm<SwarmMember>('h');
    const near = Array.from({ length: 10 }, () => member('near'));
    const far = Array.from({ length: 1000 }, () => member('far'));
    for (const m of [...near, ...far]) s.add(m);
    const self = near[0]!;
    for (let round = 0; round < 50; round++) {
      const chosen = s.select(5, self, 'near');
      expect(chosen).toHaveLength(5);
      expect(new Set(chosen).size).toBe(5);
      expect(chosen).not.toContain(self);
      expect(chosen.filter((m) => m.prefix === 'near').length).toBeGreaterThanOrEqual(4);
    }
    expect(s.select(5000, self, 'near')).toHaveLength(1009);
    // Removing from the middle keeps selection consistent (swap-remove bookkeeping).
    for (const m of far.slice(0, 990)) s.remove(m);
    const rest = s.select(100, undefined, 'other');
    expect(new Set(rest).size).toBe(20);
  });
});

describe('resolveOptions', () => {
  it('derives timeouts from the interval and rejects nonsense', () => {
    const o = resolveOptions({ announceIntervalSec: 60 });
    expect(o.peerTimeoutMs).toBe(150_000);
    expect(o.idleTimeoutMs).toBe(150_000);
    expect(o.port).toBe(8000);
    expect(o.host).toBe('127.0.0.1');
    expect(() => resolveOptions({ maxFrameBytes: -1 })).toThrow(RangeError);
    expect(() => resolveOptions({ port: 70000 })).toThrow(RangeError);
    // The interval told to clients stays within what clients accept (15 s to 10 min).
    expect(resolveOptions({ announceIntervalSec: 15 }).announceIntervalSec).toBe(15);
    expect(resolveOptions({ announceIntervalSec: 600 }).announceIntervalSec).toBe(600);
    expect(() => resolveOptions({ announceIntervalSec: 5 })).toThrow('announceIntervalSec must be 15-600 seconds, got 5');
    expect(() => resolveOptions({ announceIntervalSec: 86_400 })).toThrow(RangeError);
  });
});

describe('encodeOffers', () => {
  it('is byte-identical to encodeOffer for every offer', async () => {
    const { encodeOffer, encodeOffers } = await import('../../src/tracker/tracker-messages.js');
    const h = randomId();
    const p = randomId();
    const list = [
      { offerId: randomId(), offer: { type: 'offer' as const, sdp: 'v=0\r\n"quoted" \\ \u0001 é' } },
      { offerId: 'abc', offer: { type: 'offer' as const, sdp: '' } },
    ];
    expect(encodeOffers(h, p, list)).toEqual(list.map((o) => encodeOffer(h, p, o)));
  });
});

describe('chooseTransport', () => {
  const missing = () => new Error('cannot load uws_linux_x64_999.node: not found');

  it('falls back to the node transport with the reason under auto, refuses to start under native', () => {
    expect(chooseTransport('auto', missing)).toEqual({ kind: 'node', nativeUnavailable: 'cannot load uws_linux_x64_999.node: not found' });
    expect(() => chooseTransport('native', missing)).toThrow("the native transport is not available: cannot load uws_linux_x64_999.node: not found; use transport 'node' or 'auto'");
    let loaded = false;
    expect(chooseTransport('node', () => ((loaded = true), missing()))).toEqual({ kind: 'node' });
    expect(loaded).toBe(false);
  });

  it('loads a real binary on this machine from one of the packages (both installed as dev dependencies)', () => {
    const native = loadNativeServer();
    if (native instanceof Error) throw native;
    expect(NATIVE_PACKAGES.map((candidate) => candidate.name)).toContain(native.packageName);
    expect(chooseTransport('auto')).toMatchObject({ kind: 'native', packageName: native.packageName });
    expect(typeof native.uws.App).toBe('function');
  });
});
