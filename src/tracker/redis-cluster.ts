import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { AddressUsage, Cluster, ClusterAnnounce, ClusterAnnounceReply, ClusterHost, ClusterPeer, SharedAddressUse, SwarmTotals } from './cluster.js';
import type { ResolvedTrackerOptions } from './options.js';
import { binaryToHex, hexToBinary } from '../shared/hex.js';

/**
 * Scale-out on Redis. Layout (all keys under the configured prefix, ids in hex):
 *
 * - `swarm:<hash>`    HASH peer id → "<instance id> <locality prefix> <address key>": who is in the
 *                     swarm, where, and from which address (a peer id is only handed over to the
 *                     same address, see CLAIM_SCRIPT).
 * - `from:<hash>`     HASH "<address key> <instance id>" → that instance's peers from that client
 *                     address in the swarm (maxPeersPerSwarmPerIp holds over all instances; fields
 *                     of dead instances are never read and go with the key).
 * - `totals:<hash>`   HASH instance id → "peers complete incomplete fromPeers fromOrigin uploaded":
 *                     each instance's own sums, added up on read (so no shared counter can drift).
 * - `instance:<id>`   SET of "<hash>:<peer>" for the instance's peers, to clean up after it dies.
 * - `instances`       ZSET instance id → last heartbeat (ms): an instance silent for
 *                     redisInstanceTtlMs is dead; the first live instance to notice deletes its
 *                     peers, and until then readers already skip them.
 * - channel `relay:<id>`  frames (offers, answers) for peers connected to instance <id>.
 * - `conns:<id>`      HASH address key → open connections of that client address on instance <id>
 *                     (per-address connection limits hold over all instances); it lives and dies
 *                     with the instance, like `instance:<id>`.
 * - `budget:<address>` HASH tokens, at: the message budget of one client address, a token bucket
 *                     that every instance spends the messages it accepted from (SPEND_SCRIPT), so
 *                     per-address budgets hold over all instances.
 * - channel `limits`  notices of budgets under half full, for every instance (see SPEND_SCRIPT).
 *
 * Every key expires (keyTtlMs after its last write; a budget once it is full again),
 * so nothing outlives the instances that wrote it, even when all of them die at once. One announce
 * costs one pipelined round trip (claim the peer id, update totals, sample random peers with
 * HRANDFIELD, read totals), whatever the swarm size; per-address limits cost one more per second
 * per instance (shareAddresses), never one per message. Requires Redis >= 6.2 (HRANDFIELD).
 */

/**
 * Records a peer id for this instance unless a live instance holds it for another address (that
 * would hand one visitor's offers and answers to someone else). KEYS: swarm, instances, index.
 * ARGV: peer, instance id, value, heartbeat cutoff (ms), address key, index entry, ttl (ms).
 * Returns 1 when recorded, 0 when refused.
 */
const CLAIM_SCRIPT = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local holder, _, address = string.match(current, '^(%S+) (%S+) (%S+)$')
  if holder and holder ~= ARGV[2] and address ~= ARGV[5] then
    local seen = redis.call('ZSCORE', KEYS[2], holder)
    if seen and tonumber(seen) > tonumber(ARGV[4]) then return 0 end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('SADD', KEYS[3], ARGV[6])
