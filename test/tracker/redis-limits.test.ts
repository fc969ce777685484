// Per-address limits over tracker instances that share a real redis-server: each instance is a
// tracker process of its own (the load balancer's view: one client address reaching several).
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bundleTrackerCli } from './bundle.js';
import { announce, isFailure, isReply, randomId, TestClient, waitFor } from './helpers.js';
import { startRedis, type RunningRedis } from './redis-server.js';

const CONNECTIONS_PER_IP = 4;
const MESSAGES_PER_IP = 20;
const PEERS_PER_SWARM_PER_IP = 3;
/**
 * The rate window, in ms: one hour, so that an address's budget refills by a third of a message
 * per minute and the counts below are exact however slowly a loaded machine runs the test.
 */
const RATE_WINDOW_MS = 3_600_000;

let entry: string;
const clients: TestClient[] = [];
const children: ChildProcess[] = [];
const redises: RunningRedis[] = [];
const probes: Redis[] = [];

beforeAll(async () => {
  entry = await bundleTrackerCli();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const p of probes.splice(0)) p.disconnect();
  await Promise.all(redises.splice(0).map((r) => r.stop()));
});

afterAll(() => rmSync(entry, { force: true }));

interface TrackerProcess {
  url: string;
  httpUrl: string;
  /** Everything the process logged on stderr so far (JSON lines). */
  log(): string;
  instanceId(): Promise<string>;
  metric(name: string): Promise<number | undefined>;
}

