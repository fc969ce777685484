import { createHash, timingSafeEqual } from 'node:crypto';
import { binaryToHex } from '../shared/hex.js';
import { performance } from 'node:perf_hooks';
import { AddressBudget } from './address-budget.js';
import { addressKey, clientAddress } from './client-address.js';
import type { AddressUsage, Cluster, ClusterHost, ClusterPeer, LocalPeer, SharedAddressUse, SwarmTotals } from './cluster.js';
import { startAdminServer, type AdminServer } from './admin-server.js';
import { routeHttpRequest, type HttpAccess } from './http-routes.js';
import { randomTurnId, turnCredential, type IceHandout, type TurnCredential } from './ice-servers.js';
import { localityPrefix } from './locality.js';
import { rateLimitLogger } from './logger.js';
import { createMetricsExporter, TrackerMetrics, type MetricsExporter } from './metrics.js';
import { chooseTransport, createNativeTransport } from './native-transport.js';
import { createNodeTransport, WS_PACKAGE } from './node-transport.js';
import { normaliseOrigin, resolveOptions, type ResolvedTrackerOptions, type TrackerOptions } from './options.js';
import { startStunServer, type RunningStunServer } from './stun-server.js';
import { Swarm, type ReportBounds, type SwarmMember } from './swarm.js';
import {
  encodeAnnounceReply,
  encodeAnswer,
  encodeFailure,
  encodeOffers,
  encodeScrapeReply,
  FAILURE_TEXT,
  parseClientFrame,
  type AnnounceMessage,
  type RejectReason,
  type ScrapeMessage,
} from './tracker-messages.js';
import type { ClientInfo, ClientSocket, Transport, TransportHandler, TransportName } from './transport.js';

/**
 * One swarm's line in /stats.json. The byte figures are estimates: sums of what the swarm's peers
 * report, each peer's growth bounded per second and each address's share capped
 * (TrackerOptions.maxReportBytesPerSec, maxReportShare), since the tracker cannot check them.
 */
export interface SwarmStats {
  /** The swarm id (info_hash) as 40 hex characters; absent from the public list (see http-routes.ts). */
  infoHash?: string;
  peers: number;
  complete: number;
  incomplete: number;
  /** Sums of the latest peerfetch counters of the swarm's live peers. */
  bytesFromPeers: number;
  bytesFromOrigin: number;
  bytesUploaded: number;
  /** bytesFromPeers / (bytesFromPeers + bytesFromOrigin), 0 when both are 0. */
  offloadRatio: number;
}

/** The data behind /stats.json. */
export interface TrackerStats {
  instanceId: string;
  /** The network layer in use: 'native' (uWebSockets.js) or 'node' (`ws`). */
  transport: TransportName;
  /** 'instance' when swarm figures are this instance's only; 'cluster' when they are summed over Redis. */
  scope: 'instance' | 'cluster';
  uptimeSec: number;
  connections: number;
  peers: number;
  swarmCount: number;
  announcesTotal: number;
  announcesPerSecond: number;
  offersRelayed: number;
  answersRelayed: number;
  rejections: Record<string, number>;
  /** The largest swarms (at most MAX_STATS_SWARMS), by peers. */
  swarms: SwarmStats[];
}

/** A running tracker. */
export interface RunningTracker {
  /** WebSocket URL clients announce to, e.g. `ws://127.0.0.1:8000`. */
  readonly url: string;
  /** Base URL of the admin port (TrackerOptions.adminPort), when there is one. */
  readonly adminUrl: string | undefined;
  /** Base URL of /health, /stats.json and /metrics, e.g. `http://127.0.0.1:8000`. */
  readonly httpUrl: string;
  readonly port: number;
  /** UDP port of the STUN service, or undefined when it is off (see TrackerOptions.stunPort). */
  readonly stunPort: number | undefined;
  /** The network layer in use (see TrackerOptions.transport). */
  readonly transport: TransportName;
  /** Stops accepting, closes every socket with a reason, flushes shared state. Idempotent. */
  close(): Promise<void>;
  /** Instance-local figures (the data behind /stats.json without a cluster). */
  stats(): TrackerStats;
}

/** /stats.json lists at most this many swarms, so its size stays bounded whatever the load. */
export const MAX_STATS_SWARMS = 1000;

/** WebSocket close codes (RFC 6455 §7.4.1). */
const CLOSE_GOING_AWAY = 1001;
const CLOSE_POLICY = 1008;
const CLOSE_TRY_AGAIN_LATER = 1013;
const CLOSE_NORMAL = 1000;
const CLOSE_MESSAGE_TOO_BIG = 1009;

/**
 * Messages dropped for a client whose send queue is over maxBufferedBytes before it is disconnected:
 * a few drops can be a burst, 32 in a row means the client stopped reading.
 */
const DROPS_BEFORE_DISCONNECT = 32;

/**
 * How often an instance of a cluster shares per-address use (messages, connections) with the
 * others, in ms: one pipelined Redis round trip per interval, whatever the load, and never on a
 * message's path. Between two shares each instance's replica of an address's budget is all that
 * holds the address back (see AddressBudget), so an address spread over N instances gets at most
 * about N budgets' worth of one interval beyond its own.
 */
export const ADDRESS_SHARE_INTERVAL_MS = 1000;
/** A share still unanswered after this long (ms) means Redis is too slow to count on: limits are this instance's own until a share returns. */
const ADDRESS_SHARE_TIMEOUT_MS = 2000;
/** Addresses per share, at most: bounds one pipeline (the rest go in the next share). */
const MAX_ADDRESSES_PER_SHARE = 5000;
/**
 * How long an address's connection count on the other instances is believed, in ms: it is read
 * again whenever the address connects, disconnects, sends or is refused here, so an older figure
 * belongs to an address that left, and must not keep refusing it.
 */
