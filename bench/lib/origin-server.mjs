#!/usr/bin/env node
// The benchmark's origin: a static file server that behaves like one CDN edge for the runs.
//
//   node bench/lib/origin-server.mjs --root DIR --rate BYTES_PER_S [--throttle /prefix/ ...] [--map /url=file ...] [--piece-size BYTES]
//                                    [--host 127.0.0.1]
//
// --throttle limits the cap to URL paths under the given prefixes (default: every path). The
// benchmark caps only the video (/media/, /hls/): that is the CDN edge under test, while pages and
// player scripts would come from a page host with its own caching and compression; capping them
// too would add the same seconds of script download to every HLS system's startup (hls.js alone
// is 0.6 MB, 1.7 s at 3 Mbit/s) and hide the differences the benchmark is after.
//
// It prints `bench origin listening on http://HOST:PORT` once it listens (--host: 127.0.0.1 by
// default, the topology's internet address in the WAN scenario). Why the benchmark
// has its own instead of `peerfetch origin`: besides the per-viewer byte counters that both keep,
// this one keeps a log of which bytes of which file it sent to whom, by piece, so the report can
// say how many copies of any piece the origin served one viewer (issue 4 item 8: "the origin
// never serves more than one copy of a piece per viewer"). Counting and throttling work like
// `peerfetch origin`: bytes count once they reached the socket, the cap is per TCP connection.
//
// GET /__bench/stats returns { byViewer: { viewer: { path: bytes } }, pieces: { viewer: { path: [bytes per piece] } },
// requests: [{ viewer, path, range, status }], sizes: { path: bytes } } (sizes: of every file served, as it was then;
// a live stream's segments are deleted once they leave its window) where viewer is the `peerfetch-viewer/<name>`
// token of the User-Agent (every request of a browser context carries it, its service worker's too).
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';

const VIEWER_PATTERN = /peerfetch-viewer\/([\w.-]+)/;
/** Bytes per write when throttled: 16 KiB, small enough that the pacing follows the cap within ~50 ms at 2–4 Mbit/s. */
const CHUNK = 16 * 1024;
/** Requests kept in the log, so a misbehaving client cannot grow memory without bound (a 60 s run makes a few hundred). */
const MAX_LOGGED_REQUESTS = 20_000;

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.mp4': 'video/mp4',
  '.ts': 'video/mp2t',
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.torrent': 'application/x-bittorrent',
  '.map': 'application/json',
};

function parseArgs(argv) {
  const options = { root: '', rate: 0, map: new Map(), pieceSize: 256 * 1024, throttle: [], host: '127.0.0.1' };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--root') options.root = value;
    else if (flag === '--rate') options.rate = Number(value);
    else if (flag === '--piece-size') options.pieceSize = Number(value);
    else if (flag === '--throttle') options.throttle.push(value);
    else if (flag === '--host') options.host = value;
    else if (flag === '--map') {
      const at = value.indexOf('=');
      options.map.set(value.slice(0, at), path.resolve(value.slice(at + 1)));
    } else throw new Error(`unknown flag ${flag}`);
  }
  if (!options.root) throw new Error('--root is required');
  return options;
}

const options = parseArgs(process.argv.slice(2));
const root = await realpath(options.root);
const byViewer = {};
const pieces = {};
const requests = [];
const sizes = {};

function account(viewer, urlPath, offset, length) {
  const paths = (byViewer[viewer] ??= {});
  paths[urlPath] = (paths[urlPath] ?? 0) + length;
  const perPiece = ((pieces[viewer] ??= {})[urlPath] ??= []);
  // Spread the bytes over the pieces they belong to (a write may straddle a boundary).
  let at = offset;
  const end = offset + length;
  while (at < end) {
    const index = Math.floor(at / options.pieceSize);
    const pieceEnd = Math.min(end, (index + 1) * options.pieceSize);
    perPiece[index] = (perPiece[index] ?? 0) + (pieceEnd - at);
    at = pieceEnd;
  }
}

async function resolveFile(urlPath) {
  const mapped = options.map.get(urlPath);
  if (mapped) return mapped;
  const segments = decodeURIComponent(urlPath).split('/').filter(Boolean);
  if (segments.some((s) => s.startsWith('.'))) return undefined;
  const candidate = path.join(root, ...segments);
  if (!candidate.startsWith(root)) return undefined;
  try {
    const info = await stat(candidate);
    return info.isDirectory() ? path.join(candidate, 'index.html') : candidate;
  } catch {
    return undefined;
  }
}

/** Parses a single `bytes=a-b` / `bytes=a-` / `bytes=-n` range; undefined for none or anything else. */
function parseRange(header, size) {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header ?? '');
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  if (match[1] === '') {
    const suffix = Math.min(Number(match[2]), size);
    return { start: size - suffix, end: size - 1 };
  }
  const start = Number(match[1]);
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start > end) return null;
  return { start, end };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Next moment (ms, performance clock) each socket may send again: the per-connection cap. */
