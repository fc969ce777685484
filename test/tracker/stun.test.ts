import { createHmac, randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { parseTrackerArgs } from '../../src/tracker/cli.js';
import { addressBytes, encodeBindingSuccess, MAGIC_COOKIE, parseBindingRequest } from '../../src/tracker/stun-codec.js';
import { MAX_RESPONSES_PER_ADDRESS } from '../../src/tracker/stun-server.js';
import { announce, isReply, randomId, useTrackerFixture, waitFor } from './helpers.js';

/** A STUN header: type, body length, magic cookie (or another value), transaction id, then the body. */
function stunMessage(type: number, body: Uint8Array = new Uint8Array(0), options: { cookie?: number; length?: number; transactionId?: Uint8Array } = {}): Buffer {
  const message = Buffer.alloc(20 + body.length);
  message.writeUInt16BE(type, 0);
  message.writeUInt16BE(options.length ?? body.length, 2);
  message.writeUInt32BE(options.cookie ?? MAGIC_COOKIE, 4);
  Buffer.from(options.transactionId ?? randomBytes(12)).copy(message, 8);
  Buffer.from(body).copy(message, 20);
  return message;
}

/** One attribute: type, length, value padded to 4 bytes. */
function attribute(type: number, value: Uint8Array): Buffer {
  const padded = Buffer.alloc(4 + Math.ceil(value.length / 4) * 4);
  padded.writeUInt16BE(type, 0);
  padded.writeUInt16BE(value.length, 2);
  Buffer.from(value).copy(padded, 4);
  return padded;
}

/** Reads XOR-MAPPED-ADDRESS out of a Binding success response (independently of the encoder). */
function mappedAddress(response: Buffer): { address: string; port: number } {
  expect(response.readUInt16BE(0), 'Binding success response').toBe(0x0101);
  expect(response.readUInt32BE(4)).toBe(MAGIC_COOKIE);
  expect(response.readUInt16BE(20), 'first attribute is XOR-MAPPED-ADDRESS').toBe(0x0020);
  const family = response[25];
  const port = response.readUInt16BE(26) ^ 0x2112;
  const key = response.subarray(4, 20);
  const raw = Buffer.from(response.subarray(28, 28 + (family === 1 ? 4 : 16)).map((byte, i) => byte ^ key[i]!));
  const address = family === 1 ? [...raw].join('.') : (raw.toString('hex').match(/.{4}/g) ?? []).join(':');
  return { address, port };
}

describe('STUN codec (RFC 8489)', () => {
  it('answers with the RFC 5769 test vectors for XOR-MAPPED-ADDRESS', () => {
    // RFC 5769 §2.2 and §2.3: transaction id b7e7a701bc34d686fa87dfae, port 32853.
    const transactionId = Buffer.from('b7e7a701bc34d686fa87dfae', 'hex');
    const v4 = Buffer.from(encodeBindingSuccess(transactionId, '192.0.2.1', 32853)!);
    expect(v4.length).toBe(32);
    expect(v4.subarray(20).toString('hex')).toBe('00200008' + '0001a147e112a643');
    const v6 = Buffer.from(encodeBindingSuccess(transactionId, '2001:db8:1234:5678:11:2233:4455:6677', 32853)!);
    expect(v6.length).toBe(44);
    expect(v6.subarray(20).toString('hex')).toBe('00200014' + '0002a1470113a9faa5d3f179bc25f4b5bed2b9d9');
    expect(v6.subarray(8, 20)).toEqual(transactionId);
    expect(v6.readUInt16BE(2), 'length field').toBe(24);
  });

  it('answers an IPv4-mapped client as IPv4 and refuses what is not an address', () => {
    expect(addressBytes('::ffff:10.0.0.7')).toEqual(Uint8Array.from([10, 0, 0, 7]));
    expect(addressBytes('::1')).toEqual(Uint8Array.from([...Array<number>(15).fill(0), 1]));
    for (const bad of ['', 'localhost', '300.1.1.1', '1:2:3', '1::2::3', 'g::1']) expect(addressBytes(bad), bad).toBeUndefined();
    expect(encodeBindingSuccess(new Uint8Array(12), 'not-an-ip', 1)).toBeUndefined();
  });

  const id = Buffer.from('0123456789ab0123456789ab', 'hex');
  const cases: Array<[string, Buffer, 'ok' | 'malformed' | 'not-binding-request']> = [
    ['a bare Binding request', stunMessage(0x0001, undefined, { transactionId: id }), 'ok'],
    ['a Binding request with attributes (SOFTWARE, padded)', stunMessage(0x0001, attribute(0x8022, Buffer.from('abcde'))), 'ok'],
    ['a Binding indication', stunMessage(0x0011), 'not-binding-request'],
    ['a Binding success response (no reflection loops)', stunMessage(0x0101), 'not-binding-request'],
    ['a Binding error response', stunMessage(0x0111), 'not-binding-request'],
    ['a TURN Allocate request', stunMessage(0x0003), 'not-binding-request'],
    ['an RFC 3489 request (no magic cookie)', stunMessage(0x0001, undefined, { cookie: 0x01020304 }), 'malformed'],
    ['a header cut short', stunMessage(0x0001).subarray(0, 19), 'malformed'],
    ['a length field longer than the datagram', stunMessage(0x0001, undefined, { length: 8 }), 'malformed'],
    ['a length that is not whole words', stunMessage(0x0001, Buffer.alloc(6), { length: 6 }), 'malformed'],
    ['the top two bits set (not STUN: RTP, DTLS)', stunMessage(0xc001), 'malformed'],
    ['an attribute running past the end', stunMessage(0x0001, Buffer.from([0x80, 0x22, 0x00, 0x40, 0, 0, 0, 0])), 'malformed'],
    ['an attribute header cut short', stunMessage(0x0001, Buffer.from([0x80, 0x22, 0, 0, 0x80, 0x22, 0, 0]).subarray(0, 4 + 4)), 'ok'],
    ['an empty datagram', Buffer.alloc(0), 'malformed'],
  ];
  it.each(cases)('%s', (_, datagram, expected) => {
    const result = parseBindingRequest(datagram);
    if (expected === 'ok') expect(result.ok).toBe(true);
    else expect(result).toEqual({ ok: false, reason: expected });
  });

  it('never throws on random bytes', () => {
    for (let i = 0; i < 5000; i++) {
      const datagram = randomBytes(Math.floor(Math.random() * 80));
      // Half of them with a valid header, so the attribute walk sees garbage too.
      if (i % 2 === 0 && datagram.length >= 20) {
        datagram.writeUInt16BE(1, 0);
        datagram.writeUInt16BE(datagram.length - 20 - ((datagram.length - 20) % 4), 2);
        datagram.writeUInt32BE(MAGIC_COOKIE, 4);
      }
      expect(() => parseBindingRequest(datagram)).not.toThrow();
    }
  });
});

describe('the tracker answers STUN over UDP', () => {
  const fx = useTrackerFixture();
  const sockets: Socket[] = [];
  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.close();
  });

  async function udpClient(): Promise<{ socket: Socket; port: number; received: Buffer[]; next(): Promise<Buffer> }> {
    const socket = createSocket('udp4');
    sockets.push(socket);
    const received: Buffer[] = [];
    let wake: (() => void) | undefined;
    socket.on('message', (message) => {
      received.push(message);
      wake?.();
    });
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    return {
      socket,
      port: socket.address().port,
      received,
      next: () =>
        new Promise<Buffer>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('no STUN response')), 15_000);
          const check = () => {
            const first = received.shift();
            if (!first) return void (wake = check);
            clearTimeout(timer);
            wake = undefined;
            resolve(first);
          };
          check();
        }),
    };
  }

  it('tells a client its address and port, survives hostile datagrams, and answers nothing else', async () => {
    const tracker = await fx.start({});
    expect(tracker.stunPort, 'with port 0 STUN picks a free port too').toBeGreaterThan(0);
    const client = await udpClient();
    const send = (datagram: Uint8Array) => new Promise<void>((resolve) => client.socket.send(datagram, tracker.stunPort!, '127.0.0.1', () => resolve()));

    const transactionId = randomBytes(12);
    await send(stunMessage(0x0001, undefined, { transactionId }));
    const response = await client.next();
    expect(response.length, 'no attribute beyond XOR-MAPPED-ADDRESS: 32 bytes for IPv4').toBe(32);
    expect(response.subarray(8, 20)).toEqual(transactionId);
    expect(mappedAddress(response)).toEqual({ address: '127.0.0.1', port: client.port });

    // Garbage, truncated and non-request messages, then one valid request: when its answer arrives
    // every hostile one was handled, and none was answered. Sent in batches, each waited for in
    // the counters, so that no datagram is lost to a full socket buffer on the way.
    const ignoredCount = async () => {
      const metrics = await (await fetch(`${tracker.httpUrl}/metrics`)).text();
      return [...metrics.matchAll(/peerfetch_tracker_stun_ignored_total\{reason="[^"]+"\} (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
    };
    const hostile = [
      ...Array.from({ length: 200 }, () => randomBytes(1 + Math.floor(Math.random() * 600))),
      stunMessage(0x0101),
      stunMessage(0x0011),
      stunMessage(0x0003),
      stunMessage(0x0001, undefined, { cookie: 0 }),
      stunMessage(0x0001, Buffer.from([0x80, 0x22, 0xff, 0xff])),
    ];
    for (let sent = 0; sent < hostile.length; ) {
      for (const datagram of hostile.slice(sent, sent + 25)) await send(datagram);
      sent = Math.min(sent + 25, hostile.length);
      await waitFor(`${sent} datagrams handled`, async () => (await ignoredCount()) === sent);
    }
    const last = randomBytes(12);
    await send(stunMessage(0x0001, attribute(0x8022, Buffer.from('test')), { transactionId: last }));
    const lastResponse = await client.next();
    expect(lastResponse.subarray(8, 20), 'the only response is to the valid request').toEqual(last);
    expect(client.received).toEqual([]);

    expect(await (await fetch(`${tracker.httpUrl}/metrics`)).text()).toContain('peerfetch_tracker_stun_answered_total 2');
    const health = (await (await fetch(`${tracker.httpUrl}/health`)).json()) as { stunPort: number | null; turn: boolean };
    expect(health).toMatchObject({ status: 'ok', stunPort: tracker.stunPort, turn: false });
  });

  it('answers one address at most its burst at once, so a forged victim or a flooder cannot take the whole budget', async () => {
    // A frozen clock: no budget refills during the test, so the counts are exact at any load.
    const frozen = Date.now();
    const tracker = await fx.start({ now: () => frozen });
    const flooder = await udpClient();
    const metric = async (pattern: RegExp): Promise<number> => Number(pattern.exec(await (await fetch(`${tracker.httpUrl}/metrics`)).text())?.[1] ?? 0);
    const answered = () => metric(/^peerfetch_tracker_stun_answered_total (\d+)$/m);
    const limited = () => metric(/^peerfetch_tracker_stun_ignored_total\{reason="rate-limited"\} (\d+)$/m);
    const total = MAX_RESPONSES_PER_ADDRESS + 100;
    // In batches, each waited for in the counters, so that no datagram is lost to a full socket buffer.
    for (let sent = 0; sent < total; ) {
      const batch = Math.min(50, total - sent);
      for (let i = 0; i < batch; i++) flooder.socket.send(stunMessage(0x0001), tracker.stunPort!, '127.0.0.1');
      sent += batch;
      let seen = 0;
      await waitFor(`${sent} requests handled (last seen ${seen})`, async () => (seen = (await answered()) + (await limited())) === sent);
    }
    expect(await answered()).toBe(MAX_RESPONSES_PER_ADDRESS);
    expect(await limited()).toBe(100);
    await waitFor(`${MAX_RESPONSES_PER_ADDRESS} responses received (got ${flooder.received.length})`, () => flooder.received.length === MAX_RESPONSES_PER_ADDRESS);
    // Another address is answered all the same.
    const other = createSocket('udp4');
    sockets.push(other);
    await new Promise<void>((resolve) => other.bind(0, '127.0.0.2', resolve));
    const response = new Promise<Buffer>((resolve) => other.once('message', resolve));
    other.send(stunMessage(0x0001), tracker.stunPort!, '127.0.0.1');
    expect(mappedAddress(await response)).toEqual({ address: '127.0.0.2', port: other.address().port });
  });

  it('binds STUN on stunHost, apart from the WebSocket address', async () => {
    const tracker = await fx.start({ host: '127.0.0.1', stunHost: '127.0.0.2' });
    const client = await udpClient();
    client.socket.send(stunMessage(0x0001), tracker.stunPort!, '127.0.0.2');
    expect(mappedAddress(await client.next())).toEqual({ address: '127.0.0.1', port: client.port });
  });

  it('runs without STUN when stunPort is 0', async () => {
    const tracker = await fx.start({ stunPort: 0 });
    expect(tracker.stunPort).toBeUndefined();
    const health = (await (await fetch(`${tracker.httpUrl}/health`)).json()) as { stunPort: number | null };
    expect(health.stunPort).toBeNull();
  });

  it('refuses to start when the STUN port is taken', async () => {
    const holder = await udpClient();
    await expect(fx.start({ stunPort: holder.port, host: '127.0.0.1' })).rejects.toThrow(/EADDRINUSE/);
  });
});

