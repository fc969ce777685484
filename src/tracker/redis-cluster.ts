import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Cluster, ClusterAnnounce, ClusterDeliver, ClusterPeer, SwarmTotals } from './cluster.js';
import type { ResolvedTrackerOptions } from './options.js';
import { fromHex, toHex } from './tracker-messages.js';

/**
 * Scale-out on Redis. Layout (all keys under the configured prefix, ids in hex):
 *
 * - `swarm:<hash>`    HASH peer id → "<instance id> <locality prefix>": who is in the swarm, and where.
 * - `totals:<hash>`   HASH instance id → "peers complete incomplete fromPeers fromOrigin uploaded":
 *                     each instance's own sums, added up on read (so no shared counter can drift).
 * - `instance:<id>`   SET of "<hash>:<peer>" for the instance's peers, to clean up after it dies.
 * - `instances`       ZSET instance id → last heartbeat (ms): an instance silent for
 *                     redisInstanceTtlMs is dead; the first live instance to notice deletes its
 *                     peers, and until then readers already skip them.
 * - channel `relay:<id>`  frames (offers, answers) for peers connected to instance <id>.
 *
 * One announce costs one pipelined round trip (record the peer, update totals, sample random peers
 * with HRANDFIELD, read totals), whatever the swarm size. Requires Redis >= 6.2 (HRANDFIELD).
 */
