import { describe, expect, it } from 'vitest';
import { findAsset, findLiveStream, isOlderLiveVersion, parseManifest, splitSignedUrl, streamKey, withSignature, type ManifestJson } from '../../src/shared/manifest.js';
import { sha256Hex, verifyPiece } from '../../src/shared/integrity.js';
import { isPeerfetchError } from '../../src/shared/errors.js';
import { binaryToHex } from '../../src/shared/hex.js';
import { swarmInfoHash, randomPeerId } from '../../src/shared/swarm-id.js';

const HASH = 'a'.repeat(64);
const valid = (): ManifestJson => ({
  version: 1,
  assets: [{ url: '/media/film.mp4', size: 300 * 1024, contentType: 'video/mp4', pieceSize: 256 * 1024, pieces: [HASH, HASH] }],
});

async function codeOf(raw: unknown): Promise<string | undefined> {
  try {
    await parseManifest(raw, 'https://site.example/peerfetch-manifest.json');
    return undefined;
  } catch (error) {
    return isPeerfetchError(error) ? error.code : 'not-a-peerfetch-error';
  }
}

describe('parseManifest', () => {
  it('resolves URLs against the manifest URL and derives a content id', async () => {
    const manifest = await parseManifest(valid(), 'https://site.example/peerfetch-manifest.json');
    const [asset] = manifest.assets;
    expect(asset?.href).toBe('https://site.example/media/film.mp4');
    expect(asset?.id).toMatch(/^[0-9a-f]{16}$/);
    expect(findAsset(manifest, 'https://site.example/media/film.mp4#t=3')).toBe(asset);
    expect(findAsset(manifest, 'https://site.example/media/other.mp4')).toBeUndefined();
  });

  it('gives different content ids to different bytes', async () => {
    const other = valid();
    other.assets[0]!.pieces = [HASH, 'b'.repeat(64)];
    const [a] = (await parseManifest(valid(), 'https://x.example/')).assets;
    const [b] = (await parseManifest(other, 'https://x.example/')).assets;
    expect(a?.id).not.toBe(b?.id);
  });

  const broken = (change: (manifest: ManifestJson & Record<string, unknown>) => void) => {
    const manifest = valid() as ManifestJson & Record<string, unknown>;
    change(manifest);
    return manifest;
  };

  it.each([
    ['not an object', 'hello'],
    ['a wrong version', broken((m) => (m.version = 2))],
    ['assets not an array', broken((m) => ((m as Record<string, unknown>).assets = {}))],
    ['an asset without url', broken((m) => ((m.assets[0] as unknown as Record<string, unknown>).url = ''))],
    ['a negative size', broken((m) => (m.assets[0]!.size = -1))],
    ['a tiny piece size', broken((m) => (m.assets[0]!.pieceSize = 10))],
    ['a bad hash', broken((m) => (m.assets[0]!.pieces = ['xyz', HASH]))],
    ['too few pieces', broken((m) => (m.assets[0]!.pieces = [HASH]))],
    ['a duplicate asset', broken((m) => m.assets.push({ ...m.assets[0]! }))],
  ])('rejects %s with manifest-invalid', async (_name, raw) => {
    expect(await codeOf(raw)).toBe('manifest-invalid');
  });
});

