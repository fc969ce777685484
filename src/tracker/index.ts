import { TrackerServer, type RunningTracker } from './tracker-server.js';
import type { TrackerOptions } from './options.js';

export type { TrackerOptions } from './options.js';
export type { RunningTracker, TrackerStats, SwarmStats } from './tracker-server.js';
export type { TrackerLogger, LogEntry, LogLevel } from './logger.js';
export { createJsonLogger } from './logger.js';
export { loadNativeServer, NATIVE_PACKAGES, type NativeServer } from './native-transport.js';

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
  if (server.options.redisUrl) {
    // Loaded only when asked for, so a single-instance tracker never loads the Redis client.
    const { connectRedisCluster } = await import('./redis-cluster.js').catch((error: NodeJS.ErrnoException) => {
      // ioredis is an optional peer dependency: only scaled-out trackers install it.
      if (error.code === 'ERR_MODULE_NOT_FOUND' && /ioredis/.test(error.message)) {
        throw new Error('scale-out on Redis needs the ioredis package, which is not installed: npm install ioredis');
      }
      throw error;
    });
    const cluster = await connectRedisCluster(server.options, (infoHash, toPeerId, frame) => server.deliver(infoHash, toPeerId, frame));
    server.cluster = cluster;
    server.instanceId = cluster.instanceId;
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
    transport: server.transport.name,
    close: () => server.close(),
    stats: () => server.stats(),
  };
}
