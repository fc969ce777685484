import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOriginServer, type OriginServer, type OriginStats } from '../../src/cli/origin-server.js';
import { rawRequest, waitFor } from './http-client.js';

const SIZE = 300_000;
const film = randomBytes(SIZE);
let site: string;
let outside: string;
let origin: OriginServer;

beforeAll(async () => {
  site = await mkdtemp(path.join(tmpdir(), 'peerfetch-origin-'));
  outside = await mkdtemp(path.join(tmpdir(), 'peerfetch-outside-'));
  await mkdir(path.join(site, 'media'));
  await mkdir(path.join(site, 'docs'));
  await writeFile(path.join(site, 'media', 'film.mp4'), film);
  await writeFile(path.join(site, 'media', 'a b.mp4'), 'spaced');
  await writeFile(path.join(site, 'media', 'empty.bin'), '');
  await writeFile(path.join(site, 'index.html'), '<!doctype html><title>root</title>');
  await writeFile(path.join(site, 'docs', 'index.html'), '<!doctype html><title>docs</title>');
  await writeFile(path.join(site, 'peerfetch-manifest.json'), '{"version":1,"assets":[]}');
  await writeFile(path.join(site, 'media', 'list.m3u8'), '#EXTM3U\n');
  await writeFile(path.join(site, '.env'), 'SECRET=1');
  await writeFile(path.join(outside, 'secret.txt'), 'secret');
  await writeFile(path.join(outside, 'mapped.js'), 'console.log("mapped")');
  await mkdir(path.join(outside, 'live'));
  await writeFile(path.join(outside, 'live', 'seg-1.ts'), 'live segment');
  await writeFile(path.join(outside, 'live', '.index.m3u8'), '#EXTM3U\n');
  await symlink(path.join(outside, 'secret.txt'), path.join(site, 'media', 'escape.txt'));
  origin = await startOriginServer({
    root: site,
    files: { '/peerfetch.js': path.join(outside, 'mapped.js') },
    folders: { '/media/live/': path.join(outside, 'live') },
    pages: { '/generated': (request) => ({ body: `hello ${request.headers.host}`, contentType: 'text/plain' }) },
  });
});