const REMOTE_CONNECTIONS_TTL_MS = 10_000;

interface Connection {
  readonly socket: ClientSocket;
  readonly ip: string;
  readonly prefix: string;
  readonly address: AddressBudget;
  /** This connection's peers: info_hash + peer_id → member. */
  readonly joined: Map<string, Member>;
  lastMessageAt: number;
  /**
   * The connection's own message budget, inside its address's: a fixed window (maxMessagesPerWindow
   * per rateWindowMs), not a token bucket like the address's. Two numbers on the connection
   * cost less than a bucket object (measured with bench/tracker.mjs: 1.01 KiB of heap per peer with
   * the window, 1.10 KiB with a TokenBucket per connection), and the window's one weakness, twice
   * its budget around a window's edge, is bounded by the address's bucket.
   */
  windowStart: number;
  windowCount: number;
  /** Set once the tracker started closing this connection (sweeps skip it). */
  closing: boolean;
  /** Set when this connection was told it is over a message budget, until a message is accepted again. */
  toldRateLimited: boolean;
  /** Messages dropped in a row because this client did not read (see DROPS_BEFORE_DISCONNECT). */
  dropped: number;
  /** When the last ping was sent (ms). */
  lastPingAt: number;
  /** Set on each pong; a connection that did not answer the previous ping is dead. */
  alive: boolean;
  /** The ICE servers this client was last handed (see iceHandout); undefined before the first. */
  ice: { turn: TurnCredential | undefined; turnId: string } | undefined;
  /** Its address's `shares` when it opened (see AddressBudget.shares): which share may close it. */
  readonly sharesAtOpen: number;
}

interface Member extends SwarmMember {
  readonly conn: Connection;
  readonly infoHash: string;
  /** When the member joined (ms): its first report is bounded by the time since. */
  readonly joinedAt: number;
  expiresAt: number;
}

/** Compares two secrets in time that does not depend on where they differ. */
function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function offloadRatio(fromPeers: number, fromOrigin: number): number {
  const total = fromPeers + fromOrigin;
  return total > 0 ? fromPeers / total : 0;
}

function swarmStats(infoHash: string, t: SwarmTotals): SwarmStats {
  return {
    infoHash: binaryToHex(infoHash),
    peers: t.peers,
    complete: t.complete,
    incomplete: t.incomplete,
    bytesFromPeers: t.bytesFromPeers,
    bytesFromOrigin: t.bytesFromOrigin,
    bytesUploaded: t.bytesUploaded,
    offloadRatio: offloadRatio(t.bytesFromPeers, t.bytesFromOrigin),
  };
}

/**
 * Growth allowed to a member's counters on top of the per-second bound, in bytes: what a page
 * fetched before its first announce (the player buffers ahead while the tracker connects) and the
 * jitter of report timing; 64 MiB is about three minutes of 3 Mbit/s video.
 */
const REPORT_BURST_BYTES = 64 * 1024 * 1024;

/**
 * The tracker: WebTorrent tracker WebSockets and /health, /stats.json and /metrics on one port,
 * over a transport (transport.ts). The cluster (Redis) is optional and given in from outside, so
 * this class never imports a Redis client.
 */
export class TrackerServer implements TransportHandler<Connection>, ClusterHost {
  readonly options: ResolvedTrackerOptions;
  readonly metrics: TrackerMetrics;
  /** Serves /metrics through prom-client; undefined when prom-client is not installed. */
  readonly metricsExporter: MetricsExporter | undefined;
  /** Why /metrics is not served (prom-client missing), when it is not. */
  readonly metricsUnavailable: string | undefined;
  readonly transport: Transport;
  private readonly swarms = new Map<string, Swarm<Member>>();
  private readonly connections = new Set<Connection>();
  private readonly addresses = new Map<string, AddressBudget>();
  /** Addresses whose use changed since they were last shared with the other instances (cluster only). */
  private readonly unshared = new Set<AddressBudget>();
  private shareTimer: NodeJS.Timeout | undefined;
  /** When the share in flight started (performance.now() ms), if one is. */
  private shareStartedAt: number | undefined;
  /** Whether the last share with Redis succeeded in time (see sharedLimits); 'unknown' before the first. */
  private limitsMode: 'unknown' | 'shared' | 'local' = 'unknown';
  private readonly startedAt: number;
  /** The configured logger, rate-limited per event (see rateLimitLogger); the cluster logs through it too. */
  readonly log: ResolvedTrackerOptions['logger'];
  /** Why the native transport is not in use, when 'auto' fell back to the Node transport. */
  private readonly nativeUnavailable: string | undefined;
  /** The npm package the transport runs on (/health names it with the transport). */
  readonly transportPackage: string = WS_PACKAGE;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** The STUN service, once listen() started it (undefined when TrackerOptions.stunPort is 0). */
  stun: RunningStunServer | undefined;
  private closing: Promise<void> | undefined;
  private peerCount = 0;
  /** Set during shutdown: called when the last connection closed. */
  private onAllClosed: (() => void) | undefined;
  cluster: Cluster | undefined;
  instanceId = 'local';
  private readonly reportBounds: ReportBounds;
  /** The operator's listener, when TrackerOptions.adminPort is set. */
  admin: AdminServer | undefined;

