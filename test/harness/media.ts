import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Generated media lives here (gitignored), reused across runs. */
export const MEDIA_CACHE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '.cache');

/** Parameters of a generated test video. */
export interface TestVideoOptions {
  /** Duration in seconds. Default 20. */
  seconds?: number;
  /** Target video bitrate in kbit/s. Default 3000 (≈ 7 MB for 20 s, a size the tests were measured with). */
  kbps?: number;
  /** File name prefix, to keep different tests' files apart. Default `video`. */
  name?: string;
  /** Frame size `WxH`. Default `640x480`. */
  size?: string;
  /** Frames per second. Default 25 (with `-g 50`: a keyframe every 2 s, which HLS segments rely on). */
  fps?: number;
}

/** Keyframe interval in frames: 2 s at 25 fps, so seeks and 2 s HLS segments start on a keyframe. */
const GOP_FRAMES = 50;

function resolved(options: TestVideoOptions): Required<TestVideoOptions> {
  const seconds = options.seconds ?? 20;
  const kbps = options.kbps ?? 3000;
  const name = options.name ?? 'video';
  const size = options.size ?? '640x480';
  const fps = options.fps ?? 25;
  if (!/^[\w-]+$/.test(name)) throw new Error(`media name must be [A-Za-z0-9_-], got ${JSON.stringify(name)}`);
  if (!/^\d+x\d+$/.test(size)) throw new Error(`media size must be WxH, got ${JSON.stringify(size)}`);
  if (!(seconds > 0) || !(kbps > 0) || !(fps > 0)) throw new Error('media seconds, kbps and fps must be positive');
  return { seconds, kbps, name, size, fps };
}

/** The cache key: every parameter that changes the bytes. */
export function testMediaBaseName(options: TestVideoOptions = {}): string {
  const o = resolved(options);
  return `${o.name}-${o.seconds}s-${o.kbps}k-${o.size}-${o.fps}fps`;
}

/** Constant-ish bitrate H.264 encoder arguments shared by the MP4 and the HLS outputs. */
function encoderArgs(o: Required<TestVideoOptions>): string[] {
  return [
    '-nostdin', '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc2=duration=${o.seconds}:size=${o.size}:rate=${o.fps}`,
    '-c:v', 'libx264', '-pix_fmt', 'yuv420p',
    // maxrate = bitrate and a third-of-a-second buffer keep every second close to the target,
    // so byte offsets map evenly to time (docs/contributing.md, "Chromium": generated test media).
    '-b:v', `${o.kbps}k`, '-maxrate', `${o.kbps}k`, '-bufsize', `${Math.max(1, Math.round(o.kbps / 3))}k`,
    '-g', String(GOP_FRAMES), '-keyint_min', String(GOP_FRAMES), '-sc_threshold', '0',
    // One encoder thread makes the output byte-identical across runs and machines of this kind.
    '-threads', '1',
    '-an',
  ];
}

