import { trustedProxyList, type TrustedProxies } from './client-address.js';
import type { TrackerLogger } from './logger.js';
import type { MetricsRegistry } from './metrics.js';

/**
 * Options of {@link startTracker}. Every limit has a default sized for one public instance on a
 * small machine; each field says its unit and why its default is what it is.
 */
export interface TrackerOptions {
  /** TCP port for WebSocket and HTTP. Default 8000; 0 picks any free port. */
  port?: number;
  /** Address to bind. Default '127.0.0.1' (put a TLS-terminating proxy in front for the internet). */
  host?: string;
  /**
   * UDP port of the STUN service (RFC 8489 Binding), bound on `host`: pages learn their public
   * address from it, so visitors behind ordinary NATs connect with no third-party STUN server.
   * Default 3478 (the registered STUN port); when `port` is 0, any free port, so that several
   * trackers can run on one machine. 0 turns STUN off.
   */
  stunPort?: number;
  /**
   * Address the STUN service binds. Default: `host`. Set it when the tracker listens on loopback
   * behind a TLS proxy: STUN is UDP and reaches the tracker directly, at the tracker's host name.
   */
  stunHost?: string;
  /**
   * TURN server URLs handed to pages with short-lived credentials, e.g.
   * `turn:turn.example:3478?transport=udp`. Needs `turnSecret`. Default: none (no TURN).
   */
  turnUrls?: string[];
  /** The TURN server's shared secret (coturn `static-auth-secret`, with `use-auth-secret`). */
  turnSecret?: string;
  /**
   * Lifetime of a TURN credential, in seconds. Default 21 600 (6 h): coturn checks it on every
   * allocation refresh, so it must outlast a viewing session's connections, and a copied
   * credential is worthless after it. Pages get fresh ones from the tracker long before it ends.
   */
  turnTtlSec?: number;
  /**
   * A second port for the operator's routes: /stats.json with every swarm id, and /metrics (then no
   * longer served on the public port). Default: none. 0 picks any free port.
   */
  adminPort?: number;
  /** Address the admin port binds to. Default '127.0.0.1': keep it off the internet. */
  adminHost?: string;
  /**
   * A token that unlocks the operator's routes on the public port (`Authorization: Bearer TOKEN`):
   * /metrics then needs it (401 without), and /stats.json lists swarm ids only with it. Default: none.
   */
  adminToken?: string;
  /** `redis://HOST:PORT`: share swarms with other instances through Redis. Default: none (one instance). */
  redisUrl?: string;
  /** Prefix of every Redis key and channel, so several trackers can share one Redis. Default 'peerfetch:'. */
  redisKeyPrefix?: string;
  /** How often an instance marks itself alive in Redis, in ms. Default 2000. */
  redisHeartbeatMs?: number;
  /**
   * An instance without a heartbeat for this long is dead and its peers leave the shared state, in
   * ms. Default 10 000: five missed heartbeats, so a GC pause or a slow Redis never kills a live one.
   */
  redisInstanceTtlMs?: number;
  /**
   * When Redis cannot be reached at start: false (default) makes startTracker reject, so the
   * process exits non-zero and a supervisor restarts it; true runs this instance alone meanwhile and
   * joins the cluster (with its peers) as soon as Redis answers. Either way, an outage after start
   * falls back to this instance's own peers and heals when Redis is back.
   */
  redisOptional?: boolean;
  /**
   * Allowed values of the WebSocket `Origin` header (for example `https://video.example`). When set,
   * a connection from any other origin, or without one, is closed with code 1008. Default: any.
   */
  allowOrigins?: string[];
  /** Allowed swarm ids (info_hash, 40 hex characters). When set, announces for others fail. Default: any. */
  allowSwarms?: string[];
  /**
   * Take the client IP from `X-Forwarded-For`, trusting the immediate peer as the one proxy in
   * front: the right-most entry (the one that proxy appended) is the client. Entries to its left are
   * the client's own words and are never used. Default false.
   */
  trustProxy?: boolean;
  /**
   * Addresses and CIDR subnets of your proxies (`10.0.0.0/8`, `fd00::/8`). Implies trustProxy, but
   * only for connections from these addresses; the client is the right-most `X-Forwarded-For` entry
   * that is not on the list, so a chain of proxies (CDN, then load balancer) is walked back to the
   * client. Default: none.
   */
  trustedProxies?: string[];
  /** Announce interval told to clients, in seconds, 15 to 600. Default 120, the WebSocket interval of bittorrent-tracker. */
  announceIntervalSec?: number;
  /**
   * A peer that has not announced for this long leaves its swarm, in ms. Default: two missed
   * announces plus 30 s of grace (2 × interval + 30 s), so one lost announce never drops a peer.
   */
  peerTimeoutMs?: number;
  /** A connection with no message for this long is closed, in ms. Default: same as peerTimeoutMs. */
  idleTimeoutMs?: number;
  /** How often expiry, idle and heartbeat checks run, in ms. Default 10 000 (cost: one pass over connections). */
  sweepIntervalMs?: number;
  /**
   * WebSocket ping interval, in ms; a connection that has not answered the previous ping is closed
   * as dead. Default 30 000: under the 60 s idle timeout of common proxies (nginx
   * proxy_read_timeout), which would otherwise cut connections between two 120 s announces.
   */
  heartbeatIntervalMs?: number;
  /**
   * Largest accepted WebSocket frame, in bytes. Default 64 KiB: an announce with ten complete
   * (non-trickle) SDP offers and the peerfetch counters measures 10–30 KiB.
   */
  maxFrameBytes?: number;
  /** Offers relayed per announce (extra ones are ignored). Default 10, twice what webtorrent sends. */
  maxOffersPerAnnounce?: number;
  /** Peers in one swarm; announces beyond it fail with 'swarm is full'. Default 5000. */
  maxPeersPerSwarm?: number;
  /** Swarms on one instance; announces creating more fail. Default 100 000 (≈ 20 MB of empty swarms). */
  maxSwarms?: number;
  /** Peers (swarm memberships) one connection may hold: webtorrent shares one socket between all torrents of a page. Default 64. */
  maxSwarmsPerConnection?: number;
  /**
   * Peer ids one connection may hold in one swarm. Default 2: webtorrent shares one socket between
   * the clients of a page, and a page rarely runs two clients of one torrent; more ids from one
   * socket only serve to take a bigger share of the swarm's offers (an eclipse).
   */
  maxPeersPerSwarmPerConnection?: number;
  /**
   * Peers one address (an IPv4 address or an IPv6 /64) may hold in one swarm, over all its
   * connections. Default 32: a household or an office behind one NAT watching the same page fits;
   * one host cannot fill a swarm or take most of its offers (with 32 honest peers it gets at most
   * half of the offers, and less as the swarm grows). Raise it for carrier-grade NATs.
   */
  maxPeersPerSwarmPerIp?: number;
  /**
   * Open WebSocket connections on one instance. Default 50 000: about 150 MB of tracker memory on
   * the native transport and 600 MB on the node one (per-peer figures in BENCHMARKS.md), plus up to
   * maxFrameBytes for each client in the middle of sending a frame.
   */
  maxConnections?: number;
  /** Open connections from one IP address, over all instances sharing Redis. Default 64: a whole office behind one NAT still fits. */
  maxConnectionsPerIp?: number;
  /**
   * Messages one connection may send per rate window. Default 100 per 10 s: a peer answering the
   * offers of a flash crowd answers about ten per new neighbour per interval, far below this.
   */
  maxMessagesPerWindow?: number;
  /**
   * Messages one address (IPv4 address or IPv6 /64) may send per rate window over all its
   * connections, counted across reconnects and over all instances sharing Redis: a client cannot
   * reset its budget by reconnecting, nor multiply it by reaching several instances. A token
   * bucket: this many at once, refilled over rateWindowMs. Default 1000 per 10 s: ten busy
   * browsers behind one NAT at their per-connection limit.
   */
  maxMessagesPerWindowPerIp?: number;
  /**
   * Most a peer's reported byte counters (the `peerfetch` field of announces, summed into the
   * swarm figures of /stats.json) may grow per second, in bytes. The tracker cannot check them, so
   * growth beyond what a page could move is ignored. Default 12 500 000 (100 Mbit/s).
   */
  maxReportBytesPerSec?: number;
  /**
   * Largest share of a swarm's byte figures one address (IPv4 address or IPv6 /64) may make up, 0-1,
   * once the swarm has more than 1 / share addresses: one client cannot set a swarm's offload figure.
   * Default 0.25.
   */
  maxReportShare?: number;
  /** Length of the rate window, in ms. Default 10 000. */
  rateWindowMs?: number;
  /**
   * Bytes queued to a slow client before messages to it are dropped, in bytes. Default 1 MiB
   * (about 100 relayed offers): keeps memory bounded when a client stops reading.
   */
  maxBufferedBytes?: number;
  /** Time given to clients to receive the close frame on shutdown, in ms. Default 2000. */
  shutdownGraceMs?: number;
  /**
   * The network layer. 'native' = uWebSockets.js (install `@btc-vision/uwebsockets.js`, or on Node 20 with glibc < 2.38 `@trufflesuite/uws-js-unofficial`; docs/native-transport.md): under
   * 1 KiB per connection and a third fewer CPU microseconds per announce; 'node' = `ws` on Node's
   * sockets (about 9 KiB per connection), runs wherever Node runs. Default 'auto': native when its
   * binary loads on this platform and Node version, else node (with a warning in the log).
   * BENCHMARKS.md ("Tracker") has the measurements.
   */
  transport?: 'auto' | 'native' | 'node';
  /** Structured log sink. Default: silent. The CLI logs JSON lines to stderr. */
  logger?: TrackerLogger;
  /**
   * A prom-client `Registry` of the embedding application: the tracker's `peerfetch_tracker_*`
   * series are registered in it (and taken out again by `close()`), and /metrics serves the whole
   * registry. The tracker then adds no process metrics: call prom-client's `collectDefaultMetrics`
   * on it if you want them. Default: a registry of the tracker's own, served with the process
   * metrics (CPU, memory, GC, event-loop lag).
   *
   * @example
   * import { Registry, collectDefaultMetrics } from 'prom-client';
   * const registry = new Registry();
   * collectDefaultMetrics({ register: registry });
   * const tracker = await startTracker({ port: 8000, metricsRegistry: registry });
   * // registry.metrics() now includes peerfetch_tracker_announces_total and the others.
   */
  metricsRegistry?: MetricsRegistry;
  /** Clock in ms (tests inject one). Default Date.now. */
  now?: () => number;
}

