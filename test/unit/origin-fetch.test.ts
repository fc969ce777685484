import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isPeerfetchError } from '../../src/shared/errors.js';
import { sha256Hex } from '../../src/shared/integrity.js';
import { parseManifest, type ManifestAsset } from '../../src/shared/manifest.js';
import { fetchPieceFromOrigin, isFileChanged, originAllowsFetch } from '../../src/sw/origin-fetch.js';

// The SW's origin fetches against a real HTTP server on port 0 that stalls on purpose: before its
// headers, or in the middle of a body. Short watchdog bounds keep the test fast; the SW uses
// ORIGIN_PROGRESS_BOUNDS.

const PIECE = 16 * 1024;
const bytes = Uint8Array.from({ length: PIECE * 3 }, (_, i) => (i * 7) % 253);
const BOUNDS = { headersMs: 3000, idleMs: 3000 };

/** What the server does with each next video request, in order; 'ok' once the list is used up. */
type Behaviour = 'ok' | 'stall-headers' | 'stall-body' | 'changed' | 'ignore-range' | 'resized' | 'gone';
let plan: Behaviour[] = [];
let ranges: string[] = [];
/** Path and query of every request, in order. */
let urls: string[] = [];
let server: Server;
let base: string;
const held: ServerResponse[] = [];

function serve(request: IncomingMessage, response: ServerResponse): void {
  const behaviour = plan.shift() ?? 'ok';
  ranges.push(request.headers.range ?? '');
  urls.push(request.url ?? '');
  if (behaviour === 'stall-headers') return void held.push(response);
  if (behaviour === 'gone') return void response.writeHead(404).end();
  if (behaviour === 'ignore-range') return void response.writeHead(200, { 'content-length': bytes.length }).end(Buffer.from(bytes));
  const [, first, last] = /bytes=(\d+)-(\d+)/.exec(request.headers.range ?? '') ?? [];
  const start = Number(first ?? 0);
  const end = last === undefined ? bytes.length - 1 : Number(last);
  const body = Buffer.from(bytes.subarray(start, end + 1));
  if (behaviour === 'changed') body.fill(0);
  response.writeHead(206, {
    'content-range': `bytes ${start}-${end}/${behaviour === 'resized' ? bytes.length + 1000 : bytes.length}`,
    'content-length': body.length,
    etag: behaviour === 'changed' ? '"v2"' : '"v1"',
  });
  if (behaviour === 'stall-body') {
    response.write(body.subarray(0, body.length / 2));
    return void held.push(response);
  }
  response.end(body);
}

let asset: ManifestAsset;

beforeAll(async () => {
  server = createServer(serve);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const pieces: string[] = [];
  for (let start = 0; start < bytes.length; start += PIECE) pieces.push(await sha256Hex(bytes.subarray(start, start + PIECE)));
  const manifest = await parseManifest(
    { version: 1, assets: [{ url: '/v.mp4', size: bytes.length, contentType: 'video/mp4', pieceSize: PIECE, pieces }] },
    `${base}/peerfetch-manifest.json`,
  );
  asset = manifest.assets[0]!;
});

