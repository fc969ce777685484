import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import type * as PromClient from 'prom-client';
import type { StunCounters } from './stun-server.js';
import type { RejectReason } from './tracker-messages.js';
import type { HttpReply } from './transport.js';

/**
 * The Prometheus client library behind /metrics: an optional peer dependency like ws and ioredis
 * (docs/architecture.md, "Metrics", says why), loaded when a tracker starts.
 */
export const PROM_CLIENT_PACKAGE = 'prom-client';

/** Seconds over which the announce rate shown in /stats.json is averaged. */
const RATE_WINDOW_SEC = 10;

/** Counters of one tracker instance since it started. Plain fields: incrementing must cost nothing. */
export class TrackerMetrics {
  announces = 0;
  scrapes = 0;
  offersRelayed = 0;
  answersRelayed = 0;
  /** Answers whose target peer was not found (left, expired, or never existed). */
  answersUnroutable = 0;
  /** Offers ignored: malformed, or over the per-announce cap. */
  offersDropped = 0;
  /** Messages not sent because the receiving client's send buffer was full. */
  messagesDropped = 0;
  /** peerfetch counters that were present but invalid (ignored). */
  badReports = 0;
  connectionsOpened = 0;
  /** Frames sent to, and received from, other instances through Redis. */
  clusterRelaysOut = 0;
  clusterRelaysIn = 0;
  /** Shared-state operations that failed (the instance then serves its own peers only). */
  clusterErrors = 0;
  /** Shares of per-address use with the other instances that Redis answered (see TrackerServer.shareAddressBudgets). */
  addressShares = 0;
  readonly rejections = new Map<RejectReason, number>();
  /** STUN Binding requests answered and datagrams ignored on the STUN port. */
  readonly stun: StunCounters = { answered: 0, ignored: { malformed: 0, 'not-binding-request': 0, 'rate-limited': 0 } };
  /** Announces per second over the last RATE_WINDOW_SEC seconds: a ring of one-second buckets. */
  private readonly ring = new Array<number>(RATE_WINDOW_SEC).fill(0);
  private ringSecond = 0;

  /**
   * Records how long one announce took to handle, in seconds: set by the Prometheus exporter; a
   * tracker without prom-client drops the figure.
   */
  observeAnnounceSeconds: (seconds: number) => void = () => {};

  constructor(private readonly now: () => number) {
    this.ringSecond = Math.floor(now() / 1000);
  }

  reject(reason: RejectReason): void {
    this.rejections.set(reason, (this.rejections.get(reason) ?? 0) + 1);
  }

  countAnnounce(): void {
    this.announces++;
    this.advance();
    const slot = this.ringSecond % RATE_WINDOW_SEC;
    this.ring[slot] = (this.ring[slot] ?? 0) + 1;
  }

  /**
   * An announce is handled (reply sent, offers relayed; after the Redis round trip on a cluster):
   * `startedAt` is the `performance.now()` at which its frame arrived. Measured: prom-client's
   * observe costs 0.2–0.4 µs here, under 1 % of the 40–85 µs of CPU an announce takes (BENCHMARKS.md).
   */
  announceHandled(startedAt: number): void {
    this.observeAnnounceSeconds((performance.now() - startedAt) / 1000);
  }

  /** Mean announces per second over the last complete seconds of the window. */
  announcesPerSecond(): number {
    this.advance();
    let sum = 0;
    for (let i = 1; i < RATE_WINDOW_SEC; i++) sum += this.ring[(this.ringSecond - i + RATE_WINDOW_SEC) % RATE_WINDOW_SEC] ?? 0;
    return sum / (RATE_WINDOW_SEC - 1);
  }

  private advance(): void {
    const second = Math.floor(this.now() / 1000);
    const steps = Math.min(second - this.ringSecond, RATE_WINDOW_SEC);
    for (let i = 1; i <= steps; i++) this.ring[(this.ringSecond + i) % RATE_WINDOW_SEC] = 0;
    if (second > this.ringSecond) this.ringSecond = second;
  }
}

/**
 * What an embedding application hands the tracker to collect its metrics in: a prom-client
 * `Registry` (declared here by the members the tracker uses, so that the tracker's types need no
 * prom-client installed).
 */
export interface MetricsRegistry {
  readonly contentType: string;
  metrics(): Promise<string>;
  removeSingleMetric(name: string): void;
  registerMetric(metric: never): void;
}