/** Options with every default applied. */
export type ResolvedTrackerOptions = Required<Omit<TrackerOptions, 'adminPort' | 'adminToken' | 'redisUrl' | 'allowOrigins' | 'allowSwarms' | 'stunPort' | 'turnSecret' | 'trustedProxies' | 'metricsRegistry'>> & {
  metricsRegistry: MetricsRegistry | undefined;
  /** UDP port to bind STUN on (0 = any free port), or undefined when STUN is off. */
  stunPort: number | undefined;
  turnSecret: string | undefined;
  redisUrl: string | undefined;
  adminPort: number | undefined;
  adminToken: string | undefined;
  /** Who may set the client address through X-Forwarded-For (see clientAddress). */
  trustedProxies: TrustedProxies;
  allowOrigins: Set<string> | undefined;
  allowSwarms: Set<string> | undefined;
};

/** The registered STUN port (RFC 8489); a browser's `stun:host` URL without a port means it. */
export const DEFAULT_STUN_PORT = 3478;

/**
 * Bounds of the announce interval, in seconds, the same that peerfetch pages accept from any
 * tracker (src/engine/tracker-client.ts): under 15 s every page would announce, with fresh WebRTC
 * offers, several times a minute; over 10 minutes a page would meet no new peer for that long.
 */