  constructor(options: TrackerOptions = {}) {
    this.options = resolveOptions(options);
    this.startedAt = this.options.now();
    this.metrics = new TrackerMetrics(this.options.now);
    this.reportBounds = { maxBytesPerSec: this.options.maxReportBytesPerSec, burstBytes: REPORT_BURST_BYTES };
    // Warnings caused by clients are capped at 20 lines per second per event (see rateLimitLogger).
    this.log = rateLimitLogger(this.options.logger, 20, this.options.now);
    const limits = { maxFrameBytes: this.options.maxFrameBytes, maxBufferedBytes: this.options.maxBufferedBytes };
    const choice = chooseTransport(this.options.transport);
    if (choice.kind === 'native') {
      this.transport = createNativeTransport(choice.uws, this, limits);
      this.transportPackage = choice.packageName;
    } else {
      try {
        this.transport = createNodeTransport(this, limits);
      } catch (error) {
        // Neither transport can run: say what is missing for each.
        const native = choice.nativeUnavailable ? `; the native transport is not available either: ${choice.nativeUnavailable}` : '';
        throw new Error(`${(error as Error).message}${native}`);
      }
      this.nativeUnavailable = choice.nativeUnavailable;
    }
    // Last, so that nothing after it can fail and leave the tracker's series in an operator's registry.
    const exporter = createMetricsExporter(this, this.options.metricsRegistry);
    if (exporter instanceof Error) {
      // An application that hands in its registry has prom-client: not finding it is an install problem.
      if (this.options.metricsRegistry) throw exporter;
      this.metricsUnavailable = exporter.message;
    } else this.metricsExporter = exporter;
  }

  async listen(): Promise<number> {
    if (this.options.stunPort !== undefined) this.stun = await startStunServer(this.options.stunHost, this.options.stunPort, this.metrics.stun, this.options.now);
    let port: number;
    try {
      if (this.options.adminPort !== undefined) {
        this.admin = await startAdminServer(this.options.adminHost, this.options.adminPort, (method, url) => routeHttpRequest(this, method, url, 'admin'));
      }
      port = await this.transport.listen(this.options.host, this.options.port);
    } catch (error) {
      await this.stun?.close();
      await this.admin?.close();
      throw error;
    }
    if (this.metricsUnavailable) this.log.log({ level: 'warn', event: 'tracker:no-metrics', message: this.metricsUnavailable });
    if (this.nativeUnavailable) {
      this.log.log({ level: 'warn', event: 'tracker:node-transport', message: `${this.nativeUnavailable}; the native transport holds a peer in about a quarter of the memory and serves more announces per core (see BENCHMARKS.md)` });
    }
    this.sweepTimer = setInterval(() => this.sweep(), this.options.sweepIntervalMs);
    this.sweepTimer.unref();
    this.shareTimer = setInterval(() => this.shareAddressBudgets(), ADDRESS_SHARE_INTERVAL_MS);
    this.shareTimer.unref();
    return port;
  }

  // ---------------------------------------------------------------- transport events

  http(method: string, url: string, authorization: string | undefined): ReturnType<typeof routeHttpRequest> {
    return routeHttpRequest(this, method, url, this.access(authorization));
  }

  /**
   * What a request on the public port may see: everything with the admin token; without it, the
   * operator's routes only when the operator configured neither an admin port nor a token.
   */
  private access(authorization: string | undefined): HttpAccess {
    const token = this.options.adminToken;
    if (token !== undefined && authorization !== undefined && sameSecret(authorization, `Bearer ${token}`)) return 'admin';
    if (token !== undefined) return 'token-required';
    if (this.options.adminPort !== undefined) return 'admin-port';
    return 'open';
  }

  serverError(message: string): void {
    this.log.log({ level: 'error', event: 'server:error', message });
  }

  private clientIp(info: ClientInfo): string {
    return clientAddress(info.remoteAddress, info.forwardedFor, this.options.trustedProxies);
  }

  open(socket: ClientSocket, info: ClientInfo): Connection | undefined {
    if (this.closing) {
      socket.terminate();
      return undefined;
    }
    const ip = this.clientIp(info);
    const key = addressKey(ip);
    const now = this.options.now();
    let address = this.addresses.get(key);
    let refusal: RejectReason | undefined;
    if (this.connections.size >= this.options.maxConnections) refusal = 'too-many-connections';
    else if (address && address.connections + this.remoteConnections(address, now) >= this.options.maxConnectionsPerIp) {
      refusal = 'too-many-connections-from-ip';
      // Read the other instances' count again: the address may have left them.
      if (this.cluster) this.unshared.add(address);
    } else if (this.options.allowOrigins) {
      if (!info.origin || !this.options.allowOrigins.has(normaliseOrigin(info.origin))) refusal = 'origin-not-allowed';
    }
    if (refusal) {
      // Completing the handshake and closing with a reason is the only way a browser learns why
      // (a refused HTTP upgrade reaches page code as a bare code 1006).
      this.metrics.reject(refusal);
      this.log.log({ level: 'warn', event: 'connection:refused', reason: refusal, ip });
      socket.close(refusal === 'origin-not-allowed' ? CLOSE_POLICY : CLOSE_TRY_AGAIN_LATER, FAILURE_TEXT[refusal]);
      return undefined;
    }
    const { maxMessagesPerWindowPerIp, rateWindowMs } = this.options;
    if (!address) this.addresses.set(key, (address = new AddressBudget(key, (maxMessagesPerWindowPerIp * 1000) / rateWindowMs, maxMessagesPerWindowPerIp, this.options.now)));
    address.connections++;
    if (this.cluster) this.unshared.add(address);
    const conn: Connection = {
      socket,
      ip,
      prefix: localityPrefix(ip),
      address,
      joined: new Map(),
      lastMessageAt: now,
      windowStart: now,
      windowCount: 0,
      closing: false,
      toldRateLimited: false,
      lastPingAt: now,
      dropped: 0,
      alive: true,
      ice: undefined,
      sharesAtOpen: address.shares,
    };
    this.connections.add(conn);
    this.metrics.connectionsOpened++;
    return conn;
  }

