/**
 * `peerfetch manifest <dir> --watch`: keeps the manifest of a folder current while a packager
 * (ffmpeg's HLS muxer) writes a live stream into it.
 *
 * The order that makes it sound: a packager writes its playlist under a hidden name
 * (`.index.m3u8`); the watcher hashes every segment that playlist names, writes the manifest,
 * and only then publishes the playlist under its public name (`index.m3u8`). So a player never
 * sees a playlist naming a segment that the manifest does not list yet, and a page that reloads
 * the manifest after fetching the playlist finds every segment of it. The origin serves the
 * published playlist; `peerfetch origin` never serves dotfiles, so the packager's own copy stays
 * private there (other servers should hide dotfiles too).
 *
 * Only segments named in the packager's playlist are hashed, never a file merely present in the
 * folder: ffmpeg 5.1 writes the playlist after it closed the segment (with `-hls_flags temp_file`
 * it writes `seg.ts.tmp`, renames it to `seg.ts`, then writes `.index.m3u8.tmp` and renames that:
 * observed with strace; its dash muxer does the same with `chunk-*.m4s.tmp` and `.live.mpd.tmp`
 * unasked), so a named segment is complete, and a half-written one is never read.
 * Segments that leave the playlist window leave the manifest, which stays the size of the window.
 */
import { readFile, readdir, realpath, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_PIECE_SIZE, MANIFEST_VERSION, type ManifestAssetJson, type ManifestJson, type ManifestLiveJson } from '../shared/manifest.js';
import {
  MANIFEST_FILE_NAME,
  buildManifest,
  checkPieceSize,
  errorCode,
  hashFile,
  urlMaker,
  type BuildManifestOptions,
} from './build-manifest.js';
import { FALLBACK_CONTENT_TYPE, assetContentType } from './content-types.js';
import { parseDashMpd } from './dash-mpd.js';
import { parseHlsPlaylist } from './hls-playlist.js';
import { wantsCatalog, writeCatalog, type CatalogMode } from './catalog-writer.js';

/**
 * How often (ms) the packagers' playlists are checked for a change. A stat per playlist is
 * cheap, and 100 ms is small next to a live segment (2 s and more), so a new segment is listed
 * and its playlist published well within one segment. Polling rather than fs.watch: inotify
 * reports ffmpeg's rename as events on both names, and a poll cannot miss one.
 */
const POLL_MS = 100;
/**
 * The manifest's refresh hint (ms): pages reload a watched manifest at most once a second when
 * requests it does not cover come by (a player polling a playlist the manifest does not name
 * yet), so a page opened before a stream starts learns of it within a second of its first segment.
 */
const WATCH_REFRESH_MS = 1000;
/** How often (ms) the folder is searched for playlists of packagers that started later. */
const RESCAN_MS = 1000;
/** A packager's playlist (HLS or DASH): a hidden file the watcher publishes without its leading dot. */
const PACKAGER_PLAYLIST = /^\.([^/]+\.(?:m3u8|mpd))$/;

/** Options of {@link watchManifest}. */
export interface WatchManifestOptions extends BuildManifestOptions {
  /**
   * When the folder's other files are written as a catalog (see catalog-writer.ts): `auto`
   * (default) when they would make the manifest larger than 64 KiB. Live segments are always
   * listed in the manifest itself, which pages reload as the stream moves.
   */
  catalog?: CatalogMode;
  /** Called after each manifest write, with the manifest and the playlists published after it. */
  onUpdate?(update: { manifest: ManifestJson; published: string[] }): void;
  /** Called once per distinct problem (a segment that cannot be read, a write that failed). */
  onWarning?(warning: string): void;
}

/** A running watch; see {@link watchManifest}. */
export interface ManifestWatcher {
  /** The manifest as last written. */
  readonly manifest: ManifestJson;
  /** Checks the packagers' playlists now and resolves once the manifest and playlists are current. */
  sync(): Promise<void>;
  /** Stops watching (after the write in progress, if any). Idempotent. */
  stop(): Promise<void>;
}

