import { parseArgs } from 'node:util';
import { flagsFromEnv, joinNegativeValues } from '../shared/command-line.js';
import { PeerfetchError } from '../shared/errors.js';
import { trustedProxyList } from './client-address.js';
import { createJsonLogger, type LogLevel } from './logger.js';
import { resolveOptions, type TrackerOptions } from './options.js';
import { startTracker } from './index.js';

export const TRACKER_USAGE = `Usage: peerfetch tracker [options]

Every option may also be set by its environment variable (flags win): --max-connections is
PEERFETCH_MAX_CONNECTIONS; repeatable options take a comma-separated list; switches 1 or 0.

  --port N                     TCP port (default 8000; 0 = any free port)
  --host ADDR                  address to bind (default 127.0.0.1)
  --stun-port N                UDP port of the built-in STUN service, on --host (default 3478;
                               with --port 0 any free port; 0 = off)
  --stun-host ADDR             address the STUN service binds (default: --host); e.g. 0.0.0.0
                               when the tracker itself listens on 127.0.0.1 behind a TLS proxy
  --turn-url URL               TURN server handed to pages, e.g. turn:turn.example:3478?transport=udp
                               (repeatable; needs --turn-secret)
  --turn-secret SECRET         the TURN server's static-auth-secret (coturn use-auth-secret); better
                               given as env PEERFETCH_TURN_SECRET, which ps does not show
  --turn-ttl SEC               lifetime of the TURN credentials pages get (default 21600)
  --admin-port N               serve /stats.json with swarm ids and /metrics on this port only
  --admin-host ADDR            address of the admin port (default 127.0.0.1)
  --admin-token TOKEN          Authorization: Bearer TOKEN unlocks /metrics and swarm ids on
                               the public port (16+ characters); or env PEERFETCH_ADMIN_TOKEN
  --redis redis://HOST:PORT    share swarms with other instances through Redis; exits non-zero
                               when Redis cannot be reached at start
  --redis-optional             Redis unreachable at start: run alone, join once it answers
  --allow-origin URL           allowed page origin (repeatable; default: any)
  --allow-swarm HEX            allowed info_hash, 40 hex chars (repeatable; default: any)
  --trust-proxy                client IP from X-Forwarded-For: its right-most entry, the one
                               your proxy appended (only behind your own proxy)
  --trusted-proxy ADDR[/BITS]  a proxy address or subnet (repeatable); the client IP is then the
                               right-most X-Forwarded-For entry not on the list
  --interval SEC               announce interval told to clients, 15-600 (default 120)
  --peer-timeout-ms MS         drop peers silent this long (default 2 x interval + 30 s)
  --idle-timeout-ms MS         close connections silent this long (default: peer timeout)
  --max-frame-bytes N          largest WebSocket frame (default 65536)
  --max-offers N               offers relayed per announce (default 10)
  --max-peers-per-swarm N      (default 5000)
  --max-swarms N               (default 100000)
  --max-connections N          (default 50000)
  --max-connections-per-ip N   (default 64; an IPv6 /64 counts as one address; over all
                               instances sharing --redis)
  --max-peers-per-swarm-per-connection N  peer ids one connection holds in a swarm (default 2)
  --max-peers-per-swarm-per-ip N          peers one address holds in a swarm (default 32)
  --max-messages-per-window N  messages per connection per rate window (default 100)
  --max-messages-per-window-per-ip N  per address, over reconnects and over all instances
                               sharing --redis (default 1000)
  --rate-window-ms MS          (default 10000)
  --max-report-bytes-per-sec N growth of a peer's reported byte counters counted per second
                               (default 12500000); swarm byte figures are estimates
  --max-report-share F         largest share of a swarm's byte figures from one address, 0-1
                               (default 0.25)
  --heartbeat-ms MS            WebSocket ping interval; unanswered ping = dead (default 30000)
  --redis-heartbeat-ms MS      how often this instance marks itself alive in Redis (default 2000)
  --redis-instance-ttl-ms MS   an instance silent this long is dead, its peers leave (default 10000)
  --transport KIND             auto | native (uWebSockets.js) | node (ws) (default auto:
                               native when a uWebSockets.js package loads, README)
  --log-level LEVEL            debug | info | warn | error (default info; JSON lines on stderr)
`;

