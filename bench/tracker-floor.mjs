#!/usr/bin/env node
// The memory floor under a WebSocket tracker in Node: `node bench/tracker-floor.mjs`.
// Measures, per connected and handshaken client, the server's RSS and JS heap (after a full GC) for
// (a) a bare `ws` server that answers one frame and keeps nothing else, (b) a raw Node TCP socket
// that completed the WebSocket handshake by hand and keeps no WebSocket object at all, and (c) a
// bare uWebSockets.js server. bittorrent-tracker and peerfetch's node transport sit on (a),
// peerfetch's native transport on (c); (b) is what Node's own sockets cost without any library.
// Per connection = memory growth over a second batch of CONNECTIONS clients. Loopback only;
// bounded (2 × CONNECTIONS clients, then everything is closed).
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { loadUws } from './lib/uws.mjs';
import WebSocket, { WebSocketServer } from 'ws';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 3000);
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

if (process.argv[2] === 'server') {
  const kind = process.argv[3];
  const kept = new Set();
  if (kind === 'native') {
    const uws = loadUws();
    uws.App().ws('/*', {
      compression: uws.DISABLED,
      idleTimeout: 0,
      open: (ws) => kept.add(ws),
      message: (ws) => ws.send('{"ok":1}'),
      close: (ws) => kept.delete(ws),
    }).listen('127.0.0.1', 0, (socket) => process.send({ port: uws.us_socket_local_port(socket) }));
  }
  const server = http.createServer();
  if (kind === 'native') {
    // served above
  } else if (kind === 'ws') {
    const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false });
    server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => {
      kept.add(ws);
      ws.on('message', () => ws.send('{"ok":1}'));
    }));
  } else {
    server.on('upgrade', (req, socket) => {
      const accept = createHash('sha1').update(req.headers['sec-websocket-key'] + GUID).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      socket.setNoDelay(true);
      socket.on('error', () => {});
      kept.add(socket);
      // Answers any client frame with one unmasked text frame; parses nothing.
      socket.on('data', () => socket.write(Buffer.concat([Buffer.from([0x81, 8]), Buffer.from('{"ok":1}')])));
    });
  }
  if (kind !== 'native') server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
  process.on('message', () => {
    globalThis.gc();
    const m = process.memoryUsage();
    process.send({ rss: m.rss, heap: m.heapUsed, kept: kept.size });
  });
  process.on('disconnect', () => process.exit(0));
} else {
  for (const kind of ['ws', 'raw', 'native']) {
    const child = fork(fileURLToPath(import.meta.url), ['server', kind], { execArgv: ['--expose-gc'] });
    const { port } = await new Promise((resolve) => child.once('message', resolve));
    const memory = () => new Promise((resolve) => {
      child.once('message', resolve);
      child.send('memory');
    });
    const clients = [];
    const connect = async () => {
      for (let i = 0; i < CONNECTIONS; i += 100) {
        await Promise.all(Array.from({ length: Math.min(100, CONNECTIONS - i) }, () => new Promise((resolve, reject) => {
          const ws = new WebSocket(`ws://127.0.0.1:${port}`);
          clients.push(ws);
          ws.on('open', () => ws.send('{"hello":1}'));
          ws.once('message', resolve);
          ws.once('error', reject);
        })));
      }
    };
    // The second batch's cost: the first one also pays for start-up (lazily compiled code, heap
    // growth), which is not a per-connection cost and, for small connections, hides in the noise.
    await connect();
    const first = await memory();
    await connect();
    const second = await memory();
    const label = { ws: 'ws connection', raw: 'raw handshaken socket', native: 'uWebSockets.js connection' }[kind];
    console.log(`${label.padEnd(26)} RSS ${((second.rss - first.rss) / CONNECTIONS / 1024).toFixed(2)} KiB/connection, JS heap ${((second.heap - first.heap) / CONNECTIONS / 1024).toFixed(2)} KiB/connection (${second.kept} kept)`);
    for (const ws of clients) ws.terminate();
    child.disconnect();
  }
}