describe('signed URLs: query parameters the manifest ignores', () => {
  it.each([
    ['https://cdn.example/v.mp4?token=abc', ['token'], 'https://cdn.example/v.mp4', 'token=abc'],
    ['https://cdn.example/v.mp4?token=abc&expires=9#t=3', ['token', 'expires'], 'https://cdn.example/v.mp4', 'token=abc&expires=9'],
    ['https://cdn.example/v.mp4?token=abc&quality=hd', ['token'], 'https://cdn.example/v.mp4?quality=hd', 'token=abc'],
    // The rest of the query is kept as written (a URL parser would re-encode the slash).
    ['https://cdn.example/v.mp4?path=a/b&token=a%2Fb%3D', ['token'], 'https://cdn.example/v.mp4?path=a/b', 'token=a%2Fb%3D'],
    ['https://cdn.example/v.mp4?token=abc', [], 'https://cdn.example/v.mp4?token=abc', ''],
    ['https://cdn.example/v.mp4?tokens=abc', ['token'], 'https://cdn.example/v.mp4?tokens=abc', ''],
    ['https://cdn.example/v.mp4#t=3', ['token'], 'https://cdn.example/v.mp4', ''],
  ])('splitSignedUrl(%s, %j) is %s with %j', (href, ignored, url, signature) => {
    expect(splitSignedUrl(href, ignored)).toEqual({ url, signature });
  });

  it.each([
    ['https://cdn.example/v.mp4', 'token=abc', 'https://cdn.example/v.mp4?token=abc'],
    ['https://cdn.example/v.mp4?quality=hd', 'token=abc', 'https://cdn.example/v.mp4?quality=hd&token=abc'],
    ['https://cdn.example/v.mp4', '', 'https://cdn.example/v.mp4'],
  ])('withSignature(%s, %j) is %s', (href, signature, expected) => {
    expect(withSignature(href, signature)).toBe(expected);
  });

  it('matches a request whatever the values of ignored parameters, and only those', async () => {
    const manifest = await parseManifest({ ...valid(), ignoreQuery: ['token', 'expires'] }, 'https://site.example/peerfetch-manifest.json');
    const [asset] = manifest.assets;
    expect(findAsset(manifest, 'https://site.example/media/film.mp4?token=abc&expires=1700000000')).toBe(asset);
    expect(findAsset(manifest, 'https://site.example/media/film.mp4?token=other')).toBe(asset);
    expect(findAsset(manifest, 'https://site.example/media/film.mp4?token=abc&v=2')).toBeUndefined();
    // Without ignoreQuery the URL must match exactly, query included.
    const strict = await parseManifest(valid(), 'https://site.example/peerfetch-manifest.json');
    expect(findAsset(strict, 'https://site.example/media/film.mp4?token=abc')).toBeUndefined();
  });

  it.each([
    ['not a list', 'token'],
    ['an empty name', ['token', '']],
    ['a name that is not a string', [7]],
    ['too many names', Array.from({ length: 33 }, (_, i) => `p${i}`)],
  ])('rejects ignoreQuery that is %s with manifest-invalid', async (_name, ignoreQuery) => {
    expect(await codeOf({ ...valid(), ignoreQuery })).toBe('manifest-invalid');
  });
});

