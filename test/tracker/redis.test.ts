// Scale-out: two tracker instances sharing a real redis-server. Instance A runs in this process,
// instance B in a child process (so the test can kill it hard, as a crashed machine would die).
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTracker, type LogEntry, type RunningTracker } from '../../src/tracker/index.js';
import { bundleTrackerCli } from './bundle.js';
import { announce, hex, isAnswer, isOffer, isReply, offers, randomId, TestClient, waitFor } from './helpers.js';
import { freePort, startRedis, type RunningRedis } from './redis-server.js';

/**
 * Fast heartbeats so instance death is seen within a few seconds (defaults: 2 s and 10 s); the TTL
 * is twelve heartbeats, so a live instance on a busy CI machine is never taken for dead.
 */
const HEARTBEAT_MS = 250;
const INSTANCE_TTL_MS = 3000;

let redis: RunningRedis;
let entry: string;
let probe: Redis;
const clients: TestClient[] = [];
const trackers: RunningTracker[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  [redis, entry] = await Promise.all([startRedis(), bundleTrackerCli()]);
  probe = new Redis(redis.url);
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(trackers.splice(0).map((t) => t.close()));
  for (const c of children.splice(0)) c.kill('SIGKILL');
  await probe.flushall();
});

afterAll(async () => {
  probe?.disconnect();
  await redis?.stop();
  rmSync(entry, { force: true });
});

async function inProcess(): Promise<RunningTracker> {
  const t = await startTracker({ port: 0, redisUrl: redis.url, redisHeartbeatMs: HEARTBEAT_MS, redisInstanceTtlMs: INSTANCE_TTL_MS });
  trackers.push(t);
  return t;
}