/** What the exporter reads at scrape time, besides the counters. */
export interface MetricsSource {
  readonly metrics: TrackerMetrics;
  gauges(): { connections: number; peers: number; swarms: number };
  /** True while per-address limits hold over all instances. */
  readonly sharedLimits: boolean;
  uptimeSec(): number;
  readonly transport: { readonly name: string };
  readonly transportPackage: string;
}

/** The tracker's side of /metrics. */
export interface MetricsExporter {
  /** The /metrics reply: the process's metrics and the tracker's, or the whole given registry. */
  render(): Promise<HttpReply>;
  /** Takes the tracker's series out of a given registry (which outlives the tracker). Idempotent. */
  close(): void;
}

/**
 * Upper bounds of the announce latency histogram, in seconds: an announce on one instance takes
 * 40–85 µs of CPU (BENCHMARKS.md, "Tracker"), one through Redis adds a round trip (0.2–2 ms on a
 * LAN), and anything from 100 ms up means a saturated event loop or Redis.
 */
const ANNOUNCE_SECONDS_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

function loadPromClient(): typeof PromClient | Error {
  try {
    return createRequire(import.meta.url)(PROM_CLIENT_PACKAGE) as typeof PromClient;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') return error as Error;
    return new Error(`/metrics needs the ${PROM_CLIENT_PACKAGE} package, which is not installed: npm install ${PROM_CLIENT_PACKAGE}`);
  }
}

/**
 * Process metrics (CPU, memory, heap, GC, handles, event-loop lag from monitorEventLoopDelay)
 * describe the process, not one tracker: one collector per process, shared by every tracker it
 * runs (each collector keeps its own event-loop delay monitor running).
 */
let processRegistry: PromClient.Registry | undefined;

