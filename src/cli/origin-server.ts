/**
 * A small static origin for the demo and the tests: Range requests, CORS for cross-origin (CDN)
 * use, an optional bandwidth cap per connection, and a counter of the body bytes it really sent,
 * per viewer and per path, so tests and the demo can measure what peerfetch saved the origin.
 */
import { pathExtension } from '../shared/media-extensions.js';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import path from 'node:path';
import { contentRange, parseRange, type ByteRange } from '../shared/range.js';
import { PAGE_EXTENSIONS, PLAYLIST_EXTENSIONS, contentTypeFor } from './content-types.js';
import { TokenBucket } from '../shared/token-bucket.js';

/** URL path of the byte counters (GET) and of their reset (POST). */
export const ORIGIN_STATS_PATH = '/__peerfetch/origin-stats';
export const ORIGIN_STATS_RESET_PATH = '/__peerfetch/origin-stats/reset';

/** A response built in memory, e.g. the demo page with its tracker URL filled in. */
export interface GeneratedPage {
  body: string | Uint8Array;
  contentType: string;
}

/** Options of {@link startOriginServer}. */
export interface OriginServerOptions {
  /** Folder served at `/`. Nothing outside it is reachable, symlinks included. */
  root: string;
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /** Address(es) to listen on, all on the same port. Default `127.0.0.1`. */
  host?: string | string[];
  /** Bandwidth cap per connection in bytes per second, like a CDN edge. Default: none. */
  bytesPerSecond?: number;
  /** Extra URL paths served from files outside `root`, e.g. `{ '/peerfetch.js': 'dist/peerfetch.js' }`. */
  files?: Record<string, string>;
  /**
   * URL path prefixes served from folders outside `root`, e.g. `{ '/media/live/': '/tmp/live' }`
   * (a live stream written into a private folder). Each prefix ends in `/`; the same rules as in
   * `root` hold inside each folder (no dotfiles, nothing outside it).
   */
  folders?: Record<string, string>;
  /** URL paths answered from memory, built per request (no Range, never cached). */
  pages?: Record<string, (request: IncomingMessage) => GeneratedPage | Promise<GeneratedPage>>;
  /**
   * A CDN's signed URLs: media files (everything but pages, scripts and playlists) are served only
   * to requests whose query carries `name=value`; others get 403. Default: no check.
   */
  requireQuery?: { name: string; value: string };
}

/** Body bytes the origin sent, as `GET /__peerfetch/origin-stats` returns them. */
export interface OriginStats {
  totalBytes: number;
  /** Per viewer: the `peerfetch-viewer/<name>` token of the User-Agent, else `anonymous`. */
  byViewer: Record<string, number>;
  /** Per URL path. */
  byPath: Record<string, number>;
  /** Per viewer, per URL path: what one visitor got of one file (its media, apart from pages and scripts). */
  byViewerPath: Record<string, Record<string, number>>;
  /** Requests answered, the stats endpoints excepted. */
  requests: number;
}

/** A running origin server. */
export interface OriginServer {
  /** `http://HOST:PORT` of the first host (127.0.0.1 when it listens on every address). */
  url: string;
  port: number;
  /** Current byte counters (a copy). */
  stats(): OriginStats;
  resetStats(): void;
  /** Stops listening and drops open connections (their responses end as aborts). Idempotent. */
  close(): Promise<void>;
}

/** User-Agent token that names a viewer in the counters; tests give each browser context its own. */
const VIEWER_PATTERN = /peerfetch-viewer\/([\w.-]+)/;
/** Read size in bytes: 64 KiB (Node's file stream default); 16 KiB when throttled, so writes follow the cap closely. */
const READ_CHUNK = 64 * 1024;
const THROTTLED_READ_CHUNK = 16 * 1024;
/** Burst of the bandwidth cap: 50 ms of the rate, kept within 4–64 KiB so slow caps still send whole packets' worth and fast ones stay smooth. */
const BURST_SECONDS = 0.05;
const MIN_BURST = 4 * 1024;
const MAX_BURST = 64 * 1024;
/** Tries at a port free on every host when listening on several with port 0 (a clash needs bad luck twice). */
const LISTEN_ATTEMPTS = 5;

function emptyStats(): OriginStats {
  return { totalBytes: 0, byViewer: {}, byPath: {}, byViewerPath: {}, requests: 0 };
}

function viewerOf(request: IncomingMessage): string {
  return VIEWER_PATTERN.exec(request.headers['user-agent'] ?? '')?.[1] ?? 'anonymous';
}