afterAll(async () => {
  await origin?.close();
  await rm(site, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

describe('ranges', () => {
  it.each([
    { range: undefined, status: 200, start: 0, end: SIZE - 1 },
    { range: 'bytes=0-', status: 206, start: 0, end: SIZE - 1 },
    { range: 'bytes=1000-', status: 206, start: 1000, end: SIZE - 1 },
    { range: 'bytes=100-199', status: 206, start: 100, end: 199 },
    { range: 'bytes=-100', status: 206, start: SIZE - 100, end: SIZE - 1 },
    { range: 'bytes=-9999999', status: 206, start: 0, end: SIZE - 1 },
    { range: `bytes=${SIZE - 1}-`, status: 206, start: SIZE - 1, end: SIZE - 1 },
    { range: 'bytes=0-9999999', status: 206, start: 0, end: SIZE - 1 },
    { range: 'bytes=5-2', status: 200, start: 0, end: SIZE - 1 },
    { range: 'bytes=0-1,5-6', status: 200, start: 0, end: SIZE - 1 },
    { range: 'items=0-1', status: 200, start: 0, end: SIZE - 1 },
  ])('Range $range → $status bytes $start-$end', async ({ range, status, start, end }) => {
    const response = await rawRequest(origin.url, '/media/film.mp4', { headers: range ? { Range: range } : {} });
    expect(response.status).toBe(status);
    expect(response.body.equals(film.subarray(start, end + 1))).toBe(true);
    expect(response.headers['content-length']).toBe(String(end - start + 1));
    expect(response.headers['accept-ranges']).toBe('bytes');
    expect(response.headers['content-range']).toBe(status === 206 ? `bytes ${start}-${end}/${SIZE}` : undefined);
  });

  it.each([`bytes=${SIZE}-`, `bytes=${SIZE + 10}-${SIZE + 20}`])('Range %s → 416 with bytes */SIZE', async (range) => {
    const response = await rawRequest(origin.url, '/media/film.mp4', { headers: { Range: range } });
    expect(response.status).toBe(416);
    expect(response.headers['content-range']).toBe(`bytes */${SIZE}`);
    expect(response.body.length).toBe(0);
  });

  it('an empty file answers 200 with no body, and 416 to a range', async () => {
    const plain = await rawRequest(origin.url, '/media/empty.bin');
    expect([plain.status, plain.headers['content-length'], plain.body.length]).toEqual([200, '0', 0]);
    const ranged = await rawRequest(origin.url, '/media/empty.bin', { headers: { Range: 'bytes=0-' } });
    expect([ranged.status, ranged.headers['content-range']]).toEqual([416, 'bytes */0']);
  });

  it('If-Range with another version ignores the Range; with the current ETag honours it', async () => {
    const { headers } = await rawRequest(origin.url, '/media/film.mp4', { method: 'HEAD' });
    const stale = await rawRequest(origin.url, '/media/film.mp4', { headers: { Range: 'bytes=0-9', 'If-Range': '"other"' } });
    expect(stale.status).toBe(200);
    const fresh = await rawRequest(origin.url, '/media/film.mp4', {
      headers: { Range: 'bytes=0-9', 'If-Range': headers.etag! },
    });
    expect([fresh.status, fresh.body.length]).toEqual([206, 10]);
  });
});

describe('headers and methods', () => {
  it('HEAD sends the GET headers without a body', async () => {
    const head = await rawRequest(origin.url, '/media/film.mp4', { method: 'HEAD', headers: { Range: 'bytes=10-' } });
    expect(head.status).toBe(206);
    expect(head.headers['content-length']).toBe(String(SIZE - 10));
    expect(head.headers['content-range']).toBe(`bytes 10-${SIZE - 1}/${SIZE}`);
    expect(head.body.length).toBe(0);
  });

  it('sends content type, validators, CORS and the service worker scope header', async () => {
    const { headers } = await rawRequest(origin.url, '/media/film.mp4', { method: 'HEAD' });
    expect(headers['content-type']).toBe('video/mp4');
    expect(headers.etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
    expect(new Date(headers['last-modified']!).getTime()).toBeGreaterThan(0);
    expect(headers['access-control-allow-origin']).toBe('*');
    expect(headers['access-control-expose-headers']).toContain('Content-Range');
    expect(headers['access-control-expose-headers']).toContain('Content-Length');
    expect(headers['access-control-expose-headers']).toContain('Accept-Ranges');
    expect(headers['service-worker-allowed']).toBe('/');
    expect(headers['cross-origin-resource-policy']).toBe('cross-origin');
    expect(headers['cache-control']).toBeUndefined();
  });

  it.each(['/peerfetch-manifest.json', '/media/list.m3u8', '/', '/peerfetch.js'])('%s is no-cache', async (urlPath) => {
    const response = await rawRequest(origin.url, urlPath);
    expect(response.status).toBe(200);
    expect(response.headers['cache-control']).toBe('no-cache');
  });

  it('answers If-None-Match with 304', async () => {
    const { headers } = await rawRequest(origin.url, '/media/film.mp4', { method: 'HEAD' });
    const response = await rawRequest(origin.url, '/media/film.mp4', { headers: { 'If-None-Match': headers.etag! } });
    expect([response.status, response.body.length]).toEqual([304, 0]);
  });

  it('answers the CORS preflight of a Range request', async () => {
    const response = await rawRequest(origin.url, '/media/film.mp4', {
      method: 'OPTIONS',
      headers: { Origin: 'http://page.example', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'range' },
    });
    expect(response.status).toBe(204);
    expect(response.headers['access-control-allow-origin']).toBe('*');
    expect(response.headers['access-control-allow-headers']).toBe('range');
    expect(response.headers['access-control-allow-methods']).toContain('GET');
  });

  it('refuses other methods', async () => {
    const response = await rawRequest(origin.url, '/media/film.mp4', { method: 'PUT' });
    expect(response.status).toBe(405);
    expect(response.headers.allow).toBe('GET, HEAD, OPTIONS');
  });

  it.each([
    ['/', 'root'],
    ['/docs/', 'docs'],
    ['/docs', 'docs'],
  ])('serves index.html for the folder %s', async (urlPath, title) => {
    const response = await rawRequest(origin.url, urlPath);
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(response.body.toString()).toContain(`<title>${title}</title>`);
  });

  it('serves URL-encoded names, mapped files and generated pages', async () => {
    expect((await rawRequest(origin.url, '/media/a%20b.mp4')).body.toString()).toBe('spaced');
    const mapped = await rawRequest(origin.url, '/peerfetch.js');
    expect([mapped.status, mapped.headers['content-type'], mapped.body.toString()]).toEqual([
      200,
      'text/javascript; charset=utf-8',
      'console.log("mapped")',
    ]);
    const page = await rawRequest(origin.url, '/generated');
    expect(page.body.toString()).toBe(`hello ${new URL(origin.url).host}`);
    const inFolder = await rawRequest(origin.url, '/media/live/seg-1.ts');
    expect([inFolder.status, inFolder.headers['content-type'], inFolder.body.toString()]).toEqual([200, 'video/mp2t', 'live segment']);
  });

  it('refuses a mapped-folder prefix that is not a folder path', async () => {
    await expect(startOriginServer({ root: site, folders: { '/media/live': path.join(outside, 'live') } })).rejects.toThrow(/must start and end with \//);
  });

  it.each([
    '/../' + 'outside/secret.txt',
    '/%2e%2e/%2e%2e/etc/passwd',
    '/media/%2e%2e/%2e%2e/etc/passwd',
    '/media/..%2f..%2fetc/passwd',
    '/.env',
    '/%2eenv',
    '/media/escape.txt',
    '/media/%00film.mp4',
    '/media/%E0%A4%A',
    '/missing.mp4',
    // A mapped folder keeps the same rules: nothing above it, no dotfiles (a packager's private playlist).
    '/media/live/.index.m3u8',
    '/media/live/%2e%2e/secret.txt',
    '/media/live/..%2fsecret.txt',
    '/media/live/%2e%2e/mapped.js',
  ])('nothing outside the root and no dotfiles: %s → 404', async (urlPath) => {
    const response = await rawRequest(origin.url, urlPath);
    expect(response.status).toBe(404);
    expect(response.body.toString()).not.toContain('secret');
  });
});

describe('listening', () => {
  it('serves several loopback addresses on one port, with shared counters', async () => {
    const server = await startOriginServer({ root: site, host: ['127.0.0.1', '127.0.0.2'] });
    try {
      expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
      const second = await rawRequest(`http://127.0.0.2:${server.port}`, '/media/a%20b.mp4', { headers: { 'User-Agent': 'peerfetch-viewer/two' } });
      expect(second.body.toString()).toBe('spaced');
      await waitFor(() => (server.stats().byViewer.two === 6 ? true : undefined), 'the second address counted');
    } finally {
      await server.close();
    }
  });

  it('fails with EADDRINUSE on a port that is taken', async () => {
    await expect(startOriginServer({ root: site, port: origin.port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });
});

describe('byte counters', () => {
  async function stats(): Promise<OriginStats> {
    const response = await rawRequest(origin.url, '/__peerfetch/origin-stats');
    expect(response.headers['content-type']).toContain('application/json');
    return JSON.parse(response.body.toString()) as OriginStats;
  }

  it('counts body bytes per viewer and per path, and resets', async () => {
    const reset = await rawRequest(origin.url, '/__peerfetch/origin-stats/reset', { method: 'POST' });
    expect(reset.status).toBe(204);
    await rawRequest(origin.url, '/media/film.mp4', {
      headers: { Range: 'bytes=0-999', 'User-Agent': 'Mozilla/5.0 HeadlessChrome peerfetch-viewer/alice' },
    });
    await rawRequest(origin.url, '/media/film.mp4', { headers: { 'User-Agent': 'peerfetch-viewer/bob-2' } });
    await rawRequest(origin.url, '/media/film.mp4', { headers: { Range: 'bytes=-10' } });
    await rawRequest(origin.url, '/media/film.mp4', { method: 'HEAD', headers: { 'User-Agent': 'peerfetch-viewer/alice' } });
    const counted = await waitFor(async () => {
      const current = await stats();
      return current.totalBytes === 1000 + SIZE + 10 ? current : undefined;
    }, 'all bodies counted');
    expect(counted).toEqual({
      totalBytes: 1000 + SIZE + 10,
      byViewer: { alice: 1000, 'bob-2': SIZE, anonymous: 10 },
      byPath: { '/media/film.mp4': 1000 + SIZE + 10 },
      byViewerPath: { alice: { '/media/film.mp4': 1000 }, 'bob-2': { '/media/film.mp4': SIZE }, anonymous: { '/media/film.mp4': 10 } },
      requests: 4,
    });
    // Reading the counters is not counted.
    expect((await stats()).requests).toBe(4);
    expect(origin.stats()).toEqual(counted);
    await rawRequest(origin.url, '/__peerfetch/origin-stats/reset', { method: 'POST' });
    expect(await stats()).toEqual({ totalBytes: 0, byViewer: {}, byPath: {}, byViewerPath: {}, requests: 0 });
  });
});

/**
 * Starts a request and destroys its connection as soon as the first body bytes arrive.
 * Resolves with the bytes received before the abort.
 */
function abortAfterFirstChunk(baseUrl: string, urlPath: string, userAgent: string): Promise<number> {
  const base = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: base.hostname, port: base.port, path: urlPath, agent: false, headers: { 'User-Agent': userAgent } }, (res) => {
      res.once('data', (chunk: Buffer) => {
        req.destroy();
        resolve(chunk.length);
      });
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ECONNRESET') reject(error);
    });
    req.end();
  });
}

/**
 * Reads `urlPath` for `windowMs` (or to its end), then destroys the connection. Returns the body
 * bytes received and the time from sending the request to the last byte counted.
 */
function readForWindow(baseUrl: string, urlPath: string, windowMs: number): Promise<{ received: number; elapsedSeconds: number }> {
  const base = new URL(baseUrl);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    let received = 0;
    const finish = (): void => {
      const elapsedSeconds = (performance.now() - started) / 1000;
      req.destroy();
      resolve({ received, elapsedSeconds });
    };
    const req = httpRequest({ host: base.hostname, port: base.port, path: urlPath, agent: false }, (res) => {
      const timer = setTimeout(finish, windowMs);
      res.on('data', (chunk: Buffer) => (received += chunk.length));
      res.on('end', () => {
        clearTimeout(timer);
        finish();
      });
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ECONNRESET') reject(error);
    });
    req.end();
  });
}

describe('aborts and the bandwidth cap', () => {
  let big: string;
  const BIG_SIZE = 8 * 1024 * 1024;

  beforeAll(async () => {
    big = await mkdtemp(path.join(tmpdir(), 'peerfetch-big-'));
    await writeFile(path.join(big, 'big.bin'), randomBytes(BIG_SIZE));
    await writeFile(path.join(big, 'small.bin'), film.subarray(0, 20_000));
  });
  afterAll(async () => {
    await rm(big, { recursive: true, force: true });
  });

  it('survives clients that close mid-response, unthrottled', async () => {
    const server = await startOriginServer({ root: big });
    try {
      for (let i = 0; i < 5; i++) {
        expect(await abortAfterFirstChunk(server.url, '/big.bin', 'peerfetch-viewer/quitter')).toBeGreaterThan(0);
      }
      const after = await rawRequest(server.url, '/small.bin');
      expect(after.body.equals(film.subarray(0, 20_000))).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('caps the bytes a throttled connection gets, and survives an abort while throttled', async () => {
    const bytesPerSecond = 64_000;
    const server = await startOriginServer({ root: big, bytesPerSecond });
    try {
      const { received, elapsedSeconds } = await readForWindow(server.url, '/big.bin', 300);
      // Never more than the burst (≤ 64 KiB) plus the rate over the measured window, however slow
      // the machine: an unthrottled server delivers the whole 8 MiB over loopback in that time.
      expect(received).toBeGreaterThan(0);
      expect(received).toBeLessThanOrEqual(64 * 1024 + bytesPerSecond * elapsedSeconds);
      // The abort at the end of the window left the server working: a throttled response is byte-exact.
      const small = await rawRequest(server.url, '/small.bin', { headers: { Range: 'bytes=100-' } });
      expect(small.status).toBe(206);
      expect(small.body.equals(film.subarray(100, 20_000))).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('close() ends open throttled responses', async () => {
    const server = await startOriginServer({ root: big, bytesPerSecond: 10_000 });
    const pending = rawRequest(server.url, '/big.bin').then(
      () => 'completed',
      () => 'aborted',
    );
    await waitFor(() => ((server.stats().totalBytes ?? 0) > 0 ? true : undefined), 'first bytes');
    await server.close();
    expect(await pending).toBe('aborted');
  });
});
