// One tracker under test, in its own process: `node --expose-gc bench/tracker-server.mjs <system> <module> <load json>`,
// system = bittorrent-tracker | peerfetch (native transport) | peerfetch-node (node transport) | floor.
// Prints {"port":N} once listening; answers IPC {type:'memory'} with its memory after a full GC.
import { readFileSync } from 'node:fs';
import { binaryId, sampleSdp } from './lib/tracker-frames.mjs';
import { loadUws } from './lib/uws.mjs';

const [system, modulePath, loadJson] = process.argv.slice(2);

async function start() {
  if (system === 'bittorrent-tracker') {
    const { default: Server } = await import('bittorrent-tracker/server');
    const server = new Server({ udp: false, http: false, ws: true, stats: false });
    server.on('warning', () => {});
    server.on('error', () => {});
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    return server.ws.address().port;
  }
  if (system === 'floor') return startFloor(JSON.parse(loadJson));
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
    maxPeersPerSwarmPerIp: 1_000_000,
    maxMessagesPerWindowPerIp: 1_000_000_000,
  });
  return tracker.port;
}

/**
 * Not a tracker: what any tracker on uWebSockets.js pays per announce before doing tracker work. It
 * reads each frame, parses nothing, and writes the frames a tracker writes for it, of the same
 * sizes: the reply, and (for an announce with offers) one offer frame to each of `offers` random
 * peers. Every tracker's CPU per announce is this plus its own work.
 */
function startFloor({ offers, sdpBytes }) {
  const uws = loadUws();
  const infoHash = binaryId();
  const reply = JSON.stringify({ action: 'announce', interval: 120, info_hash: infoHash, complete: 0, incomplete: 100 });
  const offer = JSON.stringify({ action: 'announce', offer: { type: 'offer', sdp: sampleSdp(sdpBytes) }, offer_id: binaryId(), peer_id: binaryId(), info_hash: infoHash });
  const peers = [];
  return new Promise((resolve) => {
    uws.App().ws('/*', {
      compression: uws.DISABLED,
      idleTimeout: 0,
      maxPayloadLength: 1024 * 1024,
      open: (ws) => peers.push(ws),
      message: (ws, message) => {
        ws.send(reply, false);
        // The generator's first announce of each peer carries no offers and is a few hundred bytes.
        if (message.byteLength < sdpBytes) return;
        for (let k = 0; k < offers; k++) peers[Math.floor(Math.random() * peers.length)].send(offer, false);
      },
    }).listen('127.0.0.1', 0, (socket) => resolve(uws.us_socket_local_port(socket)));
  });
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
