import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readFileSync, watch } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isoDurationMs, parseDashMpd } from '../../src/cli/dash-mpd.js';
import { parseHlsPlaylist } from '../../src/cli/hls-playlist.js';
import { watchManifest, type ManifestWatcher } from '../../src/cli/live-manifest.js';
import { parseManifest, type ManifestJson } from '../../src/shared/manifest.js';

describe('parseHlsPlaylist', () => {
  const live = [
    '#EXTM3U',
    '#EXT-X-VERSION:3',
    '#EXT-X-TARGETDURATION:2',
    '#EXT-X-MEDIA-SEQUENCE:41',
    '#EXTINF:2.000000,',
    '#EXT-X-PROGRAM-DATE-TIME:2026-12-04T19:46:31.472+0000',
    'seg-00041.ts',
    '#EXTINF:1.500000,',
    'seg-00042.ts',
  ].join('\n');

  it.each([
    ['a live window', live, { targetDurationMs: 2000, windowMs: 3500, ended: false, uris: ['seg-00041.ts', 'seg-00042.ts'], sequences: [41, 42] }],
    ['an ended stream', `${live}\n#EXT-X-ENDLIST\n`, { ended: true, uris: ['seg-00041.ts', 'seg-00042.ts'] }],
    ['CRLF line ends', live.replaceAll('\n', '\r\n'), { uris: ['seg-00041.ts', 'seg-00042.ts'] }],
    [
      'an fMP4 init section, listed once before its segments',
      '#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:4,\na.m4s\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:4,\nb.m4s\n',
      { uris: ['init.mp4', 'a.m4s', 'b.m4s'], sequences: [0, 0, 1], windowMs: 8000 },
    ],
    ['no media sequence: it starts at 0', '#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\nx.ts\n', { sequences: [0], targetDurationMs: 6000 }],
    [
      'a multivariant playlist',
      '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nlow/index.m3u8\n',
      { multivariant: true, uris: [] },
    ],
  ])('reads %s', (_name, text, expected) => {
    const playlist = parseHlsPlaylist(text)!;
    const { uris, sequences, ...rest } = expected as Record<string, unknown> & { uris?: string[]; sequences?: number[] };
    expect(playlist).toMatchObject(rest);
    if (uris) expect(playlist.segments.map((segment) => segment.uri)).toEqual(uris);
    if (sequences) expect(playlist.segments.map((segment) => segment.sequence)).toEqual(sequences);
  });

  it.each([
    ['an empty file (caught mid-write)', ''],
    ['text that is not a playlist', '<html></html>'],
    ['a half-written first line', '#EXT'],
  ])('refuses %s', (_name, text) => {
    expect(parseHlsPlaylist(text)).toBeUndefined();
  });
});

const temps: string[] = [];
const watchers: ManifestWatcher[] = [];
afterEach(async () => {
  await Promise.all(watchers.splice(0).map((watcher) => watcher.stop()));
  await Promise.all(temps.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'peerfetch-live-'));
  temps.push(dir);
  return dir;
}

/** Segment bytes: distinct per number, 100 KiB (two pieces of 64 KiB). */
function segmentBytes(number: number): Uint8Array {
  return new Uint8Array(100 * 1024).fill(number % 251);
}

function playlist(first: number, count: number, ended = false): string {
  const lines = ['#EXTM3U', '#EXT-X-TARGETDURATION:2', `#EXT-X-MEDIA-SEQUENCE:${first}`];
  for (let n = first; n < first + count; n++) lines.push('#EXTINF:2.000000,', `seg-${n}.ts`);
  if (ended) lines.push('#EXT-X-ENDLIST');
  return `${lines.join('\n')}\n`;
}

/** Writes like ffmpeg's HLS muxer with -hls_flags temp_file: segment to .tmp, rename, then the playlist the same way. */
async function packagerWrites(folder: string, segment: number, text: string): Promise<void> {
  await writeFile(path.join(folder, `seg-${segment}.ts.tmp`), segmentBytes(segment));
  await rename(path.join(folder, `seg-${segment}.ts.tmp`), path.join(folder, `seg-${segment}.ts`));
  await writeFile(path.join(folder, '.index.m3u8.tmp'), text);
  await rename(path.join(folder, '.index.m3u8.tmp'), path.join(folder, '.index.m3u8'));
}

const urls = (manifest: ManifestJson) => manifest.assets.map((asset) => asset.url);

/** At each publish, the URLs the published playlist names and those the manifest written before it lists. */
interface PublishCheck {
  named: string[];
  listed: Set<string>;
}