  pong(conn: Connection): void {
    conn.alive = true;
  }

  clientError(conn: Connection, message: string): void {
    this.log.log({ level: 'warn', event: 'connection:error', ip: conn.ip, message });
  }

  frameTooLarge(conn: Connection): void {
    this.metrics.reject('frame-too-large');
    this.log.log({ level: 'warn', event: 'frame:rejected', reason: 'frame-too-large', ip: conn.ip });
    this.closeConnection(conn, CLOSE_MESSAGE_TOO_BIG, FAILURE_TEXT['frame-too-large']);
  }

  closed(conn: Connection): void {
    if (!this.connections.delete(conn)) return;
    // The address's state stays until its budget is full again (see sweep): reconnecting must not
    // hand a client a fresh budget. A connection the tracker closed left its count already.
    if (!conn.closing) this.uncount(conn);
    for (const member of [...conn.joined.values()]) this.leave(member);
    if (this.connections.size === 0) this.onAllClosed?.();
  }

  /**
   * Closes a connection with a code and a reason. It leaves its address's count at once: the close
   * handshake may take a while, and a connection on its way out must not make the address look over
   * its limit (that would close another of its connections).
   */
  private closeConnection(conn: Connection, code: number, reason: string): void {
    if (conn.closing) return;
    conn.closing = true;
    this.uncount(conn);
    conn.socket.close(code, reason);
  }

  private uncount(conn: Connection): void {
    conn.address.connections--;
    if (this.cluster) this.unshared.add(conn.address);
  }

  private send(conn: Connection, frame: string): boolean {
    const socket = conn.socket;
    if (!socket.isOpen) return false;
    if (socket.bufferedAmount() > this.options.maxBufferedBytes) {
      this.metrics.messagesDropped++;
      // A client that keeps not reading is gone or hostile: free its buffers.
      if (++conn.dropped >= DROPS_BEFORE_DISCONNECT) {
        this.metrics.reject('slow-consumer');
        socket.terminate();
      }
      return false;
    }
    conn.dropped = 0; // it reads again: only drops in a row count
    socket.send(frame);
    return true;
  }

  private fail(conn: Connection, reason: RejectReason, action?: 'announce' | 'scrape', infoHash?: string): void {
    this.metrics.reject(reason);
    this.log.log({ level: 'warn', event: 'frame:rejected', reason, ip: conn.ip });
    this.send(conn, encodeFailure(reason, action, infoHash));
  }

  message(conn: Connection, text: string | undefined): void {
    const receivedAt = performance.now();
    const now = this.options.now();
    conn.lastMessageAt = now;
    const address = conn.address;
    const windowMs = this.options.rateWindowMs;
    if (now - conn.windowStart >= windowMs) {
      conn.windowStart = now;
      conn.windowCount = 0;
    }
    const max = this.options.maxMessagesPerWindow;
    conn.windowCount++;
    // Refused messages are spent too (as a debt): a client that keeps sending stays refused.
    const addressWaitMs = address.spend(1);
    if (conn.windowCount > max || addressWaitMs > 0) {
      // One failure tells the client until a message is accepted again; the rest are dropped
      // unanswered, and a connection that keeps going at twice a budget (twice its window's, or a
      // debt of its address's whole budget, which takes a rate window to repay) is disconnected.
      if (!conn.toldRateLimited) {
        conn.toldRateLimited = true;
        this.fail(conn, 'rate-limited');
      } else this.metrics.reject('rate-limited');
      if ((conn.windowCount > 2 * max || addressWaitMs > windowMs) && !conn.closing) {
        this.closeConnection(conn, CLOSE_POLICY, FAILURE_TEXT['rate-limited']);
      }
      return;
    }
    conn.toldRateLimited = false;
    if (this.cluster) {
      address.unshared++;
      this.unshared.add(address);
    }
    if (text === undefined) {
      this.fail(conn, 'binary-frame');
      return;
    }
    const parsed = parseClientFrame(text, this.options.maxOffersPerAnnounce);
    if (!parsed.ok) {
      this.fail(conn, parsed.reason, parsed.action, parsed.infoHash);
      return;
    }
    if (parsed.message.action === 'scrape') {
      this.onScrape(conn, parsed.message);
      return;
    }
    const pending = this.onAnnounce(conn, parsed.message);
    if (pending) void pending.then(() => this.metrics.announceHandled(receivedAt));
    else this.metrics.announceHandled(receivedAt);
  }

  // ---------------------------------------------------------------- swarms

  private leave(member: Member): void {
    const conn = member.conn;
    const infoHash = member.infoHash;
    const key = infoHash + member.peerId;
    if (conn.joined.get(key) !== member) return;
    conn.joined.delete(key);
    const swarm = this.swarms.get(infoHash);
    if (!swarm) return;
    swarm.remove(member);
    this.peerCount--;
    if (swarm.size === 0) this.swarms.delete(infoHash);
    this.cluster?.leave(infoHash, member.peerId, this.totalsOf(swarm), member.address, swarm.membersFrom(member.address));
  }

