import net from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createJsonLogger, startTracker, type LogEntry } from '../../src/tracker/index.js';
import { parseReport } from '../../src/tracker/tracker-messages.js';
import { announce, hex, isReply, offers, randomId, TestClient, waitFor, TRANSPORTS, useTrackerFixture } from './helpers.js';

const fx = useTrackerFixture();
const { start, client } = fx;

/** Sends raw bytes to the tracker's port and resolves with the first response bytes and the open socket. */
function rawHttp(port: number, request: string): Promise<{ response: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    socket.once('data', (data) => resolve({ response: data.toString('latin1'), socket }));
    socket.once('error', reject);
  });
}

async function statsJson(query = ''): Promise<{ status: number; cors: string | null; body: any }> {
  const res = await fetch(`${fx.tracker.httpUrl}/stats.json${query}`);
  return { status: res.status, cors: res.headers.get('access-control-allow-origin'), body: await res.json() };
}

describe.each(TRANSPORTS)('swarm-wide offload stats, %s transport', (kind) => {
  fx.useTransport(kind);

  it('aggregates the latest report of each live peer per swarm, and forgets peers that leave', async () => {
    await start();
    const [h1, h2] = [randomId(), randomId()];
    const [a, b, c] = [await client(), await client(), await client()];
    const [idA, idB] = [randomId(), randomId()];
    a.send(announce(h1, idA, { peerfetch: { bytesFromPeers: 100, bytesFromOrigin: 900, bytesUploaded: 0 } }));
    b.send(announce(h1, idB, { peerfetch: { bytesFromPeers: 500, bytesFromOrigin: 500, bytesUploaded: 100 } }));
    c.send(announce(h2, randomId()));
    await Promise.all([a.next(isReply), b.next(isReply), c.next(isReply)]);

    let { status, cors, body } = await statsJson(`?info_hash=${hex(h1)}`);
    expect(status).toBe(200);
    expect(cors).toBe('*');
    expect(body.swarms).toEqual([{ infoHash: hex(h1), peers: 2, complete: 0, incomplete: 2, bytesFromPeers: 600, bytesFromOrigin: 1400, bytesUploaded: 100, offloadRatio: 0.3 }]);
    expect((await statsJson(`?info_hash=${hex(h2)}`)).body.swarms[0]).toMatchObject({ peers: 1, bytesFromPeers: 0, bytesFromOrigin: 0, offloadRatio: 0 });
    expect(body).toMatchObject({ connections: 3, peers: 3, swarmCount: 2, announcesTotal: 3, scope: 'instance' });

    // A later report replaces the earlier one (counters are cumulative per peer, not increments).
    a.send(announce(h1, idA, { event: 'update', peerfetch: { bytesFromPeers: 1500, bytesFromOrigin: 1000, bytesUploaded: 0 } }));
    await a.next(isReply);
    ({ body } = await statsJson(`?info_hash=${hex(h1)}`));
    expect(body.swarms).toEqual([expect.objectContaining({ infoHash: hex(h1), bytesFromPeers: 2000, bytesFromOrigin: 1500 })]);
    expect(body.swarms[0].offloadRatio).toBeCloseTo(2000 / 3500, 10);

    await b.close();
    await waitFor('B gone from the aggregate', async () => (await statsJson(`?info_hash=${hex(h1)}`)).body.swarms[0].bytesFromPeers === 1500);
    expect((await statsJson('?info_hash=zz')).status).toBe(400);
    // A swarm nobody is in: zeros, not an error.
    expect((await statsJson(`?info_hash=${'00'.repeat(20)}`)).body.swarms[0]).toMatchObject({ peers: 0, offloadRatio: 0 });
  });

  it('ignores invalid counters and keeps the previous valid report', async () => {
    await start();
    const h = randomId();
    const id = randomId();
    const a = await client();
    a.send(announce(h, id, { peerfetch: { bytesFromPeers: 10, bytesFromOrigin: 30, bytesUploaded: 1 } }));
    await a.next(isReply);
    const bad = [
      { bytesFromPeers: -1, bytesFromOrigin: 0, bytesUploaded: 0 },
      { bytesFromPeers: '5', bytesFromOrigin: 0, bytesUploaded: 0 },
      { bytesFromPeers: 5, bytesFromOrigin: null, bytesUploaded: 0 },
      { bytesFromPeers: 5, bytesFromOrigin: 1 },
      [1, 2, 3],
      'lots',
    ];
    for (const peerfetch of bad) {
      a.send(announce(h, id, { event: 'update', peerfetch }));
      await a.next(isReply);
    }
    // 1e999 parses as Infinity: not finite, ignored.
    a.send(`{"action":"announce","info_hash":${JSON.stringify(h)},"peer_id":${JSON.stringify(id)},"peerfetch":{"bytesFromPeers":1e999,"bytesFromOrigin":0,"bytesUploaded":0}}`);
    await a.next(isReply);
    const { body } = await statsJson();
    expect(body.swarms[0]).toMatchObject({ bytesFromPeers: 10, bytesFromOrigin: 30, bytesUploaded: 1, offloadRatio: 0.25 });
    const metrics = await (await fetch(`${fx.tracker.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/^peerfetch_tracker_bad_reports_total 7$/m);
  });

  it('bounds what one client adds to a swarm\'s figures: growth per second, and its share among addresses', async () => {
    let clock = 1_000_000;
    await start({ now: () => clock, trustProxy: true, maxReportBytesPerSec: 1000 });
    const h = randomId();
    const from = (ip: string) => client({ headers: { 'X-Forwarded-For': ip } });
    for (let i = 1; i <= 4; i++) {
      const honest = await from(`192.0.2.${i}`);
      honest.send(announce(h, randomId(), { peerfetch: { bytesFromPeers: 1000, bytesFromOrigin: 1000, bytesUploaded: 1000 } }));
      await honest.next(isReply);
    }
    const forger = await from('198.51.100.1');
    const id = randomId();
    forger.send(announce(h, id, { peerfetch: { bytesFromPeers: 1e15, bytesFromOrigin: 0, bytesUploaded: 1e15 } }));
    await forger.next(isReply);
    clock += 10_000;
    forger.send(announce(h, id, { peerfetch: { bytesFromPeers: 2e15, bytesFromOrigin: 0, bytesUploaded: 2e15 } }));
    await forger.next(isReply);
    const [swarm] = (await statsJson(`?info_hash=${hex(h)}`)).body.swarms;
    // Five addresses: the forger makes up at most a quarter of each figure (4000 / 0.75).
    expect(swarm.bytesFromPeers).toBeGreaterThanOrEqual(4000);
    expect(swarm.bytesFromPeers).toBeLessThanOrEqual(5334);
    expect(swarm.bytesUploaded).toBeLessThanOrEqual(5334);
    expect(swarm.bytesFromOrigin).toBe(4000);
    expect(swarm.offloadRatio).toBeLessThanOrEqual(0.6);
    // Alone, it still adds no more than what a page could move: the burst plus 1000 bytes a second.
    await fx.tracker.close();
    await start({ now: () => clock, trustProxy: true, maxReportBytesPerSec: 1000 });
    const alone = await from('198.51.100.1');
    alone.send(announce(h, id, { peerfetch: { bytesFromPeers: 1e15, bytesFromOrigin: 0, bytesUploaded: 0 } }));
    await alone.next(isReply);
    clock += 10_000;
    alone.send(announce(h, id, { peerfetch: { bytesFromPeers: 2e15, bytesFromOrigin: 0, bytesUploaded: 0 } }));
    await alone.next(isReply);
    expect((await statsJson(`?info_hash=${hex(h)}`)).body.swarms[0].bytesFromPeers).toBe(2 * 64 * 1024 * 1024 + 10_000);
  });

  it('validates counters as finite, non-negative, safe integers-or-floats', () => {
    expect(parseReport({ bytesFromPeers: 0, bytesFromOrigin: 0.5, bytesUploaded: 9 })).toEqual({ bytesFromPeers: 0, bytesFromOrigin: 0.5, bytesUploaded: 9 });
    for (const v of [NaN, Infinity, -0.1, 2 ** 60, '1', undefined]) {
      expect(parseReport({ bytesFromPeers: v, bytesFromOrigin: 0, bytesUploaded: 0 })).toBeUndefined();
    }
  });
});

describe.each(TRANSPORTS)('observability, %s transport', (kind) => {
  fx.useTransport(kind);

  it('serves /health, Prometheus /metrics with rejections by reason, and 404 elsewhere', async () => {
    await start();
    const health = await fetch(`${fx.tracker.httpUrl}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok', transport: kind, transportPackage: kind === 'node' ? 'ws' : expect.stringMatching(/^@(btc-vision\/uwebsockets\.js|trufflesuite\/uws-js-unofficial)$/), connections: 0, peers: 0, swarms: 0, stunPort: fx.tracker.stunPort, turn: false });

    const h = randomId();
    const [a, b] = [await client(), await client()];
    a.send(announce(h, randomId()));
    await a.next(isReply);
    b.send(announce(h, randomId(), { offers: offers(2) }));
    await b.next(isReply);
    b.send('garbage');
    await b.next();
    await waitFor('offer delivered', () => a.frames.length > 0);

    const res = await fetch(`${fx.tracker.httpUrl}/metrics`);
    expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    const text = await res.text();
    expect(text).toMatch(/^# TYPE peerfetch_tracker_announces_total counter$/m);
    expect(text).toMatch(/^peerfetch_tracker_announces_total 2$/m);
    expect(text).toMatch(/^peerfetch_tracker_peers 2$/m);
    expect(text).toMatch(/^peerfetch_tracker_swarms 1$/m);
    expect(text).toMatch(/^peerfetch_tracker_connections 2$/m);
    expect(text).toMatch(/^peerfetch_tracker_offers_relayed_total 1$/m);
    expect(text).toMatch(/^peerfetch_tracker_rejections_total\{reason="invalid-json"\} 1$/m);
    expect(text).toMatch(/^peerfetch_tracker_resident_memory_bytes \d+$/m);
    expect(text).toMatch(new RegExp(`^peerfetch_tracker_transport_info\\{transport="${kind}",package="${kind === 'node' ? 'ws' : '@[^"]+'}"\\} 1$`, 'm'));
    // Each announce lands in the latency histogram (+Inf counts them all); nothing else does.
    expect(text).toMatch(/^# TYPE peerfetch_tracker_announce_duration_seconds histogram$/m);
    expect(text).toMatch(/^peerfetch_tracker_announce_duration_seconds_count 2$/m);
    expect(text).toMatch(/^peerfetch_tracker_announce_duration_seconds_bucket\{le="\+Inf"\} 2$/m);
    expect(Number(/^peerfetch_tracker_announce_duration_seconds_sum (\S+)$/m.exec(text)?.[1])).toBeGreaterThan(0);
    // The process's metrics: CPU, memory, and event-loop lag from monitorEventLoopDelay.
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_p99_seconds']) {
      expect(text).toMatch(new RegExp(`^${name}(\\{[^}]*\\})? \\S+$`, 'm'));
    }
    // Every sample line is `name{labels} value`, as Prometheus parses it.
    const label = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*"';
    const sample = new RegExp(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{${label}(,${label})*\\})? (-?\\d+(\\.\\d+)?(e[+-]?\\d+)?|NaN|[+-]Inf)$`);
    for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) expect(line).toMatch(sample);
    // A second scrape sees the counters move on.
    a.send(announce(h, randomId()));
    await a.next(isReply);
    expect(await (await fetch(`${fx.tracker.httpUrl}/metrics`)).text()).toMatch(/^peerfetch_tracker_announce_duration_seconds_count 3$/m);

    expect((await fetch(`${fx.tracker.httpUrl}/nope`)).status).toBe(404);
    expect(fx.tracker.stats().announcesPerSecond).toBeGreaterThanOrEqual(0);
  });

  it("collects its series in the embedding application's prom-client registry, and takes them out on close", async () => {
    const registry = new Registry();
    const own = new Counter({ name: 'site_requests_total', help: 'The application\'s own series.', registers: [registry] });
    own.inc(5);
    // A series with no value yet: prom-client writes `Nan`, /metrics serves the format's `NaN`.
    new Gauge({ name: 'site_ratio', help: 'The application\'s ratio, not known yet.', registers: [registry] }).set(Number.NaN);
    await start({ metricsRegistry: registry });
    const a = await client();
    a.send(announce(randomId(), randomId()));
    await a.next(isReply);
    const merged = await registry.metrics();
    expect(merged).toMatch(/^peerfetch_tracker_announces_total 1$/m);
    expect(merged).toMatch(/^peerfetch_tracker_announce_duration_seconds_count 1$/m);
    expect(merged).toMatch(/^site_requests_total 5$/m);
    // The tracker's /metrics serves that registry, and adds no process metrics of its own to it.
    const served = await (await fetch(`${fx.tracker.httpUrl}/metrics`)).text();
    expect(served).toMatch(/^site_requests_total 5$/m);
    expect(served).toMatch(/^peerfetch_tracker_peers 1$/m);
    expect(served).toMatch(/^site_ratio NaN$/m);
    expect(served).not.toContain('process_cpu_user_seconds_total');
    // One registry holds one running tracker's series: a second is refused with the reason.
    await expect(startTracker({ port: 0, transport: kind, metricsRegistry: registry })).rejects.toThrow(/metricsRegistry: .*peerfetch_tracker_/);
    await fx.tracker.close();
    const after = await registry.metrics();
    expect(after).not.toContain('peerfetch_tracker_');
    expect(after).toMatch(/^site_requests_total 5$/m);
    // Closed, its registry takes the next tracker.
    const next = await startTracker({ port: 0, transport: kind, metricsRegistry: registry });
    await next.close();
  });

  it('shows which swarms exist, and /metrics, only to the operator: on the admin port or with the admin token', async () => {
    await start({ adminPort: 0 });
    const h = randomId();
    const a = await client();
    a.send(announce(h, randomId()));
    await a.next(isReply);
    const publicList = await (await fetch(`${fx.tracker.httpUrl}/stats.json`)).text();
    expect(publicList).not.toContain(hex(h));
    expect(JSON.parse(publicList).swarms).toEqual([expect.objectContaining({ peers: 1 })]);
    expect(JSON.parse(publicList).swarms[0].infoHash).toBeUndefined();
    // Who knows the id may ask for its swarm (a page shows its own swarm's figures).
    expect((await statsJson(`?info_hash=${hex(h)}`)).body.swarms[0]).toMatchObject({ infoHash: hex(h), peers: 1 });
    expect((await fetch(`${fx.tracker.httpUrl}/metrics`)).status).toBe(404);
    const adminUrl = fx.tracker.adminUrl!;
    expect(adminUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await (await fetch(`${adminUrl}/stats.json`)).json()).swarms[0]).toMatchObject({ infoHash: hex(h) });
    expect(await (await fetch(`${adminUrl}/metrics`)).text()).toMatch(/^peerfetch_tracker_peers 1$/m);
    await fx.tracker.close();

    const token = 'k'.repeat(24);
    await start({ adminToken: token });
    const b = await client();
    b.send(announce(h, randomId()));
    await b.next(isReply);
    const metrics = await fetch(`${fx.tracker.httpUrl}/metrics`);
    expect([metrics.status, metrics.headers.get('www-authenticate')]).toEqual([401, 'Bearer realm="peerfetch tracker"']);
    expect((await fetch(`${fx.tracker.httpUrl}/metrics`, { headers: { Authorization: `Bearer ${'x'.repeat(24)}` } })).status).toBe(401);
    expect((await fetch(`${fx.tracker.httpUrl}/metrics`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
    expect(await (await fetch(`${fx.tracker.httpUrl}/stats.json`)).text()).not.toContain(hex(h));
    const authorised = await (await fetch(`${fx.tracker.httpUrl}/stats.json`, { headers: { Authorization: `Bearer ${token}` } })).json();
    expect(authorised.swarms[0]).toMatchObject({ infoHash: hex(h) });
  });

  it('answers odd HTTP requests without falling over, and closes keep-alive connections on shutdown', async () => {
    await start();
    // A request target no URL parser accepts once got a route to throw: it must be a 400.
    const bad = await rawHttp(fx.tracker.port, 'GET //:99999 HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(bad.response).toMatch(/^HTTP\/1\.1 400 /);
    bad.socket.destroy();
    const preflight = await fetch(`${fx.tracker.httpUrl}/stats.json`, { method: 'OPTIONS' });
    expect([preflight.status, preflight.headers.get('access-control-allow-origin'), await preflight.text()]).toEqual([200, '*', '']);
    expect((await fetch(`${fx.tracker.httpUrl}/health`, { method: 'POST' })).status).toBe(405);
    const head = await fetch(`${fx.tracker.httpUrl}/health`, { method: 'HEAD' });
    expect([head.status, await head.text()]).toEqual([200, '']);

    const idle = await rawHttp(fx.tracker.port, 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
    expect(idle.response).toMatch(/^HTTP\/1\.1 200 /);
    const socketClosed = new Promise<void>((resolve) => idle.socket.once('close', () => resolve()));
    await fx.tracker.close();
    await socketClosed;
  });

  it('cuts off a client that trickles its request headers (Slowloris)', { timeout: 60_000 }, async () => {
    await start();
    const socket = net.connect(fx.tracker.port, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    let closed = false;
    let received = '';
    socket.on('data', (data) => (received += data.toString('latin1')));
    socket.once('close', () => (closed = true));
    // A header line every half second: never idle, never done.
    socket.write('GET /health HTTP/1.1\r\nHost: x\r\n');
    let lines = 0;
    const trickle = setInterval(() => {
      if (!socket.destroyed) socket.write(`X-Slow-${lines++}: y\r\n`);
    }, 500);
    try {
      await waitFor(`the tracker to close a socket trickling headers (${lines} lines sent)`, () => closed, 40_000);
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
    expect(received).not.toMatch(/^HTTP\/1\.1 200/);
    // Honest requests are still answered.
    expect((await fetch(`${fx.tracker.httpUrl}/health`)).status).toBe(200);
  });

  it('writes structured JSON log lines for lifecycle and rejections', async () => {
    const lines: string[] = [];
    const entries: LogEntry[] = [];
    const json = createJsonLogger((line) => lines.push(line), 'debug');
    await start({ logger: { log: (e) => (entries.push(e), json.log(e)) } });
    const a = await client();
    a.send('{');
    await a.next();
    await fx.tracker.close();
    const parsed = lines.map((l) => JSON.parse(l));
    expect(parsed.map((p) => p.event)).toEqual(expect.arrayContaining(['tracker:listening', 'frame:rejected', 'tracker:closing', 'tracker:closed']));
    const rejected = parsed.find((p) => p.event === 'frame:rejected');
    expect(rejected).toMatchObject({ level: 'warn', reason: 'invalid-json', ip: '127.0.0.1' });
    expect(typeof rejected.time).toBe('string');
    expect(lines.every((l) => l.endsWith('\n'))).toBe(true);
  });

  it('caps warning log lines per second under a flood', async () => {
    const entries: LogEntry[] = [];
    await start({ logger: { log: (e) => entries.push(e) }, maxMessagesPerWindow: 10_000 });
    const a = await client();
    for (let i = 0; i < 200; i++) a.send('{');
    for (let i = 0; i < 200; i++) await a.next();
    expect(fx.tracker.stats().rejections['invalid-json']).toBe(200);
    expect(entries.filter((e) => e.event === 'frame:rejected').length).toBeLessThanOrEqual(40);
  });
});