const MIN_ANNOUNCE_INTERVAL_SEC = 15;
const MAX_ANNOUNCE_INTERVAL_SEC = 600;

const silentLogger: TrackerLogger = { log: () => {} };

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`tracker option ${name} must be a positive number`);
  return value;
}

function optionalPort(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new RangeError(`tracker option ${name} must be 0-65535`);
  return value;
}

/** An admin token shorter than this many characters is refused: it would be guessable (16 random characters ≈ 95 bits). */
const MIN_ADMIN_TOKEN_LENGTH = 16;

function adminToken(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value.length < MIN_ADMIN_TOKEN_LENGTH || /\s/.test(value)) throw new RangeError(`tracker option adminToken must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters, without spaces`);
  return value;
}

function share(value: number | undefined): number {
  if (value === undefined) return 0.25;
  if (!Number.isFinite(value) || value <= 0 || value > 1) throw new RangeError('tracker option maxReportShare must be a number in (0, 1]');
  return value;
}

function transportOption(value: TrackerOptions['transport']): 'auto' | 'native' | 'node' {
  if (value === undefined) return 'auto';
  if (value !== 'auto' && value !== 'native' && value !== 'node') throw new RangeError(`tracker option transport must be auto, native or node, got ${String(value)}`);
  return value;
}

/** Normalises an origin the way browsers send it: scheme://host[:port], lower case, no trailing slash. */
export function normaliseOrigin(origin: string): string {
  return origin.trim().replace(/\/+$/, '').toLowerCase();
}

