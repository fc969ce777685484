import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, symlink, writeFile, chmod, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildManifest, parseSize } from '../../src/cli/build-manifest.js';
import { isPeerfetchError } from '../../src/shared/errors.js';
import { DEFAULT_PIECE_SIZE, MANIFEST_VERSION, MIN_PIECE_SIZE, parseManifest } from '../../src/shared/manifest.js';

const KiB = 1024;

/** Deterministic bytes (not all zeros, so a piece boundary error changes the hashes). */
function bytes(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Writes `files` (relative path → content) under a fresh temp folder and returns its path. */
async function makeTree(files: Record<string, Uint8Array | string>): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), 'peerfetch-manifest-'));
  for (const [relative, content] of Object.entries(files)) {
    const file = path.join(root, relative);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
  temps.push(root);
  return root;
}

const temps: string[] = [];
afterAll(async () => {
  await Promise.all(temps.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function expectCode(promise: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    expect(isPeerfetchError(error), String(error)).toBe(true);
    expect((error as { code: string }).code).toBe(code);
    return;
  }
  throw new Error(`expected a PeerfetchError ${code}`);
}

describe('parseSize', () => {
  it.each([
    ['256KiB', 262_144],
    ['256KB', 256_000],
    ['256 kib', 262_144],
    ['1MiB', 1_048_576],
    ['1MB', 1_000_000],
    ['1.5MiB', 1_572_864],
    ['65536', 65_536],
    ['16384B', 16_384],
    [' 64KiB ', 65_536],
  ])('%s is %d bytes', (text, expected) => {
    expect(parseSize(text)).toBe(expected);
  });

  it.each(['', 'abc', '-1', '1GiB', '0.5B', '1.0001KB', 'KiB', '12 34'])('rejects %j', async (text) => {
    await expectCode(() => parseSize(text), 'option-invalid');
  });
});

describe('buildManifest', () => {
  let site: string;
  const film = bytes(2 * DEFAULT_PIECE_SIZE + 1000, 7);
  const clip = bytes(3 * KiB, 9);

  beforeAll(async () => {
    site = await makeTree({
      'media/film.mp4': film,
      'media/sub/clip.webm': clip,
      'media/a b#1.mp3': bytes(10, 3),
      'media/é.ts': bytes(20, 4),
      'media/data.xyz': bytes(30, 5),
      'media/empty.mp4': new Uint8Array(0),
      'media/.hidden.mp4': bytes(10, 6),
      '.git/objects/pack.bin': bytes(10, 6),
      'hls/index.m3u8': '#EXTM3U\n',
      'dash/stream.mpd': '<MPD/>',
      'index.html': '<!doctype html>',
      'app.js': 'console.log(1)',
      'app.mjs': 'export {}',
      'style.css': 'body{}',
      'app.js.map': '{}',
      'data.json': '{}',
      'notes.txt': 'hi',
      'feed.xml': '<x/>',
      'site.webmanifest': '{}',
      'peerfetch-manifest.json': '{"stale":true}',
      'poster.JPG': bytes(100, 8),
    });
  });

  it('lists only video and audio by default, and says how many other files it left out', async () => {
    const { manifest, warnings } = await buildManifest(site);
    expect(manifest.assets.map((asset) => asset.url)).toEqual(['/media/a%20b%231.mp3', '/media/film.mp4', '/media/sub/clip.webm', '/media/%C3%A9.ts']);
    expect(warnings).toEqual(['left out 2 files that are not video or audio (--all-files lists them)', 'skipped media/empty.mp4: empty file']);
  });

  it('lists every asset with allFiles, in sorted order with URL-encoded paths and content types', async () => {
    const { manifest, warnings } = await buildManifest(site, { allFiles: true });
    expect(manifest.version).toBe(MANIFEST_VERSION);
    expect(manifest.assets.map((asset) => [asset.url, asset.contentType])).toEqual([
      ['/media/a%20b%231.mp3', 'audio/mpeg'],
      ['/media/data.xyz', 'application/octet-stream'],
      ['/media/film.mp4', 'video/mp4'],
      ['/media/sub/clip.webm', 'video/webm'],
      ['/media/%C3%A9.ts', 'video/mp2t'],
      ['/poster.JPG', 'image/jpeg'],
    ]);
    // Surprising skips are warned about; expected ones (page files, playlists, dotfiles) are not.
    expect(warnings).toEqual([
      'media/data.xyz: unknown file type, listed as application/octet-stream',
      'skipped media/empty.mp4: empty file',
    ]);
  });

  it('hashes every piece with SHA-256, the last one short', async () => {
    const { manifest } = await buildManifest(site);
    const asset = manifest.assets.find((entry) => entry.url === '/media/film.mp4')!;
    expect(asset.size).toBe(film.length);
    expect(asset.pieceSize).toBe(DEFAULT_PIECE_SIZE);
    expect(asset.pieces).toEqual([
      sha256(film.subarray(0, DEFAULT_PIECE_SIZE)),
      sha256(film.subarray(DEFAULT_PIECE_SIZE, 2 * DEFAULT_PIECE_SIZE)),
      sha256(film.subarray(2 * DEFAULT_PIECE_SIZE)),
    ]);
  });

  it.each([
    { name: 'exact multiple of the piece size', size: 4 * MIN_PIECE_SIZE, pieces: 4 },
    { name: 'one byte over', size: 4 * MIN_PIECE_SIZE + 1, pieces: 5 },
    { name: 'smaller than a piece', size: 100, pieces: 1 },
  ])('piece count: $name', async ({ size, pieces }) => {
    const data = bytes(size, size);
    const dir = await makeTree({ 'v.mp4': data });
    const { manifest } = await buildManifest(dir, { pieceSize: MIN_PIECE_SIZE });
    const [asset] = manifest.assets;
    expect(asset!.pieces).toHaveLength(pieces);
    const last = data.subarray((pieces - 1) * MIN_PIECE_SIZE);
    expect(asset!.pieces[pieces - 1]).toBe(sha256(last));
  });

  it.each([
    { baseUrl: undefined, url: '/media/film.mp4' },
    { baseUrl: '/', url: '/media/film.mp4' },
    { baseUrl: '/static', url: '/static/media/film.mp4' },
    { baseUrl: '/static/', url: '/static/media/film.mp4' },
    { baseUrl: 'https://cdn.example/v1', url: 'https://cdn.example/v1/media/film.mp4' },
    { baseUrl: 'https://cdn.example/v1/', url: 'https://cdn.example/v1/media/film.mp4' },
    { baseUrl: 'http://cdn.example', url: 'http://cdn.example/media/film.mp4' },
  ])('base URL $baseUrl gives $url', async ({ baseUrl, url }) => {
    const { manifest } = await buildManifest(site, { baseUrl });
    expect(manifest.assets.map((asset) => asset.url)).toContain(url);
  });

  it.each(['ftp://cdn.example/', 'cdn.example/v1', 'https://cdn.example/?v=1', '//cdn.example/'])(
    'rejects base URL %j',
    async (baseUrl) => {
      await expectCode(buildManifest(site, { baseUrl }), 'option-invalid');
    },
  );

  it.each([1024, MIN_PIECE_SIZE - 1, 32 * 1024 * 1024, 1.5 * MIN_PIECE_SIZE + 0.5])(
    'rejects piece size %d',
    async (pieceSize) => {
      await expectCode(buildManifest(site, { pieceSize }), 'option-invalid');
    },
  );

  it('round-trips through parseManifest, resolving URLs against the manifest URL', async () => {
    const { manifest } = await buildManifest(site, { baseUrl: 'https://cdn.example/v1' });
    const raw = JSON.parse(JSON.stringify(manifest)) as unknown;
    const parsed = await parseManifest(raw, 'https://site.example/peerfetch-manifest.json');
    expect(parsed.assets.map((asset) => asset.href)).toEqual(manifest.assets.map((asset) => asset.url));
    const local = await parseManifest(JSON.parse(JSON.stringify((await buildManifest(site)).manifest)), 'https://site.example/x/peerfetch-manifest.json');
    expect(local.assets[0]!.href).toBe('https://site.example/media/a%20b%231.mp3');
  });

  it('is deterministic', async () => {
    const first = JSON.stringify((await buildManifest(site)).manifest);
    const second = JSON.stringify((await buildManifest(site)).manifest);
    expect(second).toBe(first);
  });

  it('leaves out the file named by outFile', async () => {
    const dir = await makeTree({ 'a.mp4': bytes(10), 'out.bin': bytes(10) });
    const { manifest } = await buildManifest(dir, { outFile: path.join(dir, 'out.bin') });
    expect(manifest.assets.map((asset) => asset.url)).toEqual(['/a.mp4']);
  });

  it('follows symlinks inside the folder, warns about ones outside, broken ones and cycles end', async () => {
    const outside = await makeTree({ 'secret.mp4': bytes(10) });
    const dir = await makeTree({ 'real/a.mp4': bytes(10, 1), 'b.mp4': bytes(10, 2) });
    await symlink(path.join(dir, 'real'), path.join(dir, 'linked'));
    await symlink(path.join(dir, 'b.mp4'), path.join(dir, 'c.mp4'));
    await symlink(path.join(outside, 'secret.mp4'), path.join(dir, 'escape.mp4'));
    await symlink(outside, path.join(dir, 'escape-dir'));
    await symlink(path.join(dir, 'missing.mp4'), path.join(dir, 'broken.mp4'));
    await symlink(dir, path.join(dir, 'real', 'loop'));
    const { manifest, warnings } = await buildManifest(dir);
    expect(manifest.assets.map((asset) => asset.url)).toEqual(['/b.mp4', '/c.mp4', '/linked/a.mp4']);
    expect(warnings).toHaveLength(3);
    expect(warnings.find((w) => w.startsWith('skipped broken.mp4: broken symlink'))).toBeDefined();
    expect(warnings.find((w) => w.startsWith('skipped escape.mp4: symlink to'))).toContain('outside the folder');
    expect(warnings.find((w) => w.startsWith('skipped escape-dir: symlink to'))).toContain('outside the folder');
  });

  it('warns about files that are not regular files', async () => {
    const dir = await makeTree({ 'a.mp4': bytes(10) });
    execFileSync('mkfifo', [path.join(dir, 'pipe.mp4')]);
    const { manifest, warnings } = await buildManifest(dir);
    expect(manifest.assets).toHaveLength(1);
    expect(warnings).toEqual(['skipped pipe.mp4: not a regular file']);
  });

  it.skipIf(process.getuid?.() === 0)('warns about unreadable files (needs a non-root user)', async () => {
    const dir = await makeTree({ 'a.mp4': bytes(10), 'locked.mp4': bytes(10) });
    await chmod(path.join(dir, 'locked.mp4'), 0o000);
    const { manifest, warnings } = await buildManifest(dir);
    expect(manifest.assets).toHaveLength(1);
    expect(warnings[0]).toMatch(/^skipped locked\.mp4: unreadable/);
  });

  it('warns when a folder has no assets', async () => {
    const dir = await makeTree({ 'index.html': 'x' });
    const { manifest, warnings } = await buildManifest(dir);
    expect(manifest.assets).toEqual([]);
    expect(warnings).toEqual([`no assets found in ${dir}`]);
  });

  it.each([
    { name: 'a missing folder', dir: () => path.join(tmpdir(), 'peerfetch-does-not-exist') },
    { name: 'a file', dir: () => path.join(site, 'media', 'film.mp4') },
  ])('throws manifest-dir-missing for $name', async ({ dir }) => {
    await expectCode(buildManifest(dir()), 'manifest-dir-missing');
  });
});

describe('buildManifest: play order of segments', () => {
  it('orders numbered names naturally (ffmpeg writes seg2 before seg10)', async () => {
    const names = ['seg10.ts', 'seg9.ts', 'seg0.ts', 'seg1.ts', 'seg2.ts', 'seg11.ts', 'seg100.ts'];
    const root = await makeTree(Object.fromEntries(names.map((name, i) => [`hls/${name}`, bytes(100, i + 1)])));
    const { manifest } = await buildManifest(root);
    expect(manifest.assets.map((asset) => asset.url)).toEqual(
      ['seg0', 'seg1', 'seg2', 'seg9', 'seg10', 'seg11', 'seg100'].map((name) => `/hls/${name}.ts`),
    );
  });

  it('follows the order a playlist names its segments in, whatever their names', async () => {
    const root = await makeTree({
      'hls/index.m3u8': [
        '#EXTM3U',
        '#EXT-X-MAP:URI="init.mp4"',
        '#EXTINF:2,',
        'zeta.m4s',
        '#EXTINF:2,',
        'alpha.m4s',
        '#EXTINF:2,',
        'sub/mid.m4s',
        '#EXTINF:2,',
        'https://cdn.example/elsewhere.m4s',
        '#EXT-X-ENDLIST',
      ].join('\n'),
      'hls/alpha.m4s': bytes(100, 1),
      'hls/init.mp4': bytes(100, 2),
      'hls/sub/mid.m4s': bytes(100, 3),
      'hls/zeta.m4s': bytes(100, 4),
      'hls/unlisted.m4s': bytes(100, 5),
      'poster.jpg': bytes(100, 6),
    });
    const { manifest } = await buildManifest(root, { allFiles: true });
    // The playlist's files fill the places their names had; other files keep natural order.
    expect(manifest.assets.map((asset) => asset.url)).toEqual([
      '/hls/init.mp4',
      '/hls/zeta.m4s',
      '/hls/alpha.m4s',
      '/hls/unlisted.m4s',
      '/hls/sub/mid.m4s',
      '/poster.jpg',
    ]);
  });
});

describe('buildManifest: parallel hashing, progress and reuse of unchanged files', () => {
  /** A clock a minute ahead: files written by the test count as settled, not as written just now. */
  const later = () => Date.now() + 60_000;

  it('hashes files in parallel into the same manifest, in the same order, as one at a time', async () => {
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 12; i++) files[`media/seg${i}.ts`] = bytes(40 * KiB + i * 1000, i + 1);
    const root = await makeTree(files);
    const one = await buildManifest(root, { pieceSize: MIN_PIECE_SIZE, concurrency: 1 });
    const many = await buildManifest(root, { pieceSize: MIN_PIECE_SIZE, concurrency: 6 });
    expect(many.manifest).toEqual(one.manifest);
    expect(many.manifest.assets.map((asset) => asset.url)).toEqual(Array.from({ length: 12 }, (_, i) => `/media/seg${i}.ts`));
    await expect(buildManifest(root, { concurrency: 0 })).rejects.toMatchObject({ code: 'option-invalid' });
  });

  it('reports progress after every file, ending at all files and bytes', async () => {
    const root = await makeTree({ 'a.mp4': bytes(50 * KiB), 'b.mp4': bytes(70 * KiB, 2), 'c.mp4': bytes(10 * KiB, 3) });
    const seen: { files: number; bytes: number; totalFiles: number; totalBytes: number }[] = [];
    await buildManifest(root, { onProgress: (progress) => seen.push(progress) });
    expect(seen.map((progress) => progress.files)).toEqual([1, 2, 3]);
    expect(seen.at(-1)).toMatchObject({ files: 3, totalFiles: 3, bytes: 130 * KiB, totalBytes: 130 * KiB });
  });

  it('keeps the pieces of files whose fingerprint is unchanged, and hashes changed and new ones', async () => {
    const root = await makeTree({ 'old.mp4': bytes(50 * KiB), 'edited.mp4': bytes(50 * KiB, 2) });
    const first = await buildManifest(root, { pieceSize: MIN_PIECE_SIZE, now: later });
    expect(Object.keys(first.fingerprints).sort()).toEqual(['edited.mp4', 'old.mp4']);
    expect(first.reused).toBe(0);

    // Marked pieces in the previous manifest show which assets were taken from it without reading the file.
    const marked = { ...first.manifest, assets: first.manifest.assets.map((asset) => ({ ...asset, pieces: asset.pieces.map(() => 'f'.repeat(64)) })) };
    // New bytes of the same size under the old modification time (as cp -p or rsync -t leave a file): its change time differs.
    const edited = path.join(root, 'edited.mp4');
    const { mtime } = await stat(edited);
    await writeFile(edited, bytes(50 * KiB, 9));
    await utimes(edited, mtime, mtime);
    await writeFile(path.join(root, 'new.mp4'), bytes(20 * KiB, 4));
    const reuse = { manifest: marked, fingerprints: first.fingerprints };
    const second = await buildManifest(root, { pieceSize: MIN_PIECE_SIZE, reuse, now: later });
    const byUrl = Object.fromEntries(second.manifest.assets.map((asset) => [asset.url, asset.pieces]));
    expect(byUrl['/old.mp4']!.every((piece) => piece === 'f'.repeat(64))).toBe(true);
    expect(byUrl['/edited.mp4']![0]).toBe(sha256(bytes(50 * KiB, 9).subarray(0, MIN_PIECE_SIZE)));
    expect(byUrl['/new.mp4']![0]).toBe(sha256(bytes(20 * KiB, 4).subarray(0, MIN_PIECE_SIZE)));
    expect(second.reused).toBe(1);
    expect(Object.keys(second.fingerprints).sort()).toEqual(['edited.mp4', 'new.mp4', 'old.mp4']);

    // Another piece size: nothing can be reused.
    expect((await buildManifest(root, { pieceSize: 2 * MIN_PIECE_SIZE, reuse, now: later })).reused).toBe(0);
  });

  it('keeps no fingerprint of a file written just before the run (a second write in the same clock tick would go unseen)', async () => {
    const root = await makeTree({ 'fresh.mp4': bytes(20 * KiB), 'settled.mp4': bytes(20 * KiB, 2) });
    // The run's clock is just after the files were written; settled.mp4's times are set a minute back (its change time cannot be, so the clock decides).
    const result = await buildManifest(root, { now: () => Date.now() });
    expect(result.fingerprints).toEqual({});
    expect(result.manifest.assets).toHaveLength(2);
  });
});

describe('buildManifest: signed URLs', () => {
  it('writes the query parameters to ignore, and only when asked', async () => {
    const root = await makeTree({ 'media/film.mp4': bytes(100, 1) });
    expect((await buildManifest(root, { ignoreQuery: ['token', 'expires'] })).manifest.ignoreQuery).toEqual(['token', 'expires']);
    expect('ignoreQuery' in (await buildManifest(root)).manifest).toBe(false);
  });

  it.each([['token='], ['a b'], ['']])('refuses the parameter name %j with option-invalid', async (name) => {
    const root = await makeTree({ 'media/film.mp4': bytes(100, 1) });
    const error = await buildManifest(root, { ignoreQuery: [name] }).catch((caught: unknown) => caught);
    expect(isPeerfetchError(error) && error.code).toBe('option-invalid');
  });
});
