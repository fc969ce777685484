/**
 * The `peerfetch` command as a user runs it: the built bin/peerfetch.js in a real process
 * (`npm test` builds first; alone, run `npm run build` before this file).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseManifest, type ManifestJson } from '../../src/shared/manifest.js';
import { startProcess } from '../harness/processes.js';
import { rawRequest } from './http-client.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin', 'peerfetch.js');
const VERSION = (JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `peerfetch ...args` to completion (bounded: 30 s, far above the < 1 s these take). */
function peerfetch(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT, timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Like peerfetch(), with extra environment variables. */
function peerfetchWithEnv(env: Record<string, string>, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT, timeout: 30_000, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

let site: string;
const film = Buffer.alloc(300_000, 7);

beforeAll(async () => {
  if (!existsSync(path.join(ROOT, 'dist', 'node', 'cli.mjs'))) throw new Error('dist/node/cli.mjs is missing: run npm run build');
  site = await mkdtemp(path.join(tmpdir(), 'peerfetch-cli-'));
  await mkdir(path.join(site, 'media'));
  await writeFile(path.join(site, 'media', 'film.mp4'), film);
  await writeFile(path.join(site, 'media', 'empty.webm'), '');
  await writeFile(path.join(site, 'index.html'), '<!doctype html>');
});

afterAll(async () => {
  await rm(site, { recursive: true, force: true });
});

describe('peerfetch', () => {
  it.each([
    { args: ['--version'], code: 0, stdout: `${VERSION}\n` },
    { args: ['-v'], code: 0, stdout: `${VERSION}\n` },
  ])('$args prints the version', async ({ args, code, stdout }) => {
    const run = await peerfetch(...args);
    expect([run.code, run.stdout]).toEqual([code, stdout]);
  });

  it('--help prints the usage of every command', async () => {
    const run = await peerfetch('--help');
    expect(run.code).toBe(0);
    for (const command of ['manifest <dir>', 'tracker', 'demo', 'origin <dir>']) expect(run.stdout).toContain(command);
  });

  it.each([
    ['manifest', '--piece-size'],
    ['origin', '--rate KBPS'],
    ['tracker', '--max-connections'],
    ['demo', '--viewers'],
  ])('%s --help prints that command\'s own options', async (command, option) => {
    const run = await peerfetch(command, '--help');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^Usage: peerfetch ${command}\\b`));
    expect(run.stdout).toContain(option);
  });

  it.each([[[]], [['frobnicate']]])('%j is a usage error (exit 2)', async (args) => {
    const run = await peerfetch(...args);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('Usage: peerfetch');
  });
});

describe('peerfetch manifest', () => {
  it('writes <dir>/peerfetch-manifest.json, with a summary and warnings on stderr', async () => {
    const run = await peerfetch('manifest', site);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('warning: skipped media/empty.webm: empty file');
    expect(run.stderr).toContain('1 asset, 293 KiB in 2 pieces of 256 KiB');
    const raw = JSON.parse(await readFile(path.join(site, 'peerfetch-manifest.json'), 'utf8')) as ManifestJson;
    const manifest = await parseManifest(raw, 'http://127.0.0.1:1/peerfetch-manifest.json');
    expect(manifest.assets.map((asset) => [asset.href, asset.size])).toEqual([['http://127.0.0.1:1/media/film.mp4', film.length]]);
    expect(manifest.assets[0]!.pieces[0]).toBe(createHash('sha256').update(film.subarray(0, 256 * 1024)).digest('hex'));
    // Run again: the manifest it wrote is not an asset of the next run.
    const again = await peerfetch('manifest', site);
    expect(again.stderr).toContain('1 asset,');
  });

  it('honours --out, --piece-size and --base-url', async () => {
    const out = path.join(site, 'custom.bin');
    const run = await peerfetch('manifest', site, '--out', out, '--piece-size', '64KiB', '--base-url', 'https://cdn.example/v1');
    expect(run.code).toBe(0);
    const raw = JSON.parse(await readFile(out, 'utf8')) as ManifestJson;
    expect(raw.assets.map((asset) => [asset.url, asset.pieceSize, asset.pieces.length])).toEqual([
      ['https://cdn.example/v1/media/film.mp4', 65_536, 5],
    ]);
  });

  it.each([
    { args: ['manifest'], code: 2, message: 'exactly one folder' },
    { args: ['manifest', 'a', 'b'], code: 2, message: 'exactly one folder' },
    { args: ['manifest', '.', '--piece-size', '1KiB'], code: 2, message: '--piece-size: piece size 1024 B is out of range: use 16 KiB to 16 MiB' },
    { args: ['manifest', '.', '--piece-size', 'big'], code: 2, message: '--piece-size: invalid size "big": use bytes or a number with B, KB, KiB, MB or MiB' },
    { args: ['manifest', '.', '--base-url', 'ftp://x/'], code: 2, message: '--base-url: invalid base URL "ftp://x/"' },
    { args: ['manifest', '.', '--base-url', 'www.example.com'], code: 2, message: '--base-url: invalid base URL "www.example.com": use an absolute http(s) URL or a path starting with /' },
    { args: ['manifest', '.', '--bogus'], code: 2, message: "'--bogus'" },
    { args: ['manifest', '/nonexistent/peerfetch'], code: 1, message: 'is not a readable folder' },
  ])('$args exits $code', async ({ args, code, message }) => {
    const run = await peerfetch(...args);
    expect(run.code).toBe(code);
    expect(run.stderr).toContain(message);
    expect(run.stderr).not.toMatch(/\n\s+at /); // one clear line, no stack trace
  });

  it('exits 1 when the manifest cannot be written', async () => {
    const run = await peerfetch('manifest', site, '--out', path.join(site, 'no-such-folder', 'm.json'));
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('cannot write');
  });
});

describe('peerfetch manifest on a re-published folder', () => {
  /** How long after its last change a file counts as settled (build-manifest.ts RACY_WINDOW_MS), plus a margin. */
  const SETTLED_AFTER_MS = 2100;

  it('reads only the files that changed since the last run, and shows progress with --progress', async () => {
    const library = await mkdtemp(path.join(tmpdir(), 'peerfetch-library-'));
    const cache = await mkdtemp(path.join(tmpdir(), 'peerfetch-cache-'));
    try {
      for (let i = 0; i < 5; i++) await writeFile(path.join(library, `film${i}.mp4`), Buffer.alloc(100_000 + i, i + 1));
      const env = { XDG_CACHE_HOME: cache };
      const first = await peerfetchWithEnv(env, 'manifest', library, '--progress');
      expect(first.code).toBe(0);
      expect(first.stderr).toContain('peerfetch manifest: 5/5 files, 488 KiB of 488 KiB');
      expect(first.stderr).not.toContain('unchanged');
      // Files written within the last 2 s are hashed on every run (their fingerprint could miss a write in the same clock tick).
      const { ctimeMs } = await stat(path.join(library, 'film4.mp4'));
      await waitFor('the files to be settled', () => Date.now() - ctimeMs > SETTLED_AFTER_MS);
      const second = await peerfetchWithEnv(env, 'manifest', library, '--progress');
      expect(second.stderr).toContain('5 assets,');

      await writeFile(path.join(library, 'film5.mp4'), Buffer.alloc(50_000, 9));
      const third = await peerfetchWithEnv(env, 'manifest', library, '--progress');
      expect(third.code).toBe(0);
      expect(third.stderr).toContain('6/6 files');
      expect(third.stderr).toContain('6 assets, 537 KiB in 6 pieces of 256 KiB, 5 unchanged since the last run');
      const raw = JSON.parse(await readFile(path.join(library, 'peerfetch-manifest.json'), 'utf8')) as ManifestJson;
      expect(raw.assets.find((asset) => asset.url === '/film5.mp4')!.pieces[0]).toBe(createHash('sha256').update(Buffer.alloc(50_000, 9)).digest('hex'));

      // Without a terminal and without --progress: no progress lines; --rehash reads everything again.
      const quiet = await peerfetchWithEnv(env, 'manifest', library, '--rehash');
      expect(quiet.stderr).not.toContain('files,');
      expect(quiet.stderr).not.toContain('unchanged');
    } finally {
      await rm(library, { recursive: true, force: true });
      await rm(cache, { recursive: true, force: true });
    }
  });
});

describe('peerfetch manifest --watch', () => {
  it('publishes a packager playlist after the manifest that lists its segments, and exits 0 on SIGTERM', async () => {
    const live = await mkdtemp(path.join(tmpdir(), 'peerfetch-cli-live-'));
    try {
      await writeFile(path.join(live, 'seg-7.ts'), Buffer.alloc(40_000, 3));
      await writeFile(path.join(live, '.index.m3u8'), '#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2.0,\nseg-7.ts\n');
      const watcher = await startProcess(process.execPath, [BIN, 'manifest', live, '--watch', '--piece-size', '16KiB'], {
        readyPattern: /peerfetch manifest: watching/,
        name: 'peerfetch manifest --watch',
      });
      try {
        const manifest = JSON.parse(await readFile(path.join(live, 'peerfetch-manifest.json'), 'utf8')) as ManifestJson;
        expect(manifest.assets.map((asset) => [asset.url, asset.sequence, asset.pieces.length])).toEqual([['/seg-7.ts', 7, 3]]);
        expect(manifest.live).toEqual([{ playlist: '/index.m3u8', segmentMs: 2000, windowMs: 2000 }]);
        expect(await readFile(path.join(live, 'index.m3u8'), 'utf8')).toContain('seg-7.ts');
      } finally {
        expect(await watcher.stop()).toBe(0);
      }
    } finally {
      await rm(live, { recursive: true, force: true });
    }
  });
});

describe('peerfetch origin', () => {
  it('serves a folder with ranges, the peerfetch scripts and --file mappings, and stops on SIGTERM', async () => {
    const extra = path.join(site, 'extra.txt');
    await writeFile(extra, 'extra');
    const origin = await startProcess(process.execPath, [BIN, 'origin', site, '--port', '0', '--rate', '5000', '--file', `/x/extra.txt=${extra}`], {
      readyPattern: /peerfetch origin listening on (http:\/\/127\.0\.0\.1:\d+)/,
      name: 'peerfetch origin',
    });
    try {
      const url = origin.ready![1]!;
      const ranged = await rawRequest(url, '/media/film.mp4', { headers: { Range: 'bytes=10-19', 'User-Agent': 'peerfetch-viewer/one' } });
      expect([ranged.status, ranged.headers['content-range'], ranged.body.length]).toEqual([206, `bytes 10-19/${film.length}`, 10]);
      const script = await rawRequest(url, '/peerfetch.js', { method: 'HEAD' });
      expect([script.status, script.headers['content-type']]).toEqual([200, 'text/javascript; charset=utf-8']);
      expect((await rawRequest(url, '/peerfetch-sw.js', { method: 'HEAD' })).status).toBe(200);
      expect((await rawRequest(url, '/x/extra.txt')).body.toString()).toBe('extra');
      const stats = JSON.parse((await rawRequest(url, '/__peerfetch/origin-stats')).body.toString()) as { byViewer: Record<string, number> };
      expect(stats.byViewer.one).toBe(10);
    } finally {
      expect(await origin.stop()).toBe(0);
    }
  });

  it.each([
    { args: ['origin'], code: 2 },
    { args: ['origin', '.', '--rate', 'fast'], code: 2 },
    { args: ['origin', '.', '--rate', '-1'], code: 2, message: '--rate must be a number of kilobytes per second (0: no cap), not "-1"' },
    { args: ['demo', '--rate', '-5'], code: 2, message: '--rate must be a number of kilobytes per second (0: no cap), not "-5"' },
    { args: ['origin', '.', '--port', '99999'], code: 2 },
    { args: ['origin', '.', '--file', 'nope'], code: 2 },
    { args: ['origin', '/nonexistent/peerfetch'], code: 1 },
  ])('$args exits $code', async ({ args, code, message }: { args: string[]; code: number; message?: string }) => {
    const run = await peerfetch(...args);
    expect(run.code).toBe(code);
    if (message) expect(run.stderr).toContain(message);
  });
});

describe('peerfetch tracker', () => {
  it('runs the tracker: prints its URL, serves /health and exits 0 on SIGTERM', async () => {
    const tracker = await startProcess(process.execPath, [BIN, 'tracker', '--port', '0'], {
      readyPattern: /peerfetch tracker listening on ws:\/\/127\.0\.0\.1:(\d+)/,
      name: 'peerfetch tracker',
    });
    try {
      const health = await rawRequest(`http://127.0.0.1:${tracker.ready![1]}`, '/health');
      expect(health.status).toBe(200);
    } finally {
      expect(await tracker.stop()).toBe(0);
    }
  });

  it('passes usage errors through as exit 2', async () => {
    const run = await peerfetch('tracker', '--port', 'nope');
    expect(run.code).toBe(2);
  });

  it('manifest --catalog takes auto, on or off only', async () => {
    const run = await peerfetch('manifest', '.', '--catalog', 'maybe');
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--catalog: invalid catalog mode "maybe"');
  });
});

describe('peerfetch demo', () => {
  it('serves the page with its tracker, the scripts, a fresh manifest and the media with Range', async () => {
    const demo = await startProcess(process.execPath, [BIN, 'demo', '--port', '0', '--tracker-port', '0', '--rate', '0'], {
      readyPattern: /Press Ctrl\+C to stop/,
      name: 'peerfetch demo',
    });
    try {
      const printed = demo.stdout();
      const url = /peerfetch demo listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(printed)?.[1];
      const trackerUrl = /tracker\s+(ws:\/\/127\.0\.0\.1:\d+)/.exec(printed)?.[1];
      expect(url).toBeDefined();
      expect(trackerUrl).toBeDefined();
      const port = new URL(url!).port;
      expect(printed).toContain(`http://127.0.0.2:${port}/`);
      expect(printed).toContain('no bandwidth cap');

      // The page, with the demo's own tracker filled in, from both viewer addresses.
      for (const base of [url!, `http://127.0.0.2:${port}`]) {
        const page = await rawRequest(base, '/');
        expect(page.status).toBe(200);
        expect(page.body.toString()).toContain(`<script src="/peerfetch.js" data-tracker="${trackerUrl}" data-swarm="peerfetch-demo" defer></script>`);
      }
      // The tracker it printed is up.
      expect((await rawRequest(trackerUrl!.replace('ws:', 'http:'), '/health')).status).toBe(200);
      for (const script of ['/peerfetch.js', '/peerfetch-sw.js', '/demo.js']) {
        const response = await rawRequest(url!, script);
        expect([script, response.status, response.headers['content-type']]).toEqual([script, 200, 'text/javascript; charset=utf-8']);
      }

      // The manifest lists the committed video, and its hashes match the bytes the origin serves.
      const manifestResponse = await rawRequest(url!, '/peerfetch-manifest.json');
      expect(manifestResponse.headers['cache-control']).toBe('no-cache');
      const manifest = await parseManifest(JSON.parse(manifestResponse.body.toString()), `${url}/peerfetch-manifest.json`);
      const video = manifest.assets.find((asset) => asset.url === '/media/film.mp4');
      expect(video?.contentType).toBe('video/mp4');
      const full = await rawRequest(url!, '/media/film.mp4');
      expect(full.body.length).toBe(video!.size);
      expect(video!.pieces.at(-1)).toBe(
        createHash('sha256').update(full.body.subarray((video!.pieces.length - 1) * video!.pieceSize)).digest('hex'),
      );
      const tail = await rawRequest(url!, '/media/film.mp4', { headers: { Range: 'bytes=1000-' } });
      expect([tail.status, tail.headers['content-range']]).toEqual([206, `bytes 1000-${video!.size - 1}/${video!.size}`]);
      expect(tail.body.equals(full.body.subarray(1000))).toBe(true);

      // The live stream (ffmpeg in real time): the playlist is published only once the manifest
      // lists its segments, so the newest segment of a playlist is in the manifest read after it.
      expect(printed).toContain(`live         ${url}/#live`);
      const playlist = await rawRequest(url!, '/media/live/index.m3u8');
      expect([playlist.status, playlist.headers['cache-control']]).toEqual([200, 'no-cache']);
      const newest = playlist.body.toString().trim().split('\n').at(-1)!;
      expect(newest).toMatch(/^seg-\d+\.ts$/);
      const liveManifest = JSON.parse((await rawRequest(url!, '/peerfetch-manifest.json')).body.toString()) as ManifestJson;
      expect(liveManifest.live).toEqual([expect.objectContaining({ playlist: '/media/live/index.m3u8', segmentMs: 2000 })]);
      const segment = liveManifest.assets.find((asset) => asset.url === `/media/live/${newest}`);
      expect(segment).toBeDefined();
      const segmentBytes = await rawRequest(url!, `/media/live/${newest}`);
      expect(segmentBytes.body.length).toBe(segment!.size);
      expect(createHash('sha256').update(segmentBytes.body.subarray(0, segment!.pieceSize)).digest('hex')).toBe(segment!.pieces[0]);
      // The packager's own playlist stays private.
      expect((await rawRequest(url!, '/media/live/.index.m3u8')).status).toBe(404);
    } finally {
      expect(await demo.stop()).toBe(0);
    }
  });

  it('starts when its STUN port is taken: the tracker answers STUN on a free port, and the demo says so', async () => {
    // Another STUN or TURN server on the machine holds the port (coturn takes 3478, the default).
    const squatter = createSocket('udp4');
    await new Promise<void>((resolve) => squatter.bind(0, '127.0.0.1', resolve));
    const taken = squatter.address().port;
    const probe = createSocket('udp4');
    try {
      const demo = await startProcess(process.execPath, [BIN, 'demo', '--port', '0', '--tracker-port', '0', '--stun-port', String(taken), '--rate', '0'], {
        readyPattern: /Press Ctrl\+C to stop/,
        name: 'peerfetch demo',
      });
      try {
        expect(demo.stderr()).toContain(`warning: UDP port ${taken} (STUN) is already in use on 127.0.0.1`);
        const stunPort = Number(/\(STUN on UDP port (\d+)\)/.exec(demo.stdout())?.[1]);
        expect(stunPort).toBeGreaterThan(0);
        expect(stunPort).not.toBe(taken);
        // The tracker's STUN service answers a Binding request (RFC 8489: type 0x0001, magic cookie) there.
        const request = Buffer.alloc(20);
        request.writeUInt16BE(0x0001, 0);
        request.writeUInt32BE(0x2112a442, 4);
        randomBytes(12).copy(request, 8);
        const answered = new Promise<Buffer>((resolve) => probe.once('message', resolve));
        probe.send(request, stunPort, '127.0.0.1');
        const response = await answered;
        expect([response.readUInt16BE(0), response.subarray(8, 20)]).toEqual([0x0101, request.subarray(8, 20)]);
      } finally {
        expect(await demo.stop()).toBe(0);
      }
    } finally {
      probe.close();
      squatter.close();
    }
  });
});