function processMetrics(prom: typeof PromClient): PromClient.Registry {
  if (!processRegistry) {
    processRegistry = new prom.Registry();
    prom.collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/**
 * prom-client writes a NaN sample as `Nan`; the exposition format (and OpenMetrics, whose parsers
 * are strict) spells it `NaN`. A NaN is ordinary: the event-loop lag mean is NaN on a scrape that
 * comes before the loop monitor's first sample since the last one (seen on Node 24 under load).
 * Only sample lines change; HELP and TYPE lines start with `#`.
 */
function spellNaN(exposition: string): string {
  return exposition.replace(/^([^#\n][^\n]*) Nan$/gm, '$1 NaN');
}

/**
 * Declares the tracker's series in prom-client. The counters stay plain fields of TrackerMetrics
 * (the announce path only increments numbers) and are copied into prom-client when scraped; the
 * announce latency histogram is observed per announce. With `given` (an embedding application's
 * registry) the series go there and /metrics serves that registry; otherwise the tracker has a
 * registry of its own and /metrics adds the process metrics. Returns an Error when prom-client is
 * not installed, and throws when `given` already holds a tracker's series.
 */
export function createMetricsExporter(source: MetricsSource, given: MetricsRegistry | undefined): MetricsExporter | Error {
  const prom = loadPromClient();
  if (prom instanceof Error) return prom;
  const registry = (given as PromClient.Registry | undefined) ?? new prom.Registry();
  const registers = [registry];
  const m = source.metrics;
  /** The series this tracker registered, in order: taken out again on close or a failed start. */
  const names: string[] = [];
  const add = <T>(name: string, create: (name: string) => T): T => {
    const metric = create(name);
    names.push(name);
    return metric;
  };
  const gauge = (name: string, help: string, read: () => number): void =>
    void add(name, () => new prom.Gauge({ name, help, registers, collect() { this.set(read()); } }));
  const counter = (name: string, help: string, read: () => number): void =>
    void add(name, () => new prom.Counter({ name, help, registers, collect() { this.reset(); this.inc(read()); } }));
  const counterBy = (name: string, help: string, label: string, read: () => Iterable<[string, number]>): void =>
    void add(name, () =>
      new prom.Counter({
        name,
        help,
        labelNames: [label],
        registers,
        collect() {
          this.reset();
          for (const [value, count] of read()) this.inc({ [label]: value }, count);
        },
      }),
    );
  try {
    gauge('peerfetch_tracker_connections', 'Open WebSocket connections.', () => source.gauges().connections);
    gauge('peerfetch_tracker_peers', 'Peers in swarms on this instance.', () => source.gauges().peers);
    gauge('peerfetch_tracker_swarms', 'Swarms with at least one peer on this instance.', () => source.gauges().swarms);
    counter('peerfetch_tracker_announces_total', 'Announces handled.', () => m.announces);
    counter('peerfetch_tracker_scrapes_total', 'Scrapes handled.', () => m.scrapes);
    counter('peerfetch_tracker_offers_relayed_total', 'Offers relayed to peers.', () => m.offersRelayed);
    counter('peerfetch_tracker_answers_relayed_total', 'Answers relayed to peers.', () => m.answersRelayed);
    counter('peerfetch_tracker_answers_unroutable_total', 'Answers whose target peer was gone.', () => m.answersUnroutable);
    counter('peerfetch_tracker_offers_dropped_total', 'Offers ignored (malformed or over the cap).', () => m.offersDropped);
    counter('peerfetch_tracker_messages_dropped_total', 'Messages dropped for clients that do not read.', () => m.messagesDropped);
    counter('peerfetch_tracker_bad_reports_total', 'Invalid peerfetch byte counters ignored.', () => m.badReports);
    counter('peerfetch_tracker_connections_opened_total', 'WebSocket connections accepted.', () => m.connectionsOpened);
    counterBy('peerfetch_tracker_cluster_relays_total', 'Frames relayed through Redis, by direction.', 'direction', () => [
      ['out', m.clusterRelaysOut],
      ['in', m.clusterRelaysIn],
    ]);
    counter('peerfetch_tracker_cluster_errors_total', 'Failed shared-state (Redis) operations.', () => m.clusterErrors);
    gauge('peerfetch_tracker_shared_limits', '1 while per-address limits hold over all instances (Redis answers), 0 on one instance or while Redis is down or slow.', () => (source.sharedLimits ? 1 : 0));
    counter('peerfetch_tracker_address_shares_total', 'Shares of per-address use with the other instances answered by Redis.', () => m.addressShares);
    counter('peerfetch_tracker_stun_answered_total', 'STUN Binding requests answered.', () => m.stun.answered);
    counterBy('peerfetch_tracker_stun_ignored_total', 'Datagrams on the STUN port not answered, by reason.', 'reason', () => Object.entries(m.stun.ignored));
    counterBy('peerfetch_tracker_rejections_total', 'Frames, announces and connections refused, by reason.', 'reason', () => m.rejections);
    gauge('peerfetch_tracker_resident_memory_bytes', 'Resident set size of the process.', () => process.memoryUsage.rss());
    gauge('peerfetch_tracker_uptime_seconds', 'Seconds since the tracker started.', () => source.uptimeSec());
    add('peerfetch_tracker_transport_info', (name) =>
      new prom.Gauge({
        name,
        help: 'The network layer in use (1): native (uWebSockets.js) or node (ws), and its npm package.',
        labelNames: ['transport', 'package'],
        registers,
        collect() {
          this.reset();
          this.set({ transport: source.transport.name, package: source.transportPackage }, 1);
        },
      }),
    );
    const announceSeconds = add(
      'peerfetch_tracker_announce_duration_seconds',
      (name) => new prom.Histogram({ name, help: 'Time from an announce frame arriving to its reply and offers sent (through Redis on a cluster).', buckets: ANNOUNCE_SECONDS_BUCKETS, registers }),
    );
    m.observeAnnounceSeconds = (seconds) => announceSeconds.observe(seconds);
  } catch (error) {
    for (const name of names) registry.removeSingleMetric(name);
    // prom-client refuses a second metric of the same name in one registry.
    throw new Error(`metricsRegistry: ${(error as Error).message} (does another running tracker use this registry? give each its own, prom-client's Registry.merge joins them)`);
  }
  let closed = false;
  return {
    async render() {
      // The process collector starts at the first scrape: a tracker nobody scrapes runs none of it.
      const text = given ? await registry.metrics() : (await processMetrics(prom).metrics()) + (await registry.metrics());
      return { status: 200, headers: { 'Content-Type': registry.contentType, 'Cache-Control': 'no-store' }, body: spellNaN(text) };
    },
    close() {
      if (closed || !given) return;
      closed = true;
      m.observeAnnounceSeconds = () => {};
      for (const name of names) registry.removeSingleMetric(name);
    },
  };
}
