// The benchmark's test video, generated with ffmpeg into bench/.cache (gitignored) and reused:
// one H.264 encode as MP4 (faststart) and as HLS with 2 s segments, same pattern and bitrate.
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from './processes.mjs';

/** Frames per second of the test pattern. */
const FPS = 25;
/** Keyframe every 2 s (50 frames at 25 fps), so 2 s HLS segments each start on a keyframe. */
const GOP_FRAMES = 50;
/** HLS segment length in seconds (issue 4 item 8). */
export const HLS_SEGMENT_SECONDS = 2;

function encoderArgs({ seconds, kbps, size }) {
  return [
    '-nostdin', '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc2=duration=${seconds}:size=${size}:rate=${FPS}`,
    '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-profile:v', 'main',
    // maxrate = bitrate with a one-third-second buffer: every second is close to the target,
    // so the byte count of a full play is ~ seconds × kbps / 8 for both formats.
    '-b:v', `${kbps}k`, '-maxrate', `${kbps}k`, '-bufsize', `${Math.round(kbps / 3)}k`,
    '-g', String(GOP_FRAMES), '-keyint_min', String(GOP_FRAMES), '-sc_threshold', '0',
    // One encoder thread: byte-identical output across runs, so cached files stay comparable.
    '-threads', '1',
    '-an',
  ];
}

async function cached(target, build) {
  if (existsSync(target)) return target;
  const tmp = `${target}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  try {
    await build(tmp);
    await rename(tmp, target);
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    throw error;
  }
  return target;
}

/**
 * Ensures `<cacheDir>/video-<key>.mp4` and `<cacheDir>/video-<key>-hls/` exist.
 * @returns {Promise<{ mp4: string, hlsDir: string, key: string }>}
 */
export async function ensureMedia(cacheDir, { seconds, kbps, size = '640x360' }) {
  const { mp4, key } = await ensureMp4(cacheDir, { seconds, kbps, size });
  const hlsDir = await cached(join(cacheDir, `video-${key}-hls`), async (tmp) => {
    await mkdir(tmp, { recursive: true });
    await runCommand('ffmpeg', [
      ...encoderArgs({ seconds, kbps, size }),
      '-f', 'hls', '-hls_time', String(HLS_SEGMENT_SECONDS), '-hls_playlist_type', 'vod',
      '-hls_segment_filename', join(tmp, 'seg-%03d.ts'),
      join(tmp, 'index.m3u8'),
    ]);
  });
  return { mp4, hlsDir, key };
}

/**
 * Ensures `<cacheDir>/video-<key>.mp4` exists (the live scenario's source packages it in real time).
 * @returns {Promise<{ mp4: string, key: string }>}
 */
export async function ensureMp4(cacheDir, { seconds, kbps, size = '640x360' }) {
  await mkdir(cacheDir, { recursive: true });
  const key = `${seconds}s-${kbps}k-${size}`;
  const mp4 = await cached(join(cacheDir, `video-${key}.mp4`), (tmp) =>
    runCommand('ffmpeg', [...encoderArgs({ seconds, kbps, size }), '-movflags', '+faststart', '-f', 'mp4', tmp]),
  );
  return { mp4, key };
}

/** Total size in bytes of the files of a folder (an HLS rendition: playlist plus segments). */
export async function folderBytes(dir) {
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  return total;
}