  /** Joins, updates or leaves per the announce; returns the member, or a refusal. */
  private applyAnnounce(conn: Connection, msg: AnnounceMessage): Member | RejectReason | undefined {
    const now = this.options.now();
    const key = msg.infoHash + msg.peerId;
    let member = conn.joined.get(key);
    if (msg.event === 'stopped') {
      if (member) this.leave(member);
      return undefined;
    }
    let swarm = this.swarms.get(msg.infoHash);
    if (!member) {
      const holder = swarm?.get(msg.peerId);
      if (holder) {
        // A peer id is not a secret (every offer carries it): only a reconnect from the same
        // address may take it over, so nobody can hijack another visitor's offers and answers.
        if (holder.conn.address !== conn.address) return 'peer-id-in-use';
        this.leave(holder);
        swarm = this.swarms.get(msg.infoHash); // leaving may have removed an emptied swarm
      }
      // One connection may hold several peers: webtorrent shares one socket between all torrents
      // (and all clients) of a page that announce to the same tracker URL.
      if (conn.joined.size >= this.options.maxSwarmsPerConnection) return 'too-many-swarms-per-connection';
      if (!swarm) {
        if (this.swarms.size >= this.options.maxSwarms) return 'too-many-swarms';
        swarm = new Swarm<Member>(msg.infoHash);
        this.swarms.set(msg.infoHash, swarm);
      }
      if (swarm.size >= this.options.maxPeersPerSwarm) return 'swarm-full';
      // Many peer ids from one place would fill the swarm or take most of its offers (eclipse).
      if (swarm.membersFrom(conn.address.key) >= this.options.maxPeersPerSwarmPerIp) return 'too-many-peers-from-ip';
      let onThisConnection = 0;
      for (const joined of conn.joined.values()) if (joined.infoHash === msg.infoHash) onThisConnection++;
      if (onThisConnection >= this.options.maxPeersPerSwarmPerConnection) return 'too-many-peers-per-connection';
      member = {
        peerId: msg.peerId,
        prefix: conn.prefix,
        address: conn.address.key,
        complete: msg.left === 0 || msg.event === 'completed',
        report: undefined,
        listIndex: -1,
        bucketIndex: -1,
        conn,
        infoHash: msg.infoHash,
        joinedAt: now,
        expiresAt: 0,
      };
      swarm.add(member);
      conn.joined.set(key, member);
      this.peerCount++;
    } else if (swarm && (msg.left === 0 || msg.event === 'completed')) {
      swarm.setComplete(member, true);
    }
    member.expiresAt = now + this.options.peerTimeoutMs;
    if (msg.report && swarm) swarm.setReport(member, msg.report, now, member.joinedAt, this.reportBounds);
    return member;
  }

  /** Handles an announce; returns the promise of its Redis round trip when it waits for one. */
  private onAnnounce(conn: Connection, msg: AnnounceMessage): Promise<void> | undefined {
    this.metrics.countAnnounce();
    this.metrics.offersDropped += msg.droppedOffers;
    if (msg.badReport) this.metrics.badReports++;
    if (this.options.allowSwarms && !this.options.allowSwarms.has(binaryToHex(msg.infoHash))) {
      this.fail(conn, 'swarm-not-allowed', 'announce', msg.infoHash);
      return;
    }
    const joining = !conn.joined.has(msg.infoHash + msg.peerId) && msg.event !== 'stopped';
    const result = this.applyAnnounce(conn, msg);
    if (typeof result === 'string') {
      this.fail(conn, result, 'announce', msg.infoHash);
      // A peer that cannot join a full swarm may still answer an offer it got: the offerer asked
      // for it. Never for a peer id held by someone else (that answer would be forged).
      if (msg.answer && result !== 'peer-id-in-use') this.relayAnswer(msg, this.swarms.get(msg.infoHash));
      return;
    }
    const member = result;
    const swarm = this.swarms.get(msg.infoHash);
    const wanted = member ? msg.offers.length : 0;

    if (!this.cluster || !member) {
      if (!msg.answer) this.send(conn, this.announceReply(conn, msg, swarm?.complete ?? 0, swarm?.incomplete ?? 0));
      if (member && swarm && wanted > 0) {
        const targets = swarm.select(wanted, member, conn.prefix);
        this.relayOffers(msg, targets.map((t) => ({ local: t })));
      }
      if (msg.answer) this.relayAnswer(msg, swarm);
      return;
    }

    const cluster = this.cluster;
    const local = swarm ? swarm.select(wanted, member, conn.prefix) : [];
    return cluster
      .announce({ infoHash: msg.infoHash, peerId: msg.peerId, prefix: conn.prefix, address: conn.address.key, complete: member.complete, report: member.report, wanted, local: this.totalsOf(swarm), addressPeers: swarm?.membersFrom(conn.address.key) ?? 0 })
      .then(
        (shared) => {
          if (shared.refused) {
            // A live instance holds this peer id for another address: the same rule as on one
            // instance (applyAnnounce), across instances.
            this.leave(member);
            this.fail(conn, 'peer-id-in-use', 'announce', msg.infoHash);
            return;
          }
          // The per-address cap of a swarm over all instances (applyAnnounce checked this one's):
          // a join that takes the address over it leaves again. Two joins at the same moment on two
          // instances may both stay; the next join of that address is refused.
          if (joining && swarm && swarm.membersFrom(conn.address.key) + shared.addressPeersElsewhere > this.options.maxPeersPerSwarmPerIp) {
            this.leave(member);
            this.fail(conn, 'too-many-peers-from-ip', 'announce', msg.infoHash);
            // As on one instance: a peer that cannot join may still answer an offer it got.
            if (msg.answer) this.relayAnswer(msg, swarm);
            return;
          }
          if (!msg.answer) this.send(conn, this.announceReply(conn, msg, shared.complete, shared.incomplete));
          if (wanted > 0) this.relayOffers(msg, mergeTargets(local, shared.candidates, cluster.instanceId, msg.peerId, conn.prefix, wanted));
          if (msg.answer) this.relayAnswer(msg, swarm);
        },
        (error: unknown) => {
          // Shared state unreachable: serve this instance's own swarm rather than nothing.
          this.metrics.clusterErrors++;
          this.log.log({ level: 'error', event: 'cluster:error', message: String(error) });
          if (!msg.answer) this.send(conn, this.announceReply(conn, msg, swarm?.complete ?? 0, swarm?.incomplete ?? 0));
          if (wanted > 0) this.relayOffers(msg, local.map((t) => ({ local: t })));
          if (msg.answer) this.relayAnswer(msg, swarm);
        },
      );
  }

