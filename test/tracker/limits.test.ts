import { describe, expect, it } from 'vitest';
import type { LogEntry } from '../../src/tracker/index.js';
import { announce, hex, isFailure, isOffer, isReply, offers, randomId, TestClient, waitFor, TRANSPORTS, useTrackerFixture } from './helpers.js';

const fx = useTrackerFixture();
const { start, client } = fx;

describe.each(TRANSPORTS)('tracker abuse limits, %s transport', (kind) => {
  fx.useTransport(kind);

  it('answers invalid JSON, binary frames and bad fields with a failure reason and keeps the socket', async () => {
    await start();
    const a = await client();
    const cases: Array<[unknown, string]> = [
      ['{not json', 'invalid JSON'],
      [Buffer.from([1, 2, 3]), 'binary frames are not supported: send JSON text frames'],
      [{ action: 'connect' }, 'invalid action: expected announce or scrape'],
      [{ action: 'announce', info_hash: 'short', peer_id: randomId() }, 'invalid info_hash: expected a 20-byte binary string'],
      [{ action: 'announce', info_hash: randomId(), peer_id: 42 }, 'invalid peer_id: expected a 20-byte binary string'],
      [{ action: 'announce', info_hash: '€'.repeat(20), peer_id: randomId() }, 'invalid info_hash: expected a 20-byte binary string'],
      [announce(randomId(), randomId(), { event: 'exploded' }), 'invalid event'],
      [announce(randomId(), randomId(), { answer: { type: 'answer', sdp: 'x' } }), 'invalid answer: needs to_peer_id, offer_id and an answer {type, sdp}'],
      [{ action: 'scrape', info_hash: Array(101).fill(randomId()) }, 'invalid info_hash: expected a 20-byte binary string'],
    ];
    for (const [frame, reason] of cases) {
      a.send(frame);
      expect((await a.next())['failure reason']).toBe(reason);
    }
    // Still usable afterwards.
    a.send(announce(randomId(), randomId()));
    expect(await a.next(isReply)).toMatchObject({ incomplete: 1 });
    expect(fx.tracker.stats().rejections).toMatchObject({ 'invalid-json': 1, 'binary-frame': 1, 'invalid-info-hash': 3 });
  });

  it('closes a connection that sends a frame over maxFrameBytes: 1009 with a reason, or at once when far over', async () => {
    await start({ maxFrameBytes: 1024 });
    const a = await client();
    a.send(announce(randomId(), randomId(), { offers: offers(1, 'x'.repeat(1200)) }));
    expect(await a.closed).toMatchObject({ code: 1009 });
    await waitFor('rejection counted', () => fx.tracker.stats().rejections['frame-too-large'] === 1);
    // Far over the limit the native transport drops the TCP connection without reading the frame.
    const b = await client();
    b.send('x'.repeat(64 * 1024));
    await b.closed;
    await waitFor('second rejection counted', () => fx.tracker.stats().rejections['frame-too-large'] === 2);
    // The client may see its close before the server has run its own close handler (Node 24's ws does).
    await waitFor('both connections released', () => fx.tracker.stats().connections === 0);
  });

  it('rate-limits messages per connection: one failure, then a close at twice the limit', async () => {
    await start({ maxMessagesPerWindow: 5, rateWindowMs: 60_000 });
    const a = await client();
    const infoHash = randomId();
    const id = randomId();
    for (let i = 0; i < 11; i++) a.send(announce(infoHash, id));
    for (let i = 0; i < 5; i++) await a.next(isReply);
    expect((await a.next(isFailure))['failure reason']).toBe('too many messages: slow down');
    expect(await a.closed).toEqual({ code: 1008, reason: 'too many messages: slow down' });
    expect(a.frames.filter(isFailure)).toHaveLength(0);
  });

  it('caps connections per IP and in total, closing with a reason', async () => {
    await start({ maxConnectionsPerIp: 2, maxConnections: 3, trustProxy: true });
    const ip = { headers: { 'X-Forwarded-For': '192.0.2.7' } };
    await client(ip);
    await client(ip);
    const third = await client(ip);
    expect(await third.closed).toEqual({ code: 1013, reason: 'too many connections from this address' });
    await client({ headers: { 'X-Forwarded-For': '192.0.2.8' } });
    const over = await client({ headers: { 'X-Forwarded-For': '192.0.2.9' } });
    expect(await over.closed).toEqual({ code: 1013, reason: 'tracker is at its connection limit' });
    expect(fx.tracker.stats().rejections).toMatchObject({ 'too-many-connections-from-ip': 1, 'too-many-connections': 1 });
  });

  it('takes the client address from the right-most untrusted X-Forwarded-For entry, never a client-written one', async () => {
    const refused: LogEntry[] = [];
    await start({ maxConnectionsPerIp: 1, trustProxy: true, logger: { log: (e) => e.event === 'connection:refused' && refused.push(e) } });
    // One proxy in front: whatever the client wrote left of the proxy's entry is ignored.
    await client({ headers: { 'X-Forwarded-For': '203.0.113.5, 192.0.2.7' } });
    const second = await client({ headers: { 'X-Forwarded-For': '198.51.100.9, 192.0.2.7' } });
    expect(await second.closed).toEqual({ code: 1013, reason: 'too many connections from this address' });
    expect(refused.map((e) => e.ip)).toEqual(['192.0.2.7']);
    await fx.tracker.close();

    // A chain of trusted proxies is walked back to the first address none of them wrote.
    refused.length = 0;
    await start({ maxConnectionsPerIp: 1, trustedProxies: ['127.0.0.1', '10.0.0.0/8'], logger: { log: (e) => e.event === 'connection:refused' && refused.push(e) } });
    await client({ headers: { 'X-Forwarded-For': '198.51.100.1, 192.0.2.9, 10.1.1.1' } });
    const spoofed = await client({ headers: { 'X-Forwarded-For': '192.0.2.10, 192.0.2.9, 10.2.2.2' } });
    expect(await spoofed.closed).toMatchObject({ code: 1013 });
    const other = await client({ headers: { 'X-Forwarded-For': '192.0.2.9, 192.0.2.10' } });
    other.send(announce(randomId(), randomId()));
    await other.next(isReply);
    expect(refused.map((e) => e.ip)).toEqual(['192.0.2.9']);
    await fx.tracker.close();

    // A connection that is not from a trusted proxy keeps its own address, whatever it claims.
    refused.length = 0;
    await start({ maxConnectionsPerIp: 1, trustedProxies: ['10.0.0.0/8'], logger: { log: (e) => e.event === 'connection:refused' && refused.push(e) } });
    await client({ headers: { 'X-Forwarded-For': '192.0.2.1' } });
    const direct = await client({ headers: { 'X-Forwarded-For': '192.0.2.2' } });
    expect(await direct.closed).toMatchObject({ code: 1013 });
    expect(refused.map((e) => e.ip)).toEqual(['127.0.0.1']);
  });

  it('counts an IPv6 /64 as one address', async () => {
    await start({ maxConnectionsPerIp: 1, trustProxy: true });
    await client({ headers: { 'X-Forwarded-For': '2001:db8:1:2::1' } });
    const sameSubnet = await client({ headers: { 'X-Forwarded-For': '2001:db8:1:2:ffff:abcd::9' } });
    expect(await sameSubnet.closed).toEqual({ code: 1013, reason: 'too many connections from this address' });
    const otherSubnet = await client({ headers: { 'X-Forwarded-For': '2001:db8:1:3::1' } });
    otherSubnet.send(announce(randomId(), randomId()));
    await otherSubnet.next(isReply);
  });

  it('caps the peer ids one connection and one address hold in a swarm, so one host cannot fill or eclipse it', async () => {
    await start({ trustProxy: true, maxPeersPerSwarmPerIp: 3 });
    const h = randomId();
    const home = { headers: { 'X-Forwarded-For': '192.0.2.1' } };
    const a = await client(home);
    a.send(announce(h, randomId()));
    a.send(announce(h, randomId()));
    a.send(announce(h, randomId()));
    await a.next(isReply);
    await a.next(isReply);
    // Default: two peer ids per connection per swarm.
    expect((await a.next())['failure reason']).toBe('too many peer ids on one connection in this swarm');
    // Other swarms on the same connection are not affected.
    a.send(announce(randomId(), randomId()));
    await a.next(isReply);
    const b = await client(home);
    b.send(announce(h, randomId()));
    await b.next(isReply);
    b.send(announce(h, randomId()));
    expect((await b.next())['failure reason']).toBe('too many peers from this address in this swarm');
    const neighbour = await client({ headers: { 'X-Forwarded-For': '192.0.2.2' } });
    neighbour.send(announce(h, randomId()));
    expect(await neighbour.next(isReply)).toMatchObject({ incomplete: 4 });
    expect(fx.tracker.stats().rejections).toMatchObject({ 'too-many-peers-per-connection': 1, 'too-many-peers-from-ip': 1 });
  });

  it('keeps the message budget per address across reconnects', async () => {
    await start({ maxMessagesPerWindow: 100, maxMessagesPerWindowPerIp: 6, rateWindowMs: 60_000 });
    const h = randomId();
    const first = await client();
    for (let i = 0; i < 4; i++) first.send(announce(h, randomId(), { event: 'stopped' }));
    first.send({ action: 'scrape', info_hash: h });
    await first.next((f) => f.action === 'scrape');
    await first.close();
    const again = await client();
    for (let i = 0; i < 3; i++) again.send({ action: 'scrape', info_hash: h });
    await again.next((f) => f.action === 'scrape');
    expect((await again.next())['failure reason']).toBe('too many messages: slow down');
    expect(again.frames.filter((f) => f.action === 'scrape')).toHaveLength(0);
  });

  it('accepts only allowed page origins', async () => {
    await start({ allowOrigins: ['https://video.example', 'http://127.0.0.1:8080/'] });
    const ok = await client({ origin: 'https://video.example' });
    ok.send(announce(randomId(), randomId()));
    await ok.next(isReply);
    const ok2 = await client({ origin: 'http://127.0.0.1:8080' });
    ok2.send(announce(randomId(), randomId()));
    await ok2.next(isReply);
    const evil = await client({ origin: 'https://evil.example' });
    expect(await evil.closed).toEqual({ code: 1008, reason: 'origin not allowed' });
    const none = await client();
    expect(await none.closed).toEqual({ code: 1008, reason: 'origin not allowed' });
  });

  it('accepts only allowed swarms when a swarm allow-list is set', async () => {
    const allowed = randomId();
    await start({ allowSwarms: [hex(allowed).toUpperCase()] });
    const a = await client();
    a.send(announce(randomId(), randomId()));
    expect(await a.next()).toMatchObject({ action: 'announce', 'failure reason': 'swarm not allowed on this tracker' });
    a.send(announce(allowed, randomId()));
    expect(await a.next(isReply)).toMatchObject({ incomplete: 1 });
  });

  it('caps peers per swarm, swarms per instance and peers per connection', async () => {
    await start({ maxPeersPerSwarm: 2, maxSwarms: 2, maxSwarmsPerConnection: 3, maxPeersPerSwarmPerConnection: 3 });
    const [h1, h2, h3] = [randomId(), randomId(), randomId()];
    const a = await client();
    const firstId = randomId();
    a.send(announce(h1, firstId));
    a.send(announce(h1, randomId()));
    a.send(announce(h1, randomId()));
    await a.next(isReply);
    await a.next(isReply);
    expect((await a.next())['failure reason']).toBe('swarm is full');
    a.send(announce(h2, randomId()));
    await a.next(isReply);
    a.send(announce(h2, randomId()));
    expect((await a.next())['failure reason']).toBe('too many swarms on one connection');
    const b = await client();
    b.send(announce(h3, randomId()));
    expect((await b.next())['failure reason']).toBe('tracker is at its swarm limit');
    expect(fx.tracker.stats().peers).toBe(3);

    // A peer refused by the full swarm can still answer an offer made to it.
    const c = await client();
    c.send(announce(h1, randomId(), { answer: { type: 'answer', sdp: 'late' }, to_peer_id: firstId, offer_id: 'o' }));
    expect((await c.next())['failure reason']).toBe('swarm is full');
    expect(await a.next((f) => f.answer !== undefined)).toMatchObject({ answer: { type: 'answer', sdp: 'late' }, offer_id: 'o' });
  });

  it('drops messages to a client that stops reading, then disconnects it, keeping memory bounded', async () => {
    await start({ maxBufferedBytes: 64 * 1024, maxMessagesPerWindow: 100_000 });
    const infoHash = randomId();
    const slow = await client();
    slow.send(announce(infoHash, randomId()));
    await slow.next(isReply);
    // Stop reading: the kernel buffers fill up, then the tracker's send queue for this socket grows.
    const socket = (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    const flooder = await client();
    const id = randomId();
    const big = 'a=x'.repeat(10_000);
    for (let i = 0; i < 2000 && !fx.tracker.stats().rejections['slow-consumer']; i++) {
      flooder.send(announce(infoHash, id, { offers: offers(1, big) }));
      await flooder.next(isReply);
    }
    expect(fx.tracker.stats().rejections['slow-consumer']).toBe(1);
    await waitFor('slow peer removed', () => fx.tracker.stats().peers === 1);
    expect(fx.tracker.stats().connections).toBe(1);
    socket.resume();
  });

  it('ignores malformed offers and offers over the cap, relaying the valid ones', async () => {
    await start({ maxOffersPerAnnounce: 3 });
    const infoHash = randomId();
    const peers: TestClient[] = [];
    for (let i = 0; i < 4; i++) {
      const c = await client();
      c.send(announce(infoHash, randomId()));
      await c.next(isReply);
      peers.push(c);
    }
    const a = await client();
    const good = offers(1);
    a.send(announce(infoHash, randomId(), {
      offers: [{ offer: 'nope', offer_id: randomId() }, { offer: { type: 'answer', sdp: 'x' }, offer_id: randomId() }, { offer: { sdp: 'x' } }, good[0], ...offers(4)],
    }));
    await a.next(isReply);
    const received = await waitFor('three offers received', () => {
      const got = peers.flatMap((c) => c.frames.filter(isOffer));
      return got.length === 3 ? got : undefined;
    });
    expect(fx.tracker.stats().offersRelayed).toBe(3);
    expect(received.map((f) => f.offer_id)).toContain(good[0]!.offer_id);
    // Only {type, sdp} is relayed, whatever else the sender put in.
    for (const f of received) expect(Object.keys(f.offer).sort()).toEqual(['sdp', 'type']);
  });
});