async function childTracker(extra: string[] = []): Promise<{ url: string; proc: ChildProcess; exited: Promise<number | null> }> {
  const proc = spawn(process.execPath, [entry, '--port', '0', '--redis', redis.url, '--redis-heartbeat-ms', String(HEARTBEAT_MS), '--redis-instance-ttl-ms', String(INSTANCE_TTL_MS), ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  const m = await waitFor('child tracker', () => /listening on (ws:\/\/[\d.:]+)/.exec(out), 15_000);
  return { url: m[1]!, proc, exited };
}

async function open(url: string): Promise<TestClient> {
  const c = await TestClient.open(url);
  clients.push(c);
  return c;
}

describe('Redis scale-out', () => {
  it('relays an offer from a peer on B to a peer on A, and the answer back', async () => {
    const a = await inProcess();
    const b = await childTracker();
    const infoHash = randomId();
    const [idA, idB] = [randomId(), randomId()];
    const onA = await open(a.url);
    onA.send(announce(infoHash, idA));
    expect(await onA.next(isReply)).toMatchObject({ incomplete: 1 });

    const onB = await open(b.url);
    const sent = offers(2);
    onB.send(announce(infoHash, idB, { offers: sent }));
    // Counts are swarm-wide: both instances' peers.
    expect(await onB.next(isReply)).toMatchObject({ incomplete: 2 });

    const offer = await onA.next(isOffer);
    expect(offer.peer_id).toBe(idB);
    expect(sent.map((o) => o.offer_id)).toContain(offer.offer_id);

    onA.send({ action: 'announce', info_hash: infoHash, peer_id: idA, to_peer_id: idB, offer_id: offer.offer_id, answer: { type: 'answer', sdp: 'v=0 from A' } });
    const answer = await onB.next(isAnswer);
    expect(answer).toEqual({ action: 'announce', answer: { type: 'answer', sdp: 'v=0 from A' }, offer_id: offer.offer_id, peer_id: idA, info_hash: infoHash });

    // Scrape on either instance counts both.
    onA.send({ action: 'scrape', info_hash: infoHash });
    expect((await onA.next((f) => f.action === 'scrape')).files[infoHash]).toMatchObject({ incomplete: 2 });
    // Cross-instance traffic is visible in /metrics: A sent the answer out, and got the offer in.
    const metrics = await (await fetch(`${a.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/^peerfetch_tracker_cluster_relays_total\{direction="out"\} 1$/m);
    expect(metrics).toMatch(/^peerfetch_tracker_cluster_relays_total\{direction="in"\} 1$/m);
    // /stats.json?info_hash sums the swarm over instances.
    const stats = await (await fetch(`${a.httpUrl}/stats.json?info_hash=${hex(infoHash)}`)).json();
    expect(stats.swarms[0]).toMatchObject({ peers: 2 });
  });

  it('removes the peers of a killed instance from the shared state', async () => {
    const a = await inProcess();
    const b = await childTracker();
    const infoHash = randomId();
    const onB = await open(b.url);
    onB.send(announce(infoHash, randomId(), { peerfetch: { bytesFromPeers: 10, bytesFromOrigin: 10, bytesUploaded: 0 } }));
    await onB.next(isReply);
    const onA = await open(a.url);
    onA.send(announce(infoHash, randomId()));
    expect(await onA.next(isReply)).toMatchObject({ incomplete: 2 });
    expect(await probe.hlen(`peerfetch:swarm:${hex(infoHash)}`)).toBe(2);

    b.proc.kill('SIGKILL');
    await b.exited;
    await waitFor('dead instance purged from Redis', async () => (await probe.hlen(`peerfetch:swarm:${hex(infoHash)}`)) === 1, 20_000);
    onA.send(announce(infoHash, randomId(), { offers: offers(3) }));
    expect(await onA.next(isReply)).toMatchObject({ incomplete: 2 }); // A's two peers, none of B's
    const stats = await (await fetch(`${a.httpUrl}/stats.json?info_hash=${hex(infoHash)}`)).json();
    expect(stats.swarms[0]).toMatchObject({ peers: 2, bytesFromPeers: 0 });
    expect(await probe.zcard('peerfetch:instances')).toBe(1);
  });

  it('flushes its peers from Redis on graceful shutdown (SIGTERM)', async () => {
    const b = await childTracker();
    const infoHash = randomId();
    const onB = await open(b.url);
    onB.send(announce(infoHash, randomId()));
    await onB.next(isReply);
    expect(await probe.hlen(`peerfetch:swarm:${hex(infoHash)}`)).toBe(1);
    b.proc.kill('SIGTERM');
    expect(await b.exited).toBe(0);
    expect(await probe.hlen(`peerfetch:swarm:${hex(infoHash)}`)).toBe(0);
    expect(await probe.exists(`peerfetch:totals:${hex(infoHash)}`)).toBe(0);
    expect(await probe.zcard('peerfetch:instances')).toBe(0);
  });

  it('keeps serving its own peers when Redis goes away', async () => {
    const own = await startRedis();
    try {
      const t = await startTracker({ port: 0, redisUrl: own.url, redisHeartbeatMs: HEARTBEAT_MS, redisInstanceTtlMs: INSTANCE_TTL_MS });
      trackers.push(t);
      const infoHash = randomId();
      const x = await open(t.url);
      x.send(announce(infoHash, randomId()));
      await x.next(isReply);
      await own.stop();
      const y = await open(t.url);
      y.send(announce(infoHash, randomId(), { offers: offers(1) }));
      expect(await y.next(isReply, 15_000)).toMatchObject({ incomplete: 2 });
      expect((await x.next(isOffer)).action).toBe('announce');
    } finally {
      await own.stop();
    }
  }, 30_000);

  it('refuses a peer id that a live instance holds for another address', async () => {
    const a = await startTracker({ port: 0, redisUrl: redis.url, trustProxy: true, redisHeartbeatMs: HEARTBEAT_MS, redisInstanceTtlMs: INSTANCE_TTL_MS });
    const b = await startTracker({ port: 0, redisUrl: redis.url, trustProxy: true, redisHeartbeatMs: HEARTBEAT_MS, redisInstanceTtlMs: INSTANCE_TTL_MS });
    trackers.push(a, b);
    const infoHash = randomId();
    const victim = randomId();
    const home = { headers: { 'X-Forwarded-For': '192.0.2.1' } };
    const onA = await TestClient.open(a.url, home);
    clients.push(onA);
    onA.send(announce(infoHash, victim));
    await onA.next(isReply);
    const thief = await TestClient.open(b.url, { headers: { 'X-Forwarded-For': '192.0.2.66' } });
    clients.push(thief);
    thief.send(announce(infoHash, victim, { offers: offers(1) }));
    expect((await thief.next())['failure reason']).toBe('peer_id is in use by another connection');
    expect(await probe.hget(`peerfetch:swarm:${hex(infoHash)}`, hex(victim))).toMatch(new RegExp(`^${a.stats().instanceId} `));
    // Offers to the victim still reach it on A, not the thief on B.
    const other = await TestClient.open(b.url, { headers: { 'X-Forwarded-For': '192.0.2.2' } });
    clients.push(other);
    other.send(announce(infoHash, randomId(), { offers: offers(1) }));
    await other.next(isReply);
    expect((await onA.next(isOffer)).action).toBe('announce');
    expect(thief.frames.filter(isOffer)).toHaveLength(0);
    // The same visitor reconnecting through another instance keeps its id.
    const back = await TestClient.open(b.url, home);
    clients.push(back);
    back.send(announce(infoHash, victim));
    expect(await back.next(isReply)).toMatchObject({ incomplete: 3 });
    expect(await probe.hget(`peerfetch:swarm:${hex(infoHash)}`, hex(victim))).toMatch(new RegExp(`^${b.stats().instanceId} `));
  });

  it('lets every key expire, so an instance that dies alone leaves nothing behind', async () => {
    const b = await childTracker(['--peer-timeout-ms', '1500', '--interval', '15']);
    const infoHash = randomId();
    const onB = await open(b.url);
    onB.send(announce(infoHash, randomId(), { peerfetch: { bytesFromPeers: 1, bytesFromOrigin: 1, bytesUploaded: 0 } }));
    await onB.next(isReply);
    const keys = await probe.keys('peerfetch:*');
    expect(keys.length).toBeGreaterThanOrEqual(4);
    for (const key of keys) expect(await probe.pttl(key), key).toBeGreaterThan(0);
    b.proc.kill('SIGKILL');
    await b.exited;
    await waitFor('every key expired', async () => (await probe.dbsize()) === 0, 20_000);
  });
});

describe('Redis failures', () => {
  it('exits non-zero with a clear message when Redis cannot be reached at start', async () => {
    const port = await freePort();
    const proc = spawn(process.execPath, [entry, '--port', '0', '--redis', `redis://127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(proc);
    let err = '';
    proc.stderr!.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
    expect(code).toBe(1);
    expect(err).toContain(`cannot reach Redis at redis://127.0.0.1:${port}`);
    expect(err).toContain('--redis-optional');
  });

  it('with redisOptional runs alone while Redis is down, then joins with its peers', async () => {
    const port = await freePort();
    const t = await startTracker({ port: 0, redisUrl: `redis://127.0.0.1:${port}`, redisOptional: true, redisHeartbeatMs: HEARTBEAT_MS, redisInstanceTtlMs: INSTANCE_TTL_MS });
    trackers.push(t);
    const infoHash = randomId();
    const peer = randomId();
    const x = await open(t.url);
    x.send(announce(infoHash, peer));
    expect(await x.next(isReply)).toMatchObject({ incomplete: 1 });
    const late = await startRedis(port);
    const lateProbe = new Redis(late.url);
    try {
      await waitFor('the peer recorded in Redis', async () => (await lateProbe.hexists(`peerfetch:swarm:${hex(infoHash)}`, hex(peer))) === 1, 20_000);
      // The peer is in Redis a moment before the tracker has taken in the answer that makes it a member.
      await waitFor('the instance to join the cluster (its instance id is no longer "local")', () => t.stats().instanceId !== 'local');
    } finally {
      lateProbe.disconnect();
      await Promise.all(trackers.splice(0).map((tr) => tr.close()));
      await late.stop();
    }
  }, 40_000);

  it('heals after Redis restarts empty: live peers recorded again, departed ones not, error logs capped', async () => {
    const own = await startRedis();
    const entries: LogEntry[] = [];
    // A frozen clock: the log cap (20 lines per second per event) then holds for the whole outage.
    const frozen = Date.now();
    const t = await startTracker({ port: 0, redisUrl: own.url, redisHeartbeatMs: HEARTBEAT_MS, redisInstanceTtlMs: INSTANCE_TTL_MS, maxMessagesPerWindow: 10_000, now: () => frozen, logger: { log: (e) => entries.push(e) } });
    trackers.push(t);
    const infoHash = randomId();
    const [stays, leaves] = [randomId(), randomId()];
    const x = await open(t.url);
    x.send(announce(infoHash, stays));
    await x.next(isReply);
    const y = await open(t.url);
    y.send(announce(infoHash, leaves));
    await y.next(isReply);
    await own.stop();
    // During the outage: announces are answered from this instance's peers, each failed Redis
    // call is counted, and the log stays bounded.
    for (let i = 0; i < 60; i++) x.send(announce(infoHash, stays));
    for (let i = 0; i < 60; i++) expect(await x.next(isReply)).toMatchObject({ incomplete: 2 });
    await y.close();
    const restarted = await startRedis(own.port);
    const restartedProbe = new Redis(restarted.url);
    try {
      const swarmKey = `peerfetch:swarm:${hex(infoHash)}`;
      await waitFor('the live peer recorded again', async () => (await restartedProbe.hexists(swarmKey, hex(stays))) === 1, 20_000);
      expect(await restartedProbe.hexists(swarmKey, hex(leaves))).toBe(0);
      expect(await restartedProbe.zcard('peerfetch:instances')).toBe(1);
      for (const key of await restartedProbe.keys('peerfetch:*')) expect(await restartedProbe.pttl(key), key).toBeGreaterThan(0);
      const errorsPerEvent = new Map<string, number>();
      for (const e of entries) if (e.level === 'error') errorsPerEvent.set(e.event, (errorsPerEvent.get(e.event) ?? 0) + 1);
      expect(errorsPerEvent.get('cluster:error') ?? 0).toBeGreaterThan(0);
      for (const [event, count] of errorsPerEvent) expect(count, event).toBeLessThanOrEqual(20);
    } finally {
      restartedProbe.disconnect();
      await Promise.all(trackers.splice(0).map((tr) => tr.close()));
      await restarted.stop();
    }
  }, 60_000);
});