redis.call('PEXPIRE', KEYS[3], ARGV[7])
return 1`;

/**
 * Spends messages from one address's shared budget and returns what is left (below 0: a debt) and
 * the level's version ("<tokens> <version>"), as a token bucket refilled on Redis's own clock, so
 * the instances' clocks never have to agree. The version grows with every spend, also across the
 * key's expiry (it starts from Redis's time in µs): an instance may read a share's answer and a
 * notice in either order, and keeps the newer level. A budget left under the notice level is
 * published on the limits channel ("<tokens> <version> <address>"), so that instances where the
 * address is quiet do not keep a full replica of it.
 * The key expires when the bucket is full again, which is what a missing key means.
 * KEYS: budget. ARGV: messages spent, refill (tokens per ms), capacity, notice level, limits
 * channel, address key.
 */
const SPEND_SCRIPT = `
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'version')
local capacity = tonumber(ARGV[3])
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
if now > at then tokens = math.min(capacity, tokens + (now - at) * tonumber(ARGV[2])) end
tokens = tokens - tonumber(ARGV[1])
local version = string.format('%.0f', math.max((tonumber(state[3]) or 0) + 1, now * 1000))
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now), 'version', version)
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((capacity - tokens) / tonumber(ARGV[2]))))
local level = tostring(tokens) .. ' ' .. version
if tokens < tonumber(ARGV[4]) then redis.call('PUBLISH', ARGV[5], level .. ' ' .. ARGV[6]) end
return level`;

/**
 * A share that leaves an address's budget under this fraction of its capacity tells every instance
 * (see SPEND_SCRIPT). Otherwise an instance where the address was quiet keeps the replica it read
 * last, and the address could spend it there after using up the budget elsewhere. Honest addresses
 * stay far above half of their budget (its default is ten busy browsers behind one NAT), so they
 * cost no notices.
 */
const NOTICE_BELOW_FRACTION = 0.5;

/**
 * Removes a peer id only if this instance holds it (another instance may have taken it over for
 * the same address since), and updates this instance's totals. KEYS: swarm, index, totals.
 * ARGV: peer, instance id, index entry, totals value ('' = none left), ttl (ms).
 */
const LEAVE_SCRIPT = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and string.sub(current, 1, #ARGV[2] + 1) == ARGV[2] .. ' ' then redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('SREM', KEYS[2], ARGV[3])
if ARGV[4] == '' then redis.call('HDEL', KEYS[3], ARGV[2])
else
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
return 1`;

/**
 * Deletes every record of an instance: the peer ids it still holds, its totals, its peers and
 * connections per address, its index and its heartbeat. KEYS: index, instances. ARGV: instance id, key prefix. Idempotent.
 */
const PURGE_SCRIPT = `
local entries = redis.call('SMEMBERS', KEYS[1])
local swarms = {}
for _, entry in ipairs(entries) do
  local hash, peer = string.match(entry, '^(%x+):(%x+)$')
  if hash then
    local key = ARGV[2] .. 'swarm:' .. hash
    local current = redis.call('HGET', key, peer)
    if current and string.sub(current, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
      redis.call('HDEL', key, peer)
      local address = string.match(current, '^%S+ %S+ (%S+)$')
      if address then redis.call('HDEL', ARGV[2] .. 'from:' .. hash, address .. ' ' .. ARGV[1]) end
    end
    swarms[hash] = true
  end
end
for hash in pairs(swarms) do redis.call('HDEL', ARGV[2] .. 'totals:' .. hash, ARGV[1]) end
redis.call('DEL', ARGV[2] .. 'conns:' .. ARGV[1])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return #entries`;

class RedisCluster implements Cluster {
  readonly instanceId = randomBytes(8).toString('hex');
  private readonly dead = new Set<string>();
  /** The other live instances, as of the last heartbeat: whose connections per address count here. */
  private others: string[] = [];
  /** Every key's lifetime after its last write (ms): a peer's lifetime plus the time to notice a dead instance. */
  private readonly keyTtlMs: number;
  private heartbeat: NodeJS.Timeout | undefined;
  private closed = false;
  private started = false;
  private rebuilding: Promise<void> | undefined;
  private rebuildAgain = false;

  constructor(
    private readonly redis: Redis,
    private readonly sub: Redis,
    private readonly options: ResolvedTrackerOptions,
    private readonly host: ClusterHost,
  ) {
    this.keyTtlMs = Math.ceil(options.peerTimeoutMs + options.redisInstanceTtlMs);
  }

  private key(...parts: string[]): string {
    return this.options.redisKeyPrefix + parts.join(':');
  }

  /** Redis is reachable now; while it is not, calls fail at once instead of queueing (the server then serves its own peers). */
  private ready(): void {
    if (this.redis.status !== 'ready') throw new Error(`Redis is not connected (${this.redis.status})`);
  }

