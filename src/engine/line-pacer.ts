import { BaseDelay } from './base-delay.js';

/**
 * Queueing delay (ms) on this page's uplink that uploads are held to. A home router's queue
 * (400 ms in the benchmarks' homes) that the transport fills overflows: Chromium's SCTP then
 * resends the overflow and pauses for its retransmission timer, so a 1 Mbit/s line carried
 * 76-80 kB/s of payload unpaced and 115 kB/s paced just under it (bench/line-probe.mjs).
 */
const TARGET_QUEUEING_MS = 50;
/** A receiver's report counts this long (ms): the line is judged by the peers being sent to now. */
const REPORT_FRESH_MS = 500;
/**
 * Least time (ms) between two cuts: a cut shows in the delays only after what was queued before
 * it has drained and a report crossed back, so the delays right after it are not its result.
 */
const CUT_INTERVAL_MS = 400;
/** Share of the delivered rate a cut sets the rate to at most: under the line, so its queue drains. */
const CUT_TO_DELIVERED = 0.9;
/**
 * Time (ms) a cut gives the line's queue to drain: the rate is cut further by the queue's share of
 * it. At 0.9 of the line a 300 ms queue took 3 s to drain, the page's own requests waiting behind it
 * all the while (logged, mixed swarm: 200-300 ms of queue held for seconds at 98 kB/s on a 1 Mbit/s
 * line, and the upload backoff cut to 55 kB/s for it).
 */
const DRAIN_MS = 1000;
/**
 * Least share of the delivered rate a cut keeps, however long the queue: a delay of a second and
 * more is not a router's queue alone (the transport resending after an overflow, a receiver's busy
 * page), and cutting to nothing does not shorten it. Without it, a 2 Mbit/s line's first overshoot
 * reported delays of 1-1.8 s for 2 s and three cuts took its pace to the floor (mixed swarm).
 */
const LEAST_DRAIN_SHARE = 0.5;
/**
 * Deepest single cut (factor of the rate): a report that undercounts the line does not stop
 * uploads. Half was too shallow for the first cut: from the 2 Mbit/s start a 1 Mbit/s line was
 * held at 125 kB/s, over what it carries, until its own requests waited 250-420 ms behind it.
 */
const DEEPEST_CUT = 0.25;
/**
 * Rate (bytes/s) of a page's first uploads, before any receiver reported: 2 Mbit/s. An unpaced
 * first burst into a 1-2 Mbit/s home line put 1-3 s of queueing on it and the transport resent
 * for seconds (payload 67 and 149 kB/s over the first 10 s on 1 and 2 Mbit/s lines, against 115
 * and 226 kB/s paced from the start).
 */
export const START_RATE_BPS = 250_000;
/**
 * Until the first cut the rate doubles every this long (ms) while it holds uploads back with no
 * queue on the line, as a transport's slow start doubles per round trip: a LAN line of 10 MB/s is
 * reached within half a second. Slower (e^2 a second), a flash crowd of three viewers on one LAN
 * fetching a video as fast as they could took 1.68 copies from the origin, one of them more than
 * the whole video, as the peers' uploads ramped up (scheduling browser test). Each doubling
 * overshoots a capped line for at most a report's time: 0.1-0.2 s of queue, within a home router's.
 */
const START_DOUBLING_MS = 100;
/**
 * In the start, a report in which the one receiver being sent to got under this share of the rate
 * our chunks went out at ends the start: the line carries no more, and the next doubling would
 * overflow its router's queue before a report showed it. From the 2 Mbit/s start a 1 Mbit/s line got
 * 99-106 kB/s in its first report while the rate doubled on (its queue shows only in the next
 * report); its router's queue overflowed and its transport went silent for seconds (logged, mixed
 * swarm: no report came back from about 9.5 to 16 s in 8 runs of 9, and the second viewer, behind
 * that line, took 50% of its video from peers on average). On a LAN the receivers get what is sent.
 */
const START_EXIT_SHARE = 0.5;
/** Growth per second after the first cut, with the queue under a quarter of the target and under half of it. */
const GROWTH_PER_S = 1;
const NEAR_TARGET_GROWTH_PER_S = 0.3;
/**
 * Growth per second beyond what the line delivered when its queue last built up: past it the
 * rate only probes whether the line got faster. Grown at GROWTH_PER_S past it, each probe put
 * 100-300 ms of queue on a 1 Mbit/s line within half a second (logged, mixed swarm), and without
 * this probe the deeper cuts (DRAIN_MS) regrew into it at once: the second viewer took 19-20% of
 * its video from that line, against 57-58% with it.
 */