describe('ICE servers in announce replies', () => {
  const fx = useTrackerFixture();
  const infoHash = randomId();
  const report = { bytesFromPeers: 0, bytesFromOrigin: 0, bytesUploaded: 0 };

  it('hands a peerfetch page the STUN port, and stock WebTorrent clients nothing new', async () => {
    const tracker = await fx.start({});
    const page = await fx.client();
    page.send(announce(infoHash, randomId(), { peerfetch: report }));
    const reply = await page.next(isReply);
    expect(reply.peerfetch).toEqual({ stunPort: tracker.stunPort });
    page.send(announce(infoHash, randomId(), { peerfetch: report, event: 'update' }));
    expect((await page.next(isReply)).peerfetch, 'handed once per connection').toBeUndefined();

    const webtorrent = await fx.client();
    webtorrent.send(announce(infoHash, randomId()));
    expect(Object.keys(await webtorrent.next(isReply)).sort()).toEqual(['action', 'complete', 'incomplete', 'info_hash', 'interval']);
  });

  it('hands out TURN credentials in coturn\'s shared-secret scheme and renews them at half their life', async () => {
    let now = 1_800_000_000_000;
    const secret = 'shared secret';
    const ttl = 600;
    await fx.start({ stunPort: 0, turnUrls: ['turn:turn.example:3478?transport=udp'], turnSecret: secret, turnTtlSec: ttl, now: () => now });
    const page = await fx.client();
    const peerId = randomId();
    page.send(announce(infoHash, peerId, { peerfetch: report }));
    const first = (await page.next(isReply)).peerfetch;
    expect(first.stunPort, 'STUN off').toBeUndefined();
    expect(first.turn.urls).toEqual(['turn:turn.example:3478?transport=udp']);
    const [expiry, id] = first.turn.username.split(':');
    expect(Number(expiry)).toBe(now / 1000 + ttl);
    expect(id).toMatch(/^[0-9a-f]{12}$/);
    expect(first.turn.credential).toBe(createHmac('sha1', secret).update(first.turn.username).digest('base64'));

    now += (ttl / 2 - 1) * 1000;
    page.send(announce(infoHash, peerId, { peerfetch: report, event: 'update' }));
    expect((await page.next(isReply)).peerfetch, 'still fresh: nothing new').toBeUndefined();
    now += 2000;
    page.send(announce(infoHash, peerId, { peerfetch: report, event: 'update' }));
    const renewed = (await page.next(isReply)).peerfetch;
    expect(Number(renewed.turn.username.split(':')[0])).toBe(now / 1000 + ttl);
    expect(renewed.turn.credential).toBe(createHmac('sha1', secret).update(renewed.turn.username).digest('base64'));
  });

  it('refuses TURN without a secret', async () => {
    await expect(fx.start({ turnUrls: ['turn:turn.example'] })).rejects.toThrow(/turnSecret/);
    await expect(fx.start({ turnUrls: ['http://turn.example'], turnSecret: 's' })).rejects.toThrow(/not a turn/);
  });
});