beforeEach(() => {
  plan = [];
  ranges = [];
  urls = [];
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const piece1 = () => bytes.subarray(PIECE, 2 * PIECE);

describe('origin fetches under a progress watchdog', () => {
  it('asks again when the origin sends no headers, and gets the piece', async () => {
    plan = ['stall-headers'];
    const growing = await fetchPieceFromOrigin(asset, 1, new AbortController().signal, { bounds: BOUNDS });
    expect(await growing.done).toEqual(piece1());
    expect(ranges).toEqual([`bytes=${PIECE}-${2 * PIECE - 1}`, `bytes=${PIECE}-${2 * PIECE - 1}`]);
  });

  it('fails with origin-failed when the origin stalls before its headers twice', async () => {
    plan = ['stall-headers', 'stall-headers'];
    const error = await fetchPieceFromOrigin(asset, 1, new AbortController().signal, { bounds: BOUNDS }).catch((caught: unknown) => caught);
    expect(isPeerfetchError(error, 'origin-failed')).toBe(true);
    expect(ranges).toHaveLength(2);
  });

  it('resumes a body that stalls from where it stopped', async () => {
    plan = ['stall-body'];
    const growing = await fetchPieceFromOrigin(asset, 1, new AbortController().signal, { bounds: BOUNDS });
    expect(await growing.done).toEqual(piece1());
    expect(ranges).toEqual([`bytes=${PIECE}-${2 * PIECE - 1}`, `bytes=${PIECE + PIECE / 2}-${2 * PIECE - 1}`]);
  });

  it('fails the piece when the body stalls and its rest stalls too', async () => {
    plan = ['stall-body', 'stall-headers'];
    const growing = await fetchPieceFromOrigin(asset, 1, new AbortController().signal, { bounds: BOUNDS });
    const error = await growing.done.catch((caught: unknown) => caught);
    expect(isPeerfetchError(error, 'origin-failed')).toBe(true);
  });

  it('never completes a piece with the rest of another version of the file', async () => {
    plan = ['stall-body', 'changed'];
    const growing = await fetchPieceFromOrigin(asset, 1, new AbortController().signal, { bounds: BOUNDS });
    const error = await growing.done.catch((caught: unknown) => caught);
    expect(isPeerfetchError(error, 'origin-failed')).toBe(true);
  });

  it('counts a CDN that never answers the CORS probe as one without CORS', async () => {
    plan = ['stall-headers'];
    expect(await originAllowsFetch(asset, 'http://site.example', { bounds: BOUNDS })).toBe(false);
    expect(await originAllowsFetch(asset, 'http://site.example', { bounds: BOUNDS })).toBe(true);
  });

  it('keeps a whole body from an origin that ignores Range only up to a size; above it, only the piece', async () => {
    plan = ['ignore-range'];
    const small = await fetchPieceFromOrigin(asset, 2, new AbortController().signal, { bounds: BOUNDS });
    expect(small.wholeAsset).toEqual(bytes);
    plan = ['ignore-range'];
    const large = await fetchPieceFromOrigin(asset, 2, new AbortController().signal, { bounds: BOUNDS, wholeAssetMaxBytes: 2 * PIECE });
    expect(await large.done).toEqual(bytes.subarray(2 * PIECE, 3 * PIECE));
    expect(large.wholeAsset).toBeUndefined();
  });

  it.each(['resized', 'gone'] as const)('fails a piece of a file that changed on the origin (%s) before any byte of it flows', async (behaviour) => {
    plan = [behaviour];
    const error = await fetchPieceFromOrigin(asset, 1, new AbortController().signal, { bounds: BOUNDS }).catch((caught: unknown) => caught);
    expect(isPeerfetchError(error, 'origin-failed')).toBe(true);
    expect(isFileChanged(error)).toBe(true);
    // An answer is final: no second request for another version's bytes.
    expect(ranges).toHaveLength(1);
  });

  it('sends every request for a piece to the signed URL: the first, its retry, the rest of a body, a whole-file answer, the CORS probe', async () => {
    const signed = `${base}/v.mp4?token=abc&expires=9`;
    plan = ['stall-headers'];
    const retried = await fetchPieceFromOrigin(asset, 1, new AbortController().signal, { url: signed, bounds: BOUNDS });
    expect(await retried.done).toEqual(piece1());
    plan = ['stall-body'];
    const resumed = await fetchPieceFromOrigin(asset, 1, new AbortController().signal, { url: signed, bounds: BOUNDS });
    expect(await resumed.done).toEqual(piece1());
    expect(ranges).toHaveLength(4);
    plan = ['ignore-range'];
    expect((await fetchPieceFromOrigin(asset, 2, new AbortController().signal, { url: signed, bounds: BOUNDS })).wholeAsset).toEqual(bytes);
    plan = ['ignore-range'];
    await (await fetchPieceFromOrigin(asset, 2, new AbortController().signal, { url: signed, bounds: BOUNDS, wholeAssetMaxBytes: PIECE })).done;
    expect(await originAllowsFetch(asset, 'http://site.example', { url: signed, bounds: BOUNDS })).toBe(true);
    expect(urls).toEqual(Array.from({ length: 7 }, () => '/v.mp4?token=abc&expires=9'));
  });
});