const PROBE_GROWTH_PER_S = 0.1;
/** Longest step (s) one report moves the rate by: reports resume after a quiet spell. */
const MAX_STEP_S = 0.5;
/** Lowest rate (bytes/s): one 16 KiB chunk a second, so peers still get something. */
const MIN_RATE_BPS = 16 * 1024;
/** Highest rate (bytes/s), 1 GB/s: beyond any line, so reports that only ever say "no queue" cannot grow it without end. */
const MAX_RATE_BPS = 1e9;

/**
 * Out of its start, a receiver's queueing is the least of its last this many reports (LEDBAT's
 * filter, RFC 6817 §3.4.2). On an ordered channel a lost packet holds every later chunk until it is
 * resent, so one report's least delay rises with no queue on the line: taken alone, every loss cut
 * the pace (WAN benchmark, 1% loss each way: 62.5-69.6% offload against 69.3-71.9% filtered). Not in
 * the start, where the rate doubles every report: filtered there, a 1 Mbit/s line was driven at
 * 4 MB/s for 8 s, the transport's pauses after each overflow showing as reports with no queue.
 */
const FILTERED_REPORTS = 3;

interface Receiver {
  readonly base: BaseDelay;
  /** Its last delays (ms), newest last. */
  delays: number[];
  /** Queueing delay (ms) by its last reports, when it came, and the rate (bytes/s) it received at (smoothed). */
  queueingMs: number;
  at: number;
  deliveredBps: number | undefined;
}

/**
 * Paces this page's uploads to what its uplink carries, from delays its peers measure (in the
 * spirit of LEDBAT, RFC 6817): each chunk carries its send time, and each receiver reports how
 * late the chunks came (one-way delay, its clock against ours; above the lowest seen it is
 * queueing on the path) and how many bytes it got. When every peer being sent to sees the queue
 * above TARGET_QUEUEING_MS, the rate is cut to just under what they received together, deeper
 * the longer the queue; under the target it grows again, slowly past what the line carried at the
 * last cut. The transport's own congestion control finds the line only by
 * overflowing the router's queue, which costs a slow line a third of its payload.
 *
 * The smallest queueing any current receiver reports decides: the uplink's queue is the same for
 * all of them, so a peer that reports a huge delay (a hostile one, or one behind its own busy
 * downlink) slows nobody while another sees none. Alone, it only slows what it is sent.
 *
 * @example
 * pacer.report(peerId, delayMs, bytes, ms, heldBack);
 * const cap = pacer.rate; // bytes/s
 */
export class LinePacer {
  readonly #now: () => number;
  readonly #receivers = new Map<string, Receiver>();
  #rate = START_RATE_BPS;
  #starting = true;
  #cutAt = -Infinity;
  /** What the receivers got together (bytes/s) at the last cut: what the line carries, as far as known. */
  #lineBps: number | undefined;
  #updatedAt: number | undefined;
  /** The rate at the last report: about what the chunks of the next report went out at. */
  #sentBps = START_RATE_BPS;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** The rate (bytes/s) uploads are held to. */
  get rate(): number {
    return this.#rate;
  }

  /** Whether peers being sent to now (reports within REPORT_FRESH_MS) see our uplink's queue under the target. */
  get clear(): boolean {
    return this.#queueing().queueingMs <= TARGET_QUEUEING_MS;
  }