class RedisCluster implements Cluster {
  readonly instanceId = randomBytes(8).toString('hex');
  private readonly dead = new Set<string>();
  private heartbeat: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly redis: Redis,
    private readonly sub: Redis,
    private readonly options: ResolvedTrackerOptions,
  ) {}

  private key(...parts: string[]): string {
    return this.options.redisKeyPrefix + parts.join(':');
  }

  async start(deliver: ClusterDeliver): Promise<void> {
    const channel = this.key('relay', this.instanceId);
    this.sub.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
      // "<40 hex info_hash><40 hex peer id><frame>"
      if (message.length < 80) return;
      const text = message.toString();
      deliver(fromHex(text.slice(0, 40)), fromHex(text.slice(40, 80)), text.slice(80));
    });
    await this.sub.subscribe(channel);
    await this.beat();
    this.heartbeat = setInterval(() => {
      this.beat().catch((error: unknown) => this.options.logger.log({ level: 'error', event: 'cluster:heartbeat-failed', message: String(error) }));
    }, this.options.redisHeartbeatMs);
    this.heartbeat.unref();
  }

  /** Marks this instance alive, learns which instances are dead, and cleans up after them. */
  private async beat(): Promise<void> {
    const now = this.options.now();
    const instances = this.key('instances');
    await this.redis.zadd(instances, now, this.instanceId);
    const cutoff = now - this.options.redisInstanceTtlMs;
    const [stale, live] = await Promise.all([
      this.redis.zrangebyscore(instances, '-inf', cutoff),
      this.redis.zrangebyscore(instances, `(${cutoff}`, '+inf'),
    ]);
    // An instance that was only stalled (not dead) comes back by itself with its next heartbeat.
    for (const id of live) this.dead.delete(id);
    for (const id of stale) {
      if (id === this.instanceId) continue;
      this.dead.add(id);
      await this.purge(id);
      this.options.logger.log({ level: 'warn', event: 'cluster:instance-expired', instanceId: id });
    }
    // Bounded: ids of purged instances are no longer needed once their records are gone.
    if (this.dead.size > 1000) this.dead.clear();
  }

  /** Deletes every record of an instance (its peers, its totals, its index). Idempotent. */
  private async purge(id: string): Promise<void> {
    const index = this.key('instance', id);
    const entries = await this.redis.smembers(index);
    const pipeline = this.redis.pipeline();
    const swarms = new Set<string>();
    for (const entry of entries) {
      const [hash, peer] = entry.split(':');
      if (!hash || !peer) continue;
      swarms.add(hash);
      pipeline.hdel(this.key('swarm', hash), peer);
    }
    for (const hash of swarms) pipeline.hdel(this.key('totals', hash), id);
    pipeline.del(index);
    pipeline.zrem(this.key('instances'), id);
    await pipeline.exec();
  }

  private totalsValue(t: SwarmTotals): string {
    return `${t.peers} ${t.complete} ${t.incomplete} ${t.bytesFromPeers} ${t.bytesFromOrigin} ${t.bytesUploaded}`;
  }

  private sumTotals(raw: Record<string, string> | null | undefined): SwarmTotals {
    const sum: SwarmTotals = { peers: 0, complete: 0, incomplete: 0, bytesFromPeers: 0, bytesFromOrigin: 0, bytesUploaded: 0 };
    if (!raw) return sum;
    for (const [instance, value] of Object.entries(raw)) {
      if (this.dead.has(instance)) continue;
      const n = value.split(' ').map(Number);
      if (n.length !== 6 || n.some((x) => !Number.isFinite(x))) continue;
      sum.peers += n[0]!;
      sum.complete += n[1]!;
      sum.incomplete += n[2]!;
      sum.bytesFromPeers += n[3]!;
      sum.bytesFromOrigin += n[4]!;
      sum.bytesUploaded += n[5]!;
    }
    return sum;
  }

  async announce(request: ClusterAnnounce): Promise<{ complete: number; incomplete: number; candidates: ClusterPeer[] }> {
    const hash = toHex(request.infoHash);
    const peer = toHex(request.peerId);
    const pipeline = this.redis.pipeline();
    pipeline.hset(this.key('swarm', hash), peer, `${this.instanceId} ${request.prefix}`);
    pipeline.sadd(this.key('instance', this.instanceId), `${hash}:${peer}`);
    pipeline.hset(this.key('totals', hash), this.instanceId, this.totalsValue(request.local));
    pipeline.hgetall(this.key('totals', hash));
    // Twice as many as wanted: some of the sample are this peer, local peers or dead instances' peers.
    if (request.wanted > 0) pipeline.hrandfield(this.key('swarm', hash), request.wanted * 2 + 1, 'WITHVALUES');
    const results = (await pipeline.exec()) ?? [];
    for (const [error] of results) if (error) throw error;
    const totals = this.sumTotals(results[3]?.[1] as Record<string, string>);
    const candidates: ClusterPeer[] = [];
    const sample = (results[4]?.[1] as string[] | undefined) ?? [];
    for (let i = 0; i + 1 < sample.length; i += 2) {
      const [instanceId, prefix] = (sample[i + 1] ?? '').split(' ');
      if (!instanceId || instanceId === this.instanceId || this.dead.has(instanceId) || sample[i] === peer) continue;
      candidates.push({ peerId: fromHex(sample[i]!), instanceId, prefix: prefix ?? '?' });
    }
    return { complete: totals.complete, incomplete: totals.incomplete, candidates };
  }

  leave(infoHash: string, peerId: string, local: SwarmTotals): void {
    if (this.closed) return;
    const hash = toHex(infoHash);
    const peer = toHex(peerId);
    const pipeline = this.redis.pipeline();
    pipeline.hdel(this.key('swarm', hash), peer);
    pipeline.srem(this.key('instance', this.instanceId), `${hash}:${peer}`);
    if (local.peers === 0) pipeline.hdel(this.key('totals', hash), this.instanceId);
    else pipeline.hset(this.key('totals', hash), this.instanceId, this.totalsValue(local));
    pipeline.exec().catch((error: unknown) => this.options.logger.log({ level: 'error', event: 'cluster:error', message: String(error) }));
  }

  async locate(infoHash: string, peerId: string): Promise<string | undefined> {
    const value = await this.redis.hget(this.key('swarm', toHex(infoHash)), toHex(peerId));
    const instanceId = value?.split(' ')[0];
    return instanceId && !this.dead.has(instanceId) ? instanceId : undefined;
  }

  relay(instanceId: string, infoHash: string, toPeerId: string, frame: string): void {
    this.redis
      .publish(this.key('relay', instanceId), `${toHex(infoHash)}${toHex(toPeerId)}${frame}`)
      .catch((error: unknown) => this.options.logger.log({ level: 'error', event: 'cluster:error', message: String(error) }));
  }

  async totals(infoHashes: string[]): Promise<SwarmTotals[]> {
    const pipeline = this.redis.pipeline();
    for (const h of infoHashes) pipeline.hgetall(this.key('totals', toHex(h)));
    const results = (await pipeline.exec()) ?? [];
    return results.map(([error, raw]) => (error ? this.sumTotals(undefined) : this.sumTotals(raw as Record<string, string>)));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    try {
      // Flush: this instance's peers leave the shared state now, not after redisInstanceTtlMs.
      await this.purge(this.instanceId);
    } finally {
      this.sub.disconnect();
      await this.redis.quit().catch(() => this.redis.disconnect());
    }
  }
}

/**
 * Connects to Redis and joins the cluster of tracker instances sharing it. Fails fast (rejects) if
 * Redis cannot be reached at start; later outages make announces fall back to this instance's peers.
 */
export async function connectRedisCluster(options: ResolvedTrackerOptions, deliver: ClusterDeliver): Promise<Cluster> {
  const url = options.redisUrl;
  if (!url) throw new RangeError('redisUrl is required for the Redis cluster');
  const connect = async (): Promise<Redis> => {
    // maxRetriesPerRequest bounds how long one announce can wait on a Redis outage (then it falls back).
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: true });
    client.on('error', (error: Error) => options.logger.log({ level: 'error', event: 'cluster:redis-error', message: error.message }));
    await client.connect();
    return client;
  };
  const redis = await connect();
  let sub: Redis;
  try {
    sub = await connect();
  } catch (error) {
    redis.disconnect();
    throw error;
  }
  const cluster = new RedisCluster(redis, sub, options);
  try {
    await cluster.start(deliver);
  } catch (error) {
    redis.disconnect();
    sub.disconnect();
    throw error;
  }
  options.logger.log({ level: 'info', event: 'cluster:joined', instanceId: cluster.instanceId });
  return cluster;
}