describe('peerfetch tracker STUN and TURN flags', () => {
  it('parses them, takes the secret from the environment, and refuses TURN without one', () => {
    const { options } = parseTrackerArgs(['--stun-port', '3479', '--stun-host', '0.0.0.0', '--turn-url', 'turn:a.example:3478?transport=udp', '--turn-url', 'turns:a.example:5349', '--turn-ttl', '3600'], {
      PEERFETCH_TURN_SECRET: 'from-env',
    });
    expect(options).toEqual({ stunPort: 3479, stunHost: '0.0.0.0', turnUrls: ['turn:a.example:3478?transport=udp', 'turns:a.example:5349'], turnSecret: 'from-env', turnTtlSec: 3600 });
    expect(parseTrackerArgs(['--turn-url', 'turn:a', '--turn-secret', 'flag'], { PEERFETCH_TURN_SECRET: 'env' }).options.turnSecret).toBe('flag');
    expect(() => parseTrackerArgs(['--turn-url', 'turn:a'], {})).toThrow(/PEERFETCH_TURN_SECRET/);
    expect(() => parseTrackerArgs(['--turn-url', 'stun:a', '--turn-secret', 's'])).toThrow(/turn: or turns:/);
    expect(parseTrackerArgs(['--stun-port', '0']).options.stunPort).toBe(0);
  });
});