const nextSend = new WeakMap();

async function handle(request, response) {
  response.setHeader('Access-Control-Allow-Origin', '*');
  response.setHeader('Access-Control-Expose-Headers', 'Content-Range, Content-Length, Accept-Ranges');
  response.setHeader('Service-Worker-Allowed', '/');
  const urlPath = new URL(request.url ?? '/', 'http://origin.invalid').pathname;
  if (request.method === 'OPTIONS') {
    response.statusCode = 204;
    response.setHeader('Access-Control-Allow-Methods', 'GET, HEAD, OPTIONS');
    response.setHeader('Access-Control-Allow-Headers', request.headers['access-control-request-headers'] ?? 'Range');
    response.end();
    return;
  }
  if (urlPath === '/__bench/stats') {
    response.setHeader('Content-Type', 'application/json');
    response.setHeader('Cache-Control', 'no-store');
    response.end(JSON.stringify({ byViewer, pieces, requests, sizes }));
    return;
  }
  const viewer = VIEWER_PATTERN.exec(request.headers['user-agent'] ?? '')?.[1] ?? 'anonymous';
  const file = await resolveFile(urlPath);
  const info = file ? await stat(file).catch(() => undefined) : undefined;
  if (!info?.isFile()) {
    response.statusCode = 404;
    response.end('not found\n');
    return;
  }
  const size = info.size;
  sizes[urlPath] = size;
  const type = TYPES[path.extname(file)] ?? 'application/octet-stream';
  response.setHeader('Content-Type', type);
  response.setHeader('Accept-Ranges', 'bytes');
  // Pages, scripts, playlists and manifests: no-cache like a deploy would set them, with a validator
  // as any web server and CDN sends (and `peerfetch origin`), so that a client asking again for an
  // unchanged file gets a 304 without the body; media: cacheable like a CDN.
  if (/^(text|application\/(json|vnd))/.test(type)) {
    response.setHeader('Cache-Control', 'no-cache');
    const etag = `"${size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
    response.setHeader('ETag', etag);
    if (request.headers['if-none-match'] === etag) {
      response.statusCode = 304;
      response.end();
      return;
    }
  }
  const range = parseRange(request.headers.range, size);
  if (range === null) {
    response.statusCode = 416;
    response.setHeader('Content-Range', `bytes */${size}`);
    response.end();
    return;
  }
  const { start, end } = range ?? { start: 0, end: size - 1 };
  if (range) {
    response.statusCode = 206;
    response.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
  }
  response.setHeader('Content-Length', end - start + 1);
  if (requests.length < MAX_LOGGED_REQUESTS) {
    requests.push({ viewer, path: urlPath, range: request.headers.range ?? null, status: response.statusCode, at: Date.now() });
  }
  if (request.method === 'HEAD' || size === 0) {
    response.end();
    return;
  }
  let closed = false;
  response.once('close', () => (closed = true));
  const stream = createReadStream(file, { start, end, highWaterMark: CHUNK });
  let offset = start;
  const socket = request.socket;
  const throttled = options.rate > 0 && (options.throttle.length === 0 || options.throttle.some((prefix) => urlPath.startsWith(prefix)));
  try {
    for await (const chunk of stream) {
      if (closed) return;
      if (throttled) {
        const now = performance.now();
        const next = Math.max(nextSend.get(socket) ?? now, now);
        nextSend.set(socket, next + (chunk.length / options.rate) * 1000);
        if (next > now) await sleep(next - now);
        if (closed) return;
      }
      const at = offset;
      offset += chunk.length;
      const flushed = response.write(chunk, (error) => {
        if (!error) account(viewer, urlPath, at, chunk.length);
      });
      if (!flushed) {
        await new Promise((resolve) => {
          const done = () => {
            response.off('drain', done);
            response.off('close', done);
            resolve();
          };
          response.on('drain', done);
          response.on('close', done);
        });
      }
    }
    if (!closed) response.end();
  } catch (error) {
    // A client that went away mid-response is an abort, not a server error.
    if (!closed) response.destroy(error);
  } finally {
    stream.destroy();
  }
}

const server = createServer((request, response) => {
  response.on('error', () => {});
  handle(request, response).catch((error) => {
    if (!response.headersSent) {
      response.statusCode = 500;
      response.end(String(error));
    } else response.destroy();
  });
});
server.on('clientError', (_error, socket) => socket.destroy());
server.listen(0, options.host, () => {
  process.stdout.write(`bench origin listening on http://${options.host}:${server.address().port}\n`);
});
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