/** Headers on every response: CORS so the files can be a cross-origin CDN, and SW scope. */
function setCommonHeaders(response: ServerResponse): void {
  response.setHeader('Access-Control-Allow-Origin', '*');
  response.setHeader('Access-Control-Expose-Headers', 'Content-Range, Content-Length, Accept-Ranges, ETag');
  // A page with Cross-Origin-Embedder-Policy may still embed our media as a no-cors <video>.
  response.setHeader('Cross-Origin-Resource-Policy', 'cross-origin');
  // Lets /peerfetch-sw.js control the whole site even when it is served from a mapped path.
  response.setHeader('Service-Worker-Allowed', '/');
}

/** Page code, manifests and playlists change between deploys: revalidate them on every use. */
function isNoCache(file: string): boolean {
  const extension = pathExtension(file);
  return PAGE_EXTENSIONS.has(extension) || PLAYLIST_EXTENSIONS.has(extension);
}

function isInside(root: string, candidate: string): boolean {
  return candidate === root || candidate.startsWith(root + path.sep);
}

/**
 * Starts the origin. Resolves once it listens on every host.
 *
 * @example
 * const origin = await startOriginServer({ root: 'demo', bytesPerSecond: 500_000 });
 * await fetch(`${origin.url}/media/film.mp4`, { headers: { Range: 'bytes=0-' } });
 * origin.stats().totalBytes; // bytes of that body that reached the socket
 * await origin.close();
 */