interface HashedSegment {
  size: number;
  mtimeMs: number;
  asset: ManifestAssetJson;
}

/** One packager playlist: where it is and what of it was last published. */
interface LiveStream {
  /** Path of the packager's playlist relative to the root, with `/`. */
  source: string;
  /** Path of the published playlist relative to the root. */
  published: string;
  /** The playlist's text as last read (what the manifest now describes), and as last published. */
  text: string | undefined;
  publishedText: string | undefined;
  /** What the manifest lists for it, from the last read of its playlist. */
  live: ManifestLiveJson | undefined;
  assets: ManifestAssetJson[];
  /** stat() signature of the packager's playlist when last read. */
  signature: string;
}

function encodePath(relative: string): string {
  return relative.split('/').map(encodeURIComponent).join('/');
}

async function writeAtomically(file: string, text: string): Promise<void> {
  // A hidden temporary name: neither served nor taken for a packager's playlist.
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.peerfetch-tmp`);
  await writeFile(temporary, text);
  await rename(temporary, file);
}

/**
 * Builds the manifest of `dir` like {@link buildManifest}, then keeps it current while packagers
 * write live streams into the folder: every hidden HLS playlist (`.NAME.m3u8`, for example
 * ffmpeg's `-f hls -hls_flags temp_file .index.m3u8`) is a live stream; each time it changes,
 * the segments it names are hashed and listed, segments it no longer names are dropped, the
 * manifest is written, and then the playlist is published as `NAME.m3u8`. A hidden DASH MPD
 * (`.NAME.mpd`, ffmpeg's `-f dash`, whose SegmentTemplate and SegmentTimeline name the segments)
 * is followed the same way. Files beside a live
 * stream's playlist are not listed unless that playlist names them. Rejects like buildManifest
 * for a missing folder or bad options; later problems are warnings.
 *
 * @example
 * const watcher = await watchManifest('public', { onUpdate: ({ manifest }) => console.log(manifest.assets.length) });
 * // ... ffmpeg -re -i input -f hls -hls_time 2 -hls_list_size 6 -hls_flags temp_file public/live/.index.m3u8
 * await watcher.stop();
 */
export async function watchManifest(dir: string, options: WatchManifestOptions = {}): Promise<ManifestWatcher> {
  const pieceSize = options.pieceSize ?? DEFAULT_PIECE_SIZE;
  checkPieceSize(pieceSize);
  const makeUrl = urlMaker(options.baseUrl);
  const outFile = path.resolve(options.outFile ?? path.join(dir, MANIFEST_FILE_NAME));
  const initial = await buildManifest(dir, { ...options, outFile });
  const root = await realpath(dir);
  const reported = new Set<string>();
  const warn = (warning: string) => {
    if (reported.has(warning)) return;
    reported.add(warning);
    options.onWarning?.(warning);
  };
  // A folder holding only a live stream has no assets yet: not worth a warning here.
  for (const warning of initial.warnings) if (!warning.startsWith('no assets found')) warn(warning);

  const streams = new Map<string, LiveStream>();
  const hashed = new Map<string, HashedSegment>();
  let manifest: ManifestJson = initial.manifest;
  let writtenText: string | undefined;
  let stopped = false;
  /** The cycle running or last queued, and the one waiting to start (callers meanwhile share it). */
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  let lastScan = 0;

  async function findStreams(): Promise<void> {
    lastScan = Date.now();
    let names: string[];
    try {
      names = (await readdir(root, { recursive: true })).map((name) => name.split(path.sep).join('/'));
    } catch (error) {
      return warn(`cannot search ${dir} for playlists (${errorCode(error)})`);
    }
    for (const name of names) {
      const match = PACKAGER_PLAYLIST.exec(path.posix.basename(name));
      if (!match || streams.has(name)) continue;
      const folder = path.posix.dirname(name);
      const published = folder === '.' ? match[1]! : `${folder}/${match[1]!}`;
      streams.set(name, { source: name, published, text: undefined, publishedText: undefined, live: undefined, assets: [], signature: '' });
    }
  }

  /** Hashes one segment named by a playlist (again only when its size or time changed). */
  async function hashSegment(relative: string, sequence: number): Promise<ManifestAssetJson | undefined> {
    const file = path.join(root, ...relative.split('/'));
    let info;
    try {
      info = await stat(file);
    } catch {
      // Deleted by the packager since it wrote the playlist (its window moved on): not listed.
      return undefined;
    }
    const known = hashed.get(relative);
    if (known && known.size === info.size && known.mtimeMs === info.mtimeMs) return { ...known.asset, sequence };
    const warnings: string[] = [];
    const result = await hashFile({ file, relative: relative.split('/') }, pieceSize, warnings);
    warnings.forEach(warn);
    if (!result) return undefined;
    let contentType = assetContentType(relative);
    if (contentType === undefined) {
      contentType = FALLBACK_CONTENT_TYPE;
      warn(`${relative}: unknown file type, listed as ${FALLBACK_CONTENT_TYPE}`);
    }
    const asset: ManifestAssetJson = { url: makeUrl(encodePath(relative)), size: result.size, contentType, pieceSize, pieces: result.pieces, sequence };
    hashed.set(relative, { size: info.size, mtimeMs: info.mtimeMs, asset });
    return asset;
  }

  /** Reads a packager's playlist when it changed; returns whether the stream changed. */
  async function readStream(stream: LiveStream): Promise<boolean> {
    const file = path.join(root, ...stream.source.split('/'));
    let text: string;
    try {
      const info = await stat(file);
      const signature = `${info.ino}:${info.size}:${info.mtimeMs}`;
      if (signature === stream.signature) return false;
      text = await readFile(file, 'utf8');
      stream.signature = signature;
    } catch {
      return false; // Not there (yet, or any more): keep what was published.
    }
    const playlist = stream.source.endsWith('.mpd') ? parseDashMpd(text) : parseHlsPlaylist(text);
    if (!playlist) {
      stream.signature = ''; // Caught mid-write by a packager without temp_file: read it again.
      return false;
    }
    const folder = path.posix.dirname(stream.source);
    const assets: ManifestAssetJson[] = [];
    for (const segment of playlist.segments) {
      if (/^[a-z][a-z0-9+.-]*:|^\//i.test(segment.uri)) {
        warn(`${stream.source}: segment ${segment.uri} is not a relative URI: not listed`);
        continue;
      }
      let relative: string;
      try {
        relative = path.posix.normalize(path.posix.join(folder, decodeURIComponent(segment.uri.split(/[?#]/, 1)[0]!)));
      } catch {
        warn(`${stream.source}: segment ${segment.uri} is not a valid URI: not listed`);
        continue;
      }
      if (relative.startsWith('../') || relative === '..') {
        warn(`${stream.source}: segment ${segment.uri} is outside ${dir}: not listed`);
        continue;
      }
      const asset = await hashSegment(relative, segment.sequence);
      if (asset) assets.push(asset);
    }
    stream.assets = assets;
    stream.live = playlist.multivariant
      ? undefined
      : {
          playlist: makeUrl(encodePath(stream.published)),
          // A target duration of 0 (a playlist without the tag) would make pages reload constantly.
          segmentMs: Math.max(playlist.targetDurationMs, ...playlist.segments.map((segment) => segment.durationMs), 1000),
          windowMs: Math.max(playlist.windowMs, 1000),
          ...(playlist.ended ? { ended: true } : {}),
        };
    stream.text = text;
    return true;
  }

  /** The catalog of the folder's other files as last written, and which files it lists. */
  let catalog: { key: string; root: ManifestJson } | undefined;

  async function compose(): Promise<ManifestJson> {
    const liveFolders = [...streams.values()].map((stream) => {
      const folder = path.posix.dirname(stream.published);
      return makeUrl(folder === '.' ? '' : `${encodePath(folder)}/`);
    });
    // Files beside a live playlist are the packager's (old or unfinished segments): only what its playlist names is listed.
    let assets = initial.manifest.assets.filter((asset) => !liveFolders.some((folder) => asset.url.startsWith(folder)));
    let catalogField: ManifestJson['catalog'];
    const { ignoreQuery } = initial.manifest;
    const fixed: ManifestJson = { version: MANIFEST_VERSION, assets, ...(ignoreQuery ? { ignoreQuery } : {}) };
    if (assets.length > 0 && wantsCatalog(fixed, options.catalog)) {
      // Written again only when a new live folder takes files out of it.
      const key = assets.map((asset) => asset.url).join('\n');
      if (catalog?.key !== key) catalog = { key, root: await writeCatalog(fixed, outFile) };
      catalogField = catalog.root.catalog;
      assets = [];
    }
    const live: ManifestLiveJson[] = [];
    const listed = new Set<string>();
    for (const stream of streams.values()) {
      if (stream.live) live.push(stream.live);
      for (const asset of stream.assets) {
        if (listed.has(asset.url)) continue;
        listed.add(asset.url);
        assets.push(asset);
      }
    }
    // Forget hashes of segments no playlist names any more (the window moved past them).
    const named = new Set([...streams.values()].flatMap((stream) => stream.assets.map((asset) => asset.url)));
    for (const [relative, segment] of hashed) if (!named.has(segment.asset.url)) hashed.delete(relative);
    return {
      version: MANIFEST_VERSION,
      assets,
      ...(live.length > 0 ? { live } : {}),
      refreshMs: WATCH_REFRESH_MS,
      ...(ignoreQuery ? { ignoreQuery } : {}),
      ...(catalogField ? { catalog: catalogField } : {}),
    };
  }

  async function cycle(rescan: boolean): Promise<void> {
    if (rescan || Date.now() - lastScan >= RESCAN_MS) await findStreams();
    let changed = writtenText === undefined;
    for (const stream of streams.values()) if (await readStream(stream)) changed = true;
    if (!changed) return;
    const next = await compose();
    const text = `${JSON.stringify(next, null, 2)}\n`;
    if (text !== writtenText) {
      try {
        await writeAtomically(outFile, text);
      } catch (error) {
        // Nothing is published before the manifest that lists it: try the whole cycle again.
        for (const stream of streams.values()) stream.signature = '';
        return warn(`cannot write ${outFile} (${errorCode(error)})`);
      }
      writtenText = text;
      manifest = next;
    }
    const published: string[] = [];
    for (const stream of streams.values()) {
      const { text: pending } = stream;
      if (pending === undefined || pending === stream.publishedText) continue;
      try {
        await writeAtomically(path.join(root, ...stream.published.split('/')), pending);
        stream.publishedText = pending;
        published.push(stream.published);
      } catch (error) {
        stream.signature = '';
        warn(`cannot publish ${stream.published} (${errorCode(error)})`);
      }
    }
    options.onUpdate?.({ manifest, published });
  }

  /** Runs one cycle after any running one: a caller of sync() sees the files as they were when it called. */
  function sync(rescan = true): Promise<void> {
    if (stopped) return Promise.resolve();
    if (queued) return queued;
    const previous = running ?? Promise.resolve();
    const next = previous
      .then(() => {
        queued = undefined;
        return stopped ? undefined : cycle(rescan);
      })
      .catch((error: unknown) => warn(`watch cycle failed: ${error instanceof Error ? error.message : String(error)}`))
      .finally(() => {
        if (running === next) running = undefined;
      });
    queued = next;
    running = next;
    return next;
  }

  await sync();
  const timer = setInterval(() => {
    // A cycle still running (a slow disk) is not queued again: the next tick checks.
    if (!running) void sync(false);
  }, POLL_MS);
  return {
    get manifest() {
      return manifest;
    },
    sync: () => sync(),
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
