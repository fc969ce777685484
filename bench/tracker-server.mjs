// One tracker under test, in its own process: `node --expose-gc bench/tracker-server.mjs <system> <module>`,
// system = bittorrent-tracker | peerfetch (native transport) | peerfetch-node (node transport).
// Prints {"port":N} once listening; answers IPC {type:'memory'} with its memory after a full GC.
import { readFileSync } from 'node:fs';

const [system, modulePath] = process.argv.slice(2);

async function start() {
  if (system === 'bittorrent-tracker') {
    const { default: Server } = await import('bittorrent-tracker/server');
    const server = new Server({ udp: false, http: false, ws: true, stats: false });
    server.on('warning', () => {});
    server.on('error', () => {});
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    return server.ws.address().port;
  }
  const { startTracker } = await import(modulePath);
  // Limits raised so the load generator (one IP, thousands of sockets, hundreds of announces per
  // second per socket) is measured, not throttled; every check still runs on every frame.
  const tracker = await startTracker({
    port: 0,
    transport: system === 'peerfetch-node' ? 'node' : 'native',
    maxConnectionsPerIp: 1_000_000,
    maxConnections: 1_000_000,
    maxMessagesPerWindow: 1_000_000_000,
    maxPeersPerSwarm: 1_000_000,
  });
  return tracker.port;
}

const port = await start();
process.on('message', (message) => {
  if (message?.type !== 'memory') return;
  globalThis.gc?.();
  const m = process.memoryUsage();
  const cpu = process.cpuUsage();
  // Write syscalls so far (Linux /proc/self/io): one per frame sent unless writes are coalesced.
  let writes = NaN;
  try {
    writes = Number(/^syscw: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))?.[1]);
  } catch {}
  process.send({ type: 'memory', rss: m.rss, heapUsed: m.heapUsed, external: m.external, cpuMicros: cpu.user + cpu.system, writes });
});
process.on('disconnect', () => process.exit(0));
process.stdout.write(`${JSON.stringify({ port })}\n`);