  async start(): Promise<void> {
    const channel = this.key('relay', this.instanceId);
    const limits = Buffer.from(this.key('limits'));
    this.sub.on('messageBuffer', (from: Buffer, message: Buffer) => {
      if (limits.equals(from)) {
        // "<tokens> <version> <address key>", published by SPEND_SCRIPT.
        const [tokens, version, address] = message.toString().split(' ').map((part, i) => (i < 2 ? Number(part) : part));
        if (typeof tokens === 'number' && Number.isFinite(tokens) && typeof version === 'number' && Number.isFinite(version) && typeof address === 'string') {
          this.host.addressLevel(address, tokens, version);
        }
        return;
      }
      // "<40 hex info_hash><40 hex peer id><frame>"
      if (message.length < 80) return;
      const text = message.toString();
      const infoHash = hexToBinary(text.slice(0, 40));
      const toPeerId = hexToBinary(text.slice(40, 80));
      if (infoHash !== undefined && toPeerId !== undefined) this.host.deliver(infoHash, toPeerId, text.slice(80));
    });
    await this.sub.subscribe(channel, this.key('limits'));
    await this.beat();
    // A reconnect after an outage: writes that failed meanwhile (joins, leaves) are lost, and a
    // restarted Redis has lost everything. This instance writes its share again from its own peers.
    this.redis.on('ready', () => {
      if (this.started) this.rebuild();
    });
    this.started = true;
    // An instance that joins late (--redis-optional) already has peers to record.
    await this.rebuildNow();
    this.heartbeat = setInterval(() => {
      this.beat().catch((error: unknown) => this.options.logger.log({ level: 'error', event: 'cluster:heartbeat-failed', message: String(error) }));
    }, this.options.redisHeartbeatMs);
    this.heartbeat.unref();
  }

  /** Marks this instance alive, learns which instances are dead, and cleans up after them. */
  private async beat(): Promise<void> {
    this.ready();
    const now = this.options.now();
    const instances = this.key('instances');
    const results = await this.redis
      .pipeline()
      .zadd(instances, now, this.instanceId)
      .pexpire(instances, this.keyTtlMs)
      .pexpire(this.key('instance', this.instanceId), this.keyTtlMs)
      .pexpire(this.key('conns', this.instanceId), this.keyTtlMs)
      .exec();
    const added = results?.[0]?.[1];
    // Our heartbeat was gone: Redis restarted empty, or another instance took us for dead and
    // purged our peers (a long pause). Either way our peers are missing from the shared state.
    if (added === 1 && this.started) this.rebuild();
    const cutoff = now - this.options.redisInstanceTtlMs;
    const [stale, live] = await Promise.all([
      this.redis.zrangebyscore(instances, '-inf', cutoff),
      this.redis.zrangebyscore(instances, `(${cutoff}`, '+inf'),
    ]);
    // An instance that was only stalled (not dead) comes back by itself with its next heartbeat.
    for (const id of live) this.dead.delete(id);
    this.others = live.filter((id) => id !== this.instanceId);
    for (const id of stale) {
      if (id === this.instanceId) continue;
      this.dead.add(id);
      await this.purge(id);
      this.options.logger.log({ level: 'warn', event: 'cluster:instance-expired', instanceId: id });
    }
    // Bounded: ids of purged instances are no longer needed once their records are gone.
    if (this.dead.size > 1000) this.dead.clear();
  }

  /** Deletes every record of an instance (the peer ids it holds, its totals, its index). Idempotent. */
  private async purge(id: string): Promise<void> {
    await this.redis.eval(PURGE_SCRIPT, 2, this.key('instance', id), this.key('instances'), id, this.options.redisKeyPrefix);
  }

  /** Writes this instance's share of the shared state again (see start); one at a time, coalesced. */
  private rebuild(): void {
    if (this.rebuilding) {
      this.rebuildAgain = true;
      return;
    }
    this.rebuilding = this.rebuildNow()
      .catch((error: unknown) => this.options.logger.log({ level: 'error', event: 'cluster:rebuild-failed', message: String(error) }))
      .finally(() => {
        this.rebuilding = undefined;
        if (this.rebuildAgain && !this.closed) {
          this.rebuildAgain = false;
          this.rebuild();
        }
      });
  }

