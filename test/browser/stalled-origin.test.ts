import { copyFile, readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRange } from '../../src/shared/range.js';
import { useChromium } from '../harness/browser.js';
import { ensureTestVideo } from '../harness/media.js';
import { startProcess } from '../harness/processes.js';
import { createTestSite, fetchInPage, openPage, sha256, type TestSite } from './test-site.js';

// An origin that stalls: it takes a request and sends nothing (not even headers), or sends half a
// body and then nothing, without closing the connection. The SW's origin fetches must notice
// (a progress watchdog), ask once more, and give the player the right bytes or a clean network
// error: before the watchdog, the player's response, and every piece of the asset waiting on its
// first origin response, hung for the worker's lifetime.

const chromium = useChromium();
const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.mp4': 'video/mp4' };

/** What the origin does with a video request: answer it, or stall before its headers or mid-body. */
type Behaviour = 'ok' | 'stall-headers' | 'stall-body';

let site: TestSite;
let server: Server;
let originUrl: string;
/** Per URL path, how the next requests are treated, in order; then `fallback[path]` (default 'ok'). */
const plans = new Map<string, Behaviour[]>();
const fallback = new Map<string, Behaviour>();
/** Per URL path, the Range headers of the requests the origin got. */
const requests = new Map<string, string[]>();

function serve(request: IncomingMessage, response: ServerResponse): void {
  const path = new URL(request.url ?? '/', 'http://origin').pathname;
  const file = join(site.dir, normalize(path === '/' ? '/index.html' : path));
  const behaviour = plans.get(path)?.shift() ?? fallback.get(path) ?? 'ok';
  requests.set(path, [...(requests.get(path) ?? []), request.headers.range ?? '']);
  // Held open and never answered: the connection stays up, as with a wedged server.
  if (behaviour === 'stall-headers') return;
  readFile(file).then(
    (body) => {
      const range = parseRange(request.headers.range ?? null, body.length);
      const headers = { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'accept-ranges': 'bytes', 'cache-control': 'no-store' };
      let part = body;
      if (range.kind === 'partial') {
        part = body.subarray(range.range.start, range.range.end + 1);
        response.writeHead(206, { ...headers, 'content-range': `bytes ${range.range.start}-${range.range.end}/${body.length}`, 'content-length': part.length });
      } else {
        response.writeHead(200, { ...headers, 'content-length': part.length });
      }
      if (behaviour === 'stall-body') return void response.write(part.subarray(0, Math.ceil(part.length / 2)));
      response.end(part);
    },
    () => response.writeHead(404).end(),
  );
}

beforeAll(async () => {
  site = await createTestSite(await ensureTestVideo({ name: 'stall', seconds: 4, kbps: 800 }), '64KiB');
  for (const name of ['headers', 'body', 'down']) await copyFile(site.videoPath, join(site.dir, 'media', `${name}.mp4`));
  const manifest = await startProcess('node', ['bin/peerfetch.js', 'manifest', site.dir, '--piece-size', '64KiB']);
  expect(await manifest.exited).toBe(0);
  server = createServer(serve);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  originUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

describe('a stalled origin', () => {
  it('that sends no headers once: the SW asks again and the page gets every byte', async () => {
    const page = await (await chromium.viewer('stall-headers')).newPage();
    await openPage(page, originUrl, {});
    plans.set('/media/headers.mp4', ['stall-headers']);
    const fetched = await fetchInPage(page, '/media/headers.mp4', 'bytes=0-');
    expect(fetched).toMatchObject({ status: 206, sha256: site.videoSha256 });
    // The stalled request and its retry, both for the first piece.
    const [stalled, retried] = requests.get('/media/headers.mp4')!;
    expect(stalled).toBe(retried);
  });

  it('that stalls in the middle of a body: the SW fetches the rest and the page gets every byte', async () => {
    const page = await (await chromium.viewer('stall-body')).newPage();
    await openPage(page, originUrl, {});
    plans.set('/media/body.mp4', ['stall-body']);
    const fetched = await fetchInPage(page, '/media/body.mp4');
    expect(fetched).toMatchObject({ status: 200, sha256: site.videoSha256 });
    // The first piece's request and, besides the next pieces, one for the half of it that never came.
    const asked = requests.get('/media/body.mp4')!;
    expect(asked[0]).toBe(`bytes=0-${64 * 1024 - 1}`);
    expect(asked).toContain(`bytes=${32 * 1024}-${64 * 1024 - 1}`);
  });

  it('that stalls every request: a clean network error, and nothing stays stuck once it is back', async () => {
    const context = await chromium.viewer('stall-down');
    const page = await context.newPage();
    await openPage(page, originUrl, {});
    fallback.set('/media/down.mp4', 'stall-headers');
    const failed = await fetchInPage(page, '/media/down.mp4').then(
      () => 'answered',
      (error: Error) => error.message,
    );
    expect(failed).toMatch(/network error|Failed to fetch/i);

    fallback.delete('/media/down.mp4');
    const fetched = await fetchInPage(page, '/media/down.mp4', 'bytes=100000-');
    expect(fetched).toMatchObject({ status: 206, sha256: sha256(site.videoBytes.subarray(100_000)) });
  });
});