describe('parseManifest: live streams', () => {
  const segment = (url: string, sequence?: number) => ({
    url,
    size: 100 * 1024,
    contentType: 'video/mp2t',
    pieceSize: 64 * 1024,
    pieces: [HASH, HASH],
    ...(sequence === undefined ? {} : { sequence }),
  });
  const liveManifest = (): ManifestJson => ({
    version: 1,
    live: [
      { playlist: '/live/index.m3u8', segmentMs: 2000, windowMs: 12_000 },
      { playlist: '/live/hd/index.m3u8', segmentMs: 4000, windowMs: 24_000, ended: true },
    ],
    assets: [segment('/media/film.mp4'), segment('/live/seg-00041.ts', 41), segment('/live/hd/seg-00007.ts', 7), segment('/live/seg-00042.ts', 42)],
  });

  it('resolves playlists and folders, and ties each segment to its stream by folder (the deepest wins)', async () => {
    const manifest = await parseManifest(liveManifest(), 'https://site.example/peerfetch-manifest.json');
    const [sd, hd] = manifest.live;
    expect(sd).toMatchObject({ playlistHref: 'https://site.example/live/index.m3u8', folderHref: 'https://site.example/live/', ended: false });
    expect(hd).toMatchObject({ folderHref: 'https://site.example/live/hd/', ended: true, segmentMs: 4000 });
    expect(manifest.assets.map((asset) => asset.live)).toEqual([undefined, sd, hd, sd]);
  });

  it('orders assets by their sequence, and by position without one', async () => {
    const manifest = await parseManifest(liveManifest(), 'https://site.example/');
    expect(manifest.assets.map((asset) => asset.index)).toEqual([0, 41, 7, 42]);
  });

  it.each([
    ['the playlist', 'https://site.example/live/index.m3u8', '/live/index.m3u8'],
    ['a segment not listed yet', 'https://site.example/live/seg-00043.ts', '/live/index.m3u8'],
    ['a segment of the deeper stream', 'https://site.example/live/hd/seg-00008.ts', '/live/hd/index.m3u8'],
    ['a file elsewhere', 'https://site.example/media/film.mp4', undefined],
    ['another origin', 'https://cdn.example/live/seg-00043.ts', undefined],
  ])('findLiveStream finds the stream of %s', async (_name, href, playlist) => {
    const manifest = await parseManifest(liveManifest(), 'https://site.example/');
    expect(findLiveStream(manifest, href)?.playlist).toBe(playlist);
  });

  it('gives an on-demand manifest no live streams and no refresh hint', async () => {
    expect(await parseManifest(valid(), 'https://site.example/')).toMatchObject({ live: [], refreshMs: undefined });
  });

  it('reads the refresh hint of a watched manifest', async () => {
    expect((await parseManifest({ ...valid(), refreshMs: 1000 }, 'https://site.example/')).refreshMs).toBe(1000);
  });

  const brokenLive = (change: (manifest: ManifestJson) => void) => {
    const manifest = liveManifest();
    change(manifest);
    return manifest;
  };
  const firstLive = (manifest: ManifestJson) => manifest.live![0] as unknown as Record<string, unknown>;

  it.each([
    ['live not an array', brokenLive((m) => ((m as unknown as Record<string, unknown>).live = { playlist: '/x.m3u8' }))],
    ['a live entry that is not an object', brokenLive((m) => ((m.live as unknown[])[0] = 'x'))],
    ['a live stream without playlist', brokenLive((m) => (firstLive(m).playlist = ''))],
    ['a zero segmentMs', brokenLive((m) => (firstLive(m).segmentMs = 0))],
    ['a segmentMs that is not a number', brokenLive((m) => (firstLive(m).segmentMs = '2000'))],
    ['an endless windowMs', brokenLive((m) => (firstLive(m).windowMs = Infinity))],
    ['a window over a day', brokenLive((m) => (firstLive(m).windowMs = 25 * 3600 * 1000))],
    ['an ended that is not a boolean', brokenLive((m) => (firstLive(m).ended = 'yes'))],
    ['a negative sequence', brokenLive((m) => (m.assets[1]!.sequence = -1))],
    ['a fractional sequence', brokenLive((m) => (m.assets[1]!.sequence = 1.5))],
    ['a negative refresh hint', brokenLive((m) => (m.refreshMs = -5))],
  ])('rejects %s with manifest-invalid', async (_name, raw) => {
    expect(await codeOf(raw)).toBe('manifest-invalid');
  });
});

describe('parseManifest: the kill switch', () => {
  it('reads "disabled": true as a manifest with nothing in it, assets or not', async () => {
    const url = 'https://site.example/peerfetch-manifest.json';
    expect(await parseManifest({ version: 1, disabled: true }, url)).toEqual({ version: 1, assets: [], live: [], disabled: true });
    const listed = await parseManifest({ version: 1, disabled: true, assets: [{ url: '/a.mp4' }] }, url);
    expect(listed.assets).toEqual([]);
    expect((await parseManifest({ version: 1, disabled: false, assets: [] }, url)).disabled).toBeUndefined();
  });

  it('refuses a disabled flag that is not a boolean', async () => {
    const error = await parseManifest({ version: 1, disabled: 'yes', assets: [] }, 'https://site.example/m.json').catch((caught: unknown) => caught);
    expect(isPeerfetchError(error, 'manifest-invalid')).toBe(true);
  });
});