  private announceReply(conn: Connection, msg: AnnounceMessage, complete: number, incomplete: number): string {
    // Only peerfetch pages (their announces carry the `peerfetch` counters) are handed ICE
    // servers: stock WebTorrent clients get byte-for-byte bittorrent-tracker replies.
    const handout = msg.report || msg.badReport ? this.iceHandout(conn) : undefined;
    return encodeAnnounceReply(msg.infoHash, complete, incomplete, this.options.announceIntervalSec, handout);
  }

  /**
   * The ICE servers for this connection's page, when it is due some: on its first announce, and
   * again with a new TURN credential once the last one is half used up (the page keeps using the
   * newest for the connections it makes, so a page open for days never holds an expired one).
   * Replies in between carry nothing: the page keeps what it has.
   */
  private iceHandout(conn: Connection): IceHandout | undefined {
    const { stun } = this;
    const { turnUrls, turnSecret, turnTtlSec } = this.options;
    if (!stun && !turnSecret) return undefined;
    const now = this.options.now();
    const ice = conn.ice;
    if (ice && (!ice.turn || now < ice.turn.expiresAtMs - (turnTtlSec * 1000) / 2)) return undefined;
    const turnId = ice?.turnId ?? randomTurnId();
    const turn = turnSecret ? turnCredential(turnSecret, turnTtlSec, now, turnId) : undefined;
    conn.ice = { turn, turnId };
    return {
      ...(stun ? { stunPort: stun.port } : {}),
      ...(turn ? { turn: { urls: turnUrls, username: turn.username, credential: turn.credential } } : {}),
    };
  }

  private relayOffers(msg: AnnounceMessage, targets: Target[]): void {
    const frames = encodeOffers(msg.infoHash, msg.peerId, msg.offers.slice(0, targets.length));
    for (let i = 0; i < targets.length; i++) {
      const frame = frames[i];
      const target = targets[i];
      if (frame === undefined || !target) break;
      if (target.local) {
        if (this.send(target.local.conn, frame)) this.metrics.offersRelayed++;
      } else if (target.remote && this.cluster) {
        this.cluster.relay(target.remote.instanceId, msg.infoHash, target.remote.peerId, frame);
        this.metrics.offersRelayed++;
        this.metrics.clusterRelaysOut++;
      }
    }
  }

  private relayAnswer(msg: AnnounceMessage, swarm: Swarm<Member> | undefined): void {
    const answer = msg.answer;
    if (!answer) return;
    const frame = encodeAnswer(msg.infoHash, msg.peerId, answer.offerId, answer.answer);
    const target = swarm?.get(answer.toPeerId);
    if (target) {
      if (target.peerId !== msg.peerId && this.send(target.conn, frame)) this.metrics.answersRelayed++;
      return;
    }
    const cluster = this.cluster;
    if (!cluster) {
      this.metrics.answersUnroutable++;
      return;
    }
    cluster.locate(msg.infoHash, answer.toPeerId).then(
      (instanceId) => {
        if (instanceId === undefined || instanceId === cluster.instanceId) {
          this.metrics.answersUnroutable++;
          return;
        }
        cluster.relay(instanceId, msg.infoHash, answer.toPeerId, frame);
        this.metrics.answersRelayed++;
        this.metrics.clusterRelaysOut++;
      },
      () => {
        this.metrics.clusterErrors++;
        this.metrics.answersUnroutable++;
      },
    );
  }

  /** A swarm's counts and its byte figures, bounded per address (see Swarm.figures). */
  private totalsOf(swarm: Swarm<Member> | undefined): SwarmTotals {
    if (!swarm) return { peers: 0, complete: 0, incomplete: 0, bytesFromPeers: 0, bytesFromOrigin: 0, bytesUploaded: 0 };
    return { peers: swarm.size, complete: swarm.complete, incomplete: swarm.incomplete, ...swarm.figures(this.options.now(), this.options.maxReportShare) };
  }

  *localPeers(): Iterable<LocalPeer> {
    for (const swarm of this.swarms.values()) {
      for (const member of swarm.members.values()) yield { infoHash: member.infoHash, peerId: member.peerId, prefix: member.prefix, address: member.address };
    }
  }

  localTotals(infoHash: string): SwarmTotals {
    return this.totalsOf(this.swarms.get(infoHash));
  }

  /** A frame relayed from another instance to one of this instance's peers. */
  deliver(infoHash: string, toPeerId: string, frame: string): void {
    this.metrics.clusterRelaysIn++;
    const target = this.swarms.get(infoHash)?.get(toPeerId);
    if (target) this.send(target.conn, frame);
  }

  private onScrape(conn: Connection, msg: ScrapeMessage): void {
    this.metrics.scrapes++;
    const local = msg.infoHashes.map((h) => this.totalsOf(this.swarms.get(h)));
    const reply = (totals: SwarmTotals[]): void => {
      const files = msg.infoHashes.map((infoHash, i) => ({ infoHash, complete: totals[i]?.complete ?? 0, incomplete: totals[i]?.incomplete ?? 0 }));
      this.send(conn, encodeScrapeReply(files, this.options.announceIntervalSec));
    };
    if (!this.cluster) {
      reply(local);
      return;
    }
    this.cluster.totals(msg.infoHashes).then(reply, () => reply(local));
  }

  // ---------------------------------------------------------------- limits over instances

  /** The address's open connections on the other instances, while the last count read is recent. */
  private remoteConnections(address: AddressBudget, now: number): number {
    return this.cluster && now - address.remoteAt < REMOTE_CONNECTIONS_TTL_MS ? address.remoteConnections : 0;
  }

