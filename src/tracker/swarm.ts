import type { PeerReport } from './tracker-messages.js';

/** What a swarm needs to know about a member; the server adds its connection. */
export interface SwarmMember {
  readonly peerId: string;
  /** Locality key of the member's IP (see localityPrefix). */
  readonly prefix: string;
  /** The member's address key (see addressKey): per-address limits count under it. */
  readonly address: string;
  complete: boolean;
  /** The member's counters as the swarm's figures count them: its reports, bounded (see setReport). */
  report: PeerReport | undefined;
  /** The member's last report as sent, and when it came (ms): growth is measured from it. */
  lastReport?: { raw: PeerReport; at: number };
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

/** How the swarm bounds what its members report (see Swarm.setReport and Swarm.figures). */
export interface ReportBounds {
  /** Most a counter may grow per second between two reports of a member, in bytes. */
  maxBytesPerSec: number;
  /** Growth allowed on top of that, in bytes (what a page fetched before its first announce). */
  burstBytes: number;
}

const COUNTERS = ['bytesFromPeers', 'bytesFromOrigin', 'bytesUploaded'] as const;

/** How long the share-capped figures of a swarm are reused before they are computed again (ms). */
const FIGURES_TTL_MS = 1000;

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
  /** Sums of the members' bounded counters per address key, for the share cap. */
  private readonly reportsPerAddress = new Map<string, PeerReport>();
  private figuresCache: { at: number; figures: PeerReport } | undefined;
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
    this.addReport(member, 1);
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
    this.addReport(member, -1);
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

  /**
   * Takes a member's latest counters. They are cumulative, and the tracker cannot check them, so
   * each counter may only grow by what a real page could have moved since the member's previous
   * report (bounds.maxBytesPerSec for the time between, plus bounds.burstBytes); a counter that
   * went down starts over from its new value, adding nothing.
   */
  setReport(member: M, report: PeerReport, now: number, joinedAt: number, bounds: ReportBounds): void {
    const previous = member.lastReport;
    const elapsedSec = Math.max(0, now - (previous?.at ?? joinedAt)) / 1000;
    const allowance = bounds.maxBytesPerSec * elapsedSec + bounds.burstBytes;
    const accepted: PeerReport = { bytesFromPeers: 0, bytesFromOrigin: 0, bytesUploaded: 0 };
    for (const counter of COUNTERS) {
      const growth = report[counter] - (previous?.raw[counter] ?? 0);
      accepted[counter] = (member.report?.[counter] ?? 0) + Math.min(Math.max(growth, 0), allowance);
    }
    member.lastReport = { raw: report, at: now };
    this.addReport(member, -1);
    member.report = accepted;
    this.addReport(member, 1);
  }

  private addReport(member: M, sign: 1 | -1): void {
    const report = member.report;
    if (!report) return;
    this.bytesFromPeers += sign * report.bytesFromPeers;
    this.bytesFromOrigin += sign * report.bytesFromOrigin;
    this.bytesUploaded += sign * report.bytesUploaded;
    let sums = this.reportsPerAddress.get(member.address);
    if (!sums) this.reportsPerAddress.set(member.address, (sums = { bytesFromPeers: 0, bytesFromOrigin: 0, bytesUploaded: 0 }));
    for (const counter of COUNTERS) sums[counter] += sign * report[counter];
    if (this.membersFrom(member.address) === 0 && sign < 0) this.reportsPerAddress.delete(member.address);
    this.figuresCache = undefined;
  }

  /**
   * The swarm's byte figures with no address making up more than `maxShare` of any of them: the
   * largest contributions are lowered to a common cap c such that c = maxShare × (the figure with
   * the cap applied). Applies once the swarm has more than 1 / maxShare addresses (before that, an
   * honest leading viewer would be cut). Reused for FIGURES_TTL_MS, so it costs one sort per swarm
   * per second at most, whatever the announce rate.
   */
  figures(now: number, maxShare: number): PeerReport {
    const cached = this.figuresCache;
    if (cached && now - cached.at < FIGURES_TTL_MS) return cached.figures;
    const figures: PeerReport = { bytesFromPeers: this.bytesFromPeers, bytesFromOrigin: this.bytesFromOrigin, bytesUploaded: this.bytesUploaded };
    if (this.reportsPerAddress.size * maxShare > 1) {
      for (const counter of COUNTERS) figures[counter] = shareCappedSum([...this.reportsPerAddress.values()].map((r) => r[counter]), maxShare);
    }
    this.figuresCache = { at: now, figures };
    return figures;
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

/**
 * Sum of `values` with the largest lowered to a cap c so that none exceeds `share` of the result:
 * with the k largest capped, c = share × (k × c + rest), so c = share × rest / (1 − share × k); the
 * right k is the first whose c is no larger than the k-th value. Needs values.length × share > 1.
 */
export function shareCappedSum(values: number[], share: number): number {
  const sorted = [...values].sort((a, b) => b - a);
  let rest = sorted.reduce((sum, v) => sum + v, 0);
  for (let k = 0; k < sorted.length && share * k < 1; k++) {
    // The k largest at the cap, the others as they are (k = 0: nothing capped, cap = share × total).
    const cap = (share * rest) / (1 - share * k);
    if (sorted[k]! <= cap) return k * cap + rest;
    rest -= sorted[k]!;
  }
  // Not reached while values.length × share > 1 (the smallest value always fits under the cap).
  return sorted.length * (sorted[sorted.length - 1] ?? 0);
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
