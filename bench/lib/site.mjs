// The benchmark site, laid out the way an operator would: the media (MP4 and HLS), the two
// peerfetch files at the root, the manifest written by the real `peerfetch manifest`, one page
// per system, and the third-party players. Rebuilt at the start of every benchmark, so it
// always carries the peerfetch build of this checkout.
import { copyFile, cp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { build } from 'esbuild';
import { runCommand } from './processes.mjs';

/** peerfetch's piece size for the benchmark, in bytes: the CLI default (256 KiB), used for the .torrent too. */
export const PIECE_SIZE = 256 * 1024;

/**
 * Writes the site into `<cacheDir>/site` and returns its layout.
 * @param {{ root: string, cacheDir: string, media: { mp4: string, hlsDir: string }, extraVideos?: Record<string, string> }} options
 */
export async function buildSite({ root, cacheDir, media, extraVideos = {} }) {
  const dir = join(cacheDir, 'site');
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'media'), { recursive: true });
  await mkdir(join(dir, 'bench'), { recursive: true });
  await copyFile(media.mp4, join(dir, 'media', 'video.mp4'));
  // More videos of the page path (the catalog scenario), by URL path.
  for (const [url, file] of Object.entries(extraVideos)) await copyFile(file, join(dir, ...url.split('/').filter(Boolean)));
  await cp(media.hlsDir, join(dir, 'hls'), { recursive: true });
  await copyFile(join(root, 'dist', 'peerfetch.js'), join(dir, 'peerfetch.js'));
  await copyFile(join(root, 'dist', 'peerfetch-sw.js'), join(dir, 'peerfetch-sw.js'));
  const pages = join(root, 'bench', 'pages');
  for (const name of await readdir(pages)) {
    if (name.endsWith('.html')) await copyFile(join(pages, name), join(dir, name));
  }
  await copyFile(join(root, 'node_modules', 'hls.js', 'dist', 'hls.min.js'), join(dir, 'bench', 'hls.min.js'));
  await build({
    entryPoints: [join(pages, 'p2pml-entry.js')],
    outfile: join(dir, 'bench', 'p2pml.js'),
    bundle: true,
    minify: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    // p2p-media-loader-core's own browser bundle (its documented way to be bundled).
    conditions: ['p2pml:core-as-bundle'],
    logLevel: 'error',
  });
  await runCommand(process.execPath, [join(root, 'bin', 'peerfetch.js'), 'manifest', dir, '--piece-size', String(PIECE_SIZE)], { cwd: root });
  return {
    dir,
    /** Files served outside the site folder (path → file): WebTorrent's browser build and its service worker. */
    mapped: {
      '/wt/webtorrent.min.js': join(root, 'node_modules', 'webtorrent', 'dist', 'webtorrent.min.js'),
      '/wt-sw.js': join(root, 'node_modules', 'webtorrent', 'dist', 'sw.min.js'),
    },
  };
}

/**
 * Writes a .torrent of the site's MP4 for one run: same file name and piece length as
 * peerfetch's manifest, the origin's URL as web seed, our tracker as the only announce URL
 * (create-torrent adds public trackers when none is given).
 */
export async function writeTorrent({ file, out, trackerUrl, webSeedUrl }) {
  const { default: createTorrent } = await import('create-torrent');
  const torrent = await new Promise((resolve, reject) => {
    createTorrent(
      file,
      { name: 'video.mp4', pieceLength: PIECE_SIZE, announceList: [[trackerUrl]], urlList: [webSeedUrl], createdBy: 'peerfetch bench', creationDate: 0 },
      (error, buffer) => (error ? reject(error) : resolve(buffer)),
    );
  });
  await writeFile(out, torrent);
  return out;
}