describe('integrity and swarm ids', () => {
  it('hashes with SHA-256 and verifies pieces', async () => {
    const data = new TextEncoder().encode('abc');
    expect(await sha256Hex(data)).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(await verifyPiece(data, await sha256Hex(data))).toBe(true);
    expect(await verifyPiece(new Uint8Array([1]), await sha256Hex(data))).toBe(false);
  });

  it('derives a 20-byte info hash from the swarm key (SHA-1)', async () => {
    const infoHash = await swarmInfoHash('abc');
    expect(infoHash).toHaveLength(20);
    expect(binaryToHex(infoHash)).toBe('a9993e364706816aba3e25717850c26c9cd0d89d');
  });

  it('makes 20-character printable peer ids', () => {
    const id = randomPeerId((length) => new Uint8Array(length).fill(7));
    expect(id).toHaveLength(20);
    expect(id.startsWith('-PF0100-')).toBe(true);
  });
});

describe('streamKey: which assets are played one after another', () => {
  const key = (path: string, contentType = 'video/mp2t') => streamKey({ href: `https://site.example${path}`, contentType });

  it.each([
    ['HLS segments of one rendition, numbered as ffmpeg does', '/hls/seg2.ts', '/hls/seg10.ts'],
    ['zero-padded segments', '/hls/seg-001.ts', '/hls/seg-041.ts'],
    ['a live stream’s segments', '/live/seg-00041.ts', '/live/seg-00042.ts'],
    ['a rendition numbered before its segments', '/hls/stream_1_001.ts', '/hls/stream_1_002.ts'],
    ['a rendition in a numbered folder', '/hls/1080p/seg-00001.ts', '/hls/1080p/seg-00002.ts'],
    ['ffmpeg DASH segments of one representation (the digit of .m4s is no segment number)', '/dash/chunk-stream0-00001.m4s', '/dash/chunk-stream0-00002.m4s', 'video/iso.segment'],
    ['ffmpeg HLS fMP4 segments', '/hls/out0.m4s', '/hls/out12.m4s', 'video/iso.segment'],
    ['Shaka Packager segments named by template', '/dash/h264_360p_1.m4s', '/dash/h264_360p_12.m4s', 'video/iso.segment'],
    ['Bento4 mp4split segments (track, then number)', '/dash/segment-1.0001.m4s', '/dash/segment-1.0002.m4s', 'video/iso.segment'],
    ['Apple fMP4 segments with the .mp4 extension', '/hls/v2/fileSequence0.mp4', '/hls/v2/fileSequence1.mp4', 'video/mp4'],
    ['fMP4 segments named as segments', '/hls/seg1.mp4', '/hls/seg2.mp4', 'video/mp4'],
    ['ffmpeg DASH WebM segments', '/dash/chunk-stream0-00001.webm', '/dash/chunk-stream0-00002.webm', 'video/webm'],
    ['HLS packed audio', '/hls/audio/segment-1.aac', '/hls/audio/segment-2.aac', 'audio/aac'],
    ['CMAF video tracks', '/cmaf/video_1.cmfv', '/cmaf/video_2.cmfv', 'video/mp4'],
  ])('one stream: %s', (_name, a, b, contentType = 'video/mp2t') => {
    expect(key(a, contentType)).toBe(key(b, contentType));
  });

  it.each([
    ['two renditions in one folder', '/hls/stream_0_001.ts', '/hls/stream_1_001.ts'],
    ['DASH video and audio of ffmpeg in one folder', '/dash/chunk-stream0-00001.m4s', '/dash/chunk-stream1-00001.m4s', 'video/iso.segment'],
    ['two Shaka representations in one folder', '/dash/h264_360p_1.m4s', '/dash/h264_720p_1.m4s', 'video/iso.segment'],
    // The init segment is read once, before the segments: nothing to prefetch after it.
    ['a DASH init segment and its representation’s segments', '/dash/init-stream0.m4s', '/dash/chunk-stream0-00001.m4s', 'video/iso.segment'],
    ['renditions in folders of their own', '/hls/v0/seg1.ts', '/hls/v1/seg1.ts'],
    ['renditions in numbered folders', '/hls/1080p/seg-00001.ts', '/hls/720p/seg-00001.ts'],
    ['two unnumbered videos', '/media/film.mp4', '/media/trailer.mp4', 'video/mp4'],
    // Numbered whole files are different videos: a peer must not learn from video-1 that the viewer watched video-0.
    ['two numbered MP4 videos in one folder', '/media/video-0.mp4', '/media/video-1.mp4', 'video/mp4'],
    ['two videos of a catalog named by number', '/videos/1.mp4', '/videos/2.mp4', 'video/mp4'],
    ['two numbered WebM videos', '/media/episode-1.webm', '/media/episode-2.webm', 'video/webm'],
    ['two numbered audio files', '/music/track1.m4a', '/music/track2.m4a', 'audio/mp4'],
    ['one video in two numbered folders', '/v2/video.mp4', '/v3/video.mp4', 'video/mp4'],
  ])('separate streams: %s', (_name, a, b, contentType = 'video/mp2t') => {
    expect(key(a, contentType)).not.toBe(key(b, contentType));
  });

  it('keeps the digits of a whole file’s name and folder, and of an extension', () => {
    expect(key('/v2/video.mp4', 'video/mp4')).toBe('https://site.example/v2/video.mp4|video/mp4');
    expect(key('/media/video-1.mp4', 'video/mp4')).toBe('https://site.example/media/video-1.mp4|video/mp4');
    expect(key('/dash/chunk-stream0-00007.m4s', 'video/iso.segment')).toBe('https://site.example/dash/chunk-stream0-.m4s|video/iso.segment');
  });

  it('keeps files of other types apart', () => {
    expect(key('/hls/seg1.ts')).not.toBe(key('/hls/seg1.aac', 'audio/aac'));
  });
});

