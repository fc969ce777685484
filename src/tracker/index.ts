import { TrackerServer, type RunningTracker } from './tracker-server.js';
import type { TrackerOptions } from './options.js';

export type { TrackerOptions } from './options.js';
export type { RunningTracker, TrackerStats, SwarmStats } from './tracker-server.js';
export type { TrackerLogger, LogEntry, LogLevel } from './logger.js';
export type { MetricsRegistry } from './metrics.js';
export { createJsonLogger } from './logger.js';
export { loadNativeServer, NATIVE_PACKAGES, type NativeServer } from './native-package.js';

/** How often a tracker running alone under redisOptional tries to reach Redis again (ms): a supervisor's usual restart pace. */
const REDIS_JOIN_RETRY_MS = 5000;

/**
 * Starts a peerfetch tracker: a WebTorrent WebSocket tracker with abuse limits, locality-aware peer
 * selection, /health, /stats.json and /metrics on the same port, and optional scale-out on Redis.
 *
 * @example
 * const tracker = await startTracker({ port: 0 });
 * console.log(tracker.url); // ws://127.0.0.1:PORT
 * await tracker.close();
 */
export async function startTracker(options: TrackerOptions = {}): Promise<RunningTracker> {
  const server = new TrackerServer(options);
  let stopJoining = (): void => {};
  if (server.options.redisUrl) {
    const url = server.options.redisUrl;
    // Loaded only when asked for, so a single-instance tracker never loads the Redis client.
    const { connectRedisCluster } = await import('./redis-cluster.js').catch((error: NodeJS.ErrnoException) => {
      // ioredis is an optional peer dependency: only scaled-out trackers install it.
      if (error.code === 'ERR_MODULE_NOT_FOUND' && /ioredis/.test(error.message)) {
        throw new Error('scale-out on Redis needs the ioredis package, which is not installed: npm install ioredis');
      }
      throw error;
    });
    const join = async (): Promise<void> => {
      const cluster = await connectRedisCluster({ ...server.options, logger: server.log }, server);
      if (server.isClosing) {
        await cluster.close();
        return;
      }
      server.cluster = cluster;
      server.instanceId = cluster.instanceId;
    };
    try {
      await join();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (!server.options.redisOptional) {
        throw new Error(`cannot reach Redis at ${url} (${reason}); the tracker shares its swarms through it. Start Redis, or pass --redis-optional (redisOptional) to run this instance alone until Redis answers`);
      }
      server.log.log({ level: 'warn', event: 'cluster:unavailable', message: `cannot reach Redis at ${url} (${reason}): running alone, retrying every ${REDIS_JOIN_RETRY_MS / 1000} s` });
      let joining = false;
      const timer = setInterval(() => {
        if (server.isClosing) return clearInterval(timer);
        if (joining) return;
        joining = true;
        join().then(
          () => clearInterval(timer),
          () => (joining = false),
        );
      }, REDIS_JOIN_RETRY_MS);
      timer.unref();
      stopJoining = () => clearInterval(timer);
    }
  }
  let port: number;
  try {
    port = await server.listen();
  } catch (error) {
    await server.cluster?.close().catch(() => {});
    throw error;
  }
  const host = server.options.host.includes(':') ? `[${server.options.host}]` : server.options.host;
  server.options.logger.log({ level: 'info', event: 'tracker:listening', url: `ws://${host}:${port}`, stunPort: server.stun?.port, turn: server.options.turnUrls.length > 0, instanceId: server.instanceId, transport: server.transport.name });
  return {
    url: `ws://${host}:${port}`,
    httpUrl: `http://${host}:${port}`,
    port,
    stunPort: server.stun?.port,
    adminUrl: server.admin ? `http://${server.options.adminHost.includes(':') ? `[${server.options.adminHost}]` : server.options.adminHost}:${server.admin.port}` : undefined,
    transport: server.transport.name,
    close: () => {
      stopJoining();
      return server.close();
    },
    stats: () => server.stats(),
  };
}