  /**
   * The least queueing (ms; Infinity with no fresh report), the sum of rates received, and how many
   * receivers reported, over the receivers that reported within REPORT_FRESH_MS.
   */
  #queueing(): { queueingMs: number; deliveredBps: number; fresh: number } {
    const now = this.#now();
    let queueingMs = Infinity;
    let deliveredBps = 0;
    let fresh = 0;
    for (const receiver of this.#receivers.values()) {
      if (now - receiver.at > REPORT_FRESH_MS) continue;
      queueingMs = Math.min(queueingMs, receiver.queueingMs);
      deliveredBps += receiver.deliveredBps ?? 0;
      fresh++;
    }
    return { queueingMs, deliveredBps, fresh };
  }

  /**
   * `peerId` received `bytes` of our chunks over its last `ms`, the least one-way delay of those
   * chunks being `delayMs` (its clock less our send time; only differences count). `heldBack`:
   * this rate held uploads back just now. Only then does it grow: a rate above what there was to
   * send says nothing about the line, and grown without bound it would let the next burst fill the
   * line's queue again.
   */
  report(peerId: string, delayMs: number, bytes: number, ms: number, heldBack: boolean): void {
    if (!Number.isFinite(delayMs) || !(bytes >= 0) || !(ms >= 0)) return;
    const now = this.#now();
    let receiver = this.#receivers.get(peerId);
    if (!receiver) this.#receivers.set(peerId, (receiver = { base: new BaseDelay(this.#now), delays: [], queueingMs: 0, at: now, deliveredBps: undefined }));
    receiver.base.note(delayMs);
    receiver.delays = [...receiver.delays, delayMs].slice(-FILTERED_REPORTS);
    // Until the first cut the rate doubles every report: a queue it builds is answered at once.
    receiver.queueingMs = (this.#starting ? delayMs : Math.min(...receiver.delays)) - receiver.base.value!;
    receiver.at = now;
    // This report's rate, over a span of chunks (none for a delay alone).
    const spanBps = ms > 0 ? (bytes * 1000) / ms : undefined;
    if (spanBps !== undefined) receiver.deliveredBps = receiver.deliveredBps === undefined ? spanBps : (receiver.deliveredBps + spanBps) / 2;
    const stepS = Math.min(MAX_STEP_S, (now - (this.#updatedAt ?? now)) / 1000);
    this.#updatedAt = now;
    this.#adjust(now, stepS, heldBack, spanBps);
    // The chunks of the next report go out at about this rate.
    this.#sentBps = this.#rate;
  }

  /** The rate after a report (see `report`) whose receiver got `spanBps` over a span of chunks, if any. */
  #adjust(now: number, stepS: number, heldBack: boolean, spanBps: number | undefined): void {
    const { queueingMs, deliveredBps, fresh } = this.#queueing();
    // The reporting receiver alone (its report is fresh): several share the rate, and one that
    // reports first does not know the others' share.
    if (this.#starting && heldBack && spanBps !== undefined && fresh === 1 && queueingMs <= TARGET_QUEUEING_MS && spanBps < this.#sentBps * START_EXIT_SHARE) {
      // Ended as a cut would, but with no queue to drain and no line known to probe past: from
      // here the rate grows until a queue shows (a receiver's own downlink may have held it).
      this.#starting = false;
      this.#cutTo(spanBps * CUT_TO_DELIVERED);
      return;
    }
    if (queueingMs > TARGET_QUEUEING_MS) {
      if (now - this.#cutAt < CUT_INTERVAL_MS || deliveredBps === 0) return;
      this.#starting = false;
      this.#cutAt = now;
      this.#lineBps = deliveredBps;
      const share = Math.max(LEAST_DRAIN_SHARE, Math.min(CUT_TO_DELIVERED, 1 - queueingMs / DRAIN_MS));
      this.#cutTo(deliveredBps * share);
      return;
    }
    if (queueingMs >= TARGET_QUEUEING_MS / 2 || !heldBack) return;
    this.#rate = Math.min(MAX_RATE_BPS, this.#rate * this.#growth(queueingMs, stepS));
  }

  /** Lowers the rate to `bps`, by at most DEEPEST_CUT of it and not under MIN_RATE_BPS. */
  #cutTo(bps: number): void {
    this.#rate = Math.max(MIN_RATE_BPS, this.#rate * DEEPEST_CUT, Math.min(this.#rate, bps));
  }

  /** Factor the rate grows by over `stepS` seconds with the line's queue at `queueingMs` (under half the target). */
  #growth(queueingMs: number, stepS: number): number {
    if (this.#starting) return 2 ** (Math.min(stepS * 1000, START_DOUBLING_MS) / START_DOUBLING_MS);
    let perS = queueingMs < TARGET_QUEUEING_MS / 4 ? GROWTH_PER_S : NEAR_TARGET_GROWTH_PER_S;
    if (this.#lineBps !== undefined && this.#rate >= this.#lineBps) perS = Math.min(perS, PROBE_GROWTH_PER_S);
    return 1 + perS * stepS;
  }

  /** A peer left: its reports no longer count. */
  forget(peerId: string): void {
    this.#receivers.delete(peerId);
  }
}