const NUMERIC_FLAGS = {
  'stun-port': 'stunPort',
  'turn-ttl': 'turnTtlSec',
  interval: 'announceIntervalSec',
  'peer-timeout-ms': 'peerTimeoutMs',
  'idle-timeout-ms': 'idleTimeoutMs',
  'max-frame-bytes': 'maxFrameBytes',
  'max-offers': 'maxOffersPerAnnounce',
  'max-peers-per-swarm': 'maxPeersPerSwarm',
  'max-swarms': 'maxSwarms',
  'max-connections': 'maxConnections',
  'max-connections-per-ip': 'maxConnectionsPerIp',
  'max-peers-per-swarm-per-connection': 'maxPeersPerSwarmPerConnection',
  'max-peers-per-swarm-per-ip': 'maxPeersPerSwarmPerIp',
  'max-messages-per-window': 'maxMessagesPerWindow',
  'max-messages-per-window-per-ip': 'maxMessagesPerWindowPerIp',
  'rate-window-ms': 'rateWindowMs',
  'heartbeat-ms': 'heartbeatIntervalMs',
  'redis-heartbeat-ms': 'redisHeartbeatMs',
  'redis-instance-ttl-ms': 'redisInstanceTtlMs',
  'max-report-bytes-per-sec': 'maxReportBytesPerSec',
  'max-report-share': 'maxReportShare',
} as const satisfies Record<string, keyof TrackerOptions>;

/** Numeric flags that take a fraction; all others take whole numbers. */
const FRACTION_FLAGS = new Set(['max-report-share']);

/** The options of `peerfetch tracker`; each may also come from its PEERFETCH_* environment variable. */
const TRACKER_OPTIONS = {
  port: { type: 'string' },
  host: { type: 'string' },
  redis: { type: 'string' },
  'allow-origin': { type: 'string', multiple: true },
  'turn-url': { type: 'string', multiple: true },
  'turn-secret': { type: 'string' },
  'stun-host': { type: 'string' },
  'allow-swarm': { type: 'string', multiple: true },
  'trust-proxy': { type: 'boolean' },
  'redis-optional': { type: 'boolean' },
  'admin-port': { type: 'string' },
  'admin-host': { type: 'string' },
  'admin-token': { type: 'string' },
  'trusted-proxy': { type: 'string', multiple: true },
  'log-level': { type: 'string' },
  transport: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  ...Object.fromEntries(Object.keys(NUMERIC_FLAGS).map((k) => [k, { type: 'string' as const }])),
} as const;

/**
 * Parses `peerfetch tracker` arguments into tracker options (throws PeerfetchError 'option-invalid',
 * naming the flag and the values it accepts). Every option not on the command line may come from
 * `env`: `--max-connections` from PEERFETCH_MAX_CONNECTIONS, repeatable ones comma-separated,
 * switches as 1/true/yes or 0/false/no; flags win.
 */
export function parseTrackerArgs(argv: string[], env: Record<string, string | undefined> = {}): { options: TrackerOptions; logLevel: LogLevel; help: boolean } {
  const fromEnv = flagsFromEnv(env, argv, TRACKER_OPTIONS);
  try {
    return parseTrackerFlags(joinNegativeValues([...fromEnv.args, ...argv], TRACKER_OPTIONS));
  } catch (error) {
    // A bad value from the environment: name the variable as well as the flag.
    const flag = error instanceof PeerfetchError ? String(error.details.flag ?? '') : '';
    const source = fromEnv.sources[flag];
    if (source && error instanceof PeerfetchError) throw new PeerfetchError('option-invalid', `${source}: ${error.message}`, { ...error.details, env: source });
    throw error;
  }
}