describe('isOlderLiveVersion: versions of a live manifest from fetches that finish out of order', () => {
  /** A live manifest listing segments `from`..`to` of /live/ (sequence numbers; `run` tells a restarted stream's bytes), maybe ended. */
  const version = (from: number, to: number, ended = false, run = 'a') =>
    parseManifest(
      {
        version: 1,
        live: [{ playlist: '/live/index.m3u8', segmentMs: 2000, windowMs: 6000, ended }],
        assets: Array.from({ length: to - from + 1 }, (_, i) => ({ url: `/live/seg-${from + i}.ts`, size: 10, contentType: 'video/mp2t', pieceSize: 16_384, pieces: [`${run}${from + i}`.padStart(64, '0')], sequence: from + i })),
      },
      'https://site.example/peerfetch-manifest.json',
    );

  it.each([
    ['the window one segment behind', [0, 2], [1, 3], true],
    ['the same version', [1, 3], [1, 3], false],
    ['a newer version', [2, 4], [1, 3], false],
    ['a growing window behind (the stream just began)', [0, 1], [0, 2], true],
  ] as const)('%s', async (_name, [from, to], [currentFrom, currentTo], older) => {
    expect(isOlderLiveVersion(await version(from, to), await version(currentFrom, currentTo))).toBe(older);
  });

  it('the version before the stream ended is older than the ended one, not the other way round', async () => {
    expect(isOlderLiveVersion(await version(1, 3), await version(1, 3, true))).toBe(true);
    expect(isOlderLiveVersion(await version(1, 3, true), await version(1, 3))).toBe(false);
  });

  it('a stream that restarted (its segments numbered from 0 again) is not older', async () => {
    expect(isOlderLiveVersion(await version(0, 1, false, 'b'), await version(7, 9))).toBe(false);
  });

  it('a manifest of another stream, or of on-demand files only, is never older', async () => {
    const onDemand = await parseManifest({ version: 1, assets: [] }, 'https://site.example/peerfetch-manifest.json');
    expect(isOlderLiveVersion(onDemand, await version(1, 3))).toBe(false);
    expect(isOlderLiveVersion(await version(1, 3), onDemand)).toBe(false);
  });
});