async function trackerProcess(redisUrl: string): Promise<TrackerProcess> {
  const proc = spawn(process.execPath, [
    entry, '--port', '0', '--redis', redisUrl, '--redis-heartbeat-ms', '250', '--redis-instance-ttl-ms', '3000', '--trust-proxy',
    '--max-connections-per-ip', String(CONNECTIONS_PER_IP), '--max-messages-per-window-per-ip', String(MESSAGES_PER_IP),
    '--max-messages-per-window', '1000', '--rate-window-ms', String(RATE_WINDOW_MS), '--max-peers-per-swarm-per-ip', String(PEERS_PER_SWARM_PER_IP),
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  const m = await waitFor(`tracker process (stderr: ${err.slice(-300)})`, () => /listening on (ws:\/\/[\d.:]+)/.exec(out), 15_000);
  const url = m[1]!;
  const httpUrl = url.replace('ws://', 'http://');
  return {
    url,
    httpUrl,
    log: () => err,
    instanceId: async () => ((await (await fetch(`${httpUrl}/stats.json`)).json()) as { instanceId: string }).instanceId,
    async metric(name) {
      const text = await (await fetch(`${httpUrl}/metrics`)).text();
      const line = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
      return line ? Number(line[1]) : undefined;
    },
  };
}

async function redisWithProbe(): Promise<{ redis: RunningRedis; probe: Redis }> {
  const redis = await startRedis();
  redises.push(redis);
  const probe = new Redis(redis.url);
  probes.push(probe);
  return { redis, probe };
}

/** Two tracker processes on one Redis, each seeing the other as a live instance. */
async function twoInstances(probe: Redis, redisUrl: string): Promise<[TrackerProcess, TrackerProcess]> {
  const [a, b] = await Promise.all([trackerProcess(redisUrl), trackerProcess(redisUrl)]);
  const [idA, idB] = await Promise.all([a.instanceId(), b.instanceId()]);
  const heartbeat = async (id: string): Promise<number> => Number(await probe.zscore('peerfetch:instances', id));
  const [firstA, firstB] = await waitFor('both instances alive in Redis', async () => {
    const scores = await Promise.all([heartbeat(idA), heartbeat(idB)]);
    return scores.every((s) => s > 0) ? scores : undefined;
  });
  // An instance learns the live instances at its heartbeat: one well after the other's first has seen it.
  await waitFor('each instance beating after the other joined', async () => (await heartbeat(idA)) > firstB + 100 && (await heartbeat(idB)) > firstA + 100);
  return [a, b];
}

async function from(url: string, ip: string): Promise<TestClient> {
  const c = await TestClient.open(url, { headers: { 'X-Forwarded-For': ip } });
  clients.push(c);
  return c;
}

/** Sends one scrape and resolves true when it is answered, false when the tracker refuses it. */
async function scrape(c: TestClient): Promise<boolean> {
  const infoHash = randomId();
  c.send({ action: 'scrape', info_hash: infoHash });
  const frame = await c.next((f) => isFailure(f) || (f.action === 'scrape' && f.files?.[infoHash] !== undefined));
  return !isFailure(frame);
}

/** Waits until `instance` has written `ip`'s connections on it to Redis (it shared the address). */
async function shared(probe: Redis, instance: TrackerProcess, ip: string, connections: number): Promise<void> {
  const key = `peerfetch:conns:${await instance.instanceId()}`;
  let seen: string | null = null;
  await waitFor(`${ip} shared by ${key} with ${connections} connections (last seen: ${seen})`, async () => (seen = await probe.hget(key, ip)) === String(connections));
}

/** Waits until an address's shared message budget in Redis is under `tokens` (a missing key is a full budget). */
async function budgetBelow(probe: Redis, ip: string, tokens: number): Promise<void> {
  let level: string | null = null;
  await waitFor(`the budget of ${ip} under ${tokens} in Redis (last seen ${level})`, async () => {
    level = await probe.hget(`peerfetch:budget:${ip}`, 'tokens');
    return level !== null && Number(level) < tokens;
  });
}

describe('per-address limits over Redis instances', () => {
  it('closes and refuses an address over its connection limit spread over two instances, and serves the honest ones', async () => {
    const { redis, probe } = await redisWithProbe();
    const [a, b] = await twoInstances(probe, redis.url);
    const attacker = '198.51.100.7';
    const honest = ['198.51.100.20', '198.51.100.21'];
    const honestClients: TestClient[] = [];
    for (const ip of honest) honestClients.push(await from(a.url, ip), await from(b.url, ip));

    // Three connections on A, each within A's own limit, then three on B: six of an address that may hold four.
    const onA = [await from(a.url, attacker), await from(a.url, attacker), await from(a.url, attacker)];
    await shared(probe, a, attacker, 3);
    const onB = [await from(b.url, attacker), await from(b.url, attacker), await from(b.url, attacker)];
    const all = [...onA, ...onB];
    const closedOnes = await waitFor('two of the six closed', () => {
      const closed = all.filter((c) => c.closeInfo);
      return closed.length >= 2 ? closed : undefined;
    });
    for (const c of closedOnes) expect(c.closeInfo).toEqual({ code: 1013, reason: 'too many connections from this address' });
    // B, which saw the surplus, closed its newest two; A's three are left alone.
    expect(onB.filter((c) => c.closeInfo)).toHaveLength(2);
    expect(onA.filter((c) => c.closeInfo)).toHaveLength(0);

    // A fifth connection, on A (where the address holds three of the four), is refused or closed,
    // once B has shared the one connection it kept.
    await shared(probe, b, attacker, 1);
    const fifth = await from(a.url, attacker);
    expect(await fifth.closed).toEqual({ code: 1013, reason: 'too many connections from this address' });

    // The four that stay, and every honest connection, are served.
    for (const c of [...all.filter((x) => !x.closeInfo), ...honestClients]) expect(await scrape(c)).toBe(true);
    expect(all.filter((c) => c.closeInfo)).toHaveLength(2);
    for (const c of honestClients) expect(c.closeInfo).toBeUndefined();
  }, 60_000);

  it('spends one message budget per address over both instances, and tells an instance where the address is quiet', async () => {
    const { redis, probe } = await redisWithProbe();
    const [a, b] = await twoInstances(probe, redis.url);
    const attacker = '198.51.100.9';
    const onA = await from(a.url, attacker);
    const onB = await from(b.url, attacker);
    await shared(probe, a, attacker, 1);
    await shared(probe, b, attacker, 1);

    // The whole budget on A...
    for (let i = 0; i < MESSAGES_PER_IP; i++) expect(await scrape(onA), `message ${i + 1} on A`).toBe(true);
    await budgetBelow(probe, attacker, 0.5);
    // ...leaves nothing on B, where the address was quiet and B's own replica was still full. The
    // notice reaches B before this message unless B's event loop takes both in one turn, which
    // lets at most this one message through.
    let acceptedOnB = 0;
    while (await scrape(onB)) acceptedOnB++;
    expect(acceptedOnB).toBeLessThanOrEqual(1);

    // An honest address on both instances is served throughout.
    const honestA = await from(a.url, '198.51.100.30');
    const honestB = await from(b.url, '198.51.100.30');
    for (let i = 0; i < 5; i++) {
      expect(await scrape(honestA)).toBe(true);
      expect(await scrape(honestB)).toBe(true);
    }
  }, 60_000);

  it('a share that finds the budget spent elsewhere refuses the rest on the other instance', async () => {
    const { redis, probe } = await redisWithProbe();
    const [a, b] = await twoInstances(probe, redis.url);
    const attacker = '198.51.100.10';
    const onA = await from(a.url, attacker);
    for (let i = 0; i < 15; i++) expect(await scrape(onA)).toBe(true);
    await budgetBelow(probe, attacker, 5.5);
    // B meets the address only now: its first share reads the shared budget, five left.
    const onB = await from(b.url, attacker);
    await shared(probe, b, attacker, 1);
    let acceptedOnB = 0;
    while (await scrape(onB)) acceptedOnB++;
    // Five, or six when the first message overtakes the answer to B's share (see above).
    expect(acceptedOnB).toBeGreaterThanOrEqual(5);
    expect(acceptedOnB).toBeLessThanOrEqual(6);
  }, 60_000);

  it('caps the peers of one address in a swarm over both instances', async () => {
    const { redis, probe } = await redisWithProbe();
    const [a, b] = await twoInstances(probe, redis.url);
    const infoHash = randomId();
    const home = '198.51.100.50';
    const onA = [await from(a.url, home), await from(a.url, home)];
    for (const c of onA) {
      c.send(announce(infoHash, randomId()));
      await c.next(isReply);
    }
    const onB = [await from(b.url, home), await from(b.url, home)];
    onB[0]!.send(announce(infoHash, randomId()));
    expect(await onB[0]!.next(isReply)).toMatchObject({ incomplete: PEERS_PER_SWARM_PER_IP });
    // A fourth peer of the address, its second on B: over the cap counted over both instances.
    onB[1]!.send(announce(infoHash, randomId()));
    expect((await onB[1]!.next())['failure reason']).toBe('too many peers from this address in this swarm');
    // A neighbour still joins, and the refused peer is in no instance's count.
    const neighbour = await from(b.url, '198.51.100.51');
    neighbour.send(announce(infoHash, randomId()));
    expect(await neighbour.next(isReply)).toMatchObject({ incomplete: PEERS_PER_SWARM_PER_IP + 1 });
  }, 60_000);

  it('keeps serving with each instance\'s own limits when Redis goes away, and says so', async () => {
    const { redis, probe } = await redisWithProbe();
    const [a, b] = await twoInstances(probe, redis.url);
    const honestA = await from(a.url, '198.51.100.40');
    const honestB = await from(b.url, '198.51.100.40');
    expect(await scrape(honestA)).toBe(true);
    expect(await scrape(honestB)).toBe(true);
    await waitFor('A shares its limits', async () => (await a.metric('peerfetch_tracker_shared_limits')) === 1);
    await redis.stop();

    // Both instances keep answering announces.
    const infoHash = randomId();
    for (const c of [honestA, honestB]) {
      c.send(announce(infoHash, randomId()));
      expect(await c.next(isReply)).toMatchObject({ action: 'announce' });
    }
    await waitFor('A reports local limits', async () => (await a.metric('peerfetch_tracker_shared_limits')) === 0);
    await waitFor('B reports local limits', async () => (await b.metric('peerfetch_tracker_shared_limits')) === 0);
    for (const t of [a, b]) expect(t.log()).toContain('"event":"limits:local-only"');

    // A's own budget still holds: an address gets MESSAGES_PER_IP messages there, not more.
    const flooder = await from(a.url, '198.51.100.41');
    let accepted = 0;
    while (await scrape(flooder)) accepted++;
    expect(accepted).toBe(MESSAGES_PER_IP);
    // And the honest address is still served.
    expect(await scrape(honestA)).toBe(true);
    expect(await scrape(honestB)).toBe(true);
  }, 60_000);
});