function parseTrackerFlags(args: string[]): { options: TrackerOptions; logLevel: LogLevel; help: boolean } {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      // --no-trust-proxy undoes PEERFETCH_TRUST_PROXY.
      allowNegative: true,
      allowPositionals: false,
      options: TRACKER_OPTIONS,
    }));
  } catch (error) {
    throw new PeerfetchError('option-invalid', `${(error as Error).message}\n\n${TRACKER_USAGE}`, { argv: args });
  }
  const number = (flag: string, raw: unknown): number | undefined => {
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (FRACTION_FLAGS.has(flag)) {
      if (typeof raw !== 'string' || !/^\d+(\.\d+)?$/.test(raw.trim())) throw new PeerfetchError('option-invalid', `--${flag} must be a number such as 0.25, got ${String(raw)}`, { flag });
      return n;
    }
    // Every other numeric option is a count, a port or a duration in whole ms or seconds.
    if (typeof raw !== 'string' || !/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n)) {
      throw new PeerfetchError('option-invalid', `--${flag} must be a whole number (0 or more), got ${String(raw)}`, { flag });
    }
    return n;
  };
  const options: TrackerOptions = {};
  const port = number('port', values.port);
  if (port !== undefined) options.port = port;
  if (typeof values.host === 'string') options.host = values.host;
  if (typeof values['stun-host'] === 'string') options.stunHost = values['stun-host'];
  if (typeof values.redis === 'string') {
    if (!/^rediss?:\/\//.test(values.redis)) throw new PeerfetchError('option-invalid', '--redis must be a redis://HOST:PORT URL', { flag: 'redis' });
    options.redisUrl = values.redis;
  }
  const origins = values['allow-origin'];
  if (Array.isArray(origins)) {
    options.allowOrigins = origins.filter((o): o is string => typeof o === 'string');
    // Browsers send Origin as scheme://host[:port]; anything else would never match and lock every page out.
    const bad = options.allowOrigins.find((o) => !isOrigin(o));
    if (bad !== undefined) {
      throw new PeerfetchError('option-invalid', `--allow-origin must be a page origin: http(s)://host[:port] with no path, such as https://www.example.com, got ${bad}`, { flag: 'allow-origin' });
    }
  }
  const swarms = values['allow-swarm'];
  if (Array.isArray(swarms)) {
    const list = swarms.filter((s): s is string => typeof s === 'string');
    const bad = list.find((s) => !/^[0-9a-fA-F]{40}$/.test(s));
    if (bad !== undefined) throw new PeerfetchError('option-invalid', `--allow-swarm must be 40 hex characters, got ${bad}`, { flag: 'allow-swarm' });
    options.allowSwarms = list;
  }
  if (values['trust-proxy'] === true) options.trustProxy = true;
  if (values['redis-optional'] === true) options.redisOptional = true;
  const adminPort = number('admin-port', values['admin-port']);
  if (adminPort !== undefined) options.adminPort = adminPort;
  if (typeof values['admin-host'] === 'string') options.adminHost = values['admin-host'];
  const adminToken = typeof values['admin-token'] === 'string' ? values['admin-token'] : undefined;
  if (adminToken) options.adminToken = adminToken;
  const turnUrls = values['turn-url'];
  if (Array.isArray(turnUrls)) {
    const list = turnUrls.filter((u): u is string => typeof u === 'string');
    const bad = list.find((u) => !/^turns?:\S+$/i.test(u));
    if (bad !== undefined) throw new PeerfetchError('option-invalid', `--turn-url must be a turn: or turns: URL, got ${bad}`, { flag: 'turn-url' });
    options.turnUrls = list;
  }
  const turnSecret = typeof values['turn-secret'] === 'string' ? values['turn-secret'] : undefined;
  if (turnSecret) options.turnSecret = turnSecret;
  if (options.turnUrls?.length && !options.turnSecret) {
    throw new PeerfetchError('option-invalid', '--turn-url needs the TURN server\'s shared secret: --turn-secret or env PEERFETCH_TURN_SECRET', { flag: 'turn-secret' });
  }
  const proxies = values['trusted-proxy'];
  if (Array.isArray(proxies)) {
    options.trustedProxies = proxies.filter((p): p is string => typeof p === 'string');
    try {
      trustedProxyList(options.trustedProxies);
    } catch (error) {
      throw new PeerfetchError('option-invalid', `--trusted-proxy: ${(error as Error).message}`, { flag: 'trusted-proxy' });
    }
  }
  for (const [flag, key] of Object.entries(NUMERIC_FLAGS)) {
    const n = number(flag, (values as Record<string, unknown>)[flag]);
    if (n !== undefined) (options as Record<string, unknown>)[key] = n;
  }
  const transport = values.transport;
  if (transport !== undefined) {
    if (transport !== 'auto' && transport !== 'native' && transport !== 'node') {
      throw new PeerfetchError('option-invalid', `--transport must be auto, native or node, got ${String(transport)}`, { flag: 'transport' });
    }
    options.transport = transport;
  }
  const level = values['log-level'] ?? 'info';
  if (level !== 'debug' && level !== 'info' && level !== 'warn' && level !== 'error') {
    throw new PeerfetchError('option-invalid', `--log-level must be debug, info, warn or error, got ${String(level)}`, { flag: 'log-level' });
  }
  // Ranges that depend on the option (ports, the announce interval, ...) are checked where the
  // options are resolved; say which flag broke one.
  try {
    resolveOptions(options);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    const match = /^tracker option (\w+)/.exec(error.message);
    const flag = Object.entries({ ...NUMERIC_FLAGS, port: 'port', host: 'host', 'turn-url': 'turnUrls', transport: 'transport' }).find(([, key]) => key === match?.[1])?.[0];
    throw new PeerfetchError('option-invalid', flag ? error.message.replace(/^tracker option \w+/, `--${flag}`) : error.message, { flag });
  }
  return { options, logLevel: level, help: values.help === true };
}