/** Applies the defaults documented on {@link TrackerOptions}; throws RangeError on nonsense values. */
export function resolveOptions(options: TrackerOptions = {}): ResolvedTrackerOptions {
  const announceIntervalSec = positive('announceIntervalSec', options.announceIntervalSec, 120);
  if (announceIntervalSec < MIN_ANNOUNCE_INTERVAL_SEC || announceIntervalSec > MAX_ANNOUNCE_INTERVAL_SEC) {
    throw new RangeError(`tracker option announceIntervalSec must be ${MIN_ANNOUNCE_INTERVAL_SEC}-${MAX_ANNOUNCE_INTERVAL_SEC} seconds, got ${announceIntervalSec}`);
  }
  const peerTimeoutMs = positive('peerTimeoutMs', options.peerTimeoutMs, 2 * announceIntervalSec * 1000 + 30_000);
  const port = options.port ?? 8000;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError('tracker option port must be 0-65535');
  const stunPort = options.stunPort ?? (port === 0 ? 0 : DEFAULT_STUN_PORT);
  if (!Number.isInteger(stunPort) || stunPort < 0 || stunPort > 65535) throw new RangeError('tracker option stunPort must be 0-65535');
  const turnUrls = options.turnUrls ?? [];
  const badTurnUrl = turnUrls.find((url) => !/^turns?:[^\s]+$/i.test(url));
  if (badTurnUrl !== undefined) throw new RangeError(`tracker option turnUrls: ${JSON.stringify(badTurnUrl)} is not a turn: or turns: URL`);
  if (turnUrls.length > 0 && !options.turnSecret) throw new RangeError('tracker option turnUrls needs turnSecret (the TURN server\'s static-auth-secret)');
  return {
    port,
    host: options.host ?? '127.0.0.1',
    stunPort: options.stunPort === 0 ? undefined : stunPort,
    stunHost: options.stunHost ?? options.host ?? '127.0.0.1',
    turnUrls,
    turnSecret: turnUrls.length > 0 ? options.turnSecret : undefined,
    turnTtlSec: positive('turnTtlSec', options.turnTtlSec, 21_600),
    redisUrl: options.redisUrl,
    adminPort: optionalPort('adminPort', options.adminPort),
    adminHost: options.adminHost ?? '127.0.0.1',
    adminToken: adminToken(options.adminToken),
    redisKeyPrefix: options.redisKeyPrefix ?? 'peerfetch:',
    redisOptional: options.redisOptional ?? false,
    redisHeartbeatMs: positive('redisHeartbeatMs', options.redisHeartbeatMs, 2000),
    redisInstanceTtlMs: positive('redisInstanceTtlMs', options.redisInstanceTtlMs, 10_000),
    allowOrigins: options.allowOrigins?.length ? new Set(options.allowOrigins.map(normaliseOrigin)) : undefined,
    allowSwarms: options.allowSwarms?.length ? new Set(options.allowSwarms.map((s) => s.toLowerCase())) : undefined,
    trustProxy: options.trustProxy ?? false,
    trustedProxies: options.trustedProxies?.length ? trustedProxyList(options.trustedProxies) : options.trustProxy ? 'any' : undefined,
    announceIntervalSec,
    peerTimeoutMs,
    idleTimeoutMs: positive('idleTimeoutMs', options.idleTimeoutMs, peerTimeoutMs),
    sweepIntervalMs: positive('sweepIntervalMs', options.sweepIntervalMs, 10_000),
    heartbeatIntervalMs: positive('heartbeatIntervalMs', options.heartbeatIntervalMs, 30_000),
    maxFrameBytes: positive('maxFrameBytes', options.maxFrameBytes, 64 * 1024),
    maxOffersPerAnnounce: positive('maxOffersPerAnnounce', options.maxOffersPerAnnounce, 10),
    maxPeersPerSwarm: positive('maxPeersPerSwarm', options.maxPeersPerSwarm, 5000),
    maxSwarms: positive('maxSwarms', options.maxSwarms, 100_000),
    maxSwarmsPerConnection: positive('maxSwarmsPerConnection', options.maxSwarmsPerConnection, 64),
    maxPeersPerSwarmPerConnection: positive('maxPeersPerSwarmPerConnection', options.maxPeersPerSwarmPerConnection, 2),
    maxPeersPerSwarmPerIp: positive('maxPeersPerSwarmPerIp', options.maxPeersPerSwarmPerIp, 32),
    maxConnections: positive('maxConnections', options.maxConnections, 50_000),
    maxConnectionsPerIp: positive('maxConnectionsPerIp', options.maxConnectionsPerIp, 64),
    maxMessagesPerWindow: positive('maxMessagesPerWindow', options.maxMessagesPerWindow, 100),
    maxMessagesPerWindowPerIp: positive('maxMessagesPerWindowPerIp', options.maxMessagesPerWindowPerIp, 1000),
    maxReportBytesPerSec: positive('maxReportBytesPerSec', options.maxReportBytesPerSec, 12_500_000),
    maxReportShare: share(options.maxReportShare),
    rateWindowMs: positive('rateWindowMs', options.rateWindowMs, 10_000),
    maxBufferedBytes: positive('maxBufferedBytes', options.maxBufferedBytes, 1024 * 1024),
    shutdownGraceMs: positive('shutdownGraceMs', options.shutdownGraceMs, 2000),
    transport: transportOption(options.transport),
    logger: options.logger ?? silentLogger,
    metricsRegistry: options.metricsRegistry,
    now: options.now ?? Date.now,
  };
}