/** An onUpdate that records a {@link PublishCheck} per published playlist (read synchronously, right after the publish). */
function recordPublishes(site: string, checks: PublishCheck[]) {
  return ({ manifest, published }: { manifest: ManifestJson; published: string[] }) => {
    for (const name of published) {
      const folder = path.posix.dirname(name) === '.' ? '' : `${path.posix.dirname(name)}/`;
      const text = parseHlsPlaylist(readFileSync(path.join(site, name), 'utf8'))!;
      checks.push({ named: text.segments.map((segment) => `/${folder}${segment.uri}`), listed: new Set(urls(manifest)) });
    }
  };
}

describe('watchManifest', () => {
  it('lists each segment its playlist names, publishes the playlist only after the manifest, and drops what left the window', async () => {
    const site = await tempDir();
    const folder = path.join(site, 'live');
    await mkdir(folder);
    await writeFile(path.join(site, 'poster.png'), new Uint8Array(20 * 1024).fill(9));
    const checks: PublishCheck[] = [];
    const watcher = await watchManifest(site, { pieceSize: 64 * 1024, allFiles: true, onUpdate: recordPublishes(site, checks) });
    watchers.push(watcher);

    for (let n = 1; n <= 4; n++) await packagerWrites(folder, n, playlist(Math.max(1, n - 2), Math.min(n, 3)));
    // An unfinished segment beside them, as a packager without temp_file would leave it.
    await writeFile(path.join(folder, 'seg-5.ts'), segmentBytes(5).subarray(0, 1000));
    await watcher.sync();

    const written = JSON.parse(await readFile(path.join(site, 'peerfetch-manifest.json'), 'utf8')) as ManifestJson;
    expect(urls(written)).toEqual(['/poster.png', '/live/seg-2.ts', '/live/seg-3.ts', '/live/seg-4.ts']);
    expect(written.live).toEqual([{ playlist: '/live/index.m3u8', segmentMs: 2000, windowMs: 6000 }]);
    expect(written.refreshMs).toBe(1000); // pages opened before the stream started find it
    expect(written.assets.slice(1).map((asset) => asset.sequence)).toEqual([2, 3, 4]);
    const segment4 = written.assets[3]!;
    expect(segment4.pieces[0]).toBe(createHash('sha256').update(segmentBytes(4).subarray(0, 64 * 1024)).digest('hex'));
    // The page-side parser accepts what the watcher writes.
    expect((await parseManifest(written, 'https://site.example/peerfetch-manifest.json')).live[0]?.folderHref).toBe('https://site.example/live/');

    // Every published playlist named only segments the manifest written before it listed.
    expect(checks.length).toBeGreaterThan(0);
    for (const { named, listed } of checks) for (const url of named) expect(listed.has(url), url).toBe(true);
    expect(await readFile(path.join(folder, 'index.m3u8'), 'utf8')).toBe(playlist(2, 3));

    await packagerWrites(folder, 5, playlist(3, 3, true));
    await watcher.sync();
    expect(urls(watcher.manifest)).toEqual(['/poster.png', '/live/seg-3.ts', '/live/seg-4.ts', '/live/seg-5.ts']);
    expect(watcher.manifest.live?.[0]?.ended).toBe(true);
    expect(await readFile(path.join(folder, 'index.m3u8'), 'utf8')).toContain('#EXT-X-ENDLIST');
  });

  it('keeps the signed URL parameters to ignore in every manifest it writes', async () => {
    const site = await tempDir();
    const folder = path.join(site, 'live');
    await mkdir(folder);
    const watcher = await watchManifest(site, { pieceSize: 64 * 1024, ignoreQuery: ['token', 'expires'] });
    watchers.push(watcher);
    await packagerWrites(folder, 1, playlist(1, 1));
    await watcher.sync();
    const written = JSON.parse(await readFile(path.join(site, 'peerfetch-manifest.json'), 'utf8')) as ManifestJson;
    expect(urls(written)).toEqual(['/live/seg-1.ts']);
    expect(written.ignoreQuery).toEqual(['token', 'expires']);
  });

  it('publishes no playlist naming a segment the manifest does not list, with ffmpeg writing a real-time stream', async () => {
    const site = await tempDir();
    const checks: PublishCheck[] = [];
    // The order in which files appear, as any reader of the folder (an origin server) sees it.
    const appeared: string[] = [];
    const folderWatch = watch(site, (_event, name) => {
      if (name === 'peerfetch-manifest.json' || name === 'index.m3u8') appeared.push(name);
    });
    const watcher = await watchManifest(site, { pieceSize: 16 * 1024, onUpdate: recordPublishes(site, checks) });
    watchers.push(watcher);
    const ffmpeg = spawn('ffmpeg', [
      ...['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=10', '-t', '5'],
      ...['-c:v', 'libx264', '-g', '10', '-pix_fmt', 'yuv420p', '-f', 'hls', '-hls_time', '1', '-hls_list_size', '3'],
      ...['-hls_flags', 'temp_file+delete_segments', '-hls_segment_filename', path.join(site, 'seg-%03d.ts'), path.join(site, '.index.m3u8')],
    ]);
    const exit = await new Promise<number | null>((resolve) => ffmpeg.on('exit', resolve));
    expect(exit).toBe(0);
    await watcher.sync();
    await new Promise((resolve) => setImmediate(resolve));
    folderWatch.close();
    expect(checks.length).toBeGreaterThanOrEqual(3);
    // Each new playlist came after a new manifest.
    const playlistEvents = appeared.filter((name) => name === 'index.m3u8').length;
    expect(playlistEvents).toBeGreaterThanOrEqual(3);
    expect(appeared.join(' ')).toMatch(/^(peerfetch-manifest\.json( peerfetch-manifest\.json)* index\.m3u8 ?)+$/);
    for (const { named, listed } of checks) for (const url of named) expect(listed.has(url), url).toBe(true);
    const last = parseHlsPlaylist(await readFile(path.join(site, 'index.m3u8'), 'utf8'))!;
    expect(last.ended).toBe(true);
    expect(urls(watcher.manifest)).toEqual(last.segments.map((segment) => `/${segment.uri}`));
  });
});

