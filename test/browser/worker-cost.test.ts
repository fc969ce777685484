import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, writeFile, copyFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRange } from '../../src/shared/range.js';
import { useChromium, waitFor } from '../harness/browser.js';
import { startProcess } from '../harness/processes.js';
import { fetchInPage, sha256 } from './test-site.js';
import { ABSENCE_CACHE } from '../../src/sw/kill-switch.js';

// The worker never costs the site: without a manifest it makes only media requests wait for one,
// and asks for a manifest that keeps failing only now and then (a negative cache), not once per
// request; a manifest that says "disabled" (or answers 410 Gone) makes the worker pass every
// request through and unregister itself.

const chromium = useChromium();
const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.mp4': 'video/mp4', '.png': 'image/png' };
/** A page that only registers peerfetch's worker: every manifest request the origin sees is the worker's. */
const BARE_PAGE = `<!doctype html><meta charset="utf-8"><title>bare</title>
<script>window.registered = navigator.serviceWorker.register('/peerfetch-sw.js');</script>`;

/**
 * A page of a site whose manifest has been answering 404 for two hours (five times): the record the
 * worker keeps of that run (Cache Storage, see src/sw/kill-switch.ts) is written before the worker
 * is registered, as earlier visits would have left it. Then the worker's first load is one more 404.
 */
const ABSENT_PAGE = `<!doctype html><meta charset="utf-8"><title>absent</title>
<script>
  const manifestUrl = new URL('/peerfetch-manifest.json', location.href).href;
  const record = new Response(JSON.stringify({ since: Date.now() - 2 * 3600 * 1000, failures: 5 }));
  window.registered = caches.open('${ABSENCE_CACHE}')
    .then((cache) => cache.put(manifestUrl, record))
    .then(() => navigator.serviceWorker.register('/peerfetch-sw.js'));
</script>`;

type ManifestMode = 'missing' | 'file' | 'disabled' | 'gone' | 'absent';

let dir: string;
let media: Buffer;
const servers: Server[] = [];
/** One origin per scenario (its own address: its own worker and storage in Chromium). */
const origins = new Map<ManifestMode, string>();
const manifestRequests = new Map<ManifestMode, number>();
/** Range headers of the video requests, per scenario. */
const videoRequests = new Map<ManifestMode, string[]>();

function serve(mode: ManifestMode, request: IncomingMessage, response: ServerResponse): void {
  const path = new URL(request.url ?? '/', 'http://origin').pathname;
  if (path === '/peerfetch-manifest.json') {
    manifestRequests.set(mode, (manifestRequests.get(mode) ?? 0) + 1);
    if (mode === 'missing' || mode === 'absent') return void response.writeHead(404).end();
    if (mode === 'gone') return void response.writeHead(410).end();
    if (mode === 'disabled') return void response.writeHead(200, { 'content-type': 'application/json' }).end('{"version":1,"disabled":true}');
  }
  if (path === '/media/clip.mp4') videoRequests.set(mode, [...(videoRequests.get(mode) ?? []), request.headers.range ?? '']);
  readFile(join(dir, normalize(path))).then(
    (body) => {
      const range = parseRange(request.headers.range ?? null, body.length);
      const headers = { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream', 'cache-control': 'no-store' };
      if (range.kind !== 'partial') return void response.writeHead(200, { ...headers, 'content-length': body.length }).end(body);
      const part = body.subarray(range.range.start, range.range.end + 1);
      response.writeHead(206, { ...headers, 'content-range': `bytes ${range.range.start}-${range.range.end}/${body.length}`, 'content-length': part.length });
      response.end(part);
    },
    () => response.writeHead(404).end(),
  );
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'peerfetch-cost-'));
  await mkdir(join(dir, 'media'));
  media = randomBytes(300_000);
  await writeFile(join(dir, 'media', 'clip.mp4'), media);
  await writeFile(join(dir, 'logo.png'), randomBytes(2000));
  await writeFile(join(dir, 'data.json'), '{"answer":42}');
  await writeFile(join(dir, 'bare.html'), BARE_PAGE);
  await writeFile(join(dir, 'absent.html'), ABSENT_PAGE);
  await copyFile('dist/peerfetch-sw.js', join(dir, 'peerfetch-sw.js'));
  const manifest = await startProcess('node', ['bin/peerfetch.js', 'manifest', dir, '--piece-size', '64KiB']);
  expect(await manifest.exited).toBe(0);
  // Chromium keeps a worker and storage per origin: one loopback address per scenario.
  for (const [index, mode] of (['file', 'missing', 'disabled', 'gone', 'absent'] as const).entries()) {
    const server = createServer((request, response) => serve(mode, request, response));
    const host = `127.0.0.${index + 1}`;
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    servers.push(server);
    origins.set(mode, `http://${host}:${(server.address() as AddressInfo).port}`);
  }
});

afterAll(async () => {
  for (const server of servers) server.closeAllConnections();
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
});

/** Opens the bare page of `mode`'s origin once its worker is registered (and, when `controlled`, controls the page). */
async function openBarePage(mode: ManifestMode, controlled = true): Promise<Page> {
  const page = await (await chromium.viewer(`cost-${mode}`)).newPage();
  await page.goto(`${origins.get(mode)}/${mode === 'absent' ? 'absent' : 'bare'}.html`);
  await page.evaluate(async () => void (await (window as unknown as { registered: Promise<unknown> }).registered));
  if (controlled) await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
  return page;
}

describe('a worker without a usable manifest', () => {
  it('asks for a missing manifest once, not once per request, and leaves non-media requests alone', async () => {
    const page = await openBarePage('missing');
    // Distinct URLs, as a site's images and API calls are (a URL passed through once stayed passed through).
    for (let round = 0; round < 6; round++) {
      expect((await fetchInPage(page, `/media/clip.mp4?round=${round}`)).sha256).toBe(sha256(media));
      expect((await fetchInPage(page, `/data.json?round=${round}`)).status).toBe(200);
      expect((await fetchInPage(page, `/logo.png?round=${round}`)).status).toBe(200);
    }
    // The worker's first load, and at most a retry or two after its 10 s negative cache ran out on
    // a slow run; it used to ask again for each of the 18 requests.
    expect(manifestRequests.get('missing')).toBeLessThanOrEqual(3);
    // A manifest missing for seconds is no kill switch: the worker stays.
    expect(await page.evaluate(async () => (await navigator.serviceWorker.getRegistrations()).length)).toBe(1);
  });

  it('answers media from its manifest when there is one (the control case)', async () => {
    const page = await openBarePage('file');
    expect((await fetchInPage(page, '/media/clip.mp4')).sha256).toBe(sha256(media));
    // The worker fetched it piece by piece with Range requests.
    expect(videoRequests.get('file')!.every((range) => range.startsWith('bytes='))).toBe(true);
  });

  it.each(['disabled', 'gone', 'absent'] as const)('with the kill switch (%s), passes everything through and unregisters itself', async (mode) => {
    // Not waiting for control: a worker that reads the switch while installing never takes the page.
    const page = await openBarePage(mode, false);
    await waitFor(() => page.evaluate(async () => (await navigator.serviceWorker.getRegistrations()).length === 0), {
      what: 'the worker to unregister itself',
    });
    expect((await fetchInPage(page, '/media/clip.mp4')).sha256).toBe(sha256(media));
    // The page's own request went to the origin untouched (no Range), not the worker's piece requests.
    expect(videoRequests.get(mode)).toEqual(['']);
  });
});
