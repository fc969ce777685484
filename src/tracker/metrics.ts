import type { StunCounters } from './stun-server.js';
import type { RejectReason } from './tracker-messages.js';

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
  readonly rejections = new Map<RejectReason, number>();
  /** STUN Binding requests answered and datagrams ignored on the STUN port. */
  readonly stun: StunCounters = { answered: 0, ignored: { malformed: 0, 'not-binding-request': 0, 'rate-limited': 0 } };
  /** Announces per second over the last RATE_WINDOW_SEC seconds: a ring of one-second buckets. */
  private readonly ring = new Array<number>(RATE_WINDOW_SEC).fill(0);
  private ringSecond = 0;

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

export interface Gauges {
  connections: number;
  peers: number;
  swarms: number;
  rssBytes: number;
  uptimeSec: number;
}

function line(name: string, help: string, type: 'counter' | 'gauge', samples: Array<[string, number]>): string {
  let out = `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
  for (const [labels, value] of samples) out += `${name}${labels} ${value}\n`;
  return out;
}

/** Prometheus text exposition format 0.0.4 of the counters and gauges. */
export function renderPrometheus(m: TrackerMetrics, g: Gauges): string {
  const rejections: Array<[string, number]> = [...m.rejections].map(([reason, n]) => [`{reason="${reason}"}`, n]);
  return [
    line('peerfetch_tracker_connections', 'Open WebSocket connections.', 'gauge', [['', g.connections]]),
    line('peerfetch_tracker_peers', 'Peers in swarms on this instance.', 'gauge', [['', g.peers]]),
    line('peerfetch_tracker_swarms', 'Swarms with at least one peer on this instance.', 'gauge', [['', g.swarms]]),
    line('peerfetch_tracker_announces_total', 'Announces handled.', 'counter', [['', m.announces]]),
    line('peerfetch_tracker_scrapes_total', 'Scrapes handled.', 'counter', [['', m.scrapes]]),
    line('peerfetch_tracker_offers_relayed_total', 'Offers relayed to peers.', 'counter', [['', m.offersRelayed]]),
    line('peerfetch_tracker_answers_relayed_total', 'Answers relayed to peers.', 'counter', [['', m.answersRelayed]]),
    line('peerfetch_tracker_answers_unroutable_total', 'Answers whose target peer was gone.', 'counter', [['', m.answersUnroutable]]),
    line('peerfetch_tracker_offers_dropped_total', 'Offers ignored (malformed or over the cap).', 'counter', [['', m.offersDropped]]),
    line('peerfetch_tracker_messages_dropped_total', 'Messages dropped for clients that do not read.', 'counter', [['', m.messagesDropped]]),
    line('peerfetch_tracker_bad_reports_total', 'Invalid peerfetch byte counters ignored.', 'counter', [['', m.badReports]]),
    line('peerfetch_tracker_connections_opened_total', 'WebSocket connections accepted.', 'counter', [['', m.connectionsOpened]]),
    line('peerfetch_tracker_cluster_relays_total', 'Frames relayed through Redis, by direction.', 'counter', [['{direction="out"}', m.clusterRelaysOut], ['{direction="in"}', m.clusterRelaysIn]]),
    line('peerfetch_tracker_cluster_errors_total', 'Failed shared-state (Redis) operations.', 'counter', [['', m.clusterErrors]]),
    line('peerfetch_tracker_stun_answered_total', 'STUN Binding requests answered.', 'counter', [['', m.stun.answered]]),
    line('peerfetch_tracker_stun_ignored_total', 'Datagrams on the STUN port not answered, by reason.', 'counter', Object.entries(m.stun.ignored).map(([reason, n]): [string, number] => [`{reason="${reason}"}`, n])),
    line('peerfetch_tracker_rejections_total', 'Frames, announces and connections refused, by reason.', 'counter', rejections),
    line('peerfetch_tracker_resident_memory_bytes', 'Resident set size of the process.', 'gauge', [['', g.rssBytes]]),
    line('peerfetch_tracker_uptime_seconds', 'Seconds since the tracker started.', 'gauge', [['', g.uptimeSec]]),
  ].join('');
}