export async function startOriginServer(options: OriginServerOptions): Promise<OriginServer> {
  const root = await realpath(options.root);
  if (!(await stat(root)).isDirectory()) throw new Error(`${options.root} is not a folder`);
  const hosts = Array.isArray(options.host) ? options.host : [options.host ?? '127.0.0.1'];
  const rate = options.bytesPerSecond && options.bytesPerSecond > 0 ? options.bytesPerSecond : undefined;
  const burst = rate ? Math.min(MAX_BURST, Math.max(MIN_BURST, Math.round(rate * BURST_SECONDS))) : 0;
  const files = new Map(Object.entries(options.files ?? {}).map(([urlPath, file]) => [urlPath, path.resolve(file)]));
  const pages = new Map(Object.entries(options.pages ?? {}));
  const folders: [prefix: string, folder: string][] = [];
  for (const [prefix, folder] of Object.entries(options.folders ?? {})) {
    if (!prefix.startsWith('/') || !prefix.endsWith('/')) throw new Error(`folder prefix ${prefix} must start and end with /`);
    folders.push([prefix, await realpath(folder)]);
  }
  const buckets = new WeakMap<Socket, TokenBucket>();
  let counters = emptyStats();

  function count(viewer: string, urlPath: string, bytes: number): void {
    counters.totalBytes += bytes;
    counters.byViewer[viewer] = (counters.byViewer[viewer] ?? 0) + bytes;
    counters.byPath[urlPath] = (counters.byPath[urlPath] ?? 0) + bytes;
    const viewerPaths = (counters.byViewerPath[viewer] ??= {});
    viewerPaths[urlPath] = (viewerPaths[urlPath] ?? 0) + bytes;
  }

  /** Ends `response` with `body`, counting it once it reached the socket. */
  function sendBody(response: ServerResponse, body: string | Uint8Array, account: (bytes: number) => void, head: boolean): void {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    response.setHeader('Content-Length', bytes.length);
    if (head || bytes.length === 0) {
      response.end();
      return;
    }
    response.end(bytes, () => account(bytes.length));
  }

  function sendError(response: ServerResponse, status: number, message: string, account: (bytes: number) => void, head: boolean): void {
    response.statusCode = status;
    response.setHeader('Content-Type', 'text/plain; charset=utf-8');
    sendBody(response, `${message}\n`, account, head);
  }

  /** Maps a URL path to a file inside the root or a mapped folder, or undefined (dotfiles and `..` never match). */
  async function resolveFile(urlPath: string): Promise<string | undefined> {
    const mapped = files.get(urlPath);
    if (mapped) return mapped;
    // A mapped folder serves the rest of the path; its prefix is matched on the raw path.
    const [prefix, base] = folders.find(([folderPrefix]) => urlPath.startsWith(folderPrefix)) ?? ['', root];
    let decoded: string;
    try {
      decoded = decodeURIComponent(urlPath.slice(prefix.length));
    } catch {
      return undefined;
    }
    const segments = decoded.split('/').filter((segment) => segment !== '');
    if (decoded.includes('\0') || segments.some((segment) => segment.startsWith('.') || segment.includes('\\'))) {
      return undefined;
    }
    let candidate = path.join(base, ...segments);
    try {
      candidate = await realpath(candidate);
      if (!isInside(base, candidate)) return undefined;
      if ((await stat(candidate)).isDirectory()) candidate = await realpath(path.join(candidate, 'index.html'));
      return isInside(base, candidate) ? candidate : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Streams bytes `[range.start, range.end]` of `file`, respecting backpressure and the per-connection
   * cap. A client that goes away ends the loop quietly: that is an abort, not a server error.
   */
  async function streamFile(
    request: IncomingMessage,
    response: ServerResponse,
    file: string,
    range: ByteRange,
    account: (bytes: number) => void,
  ): Promise<void> {
    const abort = new AbortController();
    const onClose = (): void => {
      if (!response.writableFinished) abort.abort(new Error('client closed the response'));
    };
    response.once('close', onClose);
    const bucket = rate ? bucketFor(request.socket) : undefined;
    const stream = createReadStream(file, {
      start: range.start,
      end: range.end,
      highWaterMark: bucket ? THROTTLED_READ_CHUNK : READ_CHUNK,
    });
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        let offset = 0;
        while (offset < chunk.length) {
          if (abort.signal.aborted) return;
          const length = bucket
            ? await takeTokens(bucket, chunk.length - offset, THROTTLED_READ_CHUNK, abort.signal)
            : chunk.length - offset;
          const slice = chunk.subarray(offset, offset + length);
          offset += length;
          const flushed = response.write(slice, (error) => {
            if (!error) account(slice.length);
          });
          if (!flushed) await drained(response);
        }
      }
      if (!abort.signal.aborted) response.end();
    } catch (error) {
      if (abort.signal.aborted) return;
      // The file vanished or failed mid-read: headers are gone, so cut the connection.
      response.destroy(error as Error);
    } finally {
      stream.destroy();
      response.off('close', onClose);
    }
  }

  function bucketFor(socket: Socket): TokenBucket {
    let bucket = buckets.get(socket);
    if (!bucket) {
      bucket = new TokenBucket(rate!, burst);
      buckets.set(socket, bucket);
    }
    return bucket;
  }

  async function serveFile(request: IncomingMessage, response: ServerResponse, file: string, account: (bytes: number) => void): Promise<boolean> {
    let info;
    try {
      info = await stat(file);
    } catch {
      return false;
    }
    if (!info.isFile()) return false;
    const head = request.method === 'HEAD';
    const size = info.size;
    const etag = `"${size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
    const lastModified = info.mtime.toUTCString();
    response.setHeader('Content-Type', contentTypeFor(file));
    response.setHeader('Accept-Ranges', 'bytes');
    response.setHeader('ETag', etag);
    response.setHeader('Last-Modified', lastModified);
    if (isNoCache(file)) response.setHeader('Cache-Control', 'no-cache');

    if (request.headers['if-none-match'] === etag) {
      response.statusCode = 304;
      response.end();
      return true;
    }
    // If-Range (RFC 9110 §13.1.5): a Range for another version of the file gets the whole file.
    const ifRange = request.headers['if-range'];
    const rangeHeader = ifRange === undefined || ifRange === etag || ifRange === lastModified ? request.headers.range : undefined;
    const wanted = parseRange(rangeHeader ?? null, size);
    if (wanted.kind === 'unsatisfiable') {
      response.statusCode = 416;
      response.setHeader('Content-Range', `bytes */${size}`);
      response.setHeader('Content-Length', 0);
      response.end();
      return true;
    }
    let range: ByteRange = { start: 0, end: size - 1 };
    if (wanted.kind === 'partial') {
      range = wanted.range;
      response.statusCode = 206;
      response.setHeader('Content-Range', contentRange(range, size));
    } else {
      response.statusCode = 200;
    }
    const length = size === 0 ? 0 : range.end - range.start + 1;
    response.setHeader('Content-Length', length);
    if (head || length === 0) {
      response.end();
      return true;
    }
    await streamFile(request, response, file, range, account);
    return true;
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    setCommonHeaders(response);
    const method = request.method ?? 'GET';
    let urlPath: string;
    try {
      urlPath = new URL(request.url ?? '/', 'http://origin.invalid').pathname;
    } catch {
      sendError(response, 400, 'bad request', () => {}, false);
      return;
    }
    if (method === 'OPTIONS') {
      // CORS preflight, e.g. for a cross-origin fetch with a Range header.
      response.statusCode = 204;
      response.setHeader('Access-Control-Allow-Methods', 'GET, HEAD, POST, OPTIONS');
      response.setHeader('Access-Control-Allow-Headers', request.headers['access-control-request-headers'] ?? 'Range');
      response.setHeader('Access-Control-Max-Age', '600');
      response.end();
      return;
    }
    if (urlPath === ORIGIN_STATS_PATH && (method === 'GET' || method === 'HEAD')) {
      response.setHeader('Content-Type', 'application/json; charset=utf-8');
      response.setHeader('Cache-Control', 'no-store');
      sendBody(response, JSON.stringify(counters), () => {}, method === 'HEAD');
      return;
    }
    if (urlPath === ORIGIN_STATS_RESET_PATH && method === 'POST') {
      counters = emptyStats();
      response.statusCode = 204;
      response.end();
      return;
    }

    const head = method === 'HEAD';
    counters.requests += 1;
    const viewer = viewerOf(request);
    const account = (bytes: number): void => count(viewer, urlPath, bytes);
    if (method !== 'GET' && !head) {
      response.setHeader('Allow', 'GET, HEAD, OPTIONS');
      sendError(response, 405, 'method not allowed', account, false);
      return;
    }
    const page = pages.get(urlPath);
    if (page) {
      const { body, contentType } = await page(request);
      response.setHeader('Content-Type', contentType);
      response.setHeader('Cache-Control', 'no-cache');
      sendBody(response, body, account, head);
      return;
    }
    const file = await resolveFile(urlPath);
    const { requireQuery } = options;
    if (file && requireQuery && !isNoCache(file)) {
      const query = new URL(request.url ?? '/', 'http://origin.invalid').searchParams;
      if (query.get(requireQuery.name) !== requireQuery.value) {
        sendError(response, 403, `forbidden: ${requireQuery.name} missing or wrong`, account, head);
        return;
      }
    }
    if (!file || !(await serveFile(request, response, file, account))) {
      sendError(response, 404, 'not found', account, head);
    }
  }

  const onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    // Errors on a response whose client is gone are expected; the server must live on.
    response.on('error', () => {});
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) sendError(response, 500, 'internal error', () => {}, false);
      else response.destroy(error as Error);
    });
  };
  let servers: Server[] = [];
  let port = options.port ?? 0;
  for (let attempt = 1; ; attempt++) {
    try {
      servers = await listenAll(onRequest, hosts, options.port ?? 0);
      port = (servers[0]!.address() as { port: number }).port;
      break;
    } catch (error) {
      // With port 0 the first host picks a free port that may be taken on the next host: pick again.
      const retry = (options.port ?? 0) === 0 && (error as NodeJS.ErrnoException).code === 'EADDRINUSE';
      if (!retry || attempt >= LISTEN_ATTEMPTS) throw error;
    }
  }

  const first = hosts[0]!;
  const urlHost = first === '0.0.0.0' || first === '::' ? '127.0.0.1' : first.includes(':') ? `[${first}]` : first;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    stats: () => structuredClone(counters),
    resetStats: () => {
      counters = emptyStats();
    },
    close: () => {
      closing ??= Promise.all(servers.map((server) => closeServer(server))).then(() => undefined);
      return closing;
    },
  };
}

/** Listens on every host with one port (the first host's when `port` is 0); all or nothing. */
async function listenAll(
  onRequest: (request: IncomingMessage, response: ServerResponse) => void,
  hosts: string[],
  port: number,
): Promise<Server[]> {
  const servers: Server[] = [];
  try {
    for (const host of hosts) {
      const server = createServer(onRequest);
      server.on('clientError', (_error, socket) => socket.destroy());
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      servers.push(server);
      port = (server.address() as { port: number }).port;
    }
    return servers;
  } catch (error) {
    await Promise.all(servers.map((server) => closeServer(server)));
    throw error;
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** Resolves once `response` can take more data, or once it closed. */
function drained(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      response.off('drain', done);
      response.off('close', done);
      resolve();
    };
    response.on('drain', done);
    response.on('close', done);
  });
}

/**
 * Waits until the bucket grants some bytes (at least `min(max, quantum)` worth of waiting, so that
 * a slow rate sends a few larger writes instead of many 1-byte ones) and returns how many it
 * granted. Rejects with the signal's reason when `signal` aborts first.
 */
export async function takeTokens(bucket: TokenBucket, max: number, quantum: number, signal: AbortSignal): Promise<number> {
  for (;;) {
    signal.throwIfAborted();
    const wait = bucket.waitMs(Math.min(max, quantum));
    if (wait === 0) {
      const granted = bucket.take(max);
      if (granted > 0) return granted;
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(done, Math.max(1, wait));
      function done(): void {
        signal.removeEventListener('abort', aborted);
        resolve();
      }
      function aborted(): void {
        clearTimeout(timer);
        reject(signal.reason);
      }
      signal.addEventListener('abort', aborted, { once: true });
    });
  }
}