/** True for `scheme://host[:port]` exactly as a browser sends it in Origin. */
function isOrigin(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.pathname === '/' && !url.search && !url.hash && !url.username && /^https?:\/\//i.test(text);
  } catch {
    return false;
  }
}

/**
 * `peerfetch tracker ...`: starts the tracker, prints `peerfetch tracker listening on ws://HOST:PORT`
 * on stdout once listening (structured logs go to stderr), and resolves after a graceful shutdown
 * on SIGTERM or SIGINT, with exit code 0.
 *
 * @example
 * await runTrackerCommand(['--port', '8000', '--redis', 'redis://127.0.0.1:6379']);
 */
export async function runTrackerCommand(argv: string[]): Promise<void> {
  const { options, logLevel, help } = parseTrackerArgs(argv, process.env);
  if (help) {
    process.stdout.write(TRACKER_USAGE);
    return;
  }
  const logger = createJsonLogger((line) => process.stderr.write(line), logLevel);
  // Signal handlers go in before anything is printed: whoever reads the listening line may send
  // SIGTERM at once, and a signal during start-up must still mean a graceful stop.
  let onSignal: (signal: NodeJS.Signals) => void = () => {};
  const signalled = new Promise<NodeJS.Signals>((resolve) => (onSignal = resolve));
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const removeHandlers = (): void => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
  let tracker;
  try {
    tracker = await startTracker({ ...options, logger });
  } catch (error) {
    removeHandlers();
    if (error instanceof RangeError) throw new PeerfetchError('option-invalid', error.message);
    throw error;
  }
  process.stdout.write(`peerfetch tracker listening on ${tracker.url}\n`);
  const signal = await signalled;
  removeHandlers();
  logger.log({ level: 'info', event: 'tracker:signal', signal });
  await tracker.close().catch((error: unknown) => logger.log({ level: 'error', event: 'tracker:close-failed', message: String(error) }));
  process.exitCode = 0;
  // Everything is closed; should a library keep a handle open, do not hang the shutdown on it.
  setTimeout(() => process.exit(0), 1000).unref();
}
