import { describe, expect, it } from 'vitest';
import { announce, hex, isAnswer, isOffer, isReply, offers, randomId, TestClient, waitFor, TRANSPORTS, useTrackerFixture } from './helpers.js';

const fx = useTrackerFixture();
const { start, client } = fx;

describe.each(TRANSPORTS)('tracker protocol (WebTorrent WebSocket tracker), %s transport', (kind) => {
  fx.useTransport(kind);

  it('answers an announce with interval, counts and the info_hash', async () => {
    await start({ announceIntervalSec: 77 });
    expect(fx.tracker.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    expect(fx.tracker.httpUrl).toBe(`http://127.0.0.1:${fx.tracker.port}`);
    const a = await client();
    const infoHash = randomId();
    a.send(announce(infoHash, randomId(), { left: 0 }));
    const reply = await a.next(isReply);
    expect(reply).toEqual({ action: 'announce', interval: 77, info_hash: infoHash, complete: 1, incomplete: 0 });
  });

  it('relays offers to other peers and the answer back, by offer_id and to_peer_id', async () => {
    await start();
    const infoHash = randomId();
    const [a, b] = [await client(), await client()];
    const [idA, idB] = [randomId(), randomId()];
    a.send(announce(infoHash, idA));
    await a.next(isReply);
    const sent = offers(3, 'from-b');
    b.send(announce(infoHash, idB, { numwant: 3, offers: sent }));
    const replyB = await b.next(isReply);
    expect(replyB.incomplete).toBe(2);

    const offer = await a.next(isOffer);
    expect(offer.peer_id).toBe(idB);
    expect(offer.info_hash).toBe(infoHash);
    const index = sent.findIndex((o) => o.offer_id === offer.offer_id);
    expect(index).toBeGreaterThanOrEqual(0);
    expect(offer.offer).toEqual(sent[index]!.offer);

    a.send({ action: 'announce', info_hash: infoHash, peer_id: idA, to_peer_id: idB, offer_id: offer.offer_id, answer: { type: 'answer', sdp: 'v=0 answer' } });
    const answer = await b.next(isAnswer);
    expect(answer).toEqual({ action: 'announce', answer: { type: 'answer', sdp: 'v=0 answer' }, offer_id: offer.offer_id, peer_id: idA, info_hash: infoHash });

    // An answer-only announce gets no reply (as with bittorrent-tracker): the next frame A sees is its scrape reply.
    a.send({ action: 'scrape', info_hash: infoHash });
    const next = await a.next();
    expect(next.action).toBe('scrape');
    // Only one other peer, so only one of B's three offers could be relayed; B never gets its own.
    expect(b.frames.filter(isOffer)).toHaveLength(0);
    expect(fx.tracker.stats().offersRelayed).toBe(1);
    expect(fx.tracker.stats().answersRelayed).toBe(1);
  });

  it('counts completed peers, removes stopped ones, and scrapes several swarms', async () => {
    await start();
    const [h1, h2] = [randomId(), randomId()];
    const [a, b, c] = [await client(), await client(), await client()];
    const idA = randomId();
    a.send(announce(h1, idA));
    await a.next(isReply);
    b.send(announce(h1, randomId(), { left: 0 }));
    expect(await b.next(isReply)).toMatchObject({ complete: 1, incomplete: 1 });
    a.send(announce(h1, idA, { event: 'completed', left: 0 }));
    expect(await a.next(isReply)).toMatchObject({ complete: 2, incomplete: 0 });
    c.send(announce(h2, randomId()));
    await c.next(isReply);

    c.send({ action: 'scrape', info_hash: [h1, h2] });
    const scrape = await c.next((f) => f.action === 'scrape');
    expect(scrape.files[h1]).toEqual({ complete: 2, incomplete: 0, downloaded: 2 });
    expect(scrape.files[h2]).toEqual({ complete: 0, incomplete: 1, downloaded: 0 });
    expect(scrape.flags.min_request_interval).toBe(120);

    a.send(announce(h1, idA, { event: 'stopped', left: 0 }));
    expect(await a.next(isReply)).toMatchObject({ complete: 1, incomplete: 0 });
    await b.close();
    await waitFor('closed peer to leave its swarm', () => fx.tracker.stats().swarms.find((s) => s.infoHash === hex(h1))?.complete === 0 || !fx.tracker.stats().swarms.some((s) => s.infoHash === hex(h1)));
    expect(fx.tracker.stats().peers).toBe(1);
  });

  it('expires a peer that stops announcing, and closes idle connections', async () => {
    // Expiry well after the first reply, idle close well after expiry, even on a loaded machine.
    await start({ peerTimeoutMs: 1500, idleTimeoutMs: 4000, sweepIntervalMs: 50 });
    const infoHash = randomId();
    const a = await client();
    a.send(announce(infoHash, randomId()));
    await a.next(isReply);
    expect(fx.tracker.stats().peers).toBe(1);
    await waitFor('peer expiry', () => fx.tracker.stats().peers === 0);
    expect(a.closeInfo).toBeUndefined();
    const closed = await a.closed;
    expect(closed).toEqual({ code: 1000, reason: 'idle timeout' });
    expect(fx.tracker.stats().rejections['idle-timeout']).toBe(1);
  });

  it('shuts down gracefully: sockets closed with 1001 and a reason, close() idempotent, nothing accepted after', async () => {
    await start();
    const a = await client();
    a.send(announce(randomId(), randomId()));
    await a.next(isReply);
    const url = fx.tracker.url;
    const [first, second] = [fx.tracker.close(), fx.tracker.close()];
    expect(await a.closed).toEqual({ code: 1001, reason: 'tracker is shutting down' });
    await Promise.all([first, second]);
    await fx.tracker.close();
    await expect(TestClient.open(url)).rejects.toThrow();
  });

  it('pings connections and drops the ones that stop answering (dead TCP), keeping live ones', async () => {
    await start({ heartbeatIntervalMs: 100, sweepIntervalMs: 20 });
    const infoHash = randomId();
    const live = await client();
    const dead = await TestClient.open(fx.tracker.url, { autoPong: false });
    fx.track(dead);
    live.send(announce(infoHash, randomId()));
    dead.send(announce(infoHash, randomId()));
    await Promise.all([live.next(isReply), dead.next(isReply)]);
    // Terminated without a close frame: the client sees 1006.
    expect((await dead.closed).code).toBe(1006);
    await waitFor('dead peer removed', () => fx.tracker.stats().peers === 1);
    expect(live.closeInfo).toBeUndefined();
  });

  it('relays at most maxOffersPerAnnounce offers and returns at most that many peers', async () => {
    await start({ maxOffersPerAnnounce: 2 });
    const infoHash = randomId();
    const others: TestClient[] = [];
    for (let i = 0; i < 5; i++) {
      const c = await client();
      c.send(announce(infoHash, randomId()));
      await c.next(isReply);
      others.push(c);
    }
    const a = await client();
    a.send(announce(infoHash, randomId(), { offers: offers(5) }));
    await a.next(isReply);
    await waitFor('two offers relayed', () => others.reduce((n, c) => n + c.frames.filter(isOffer).length, 0) === 2);
    expect(fx.tracker.stats().offersRelayed).toBe(2);
  });

  it('never sends two offers of one announce to the same peer', async () => {
    await start();
    const infoHash = randomId();
    const others: TestClient[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await client();
      c.send(announce(infoHash, randomId()));
      await c.next(isReply);
      others.push(c);
    }
    const a = await client();
    a.send(announce(infoHash, randomId(), { offers: offers(10) }));
    await a.next(isReply);
    for (const c of others) await c.next(isOffer);
    a.send({ action: 'scrape', info_hash: infoHash });
    await a.next((f) => f.action === 'scrape');
    expect(fx.tracker.stats().offersRelayed).toBe(3);
    for (const c of others) expect(c.frames.filter(isOffer)).toHaveLength(0);
  });

  it('lets one connection join several swarms (webtorrent shares its socket between torrents)', async () => {
    await start();
    const [h1, h2] = [randomId(), randomId()];
    const a = await client();
    const b = await client();
    const idA = randomId();
    a.send(announce(h1, idA));
    a.send(announce(h2, idA));
    await a.next(isReply);
    await a.next(isReply);
    b.send(announce(h2, randomId(), { offers: offers(1) }));
    const offer = await a.next(isOffer);
    expect(offer.info_hash).toBe(h2);
    expect(fx.tracker.stats().swarmCount).toBe(2);
    await a.close();
    await waitFor('both swarms of the closed socket to drop it', () => fx.tracker.stats().peers === 1);
  });

  it('prefers offer recipients in the announcing peer\'s /24 (locality)', async () => {
    // X-Forwarded-For only labels connections here (documentation ranges, RFC 5737); all traffic is loopback.
    await start({ trustProxy: true });
    const infoHash = randomId();
    const near: TestClient[] = [];
    const far: TestClient[] = [];
    for (let i = 0; i < 24; i++) {
      const isNear = i < 6;
      const c = await TestClient.open(fx.tracker.url, { headers: { 'X-Forwarded-For': isNear ? `198.51.100.${10 + i}` : `203.0.113.${10 + i}` } });
      fx.track(c);
      c.send(announce(infoHash, randomId()));
      await c.next(isReply);
      (isNear ? near : far).push(c);
    }
    const a = await TestClient.open(fx.tracker.url, { headers: { 'X-Forwarded-For': '198.51.100.200' } });
    fx.track(a);
    a.send(announce(infoHash, randomId(), { offers: offers(4) }));
    await a.next(isReply);
    await waitFor('four offers', () => [...near, ...far].reduce((n, c) => n + c.frames.filter(isOffer).length, 0) === 4);
    const toNear = near.reduce((n, c) => n + c.frames.filter(isOffer).length, 0);
    // Three of four slots go to same-/24 peers; the fourth is random (keeps the swarm connected).
    expect(toNear).toBeGreaterThanOrEqual(3);
  });

  it('lets a reconnect from the same address take over its peer id, but not another address', async () => {
    await start({ trustProxy: true });
    const infoHash = randomId();
    const id = randomId();
    const first = await TestClient.open(fx.tracker.url, { headers: { 'X-Forwarded-For': '192.0.2.1' } });
    fx.track(first);
    first.send(announce(infoHash, id));
    await first.next(isReply);
    const thief = await TestClient.open(fx.tracker.url, { headers: { 'X-Forwarded-For': '192.0.2.99' } });
    fx.track(thief);
    thief.send(announce(infoHash, id));
    expect((await thief.next())['failure reason']).toBe('peer_id is in use by another connection');
    const again = await TestClient.open(fx.tracker.url, { headers: { 'X-Forwarded-For': '192.0.2.1' } });
    fx.track(again);
    again.send(announce(infoHash, id));
    expect(await again.next(isReply)).toMatchObject({ incomplete: 1 });
    const other = await client();
    other.send(announce(infoHash, randomId(), { offers: offers(1) }));
    await again.next(isOffer);
    expect(first.frames.filter(isOffer)).toHaveLength(0);
  });
});