describe('parseDashMpd', () => {
  // What ffmpeg 5.1's dash muxer writes (`-f dash -seg_duration 2 -window_size 3`), trimmed.
  const mpd = (type: string, timeline: string, startNumber = 2) => `<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="${type}" maxSegmentDuration="PT2.0S" minBufferTime="PT4.0S">
	<Period id="0" start="PT0.0S">
		<AdaptationSet id="0" contentType="video" startWithSAP="1" segmentAlignment="true">
			<Representation id="0" mimeType="video/mp4" codecs="avc1.64000a" bandwidth="29298" width="160" height="120">
				<SegmentTemplate timescale="10240" initialization="init-stream$RepresentationID$.m4s" media="chunk-stream$RepresentationID$-$Number%05d$.m4s" startNumber="${startNumber}">
					<SegmentTimeline>
${timeline}
					</SegmentTimeline>
				</SegmentTemplate>
			</Representation>
		</AdaptationSet>
	</Period>
</MPD>
`;

  it.each([
    [
      'a live window',
      mpd('dynamic', '<S t="20480" d="20480" r="1" />\n<S d="10240" />'),
      { ended: false, targetDurationMs: 2000, windowMs: 5000, uris: ['init-stream0.m4s', 'chunk-stream0-00002.m4s', 'chunk-stream0-00003.m4s', 'chunk-stream0-00004.m4s'], sequences: [2, 2, 3, 4] },
    ],
    ['a presentation that ended (static)', mpd('static', '<S t="0" d="20480" />'), { ended: true, uris: ['init-stream0.m4s', 'chunk-stream0-00002.m4s'] }],
    ['$Time$ templates', mpd('dynamic', '<S t="20480" d="20480" r="1" />').replace('$Number%05d$', '$Time$'), { uris: ['init-stream0.m4s', 'chunk-stream0-20480.m4s', 'chunk-stream0-40960.m4s'] }],
    ['a repeat to the end (r="-1"), which cannot be counted', mpd('dynamic', '<S t="0" d="20480" r="-1" />'), { uris: ['init-stream0.m4s'] }],
  ])('reads %s', (_name, text, expected) => {
    const playlist = parseDashMpd(text)!;
    const { uris, sequences, ...rest } = expected as Record<string, unknown> & { uris?: string[]; sequences?: number[] };
    expect(playlist).toMatchObject(rest);
    if (uris) expect(playlist.segments.map((segment) => segment.uri)).toEqual(uris);
    if (sequences) expect(playlist.segments.map((segment) => segment.sequence)).toEqual(sequences);
  });

  it.each([
    ['an empty file', ''],
    ['an MPD cut off mid-write', mpd('dynamic', '<S t="0" d="20480" />').slice(0, 300)],
  ])('refuses %s', (_name, text) => {
    expect(parseDashMpd(text)).toBeUndefined();
  });

  it.each([
    ['PT2.0S', 2000],
    ['PT1M4.5S', 64_500],
    ['P1DT2H', 93_600_000],
    ['2 s', undefined],
  ])('reads the ISO 8601 duration %s', (text, ms) => {
    expect(isoDurationMs(text)).toBe(ms);
  });
});
