/**
 * The live source of `peerfetch demo`: ffmpeg encodes its test pattern in real time into a
 * private folder as a live HLS stream, and {@link watchManifest} lists each segment before it
 * publishes the playlist that names it, exactly as a site publishing a live stream does (README,
 * "Publish a live stream"). The demo serves that folder under {@link DEMO_LIVE_PREFIX}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ManifestAssetJson, ManifestLiveJson } from '../shared/manifest.js';
import { watchManifest, type ManifestWatcher } from './live-manifest.js';

/** URL path of the live folder on the demo site. */
export const DEMO_LIVE_PREFIX = '/media/live/';
/** URL path of the live playlist, as the watcher publishes it. */
export const DEMO_LIVE_PLAYLIST = `${DEMO_LIVE_PREFIX}index.m3u8`;
/** Segment length in seconds (2 s, the keyframe interval below) and playlist window in segments: a typical low-latency-ish live setup. */
const SEGMENT_SECONDS = 2;
const WINDOW_SEGMENTS = 6;
/** Frames per second of the pattern; a keyframe every SEGMENT_SECONDS, so every segment starts on one. */
const FPS = 25;
/**
 * Video bitrate in kbit/s: the demo film's 400 kbit/s, so a 2 s segment is about 100 KB, two
 * pieces at the demo's 64 KiB, and the live tab's piece map looks like the HLS tab's.
 */
const VIDEO_KBPS = 400;
/**
 * How long to wait for the first playlist, in ms: ffmpeg starts in well under a second and the
 * first segment is complete after SEGMENT_SECONDS; on a loaded machine both take longer. Past
 * this the demo starts anyway and the live tab says the stream is not there yet.
 */
const FIRST_PLAYLIST_TIMEOUT_MS = 20_000;

/** A running live source. */
export interface DemoLiveSource {
  /** The live stream's part of the manifest: its segments and its live section. */
  manifest(): { assets: ManifestAssetJson[]; live: ManifestLiveJson[]; refreshMs?: number };
  /** The folder ffmpeg writes and the origin serves under {@link DEMO_LIVE_PREFIX}. */
  folder: string;
  /** Why the stream stopped (ffmpeg exited), if it did. */
  readonly problem: string | undefined;
  /** Stops ffmpeg and the watcher and removes the folder. Idempotent. */
  stop(): Promise<void>;
}

/** The encoder: the real-time test pattern, x264 tuned for live (no look-ahead), 2 s GOPs, into `.index.m3u8`. */
function ffmpegArgs(folder: string): string[] {
  return [
    '-nostdin', '-hide_banner', '-loglevel', 'error',
    // -re: one second of pattern per second of wall clock, as a camera delivers it.
    '-re', '-f', 'lavfi', '-i', `testsrc=size=426x240:rate=${FPS}`,
    '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p',
    '-b:v', `${VIDEO_KBPS}k`, '-maxrate', `${VIDEO_KBPS}k`, '-bufsize', `${VIDEO_KBPS}k`,
    '-g', String(FPS * SEGMENT_SECONDS), '-keyint_min', String(FPS * SEGMENT_SECONDS), '-sc_threshold', '0',
    '-an',
    '-f', 'hls',
    '-hls_time', String(SEGMENT_SECONDS),
    '-hls_list_size', String(WINDOW_SEGMENTS),
    // temp_file: the playlist appears whole, after its segments (what the watcher relies on);
    // program_date_time: players measure their latency against it.
    '-hls_flags', 'temp_file+delete_segments+program_date_time',
    '-hls_segment_filename', path.join(folder, 'seg-%05d.ts'),
    path.join(folder, '.index.m3u8'),
  ];
}

/**
 * Starts ffmpeg and the watcher; resolves once the first playlist is published. Rejects (and
 * leaves nothing behind) when ffmpeg cannot start or exits before its first segment.
 *
 * @example
 * const live = await startDemoLiveSource({ ffmpeg: 'ffmpeg', pieceSize: 64 * 1024 });
 * live.manifest().assets; // the segments of the current window
 * await live.stop();
 */
export async function startDemoLiveSource(options: { ffmpeg: string; pieceSize: number }): Promise<DemoLiveSource> {
  const folder = await mkdtemp(path.join(tmpdir(), 'peerfetch-demo-live-'));
  let watcher: ManifestWatcher | undefined;
  let child: ChildProcess | undefined;
  let problem: string | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child!.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      await watcher?.stop();
      await rm(folder, { recursive: true, force: true });
    })();
    return stopping;
  };
  try {
    let firstPublished!: () => void;
    const published = new Promise<void>((resolve) => (firstPublished = resolve));
    watcher = await watchManifest(folder, {
      baseUrl: DEMO_LIVE_PREFIX,
      pieceSize: options.pieceSize,
      // Beside the segments, hidden: the origin never serves dotfiles, and the demo serves its own merged manifest.
      outFile: path.join(folder, '.peerfetch-manifest.json'),
      onUpdate: ({ published: playlists }) => {
        if (playlists.length > 0) firstPublished();
      },
    });
    const running = spawn(options.ffmpeg, ffmpegArgs(folder), { stdio: ['ignore', 'ignore', 'pipe'] });
    child = running;
    let stderr = '';
    running.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < 4000) stderr += chunk;
    });
    const failed = new Promise<never>((_resolve, reject) => {
      running.once('error', (error) => {
        problem = `ffmpeg could not start (${error.message}): install ffmpeg for the live tab`;
        reject(new Error(problem));
      });
      running.once('exit', (code, signal) => {
        if (stopping) return;
        problem = `ffmpeg stopped (${code ?? signal})${stderr.trim() ? `: ${stderr.trim().split('\n').at(-1)}` : ''}`;
        reject(new Error(problem));
      });
    });
    failed.catch(() => {}); // after the first playlist, a stop is reported through `problem`
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, FIRST_PLAYLIST_TIMEOUT_MS)));
    await Promise.race([published, failed, timeout]).finally(() => clearTimeout(timer));
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    folder,
    get problem() {
      return problem;
    },
    manifest() {
      const { assets, live = [], refreshMs } = watcher!.manifest;
      return { assets, live, refreshMs };
    },
    stop,
  };
}