function ffmpeg(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.env.PEERFETCH_FFMPEG ?? 'ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', (error) => reject(new Error(`ffmpeg could not start (apt-get install -y ffmpeg): ${error.message}`)));
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg exited with ${code}: ${stderr.trim()}`))));
  });
}

/** Same-process callers asking for the same file share one ffmpeg run. */
const pending = new Map<string, Promise<string>>();

/** Builds `target` through a temporary sibling and a rename, so a crash or a parallel worker never sees half a file. */
function cached(target: string, build: (tmp: string) => Promise<void>): Promise<string> {
  const existing = pending.get(target);
  if (existing) return existing;
  const job = (async () => {
    if (existsSync(target)) return target;
    await mkdir(dirname(target), { recursive: true });
    const tmp = `${target}.tmp-${process.pid}-${Date.now()}`;
    try {
      await build(tmp);
      await rename(tmp, target).catch(async (error: NodeJS.ErrnoException) => {
        // Another worker finished the same file first (rename onto a non-empty folder fails).
        if (!existsSync(target)) throw error;
        await rm(tmp, { recursive: true, force: true });
      });
    } catch (error) {
      await rm(tmp, { recursive: true, force: true });
      throw error;
    }
    return target;
  })();
  pending.set(target, job);
  job.catch(() => pending.delete(target));
  return job;
}

/**
 * Returns the path of an H.264 MP4 (testsrc2 pattern, yuv420p, `-movflags +faststart`,
 * keyframe every 2 s, constant-ish bitrate), generating it with ffmpeg into test/.cache/
 * on first use and reusing it afterwards.
 *
 * @example
 * const video = await ensureTestVideo({ seconds: 20, kbps: 3000 }); // ≈ 7 MB
 */
export function ensureTestVideo(options: TestVideoOptions = {}): Promise<string> {
  const o = resolved(options);
  const target = join(MEDIA_CACHE_DIR, `${testMediaBaseName(o)}.mp4`);
  return cached(target, (tmp) => ffmpeg([...encoderArgs(o), '-movflags', '+faststart', '-f', 'mp4', tmp]));
}

/** HLS segment length in seconds: 2 s, matching the 2 s keyframe interval. */
export const HLS_SEGMENT_SECONDS = 2;

/**
 * Returns the folder of a VOD HLS rendition (`index.m3u8` plus `seg-000.ts`, ... of 2 s
 * each) of the same test pattern, generated into test/.cache/ on first use.
 *
 * @example
 * const dir = await ensureTestHls({ seconds: 20, kbps: 1500 });
 * const playlist = join(dir, 'index.m3u8');
 */
export function ensureTestHls(options: TestVideoOptions = {}): Promise<string> {
  const o = resolved(options);
  const target = join(MEDIA_CACHE_DIR, `${testMediaBaseName(o)}-hls`);
  return cached(target, async (tmp) => {
    await mkdir(tmp, { recursive: true });
    await ffmpeg([
      ...encoderArgs(o),
      '-f', 'hls',
      '-hls_time', String(HLS_SEGMENT_SECONDS),
      '-hls_playlist_type', 'vod',
      '-hls_segment_filename', join(tmp, 'seg-%03d.ts'),
      join(tmp, 'index.m3u8'),
    ]);
  });
}

/** A real-time live source: ffmpeg writing into a folder as a live packager does. */
export interface LiveSource {
  /** Resolves with ffmpeg's exit code once the stream has ended (after `seconds`) or was stopped. */
  readonly exited: Promise<number | null>;
  /** Stops ffmpeg (SIGTERM); resolves once it has exited. */
  stop(): Promise<void>;
}

/** Options of {@link startLiveSource}. */
export interface LiveSourceOptions {
  /** `hls` writes `.index.m3u8` and `seg-NNNNN.ts`; `dash` writes `.live.mpd`, `init-stream0.m4s` and `chunk-stream0-NNNNN.m4s`. */
  format: 'hls' | 'dash';
  /** Length of the stream (s); it then ends (#EXT-X-ENDLIST, a static MPD). */
  seconds: number;
  kbps: number;
  /** Segments in the playlist window. */
  windowSegments: number;
}

/** The video a live source sends (encoded once, cached). */
export function liveSourceVideo(options: LiveSourceOptions): TestVideoOptions {
  return { name: 'live-source', seconds: options.seconds, kbps: options.kbps, size: '426x240' };
}

/**
 * Starts ffmpeg sending the test pattern in real time (`-re`) into `folder` as a live stream:
 * 2 s segments, a window of `windowSegments`, segments that leave the window deleted, and the
 * playlist written under a hidden name through temp files (HLS: `-hls_flags temp_file`, with
 * EXT-X-PROGRAM-DATE-TIME for latency; DASH: ffmpeg renames its files unasked), so that
 * `peerfetch manifest --watch` publishes it (`index.m3u8`, `live.mpd`) once the manifest lists
 * its segments.
 *
 * The pattern is encoded once ahead (cached like every test video) and the live run only
 * packages it (`-c copy`): a real-time x264 encode on this shared 2-core machine fell behind
 * the clock at load averages around 25 (measured: segments late, latency drifting from 12 s to
 * 25 s for the origin-only viewer too), which would test the encoder, not peerfetch.
 */
export async function startLiveSource(folder: string, options: LiveSourceOptions): Promise<LiveSource> {
  const encoded = await ensureTestVideo(liveSourceVideo(options));
  const output =
    options.format === 'hls'
      ? [
          '-f', 'hls',
          '-hls_time', String(HLS_SEGMENT_SECONDS),
          '-hls_list_size', String(options.windowSegments),
          '-hls_flags', 'temp_file+delete_segments+program_date_time',
          '-hls_segment_filename', join(folder, 'seg-%05d.ts'),
          join(folder, '.index.m3u8'),
        ]
      : [
          '-f', 'dash',
          '-seg_duration', String(HLS_SEGMENT_SECONDS),
          '-window_size', String(options.windowSegments),
          '-extra_window_size', '2',
          '-use_template', '1', '-use_timeline', '1',
          join(folder, '.live.mpd'),
        ];
  const child = spawn(
    process.env.PEERFETCH_FFMPEG ?? 'ffmpeg',
    [
      '-nostdin', '-hide_banner', '-loglevel', 'error', '-y',
      // Real time: one second of stream per second, as a camera or a live encoder delivers it.
      '-re', '-i', encoded,
      '-c', 'copy',
      ...output,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Options of {@link ensureTestDash}. */
export interface TestDashOptions extends TestVideoOptions {
  /**
   * One file per representation, each segment a byte range of it (`-single_file 1`: an MPD
   * SegmentList of `mediaRange`s into `<name>-stream0.mp4`), instead of a file per segment.
   */
  singleFile?: boolean;
}

/**
 * Returns the folder of a VOD DASH presentation of the test pattern, `manifest.mpd` with 2 s
 * segments, written by ffmpeg's dash muxer into test/.cache/ on first use: segment files
 * (`init-stream0.m4s`, `chunk-stream0-00001.m4s`, ...) or, with `singleFile`, one file
 * (`manifest-stream0.mp4`) whose segments the players fetch as byte ranges.
 *
 * @example
 * const dir = await ensureTestDash({ seconds: 8, kbps: 800, singleFile: true });
 */
export function ensureTestDash(options: TestDashOptions = {}): Promise<string> {
  const o = resolved(options);
  const target = join(MEDIA_CACHE_DIR, `${testMediaBaseName(o)}-dash${options.singleFile ? '-single' : ''}`);
  return cached(target, async (tmp) => {
    await mkdir(tmp, { recursive: true });
    await ffmpeg([
      ...encoderArgs(o),
      '-f', 'dash',
      '-seg_duration', String(HLS_SEGMENT_SECONDS),
      ...(options.singleFile ? ['-single_file', '1'] : ['-use_template', '1', '-use_timeline', '1']),
      join(tmp, 'manifest.mpd'),
    ]);
  });
}

/** One rendition of {@link ensureTestHlsRenditions}. */
export interface TestRendition {
  /** Frame size `WxH`. */
  size: string;
  /** Video bitrate in kbit/s. */
  kbps: number;
}

/** Options of {@link ensureTestHlsRenditions}. */
export interface TestHlsRenditionsOptions {
  /** File name prefix, to keep different tests' files apart. */
  name: string;
  /** Duration in seconds. */
  seconds: number;
  renditions: TestRendition[];
}

/** HLS segment length (s) of {@link ensureTestHlsRenditions}: 1 s, so a few seconds make ten or more segments. */
const RENDITION_SEGMENT_SECONDS = 1;

/**
 * Returns the folder of a VOD HLS stream in several renditions, as ffmpeg writes one:
 * `master.m3u8` naming `v0/index.m3u8`, `v1/index.m3u8`, ... (in the order of `renditions`), each
 * rendition's 1 s segments named `seg0.ts`, `seg1.ts`, ... `seg10.ts` (ffmpeg's unpadded default,
 * which plain string order sorts wrongly). Generated into test/.cache/ on first use.
 *
 * @example
 * const dir = await ensureTestHlsRenditions({ name: 'abr', seconds: 11, renditions: [{ size: '640x360', kbps: 800 }, { size: '320x180', kbps: 250 }] });
 */
export function ensureTestHlsRenditions(options: TestHlsRenditionsOptions): Promise<string> {
  const { name, seconds, renditions } = options;
  const sizes = renditions.map((rendition) => resolved({ name, seconds, size: rendition.size, kbps: rendition.kbps }));
  const key = sizes.map((o) => `${o.size}-${o.kbps}k`).join('-');
  const target = join(MEDIA_CACHE_DIR, `${name}-${seconds}s-${key}-hls-renditions`);
  const fps = 25;
  const split = `[0:v]split=${renditions.length}${renditions.map((_, i) => `[in${i}]`).join('')}`;
  const scales = renditions.map((rendition, i) => `[in${i}]scale=${rendition.size.replace('x', ':')}[out${i}]`);
  return cached(target, async (tmp) => {
    await mkdir(tmp, { recursive: true });
    await ffmpeg([
      '-nostdin', '-hide_banner', '-loglevel', 'error', '-y',
      '-f', 'lavfi', '-i', `testsrc2=duration=${seconds}:size=${sizes[0]!.size}:rate=${fps}`,
      '-filter_complex', [split, ...scales].join(';'),
      ...renditions.flatMap((_, i) => ['-map', `[out${i}]`]),
      '-c:v', 'libx264', '-pix_fmt', 'yuv420p',
      // Constant-ish bitrate per rendition, as in encoderArgs.
      ...renditions.flatMap((rendition, i) => [
        `-b:v:${i}`, `${rendition.kbps}k`, `-maxrate:v:${i}`, `${rendition.kbps}k`, `-bufsize:v:${i}`, `${Math.max(1, Math.round(rendition.kbps / 3))}k`,
      ]),
      // A keyframe every segment, in every rendition at the same time, so a switch can land on any segment.
      '-g', String(fps * RENDITION_SEGMENT_SECONDS), '-keyint_min', String(fps * RENDITION_SEGMENT_SECONDS), '-sc_threshold', '0',
      '-threads', '1',
      '-an',
      '-f', 'hls',
      '-hls_time', String(RENDITION_SEGMENT_SECONDS),
      '-hls_playlist_type', 'vod',
      '-master_pl_name', 'master.m3u8',
      '-var_stream_map', renditions.map((_, i) => `v:${i}`).join(' '),
      '-hls_segment_filename', join(tmp, 'v%v', 'seg%d.ts'),
      join(tmp, 'v%v', 'index.m3u8'),
    ]);
  });
}
