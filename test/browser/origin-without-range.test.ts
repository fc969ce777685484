import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { ensureTestVideo } from '../harness/media.js';
import { createTestSite, fetchInPage, openPage, sha256, stats, type TestSite } from './test-site.js';

// An origin that ignores Range (some static hosts and misconfigured proxies answer every request
// with 200 and the whole file). Each piece the SW asks for then costs a whole download: peerfetch
// must keep all pieces of that body instead of paying it again for every next piece.

const chromium = useChromium();
const VIDEO_URL = '/media/video.mp4';
const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.mp4': 'video/mp4' };

let site: TestSite;
let server: Server;
let originUrl: string;
/** Requests for the video the origin answered (each one the whole file). */
let videoRequests = 0;

beforeAll(async () => {
  site = await createTestSite(await ensureTestVideo({ name: 'no-range', seconds: 6, kbps: 1000 }), '64KiB');
  server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://origin').pathname;
    const file = join(site.dir, normalize(path === '/' ? '/index.html' : path));
    readFile(file).then(
      (body) => {
        if (path === VIDEO_URL) videoRequests++;
        // Range is ignored on purpose: always 200 and the whole file.
        response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': body.length });
        response.end(request.method === 'HEAD' ? undefined : body);
      },
      () => response.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  originUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

describe('an origin that ignores Range', () => {
  it('costs one whole download, not one per piece, and every response is still byte-exact', async () => {
    const context = await chromium.viewer('no-range');
    const page = await context.newPage();
    await openPage(page, originUrl, {});
    const pieces = Math.ceil(site.videoBytes.length / (64 * 1024));
    expect(pieces).toBeGreaterThan(8);

    const start = await fetchInPage(page, VIDEO_URL, 'bytes=0-99999');
    expect(start).toMatchObject({ status: 206, sha256: sha256(site.videoBytes.subarray(0, 100_000)) });
    const whole = await fetchInPage(page, VIDEO_URL);
    expect(whole).toMatchObject({ status: 200, sha256: site.videoSha256 });
    const tail = await fetchInPage(page, VIDEO_URL, `bytes=${site.videoBytes.length - 70_000}-`);
    expect(tail.sha256).toBe(sha256(site.videoBytes.subarray(site.videoBytes.length - 70_000)));

    // Every piece was kept from the first body: the page holds them all, the origin sent the file once.
    await waitFor(async () => (await stats(page)).assets[0]?.held === pieces, { what: 'every piece to be stored' });
    expect(videoRequests).toBe(1);
    assertNoPageErrors(context);
  });
});
