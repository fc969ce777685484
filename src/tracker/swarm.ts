import type { PeerReport } from './tracker-messages.js';

/** What a swarm needs to know about a member; the server adds its connection. */
export interface SwarmMember {
  readonly peerId: string;
  /** Locality key of the member's IP (see localityPrefix). */
  readonly prefix: string;
  /** The member's address key (see addressKey): per-address limits count under it. */
  readonly address: string;
  complete: boolean;
  report: PeerReport | undefined;
  /** Slot in the swarm's member array (swap-remove keeps removal O(1)). */
  listIndex: number;
  /** Slot in the member array of its locality bucket. */
  bucketIndex: number;
}

/**
 * Offers sent to peers of the same locality prefix at most leave this many slots for random peers:
 * one random recipient per announce keeps the swarm graph connected across networks, so a group
 * of nearby peers never becomes an island that only the origin feeds.
 */
const RANDOM_SLOTS_WHEN_LOCAL = 1;

/**
 * One swarm (one page, one info_hash) on this instance: its members by peer id, the seed/leech
 * counts, the sums of the members' peerfetch counters, and random peer selection with a locality
 * preference, all O(1) or O(wanted) per operation, never O(swarm size).
 */
export class Swarm<M extends SwarmMember> {
  readonly members = new Map<string, M>();
  private readonly list: M[] = [];
  private readonly buckets = new Map<string, M[]>();
  /** Members per address key, for the per-address cap. */
  private readonly perAddress = new Map<string, number>();
  complete = 0;
  incomplete = 0;
  bytesFromPeers = 0;
  bytesFromOrigin = 0;
  bytesUploaded = 0;

  constructor(readonly infoHash: string) {}

  get size(): number {
    return this.list.length;
  }

  get(peerId: string): M | undefined {
    return this.members.get(peerId);
  }

  /** Members whose address key is `address`. */
  membersFrom(address: string): number {
    return this.perAddress.get(address) ?? 0;
  }

  add(member: M): void {
    this.members.set(member.peerId, member);
    member.listIndex = this.list.push(member) - 1;
    let bucket = this.buckets.get(member.prefix);
    if (!bucket) this.buckets.set(member.prefix, (bucket = []));
    member.bucketIndex = bucket.push(member) - 1;
    this.perAddress.set(member.address, this.membersFrom(member.address) + 1);
    if (member.complete) this.complete++;
    else this.incomplete++;
    this.addReport(member.report, 1);
  }

  remove(member: M): void {
    if (this.members.get(member.peerId) !== member) return;
    this.members.delete(member.peerId);
    swapRemove(this.list, member.listIndex, (m, i) => (m.listIndex = i));
    const bucket = this.buckets.get(member.prefix);
    if (bucket) {
      swapRemove(bucket, member.bucketIndex, (m, i) => (m.bucketIndex = i));
      if (bucket.length === 0) this.buckets.delete(member.prefix);
    }
    const fromAddress = this.membersFrom(member.address) - 1;
    if (fromAddress > 0) this.perAddress.set(member.address, fromAddress);
    else this.perAddress.delete(member.address);
    if (member.complete) this.complete--;
    else this.incomplete--;
    this.addReport(member.report, -1);
  }

  setComplete(member: M, complete: boolean): void {
    if (member.complete === complete) return;
    member.complete = complete;
    if (complete) {
      this.complete++;
      this.incomplete--;
    } else {
      this.complete--;
      this.incomplete++;
    }
  }

  /** Replaces a member's latest counters (the aggregate holds the latest report of each live peer). */
  setReport(member: M, report: PeerReport): void {
    this.addReport(member.report, -1);
    member.report = report;
    this.addReport(report, 1);
  }

  private addReport(report: PeerReport | undefined, sign: 1 | -1): void {
    if (!report) return;
    this.bytesFromPeers += sign * report.bytesFromPeers;
    this.bytesFromOrigin += sign * report.bytesFromOrigin;
    this.bytesUploaded += sign * report.bytesUploaded;
  }

  /**
   * Up to `count` distinct members other than `self`, chosen at random, members with the same
   * locality prefix as `self` first (all but one slot, see RANDOM_SLOTS_WHEN_LOCAL).
   */
  select(count: number, self: M | undefined, prefix: string): M[] {
    const chosen: M[] = [];
    if (count <= 0 || this.list.length === 0) return chosen;
    const taken = new Set<M>();
    if (self) taken.add(self);
    const bucket = this.buckets.get(prefix);
    if (bucket && bucket.length > 0 && bucket.length < this.list.length) {
      const localWanted = count > RANDOM_SLOTS_WHEN_LOCAL ? count - RANDOM_SLOTS_WHEN_LOCAL : count;
      sample(bucket, localWanted, taken, chosen);
    }
    sample(this.list, count - chosen.length, taken, chosen);
    return chosen;
  }
}

function swapRemove<T>(array: T[], index: number, moved: (item: T, index: number) => void): void {
  const last = array.pop();
  if (last === undefined || index >= array.length) return;
  array[index] = last;
  moved(last, index);
}

/** Adds up to `wanted` random items of `pool` that are not in `taken`; O(wanted) expected, bounded. */
function sample<T>(pool: T[], wanted: number, taken: Set<T>, out: T[]): void {
  if (wanted <= 0) return;
  const n = pool.length;
  // Small pools (or pools nearly all wanted): one pass from a random offset.
  if (n <= (wanted + taken.size) * 2) {
    const start = Math.floor(Math.random() * n);
    for (let k = 0; k < n && wanted > 0; k++) {
      const item = pool[(start + k) % n] as T;
      if (taken.has(item)) continue;
      taken.add(item);
      out.push(item);
      wanted--;
    }
    return;
  }
  // Large pools: random probes; at most half of the pool is taken, so each probe hits a free item
  // with probability >= 1/2 and the probe budget below is practically never exhausted.
  let budget = wanted * 8;
  while (wanted > 0 && budget-- > 0) {
    const item = pool[Math.floor(Math.random() * n)] as T;
    if (taken.has(item)) continue;
    taken.add(item);
    out.push(item);
    wanted--;
  }
}