  addressLevel(key: string, tokens: number, version: number): void {
    const address = this.addresses.get(key);
    if (address) this.applyLevel(address, tokens, version);
  }

  /** Sets an address's budget to a shared level newer than the one it has. */
  private applyLevel(address: AddressBudget, tokens: number, version: number): void {
    if (version <= address.sharedVersion) return;
    address.sharedVersion = version;
    // What this instance accepted since its last share is not in the shared level yet.
    address.setTokens(tokens - address.unshared);
  }

  *localAddresses(): Iterable<{ address: string; connections: number }> {
    for (const address of this.addresses.values()) if (address.connections > 0) yield { address: address.key, connections: address.connections };
  }

  /**
   * Shares the use of the addresses that changed with the other instances (one Redis round trip
   * for the batch, see Cluster.shareAddresses), then sets each one's budget to the shared level and
   * closes connections of addresses over their connection limit over all instances. Runs every
   * ADDRESS_SHARE_INTERVAL_MS, one share at a time; while Redis fails or is slow, the limits are
   * this instance's own (logged, and 0 in the peerfetch_tracker_shared_limits gauge).
   */
  private shareAddressBudgets(): void {
    const cluster = this.cluster;
    if (!cluster) return;
    if (this.shareStartedAt !== undefined) {
      if (performance.now() - this.shareStartedAt > ADDRESS_SHARE_TIMEOUT_MS) this.limitsLocal(`Redis has not answered for ${ADDRESS_SHARE_TIMEOUT_MS} ms`);
      return;
    }
    if (this.unshared.size === 0) return;
    const batch: AddressBudget[] = [];
    for (const address of this.unshared) {
      this.unshared.delete(address);
      batch.push(address);
      if (batch.length >= MAX_ADDRESSES_PER_SHARE) break;
    }
    const usage: AddressUsage[] = batch.map((a) => ({ address: a.key, connections: a.connections, spent: a.unshared }));
    // The connections this share may close: those opened since the address's previous share began.
    const closableFrom = batch.map((a) => a.shares);
    // Counted from now on: what arrives while the share is on its way goes into the next one.
    for (const address of batch) {
      address.unshared = 0;
      address.shares++;
    }
    const startedAt = (this.shareStartedAt = performance.now());
    cluster.shareAddresses(usage).then(
      (shared) => {
        this.shareStartedAt = undefined;
        this.metrics.addressShares++;
        if (performance.now() - startedAt <= ADDRESS_SHARE_TIMEOUT_MS) this.limitsShared();
        this.applyShared(batch, shared, closableFrom);
      },
      (error: unknown) => {
        // The counts of this batch stay this instance's own: limits are local until Redis answers.
        // The connections opened since the last share that was answered stay the ones the next
        // may close (shares go one at a time: none started since this one).
        for (const address of batch) address.shares--;
        this.shareStartedAt = undefined;
        this.metrics.clusterErrors++;
        this.limitsLocal(String(error));
      },
    );
  }

  private applyShared(batch: AddressBudget[], shared: SharedAddressUse[], closableFrom: number[]): void {
    const now = this.options.now();
    const max = this.options.maxConnectionsPerIp;
    /** Per address over its limit: how many to close, and the `shares` value those opened at or after. */
    const over = new Map<AddressBudget, { excess: number; closableFrom: number }>();
    for (let i = 0; i < batch.length; i++) {
      const address = batch[i]!;
      const use = shared[i];
      if (!use) continue;
      this.applyLevel(address, use.tokens, use.version);
      address.remoteConnections = use.otherConnections;
      address.remoteAt = now;
      // Over the limit over all instances: the instance where the address opened connections since
      // its previous share (or while this one was on its way) closes the surplus among those; what
      // they do not cover is older here and stays. Two instances where it grew at once may both
      // close, which only ever costs that address new connections.
      const surplus = address.connections + use.otherConnections - max;
      if (surplus > 0) over.set(address, { excess: surplus, closableFrom: closableFrom[i]! });
    }
    if (over.size === 0) return;
    const candidates: Connection[] = [];
    for (const conn of this.connections) {
      const closing = over.get(conn.address);
      if (closing && !conn.closing && conn.sharesAtOpen >= closing.closableFrom) candidates.push(conn);
    }
    // The newest connections go first, as if they had been refused when they came.
    for (let i = candidates.length - 1; i >= 0; i--) {
      const conn = candidates[i]!;
      const closing = over.get(conn.address)!;
      if (closing.excess <= 0) continue;
      closing.excess--;
      this.metrics.reject('too-many-connections-from-ip');
      this.log.log({ level: 'warn', event: 'connection:closed', reason: 'too-many-connections-from-ip', ip: conn.ip });
      this.closeConnection(conn, CLOSE_TRY_AGAIN_LATER, FAILURE_TEXT['too-many-connections-from-ip']);
    }
  }

  /**
   * True while per-address limits hold over all instances (the last share with Redis succeeded in
   * time); false on a single instance or while Redis is down or slow (each instance's own limits).
   */
  get sharedLimits(): boolean {
    return this.limitsMode === 'shared';
  }

  private limitsShared(): void {
    if (this.limitsMode === 'shared') return;
    this.limitsMode = 'shared';
    this.log.log({ level: 'info', event: 'limits:shared', message: 'per-address limits hold over all instances (Redis)' });
  }

  private limitsLocal(reason: string): void {
    if (this.limitsMode === 'local') return;
    this.limitsMode = 'local';
    this.log.log({ level: 'warn', event: 'limits:local-only', message: `per-address limits are this instance's own until Redis answers: ${reason}` });
  }