  private async rebuildNow(): Promise<void> {
    if (this.closed) return;
    this.ready();
    const now = this.options.now();
    const cutoff = now - this.options.redisInstanceTtlMs;
    const index = this.key('instance', this.instanceId);
    const instances = this.key('instances');
    const pipeline = this.redis.pipeline();
    // Removes what this instance wrote before (peers that left during the outage included), then
    // records the peers it has now.
    pipeline.eval(PURGE_SCRIPT, 2, index, instances, this.instanceId, this.options.redisKeyPrefix);
    pipeline.zadd(instances, now, this.instanceId);
    pipeline.pexpire(instances, this.keyTtlMs);
    const swarms = new Set<string>();
    /** This instance's peers per swarm and address: `from:<hash>` fields. */
    const from = new Map<string, Record<string, number>>();
    let peers = 0;
    for (const peer of this.host.localPeers()) {
      const hash = binaryToHex(peer.infoHash);
      const id = binaryToHex(peer.peerId);
      swarms.add(peer.infoHash);
      peers++;
      let counts = from.get(hash);
      if (!counts) from.set(hash, (counts = {}));
      const field = `${peer.address} ${this.instanceId}`;
      counts[field] = (counts[field] ?? 0) + 1;
      pipeline.eval(CLAIM_SCRIPT, 3, this.key('swarm', hash), instances, index, id, this.instanceId, `${this.instanceId} ${peer.prefix} ${peer.address}`, cutoff, peer.address, `${hash}:${id}`, this.keyTtlMs);
    }
    for (const infoHash of swarms) {
      const totals = this.key('totals', binaryToHex(infoHash));
      pipeline.hset(totals, this.instanceId, this.totalsValue(this.host.localTotals(infoHash)));
      pipeline.pexpire(totals, this.keyTtlMs);
    }
    for (const [hash, counts] of from) {
      pipeline.hset(this.key('from', hash), counts);
      pipeline.pexpire(this.key('from', hash), this.keyTtlMs);
    }
    const conns = this.key('conns', this.instanceId);
    const counts: Record<string, number> = {};
    let addresses = 0;
    for (const { address, connections } of this.host.localAddresses()) {
      if (connections <= 0) continue;
      counts[address] = connections;
      addresses++;
    }
    if (addresses > 0) {
      pipeline.hset(conns, counts);
      pipeline.pexpire(conns, this.keyTtlMs);
    }
    const results = (await pipeline.exec()) ?? [];
    for (const [error] of results) if (error) throw error;
    this.options.logger.log({ level: 'info', event: 'cluster:recorded', instanceId: this.instanceId, peers, swarms: swarms.size });
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

  async announce(request: ClusterAnnounce): Promise<ClusterAnnounceReply> {
    this.ready();
    const hash = binaryToHex(request.infoHash);
    const peer = binaryToHex(request.peerId);
    const totalsKey = this.key('totals', hash);
    const cutoff = this.options.now() - this.options.redisInstanceTtlMs;
    const pipeline = this.redis.pipeline();
    pipeline.eval(CLAIM_SCRIPT, 3, this.key('swarm', hash), this.key('instances'), this.key('instance', this.instanceId), peer, this.instanceId, `${this.instanceId} ${request.prefix} ${request.address}`, cutoff, request.address, `${hash}:${peer}`, this.keyTtlMs);
    pipeline.hset(totalsKey, this.instanceId, this.totalsValue(request.local));
    pipeline.pexpire(totalsKey, this.keyTtlMs);
    pipeline.hgetall(totalsKey);
    // Twice as many as wanted: some of the sample are this peer, local peers or dead instances' peers.
    if (request.wanted > 0) pipeline.hrandfield(this.key('swarm', hash), request.wanted * 2 + 1, 'WITHVALUES');
    // Written on every announce, not only on joins, so that the key lives as long as the swarm does.
    const from = this.key('from', hash);
    pipeline.hset(from, `${request.address} ${this.instanceId}`, request.addressPeers);
    pipeline.pexpire(from, this.keyTtlMs);
    const others = this.others.filter((id) => !this.dead.has(id));
    if (others.length > 0) pipeline.hmget(from, ...others.map((id) => `${request.address} ${id}`));
    const results = (await pipeline.exec()) ?? [];
    for (const [error] of results) if (error) throw error;
    const totals = this.sumTotals(results[3]?.[1] as Record<string, string>);
    let addressPeersElsewhere = 0;
    if (others.length > 0) {
      for (const count of (results[results.length - 1]?.[1] as Array<string | null> | undefined) ?? []) {
        const n = Number(count ?? 0);
        if (Number.isFinite(n) && n > 0) addressPeersElsewhere += n;
      }
    }
    if (results[0]?.[1] === 0) return { refused: true, complete: totals.complete, incomplete: totals.incomplete, candidates: [], addressPeersElsewhere };
    const candidates: ClusterPeer[] = [];
    const sample = request.wanted > 0 ? ((results[4]?.[1] as string[] | undefined) ?? []) : [];
    for (let i = 0; i + 1 < sample.length; i += 2) {
      const [instanceId, prefix] = (sample[i + 1] ?? '').split(' ');
      const peerId = hexToBinary(sample[i] ?? '');
      if (!instanceId || instanceId === this.instanceId || this.dead.has(instanceId) || sample[i] === peer || peerId === undefined) continue;
      candidates.push({ peerId, instanceId, prefix: prefix ?? '?' });
    }
    return { complete: totals.complete, incomplete: totals.incomplete, candidates, addressPeersElsewhere };
  }

  leave(infoHash: string, peerId: string, local: SwarmTotals, address: string, addressPeers: number): void {
    if (this.closed || this.redis.status !== 'ready') return; // the rebuild after the outage forgets it
    const hash = binaryToHex(infoHash);
    const peer = binaryToHex(peerId);
    const pipeline = this.redis.pipeline();
    pipeline.eval(LEAVE_SCRIPT, 3, this.key('swarm', hash), this.key('instance', this.instanceId), this.key('totals', hash), peer, this.instanceId, `${hash}:${peer}`, local.peers === 0 ? '' : this.totalsValue(local), this.keyTtlMs);
    const field = `${address} ${this.instanceId}`;
    if (addressPeers > 0) pipeline.hset(this.key('from', hash), field, addressPeers);
    else pipeline.hdel(this.key('from', hash), field);
    pipeline.exec().then(
      (results) => {
        const failed = results?.find(([error]) => error)?.[0];
        if (failed) this.options.logger.log({ level: 'error', event: 'cluster:error', message: String(failed) });
      },
      (error: unknown) => this.options.logger.log({ level: 'error', event: 'cluster:error', message: String(error) }),
    );
  }

  async locate(infoHash: string, peerId: string): Promise<string | undefined> {
    this.ready();
    const value = await this.redis.hget(this.key('swarm', binaryToHex(infoHash)), binaryToHex(peerId));
    const instanceId = value?.split(' ')[0];
    return instanceId && !this.dead.has(instanceId) ? instanceId : undefined;
  }

  relay(instanceId: string, infoHash: string, toPeerId: string, frame: string): void {
    if (this.redis.status !== 'ready') return;
    this.redis
      .publish(this.key('relay', instanceId), `${binaryToHex(infoHash)}${binaryToHex(toPeerId)}${frame}`)
      .catch((error: unknown) => this.options.logger.log({ level: 'error', event: 'cluster:error', message: String(error) }));
  }

  /**
   * Per-address limits over all instances, for a batch of addresses: spends this instance's
   * accepted messages from each address's shared budget (which also reads it), records its open
   * connections in `conns:<self>`, and reads the other live instances' connections (one HMGET per
   * instance). One pipelined round trip, whatever the batch size.
   */
  async shareAddresses(usage: AddressUsage[]): Promise<SharedAddressUse[]> {
    this.ready();
    if (usage.length === 0) return [];
    const capacity = this.options.maxMessagesPerWindowPerIp;
    const perMs = capacity / this.options.rateWindowMs;
    const pipeline = this.redis.pipeline();
    const limits = this.key('limits');
    for (const u of usage) pipeline.eval(SPEND_SCRIPT, 1, this.key('budget', u.address), u.spent, perMs, capacity, capacity * NOTICE_BELOW_FRACTION, limits, u.address);
    const conns = this.key('conns', this.instanceId);
    const open: Record<string, number> = {};
    const gone: string[] = [];
    for (const u of usage) {
      if (u.connections > 0) open[u.address] = u.connections;
      else gone.push(u.address);
    }
    if (Object.keys(open).length > 0) pipeline.hset(conns, open);
    if (gone.length > 0) pipeline.hdel(conns, ...gone);
    pipeline.pexpire(conns, this.keyTtlMs);
    const others = this.others.filter((id) => !this.dead.has(id));
    const addresses = usage.map((u) => u.address);
    for (const id of others) pipeline.hmget(this.key('conns', id), ...addresses);
    const results = (await pipeline.exec()) ?? [];
    for (const [error] of results) if (error) throw error;
    const firstRead = results.length - others.length;
    return usage.map((_, i) => {
      let otherConnections = 0;
      for (let j = firstRead; j < results.length; j++) {
        const n = Number((results[j]?.[1] as Array<string | null> | undefined)?.[i] ?? 0);
        if (Number.isFinite(n) && n > 0) otherConnections += n;
      }
      const [tokens = NaN, version = NaN] = String(results[i]?.[1]).split(' ').map(Number);
      return { otherConnections, tokens: Number.isFinite(tokens) ? tokens : capacity, version: Number.isFinite(version) ? version : 0 };
    });
  }

  async totals(infoHashes: string[]): Promise<SwarmTotals[]> {
    this.ready();
    const pipeline = this.redis.pipeline();
    for (const h of infoHashes) pipeline.hgetall(this.key('totals', binaryToHex(h)));
    const results = (await pipeline.exec()) ?? [];
    return results.map(([error, raw]) => (error ? this.sumTotals(undefined) : this.sumTotals(raw as Record<string, string>)));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    try {
      // Flush: this instance's peers leave the shared state now, not after redisInstanceTtlMs.
      if (this.redis.status === 'ready') await this.purge(this.instanceId);
    } finally {
      this.sub.disconnect();
      await this.redis.quit().catch(() => this.redis.disconnect());
    }
  }
}

/** Reconnect delay after a lost Redis connection (ms): doubles from 100 ms up to 2 s, so an outage is noticed over within 2 s of its end. */
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 2000;

/**
 * Connects to Redis and joins the cluster of tracker instances sharing it. Rejects, with the reason,
 * when Redis cannot be reached at start (no retries: the caller decides between exiting and running
 * alone). Later outages make announces fall back to this instance's peers at once, and once Redis
 * is back this instance writes its share of the shared state again.
 */
export async function connectRedisCluster(options: ResolvedTrackerOptions, host: ClusterHost): Promise<Cluster> {
  const url = options.redisUrl;
  if (!url) throw new RangeError('redisUrl is required for the Redis cluster');
  const connect = async (enableOfflineQueue: boolean): Promise<Redis> => {
    let connected = false;
    const client = new Redis(url, {
      lazyConnect: true,
      // Calls made while the connection is down fail at once instead of waiting in a queue.
      enableOfflineQueue,
      maxRetriesPerRequest: 1,
      connectTimeout: 5000,
      retryStrategy: (attempt) => (connected ? Math.min(RECONNECT_MIN_MS * 2 ** attempt, RECONNECT_MAX_MS) : null),
    });
    client.on('error', (error: Error) => options.logger.log({ level: 'error', event: 'cluster:redis-error', message: error.message }));
    await client.connect();
    connected = true;
    return client;
  };
  const redis = await connect(false);
  let sub: Redis;
  try {
    // The subscriber queues its SUBSCRIBE over a reconnect (ioredis subscribes again by itself).
    sub = await connect(true);
  } catch (error) {
    redis.disconnect();
    throw error;
  }
  const cluster = new RedisCluster(redis, sub, options, host);
  try {
    await cluster.start();
  } catch (error) {
    redis.disconnect();
    sub.disconnect();
    throw error;
  }
  options.logger.log({ level: 'info', event: 'cluster:joined', instanceId: cluster.instanceId });
  return cluster;
}