  // ---------------------------------------------------------------- housekeeping

  /** Expires peers that stopped announcing, closes idle and dead connections, pings the rest. */
  private sweep(): void {
    const now = this.options.now();
    for (const [key, address] of this.addresses) {
      // Gone, with its budget full again and nothing left to tell the other instances: forgetting
      // it hands it nothing it would not have anyway.
      if (address.connections <= 0 && address.waitMs(address.capacity) === 0 && !this.unshared.has(address)) this.addresses.delete(key);
    }
    for (const conn of this.connections) {
      for (const member of [...conn.joined.values()]) {
        if (member.expiresAt <= now) this.leave(member);
      }
      if (conn.closing) continue;
      if (now - conn.lastMessageAt >= this.options.idleTimeoutMs) {
        this.metrics.reject('idle-timeout');
        this.closeConnection(conn, CLOSE_NORMAL, FAILURE_TEXT['idle-timeout']);
        continue;
      }
      if (now - conn.lastPingAt < this.options.heartbeatIntervalMs) continue;
      if (!conn.alive) {
        // No pong since the previous ping: the TCP connection is dead (a laptop lid closed).
        conn.socket.terminate();
        continue;
      }
      conn.alive = false;
      conn.lastPingAt = now;
      conn.socket.ping();
    }
  }

  /** The data behind /stats.json; `withIds` false leaves the swarm ids out (the public form). */
  stats(withIds = true): TrackerStats {
    const swarms = [...this.swarms.values()]
      .sort((a, b) => b.size - a.size)
      .slice(0, MAX_STATS_SWARMS)
      .map((s) => {
        const line = swarmStats(s.infoHash, this.totalsOf(s));
        if (!withIds) delete line.infoHash;
        return line;
      });
    return {
      instanceId: this.instanceId,
      transport: this.transport.name,
      scope: 'instance',
      uptimeSec: this.uptimeSec(),
      connections: this.connections.size,
      peers: this.peerCount,
      swarmCount: this.swarms.size,
      announcesTotal: this.metrics.announces,
      announcesPerSecond: this.metrics.announcesPerSecond(),
      offersRelayed: this.metrics.offersRelayed,
      answersRelayed: this.metrics.answersRelayed,
      rejections: Object.fromEntries(this.metrics.rejections),
      swarms,
    };
  }

  /** Stats of one swarm (cluster-wide when a cluster is configured). */
  async swarmStats(infoHash: string): Promise<SwarmStats> {
    const local = this.totalsOf(this.swarms.get(infoHash));
    if (!this.cluster) return swarmStats(infoHash, local);
    const [shared] = await this.cluster.totals([infoHash]).catch(() => [local]);
    return swarmStats(infoHash, shared ?? local);
  }

  uptimeSec(): number {
    return Math.round((this.options.now() - this.startedAt) / 1000);
  }

  gauges(): { connections: number; peers: number; swarms: number } {
    return { connections: this.connections.size, peers: this.peerCount, swarms: this.swarms.size };
  }

  get isClosing(): boolean {
    return this.closing !== undefined;
  }

  /** Graceful shutdown: stop accepting, close sockets with a reason, flush shared state. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.log.log({ level: 'info', event: 'tracker:closing', connections: this.connections.size });
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.shareTimer) clearInterval(this.shareTimer);
    this.transport.stopAccepting();
    const allClosed = new Promise<void>((resolve) => (this.onAllClosed = resolve));
    if (this.connections.size === 0) this.onAllClosed?.();
    for (const conn of [...this.connections]) conn.socket.close(CLOSE_GOING_AWAY, FAILURE_TEXT['shutting-down']);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([allClosed, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.shutdownGraceMs)))]);
    clearTimeout(timer);
    // Clients that did not answer the close frame in time; terminate() reports each close at once
    // on the native transport and soon after on the Node one.
    for (const conn of [...this.connections]) conn.socket.terminate();
    // Removes this instance's peers from the shared state before other instances time them out.
    if (this.cluster) await this.cluster.close().catch((error: unknown) => this.log.log({ level: 'error', event: 'cluster:error', message: String(error) }));
    await this.stun?.close();
    await this.admin?.close();
    await this.transport.dispose();
    this.metricsExporter?.close();
    this.log.log({ level: 'info', event: 'tracker:closed' });
  }
}

interface Target {
  local?: Member;
  remote?: ClusterPeer;
}

/**
 * Picks `wanted` offer recipients from this instance's sample and the cluster's sample: peers with
 * the same locality prefix first (all but one slot), then the rest in random order.
 */
function mergeTargets(local: Member[], remote: ClusterPeer[], instanceId: string, selfId: string, prefix: string, wanted: number): Target[] {
  const seen = new Set<string>([selfId]);
  const pool: Array<{ target: Target; prefix: string }> = [];
  for (const m of local) {
    if (seen.has(m.peerId)) continue;
    seen.add(m.peerId);
    pool.push({ target: { local: m }, prefix: m.prefix });
  }
  for (const r of remote) {
    if (r.instanceId === instanceId || seen.has(r.peerId)) continue;
    seen.add(r.peerId);
    pool.push({ target: { remote: r }, prefix: r.prefix });
  }
  for (let i = pool.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  const near = pool.filter((p) => p.prefix === prefix);
  const far = pool.filter((p) => p.prefix !== prefix);
  const nearSlots = near.length < pool.length && wanted > 1 ? wanted - 1 : wanted;
  const chosen = near.slice(0, nearSlots);
  for (const p of far) {
    if (chosen.length >= wanted) break;
    chosen.push(p);
  }
  for (const p of near.slice(nearSlots)) {
    if (chosen.length >= wanted) break;
    chosen.push(p);
  }
  return chosen.map((p) => p.target);
}
