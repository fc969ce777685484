/**
 * The library behind `peerfetch manifest`: walks a site folder and hashes every asset into the
 * pieces that peers will exchange. Returns data and warnings; writing the file and printing are
 * the CLI's job (docs/contributing.md: the CLI is a thin shell over library calls).
 */
import { lstat, open, readFile, readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { PeerfetchError } from '../shared/errors.js';
import { sha256Hex } from '../shared/integrity.js';
import {
  DEFAULT_PIECE_SIZE,
  MANIFEST_VERSION,
  MAX_PIECE_SIZE,
  MIN_PIECE_SIZE,
  type ManifestAssetJson,
  type ManifestJson,
} from '../shared/manifest.js';
import {
  FALLBACK_CONTENT_TYPE,
  PAGE_EXTENSIONS,
  PLAYLIST_EXTENSIONS,
  assetContentType,
} from './content-types.js';
import { isMediaPath, pathExtension } from '../shared/media-extensions.js';
import { CATALOG_FOLDER_NAME } from './catalog-writer.js';

/** File name `peerfetch manifest` writes by default, and that the page loads. */
export const MANIFEST_FILE_NAME = 'peerfetch-manifest.json';

/** Options of {@link buildManifest}. */
export interface BuildManifestOptions {
  /** Piece size in bytes, between MIN_PIECE_SIZE and MAX_PIECE_SIZE. Default DEFAULT_PIECE_SIZE (256 KiB). */
  pieceSize?: number;
  /**
   * Where the folder is served from. An absolute http(s) URL (`https://cdn.example/v/`) gives
   * absolute asset URLs (assets on a CDN); a path (`/media/`) gives paths under it. Either names a
   * folder, with or without a trailing `/`. Default `/`: the folder is the site root.
   */
  baseUrl?: string;
  /** A file to leave out, typically where the manifest is about to be written. */
  outFile?: string;
  /**
   * Query parameters that request URLs may carry without changing the bytes, such as a CDN's
   * signature (`['token', 'expires']`): pages and workers match assets ignoring them. Default none.
   */
  ignoreQuery?: string[];
  /** Files hashed at once. Default HASH_CONCURRENCY. */
  concurrency?: number;
  /**
   * An earlier run's manifest and the fingerprints of the files it hashed: a file whose fingerprint
   * is unchanged keeps its pieces from that manifest instead of being read again.
   */
  reuse?: ManifestReuse;
  /** Called after each file (hashed, reused or skipped), for a progress display. */
  onProgress?(progress: ManifestProgress): void;
  /** The clock (ms since the epoch), compared with file times to spot files written just now. Default Date.now. */
  now?: () => number;
  /**
   * List every file of the folder (images, fonts, archives...), not only video, audio and media
   * segments. Default false: a worker that answers a site's small files itself gains little and
   * puts them on the P2P path.
   */
  allFiles?: boolean;
}

/** What {@link BuildManifestOptions.reuse} takes: the previous manifest and {@link BuildManifestResult.fingerprints}. */
export interface ManifestReuse {
  manifest: ManifestJson;
  fingerprints: Record<string, string>;
}

/** Progress of {@link buildManifest}: files and bytes done out of all found, and how many were reused. */
export interface ManifestProgress {
  files: number;
  totalFiles: number;
  bytes: number;
  totalBytes: number;
  reused: number;
}

/**
 * Files hashed at once by default. Each hashes one piece at a time through the libuv thread pool
 * (file reads and WebCrypto digests run there; 4 threads by default), so 4 files keep every thread
 * and both cores of a small server busy, while memory stays at 4 pieces.
 */
export const HASH_CONCURRENCY = 4;
/**
 * A file changed this recently (ms) before the run started is hashed but its fingerprint is not
 * kept: filesystems with coarse timestamps (1 s on ext3 and HFS+, 2 s on FAT) could hide a second
 * write within the same tick, which the next run would then miss (git's "racy" index entries).
 */
const RACY_WINDOW_MS = 2000;

/** What {@link buildManifest} returns: the manifest and what was skipped that a person should know. */
export interface BuildManifestResult {
  manifest: ManifestJson;
  warnings: string[];
  /**
   * Per asset (its path relative to the folder), the fingerprint of the file that was hashed: size,
   * modification and change times and inode. Keep it with the manifest and pass both as `reuse`
   * next time. The change time cannot be set back by tools that preserve modification times
   * (`cp -p`, `rsync -t`, `tar`), so a file replaced by one of the same size and date still differs.
   */
  fingerprints: Record<string, string>;
  /** How many assets kept their pieces from `reuse`. */
  reused: number;
}

/** The fingerprint of a file as {@link BuildManifestResult.fingerprints} records it. */
function fingerprintOf(info: { size: number; mtimeMs: number; ctimeMs: number; ino: number }): string {
  return `${info.size}:${info.mtimeMs}:${info.ctimeMs}:${info.ino}`;
}

/** Runs `task` for every item with at most `limit` running at once; results keep the items' order. */
async function mapBounded<T, R>(items: T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

const SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib)?$/i;
const UNIT_BYTES: Record<string, number> = { b: 1, kb: 1000, kib: 1024, mb: 1000 * 1000, mib: 1024 * 1024 };

/**
 * Parses a byte size: a plain number of bytes or a number with B, KB, KiB, MB or MiB
 * (KB and MB are decimal, KiB and MiB binary; units are case-insensitive).
 * Throws `PeerfetchError('option-invalid')` for anything else or a fractional byte count.
 *
 * @example
 * parseSize('256KiB') // 262144
 */
export function parseSize(text: string): number {
  const match = SIZE_PATTERN.exec(text.trim());
  if (!match) {
    throw new PeerfetchError('option-invalid', `invalid size "${text}": use bytes or a number with B, KB, KiB, MB or MiB`, {
      value: text,
    });
  }
  const bytes = Number(match[1]) * UNIT_BYTES[(match[2] ?? 'b').toLowerCase()]!;
  if (!Number.isSafeInteger(bytes)) {
    throw new PeerfetchError('option-invalid', `invalid size "${text}": not a whole number of bytes`, { value: text });
  }
  return bytes;
}

/** Query parameter names as RFC 3986 allows them unencoded in a query, so a slip such as `token=` is caught. */
const QUERY_NAME_PATTERN = /^[A-Za-z0-9\-._~!$'()*+,;:@/?]+$/;

/** Throws `option-invalid` for anything that is not a query parameter name. */
export function checkIgnoreQuery(names: readonly string[]): void {
  for (const name of names) {
    if (!QUERY_NAME_PATTERN.test(name)) {
      throw new PeerfetchError('option-invalid', `invalid query parameter name "${name}": give names only, such as token,expires`, { name });
    }
  }
}

export function checkPieceSize(pieceSize: number): void {
  if (!Number.isSafeInteger(pieceSize) || pieceSize < MIN_PIECE_SIZE || pieceSize > MAX_PIECE_SIZE) {
    throw new PeerfetchError(
      'option-invalid',
      `piece size ${pieceSize} B is out of range: use ${MIN_PIECE_SIZE / 1024} KiB to ${MAX_PIECE_SIZE / 1024 / 1024} MiB`,
      { pieceSize, min: MIN_PIECE_SIZE, max: MAX_PIECE_SIZE },
    );
  }
}

/** Turns `baseUrl` into a function from a relative, URL-encoded path to the asset URL. */
export function urlMaker(baseUrl: string | undefined): (encodedPath: string) => string {
  const base = baseUrl ?? '/';
  if (base.startsWith('/') && !base.startsWith('//')) {
    const folder = base.endsWith('/') ? base : `${base}/`;
    return (encodedPath) => folder + encodedPath;
  }
  let parsed: URL;
  try {
    parsed = new URL(base);
  } catch {
    throw new PeerfetchError('option-invalid', `invalid base URL "${base}": use an absolute http(s) URL or a path starting with /`, {
      baseUrl: base,
    });
  }
  if ((parsed.protocol !== 'https:' && parsed.protocol !== 'http:') || parsed.search || parsed.hash) {
    throw new PeerfetchError('option-invalid', `invalid base URL "${base}": use an http(s) URL without query or fragment`, {
      baseUrl: base,
    });
  }
  if (!parsed.pathname.endsWith('/')) parsed.pathname += '/';
  const folder = parsed.href;
  return (encodedPath) => folder + encodedPath;
}

/**
 * True for files that are never assets, silently: dotfiles, the manifest, playlists (players
 * re-fetch them and they must stay untouched), page code and documents (small, often rewritten).
 */
function isNeverAsset(name: string): boolean {
  const extension = pathExtension(name);
  return (
    name.startsWith('.') ||
    name === MANIFEST_FILE_NAME ||
    PLAYLIST_EXTENSIONS.has(extension) ||
    PAGE_EXTENSIONS.has(extension)
  );
}

/** A regular file found by the walk: where it is on disk and its path relative to the root. */
export interface FoundFile {
  file: string;
  relative: string[];
}

const DIGIT_RUNS = /(\d+)/;

/**
 * Natural order: runs of digits compare as numbers, so ffmpeg's `seg2.ts` comes before
 * `seg10.ts` (plain string order puts seg10 first and the engine would read ahead the wrong
 * segments); everything else compares by code unit, so the output does not depend on the
 * machine's locale. Names equal as numbers (`seg01`, `seg1`) fall back to code-unit order.
 *
 * @example
 * ['seg10.ts', 'seg2.ts'].sort(naturalOrder) // ['seg2.ts', 'seg10.ts']
 */
export function naturalOrder(a: string, b: string): number {
  const left = a.split(DIGIT_RUNS);
  const right = b.split(DIGIT_RUNS);
  // split() with a capture group alternates text, digits, text, ...: odd indexes are digit runs.
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    const x = left[i]!;
    const y = right[i]!;
    if (x === y) continue;
    if (i % 2 === 1) {
      const xDigits = x.replace(/^0+(?=\d)/, '');
      const yDigits = y.replace(/^0+(?=\d)/, '');
      if (xDigits.length !== yDigits.length) return xDigits.length - yDigits.length;
      if (xDigits !== yDigits) return xDigits < yDigits ? -1 : 1;
      continue;
    }
    return x < y ? -1 : 1;
  }
  if (left.length !== right.length) return left.length - right.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

function isInside(root: string, candidate: string): boolean {
  return candidate === root || candidate.startsWith(root + path.sep);
}

export function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? String(error);
}

/**
 * Depth-first walk in sorted order. Symlinks are followed when they stay inside the root
 * (each real folder visited once, so link cycles end); anything else is a warning.
 */
async function walk(
  root: string,
  warnings: string[],
  outFile: string | undefined,
): Promise<{ found: FoundFile[]; playlists: FoundFile[] }> {
  const found: FoundFile[] = [];
  const playlists: FoundFile[] = [];
  const visitedFolders = new Set<string>([root]);

  async function visit(folder: string, relative: string[]): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(folder)).sort(naturalOrder);
    } catch (error) {
      if (relative.length === 0) throw error;
      warnings.push(`skipped ${relative.join('/')}/: unreadable folder (${errorCode(error)})`);
      return;
    }
    for (const name of names) {
      const entryPath = path.join(folder, name);
      const entryRelative = [...relative, name];
      const shown = entryRelative.join('/');
      // Dotfiles, and the catalog a manifest of this folder wrote (its shards and piece lists are not assets).
      if (name.startsWith('.') || name === CATALOG_FOLDER_NAME) continue;
      let info;
      let real = entryPath;
      try {
        info = await lstat(entryPath);
        if (info.isSymbolicLink()) {
          real = await realpath(entryPath);
          if (!isInside(root, real)) {
            warnings.push(`skipped ${shown}: symlink to ${real}, outside the folder`);
            continue;
          }
          info = await stat(real);
        }
      } catch (error) {
        warnings.push(`skipped ${shown}: ${info?.isSymbolicLink() ? 'broken symlink' : 'unreadable'} (${errorCode(error)})`);
        continue;
      }
      if (info.isDirectory()) {
        if (visitedFolders.has(real)) continue;
        visitedFolders.add(real);
        await visit(real, entryRelative);
        continue;
      }
      if (!info.isFile()) {
        warnings.push(`skipped ${shown}: not a regular file`);
        continue;
      }
      if (outFile !== undefined && real === outFile) continue;
      if (pathExtension(name) === 'm3u8') playlists.push({ file: real, relative: entryRelative });
      if (isNeverAsset(name)) continue;
      found.push({ file: real, relative: entryRelative });
    }
  }

  await visit(root, []);
  return { found, playlists };
}

/** Largest playlist read for its segment order (bytes): a media playlist of hours of 2 s segments is well under it. */
const MAX_PLAYLIST_BYTES = 16 * 1024 * 1024;

/**
 * The files an HLS playlist names, in its order, as paths relative to the root (segments and
 * `EXT-X-MAP` init sections; absolute URLs and paths outside the root are not files of this walk).
 */
async function playlistEntries(playlist: FoundFile, warnings: string[]): Promise<string[]> {
  let text: string;
  try {
    if ((await stat(playlist.file)).size > MAX_PLAYLIST_BYTES) return [];
    text = await readFile(playlist.file, 'utf8');
  } catch (error) {
    warnings.push(`${playlist.relative.join('/')}: unreadable playlist, its segments keep name order (${errorCode(error)})`);
    return [];
  }
  const base = new URL(`file:///root/${playlist.relative.map(encodeURIComponent).join('/')}`);
  const entries: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    const uri = line.startsWith('#EXT-X-MAP:') ? /URI="([^"]*)"/.exec(line)?.[1] : line && !line.startsWith('#') ? line : undefined;
    if (uri === undefined) continue;
    let resolved: URL;
    try {
      resolved = new URL(uri, base);
    } catch {
      continue;
    }
    if (resolved.protocol !== 'file:' || !resolved.pathname.startsWith('/root/')) continue;
    entries.push(resolved.pathname.slice('/root/'.length).split('/').map(decodeURIComponent).join('/'));
  }
  return entries;
}

/**
 * Puts the segments that a playlist names in the playlist's order: the manifest's order is the
 * play order the engine reads ahead in (ManifestAsset.index), and a packager may name segments
 * in any way. Each file keeps the place of one of the playlist's files, so the rest of the order
 * (natural name order) is untouched; a file named by several playlists follows the first.
 */
async function inPlaylistOrder(found: FoundFile[], playlists: FoundFile[], warnings: string[]): Promise<FoundFile[]> {
  const ordered = [...found];
  const position = new Map(found.map((entry, index) => [entry.relative.join('/'), index]));
  const placed = new Set<string>();
  for (const playlist of playlists) {
    const named = (await playlistEntries(playlist, warnings)).filter((key, index, all) => {
      return position.has(key) && !placed.has(key) && all.indexOf(key) === index;
    });
    const slots = named.map((key) => position.get(key)!).sort((a, b) => a - b);
    named.forEach((key, index) => {
      ordered[slots[index]!] = found[position.get(key)!]!;
      placed.add(key);
    });
  }
  return ordered;
}

/**
 * Hashes `file` piece by piece through one file handle, so memory stays at one piece whatever
 * the file's size. Returns undefined (with a warning) when the file is empty, unreadable or
 * changes size while it is read.
 */
export async function hashFile(
  found: FoundFile,
  pieceSize: number,
  warnings: string[],
): Promise<{ size: number; pieces: string[] } | undefined> {
  const shown = found.relative.join('/');
  let handle;
  try {
    handle = await open(found.file, 'r');
  } catch (error) {
    warnings.push(`skipped ${shown}: unreadable (${errorCode(error)})`);
    return undefined;
  }
  try {
    const { size } = await handle.stat();
    if (size === 0) {
      warnings.push(`skipped ${shown}: empty file`);
      return undefined;
    }
    const pieces: string[] = [];
    let position = 0;
    while (position < size) {
      // A fresh buffer per piece: the digest must not see bytes of the next read.
      const piece = new Uint8Array(Math.min(pieceSize, size - position));
      let filled = 0;
      while (filled < piece.length) {
        const { bytesRead } = await handle.read(piece, filled, piece.length - filled, position + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      if (filled < piece.length) {
        warnings.push(`skipped ${shown}: file shrank while it was hashed`);
        return undefined;
      }
      pieces.push(await sha256Hex(piece));
      position += piece.length;
    }
    const after = await handle.stat();
    if (after.size !== size) {
      warnings.push(`skipped ${shown}: file changed size while it was hashed`);
      return undefined;
    }
    return { size, pieces };
  } catch (error) {
    warnings.push(`skipped ${shown}: unreadable (${errorCode(error)})`);
    return undefined;
  } finally {
    await handle.close();
  }
}

/**
 * Builds the manifest of the assets in `dir`: every file, in natural path order (`seg2` before
 * `seg10`) with the segments an HLS playlist names in its order, except the
 * manifest itself, dotfiles, playlists (.m3u8, .mpd), page code and documents, and empty files.
 * Throws `PeerfetchError('manifest-dir-missing')` when `dir` is not a readable folder and
 * `PeerfetchError('option-invalid')` for a bad piece size or base URL; everything else that
 * is skipped is reported in `warnings`.
 *
 * @example
 * const { manifest, warnings } = await buildManifest('public', { pieceSize: 256 * 1024 });
 * await writeFile('public/peerfetch-manifest.json', JSON.stringify(manifest, null, 2));
 */
export async function buildManifest(dir: string, options: BuildManifestOptions = {}): Promise<BuildManifestResult> {
  const pieceSize = options.pieceSize ?? DEFAULT_PIECE_SIZE;
  checkPieceSize(pieceSize);
  const ignoreQuery = options.ignoreQuery ?? [];
  checkIgnoreQuery(ignoreQuery);
  const makeUrl = urlMaker(options.baseUrl);

  let root: string;
  try {
    root = await realpath(dir);
    if (!(await stat(root)).isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
  } catch (error) {
    throw new PeerfetchError('manifest-dir-missing', `${dir} is not a readable folder (${errorCode(error)})`, {
      dir,
      cause: errorCode(error),
    });
  }
  let outFile: string | undefined;
  if (options.outFile !== undefined) {
    const resolved = path.resolve(options.outFile);
    outFile = await realpath(resolved).catch(() => resolved);
  }

  const warnings: string[] = [];
  let walked: { found: FoundFile[]; playlists: FoundFile[] };
  try {
    walked = await walk(root, warnings, outFile);
  } catch (error) {
    throw new PeerfetchError('manifest-dir-missing', `${dir} is not a readable folder (${errorCode(error)})`, {
      dir,
      cause: errorCode(error),
    });
  }

  let found = walked.found;
  if (!options.allFiles) {
    found = found.filter((file) => isMediaPath(file.relative[file.relative.length - 1]!));
    const left = walked.found.length - found.length;
    if (left > 0) warnings.push(`left out ${left} file${left === 1 ? '' : 's'} that ${left === 1 ? 'is' : 'are'} not video or audio (--all-files lists them)`);
  }
  const files = await inPlaylistOrder(found, walked.playlists, warnings);
  const concurrency = options.concurrency ?? HASH_CONCURRENCY;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new PeerfetchError('option-invalid', `concurrency must be a whole number of at least 1, not ${concurrency}`, { concurrency });
  }
  const startedAt = (options.now ?? Date.now)();
  const previousPieces = new Map<string, ManifestAssetJson>();
  for (const asset of options.reuse?.manifest.assets ?? []) previousPieces.set(asset.url, asset);
  const previousFingerprints = options.reuse?.fingerprints ?? {};
  const fingerprints: Record<string, string> = {};
  const infos = await Promise.all(files.map((found) => stat(found.file).catch(() => undefined)));
  const progress: ManifestProgress = { files: 0, totalFiles: files.length, bytes: 0, totalBytes: infos.reduce((sum, info) => sum + (info?.size ?? 0), 0), reused: 0 };

  const hashed = await mapBounded(files.map((found, index) => ({ found, info: infos[index] })), concurrency, async ({ found, info }) => {
    // Per-file warnings, put in file order afterwards: files finish in any order.
    const fileWarnings: string[] = [];
    const key = found.relative.join('/');
    const url = makeUrl(found.relative.map(encodeURIComponent).join('/'));
    const fingerprint = info ? fingerprintOf(info) : undefined;
    const previous = previousPieces.get(url);
    let result: { size: number; pieces: string[] } | undefined;
    if (fingerprint !== undefined && previousFingerprints[key] === fingerprint && previous && previous.pieceSize === pieceSize && previous.size === info!.size) {
      result = { size: previous.size, pieces: previous.pieces };
      progress.reused++;
    } else {
      result = await hashFile(found, pieceSize, fileWarnings);
    }
    // Only a fingerprint taken before the file was read and not racy vouches for the hashes.
    if (result && info && fingerprint !== undefined && Math.max(info.mtimeMs, info.ctimeMs) < startedAt - RACY_WINDOW_MS) {
      fingerprints[key] = fingerprint;
    }
    progress.files++;
    progress.bytes += info?.size ?? 0;
    options.onProgress?.({ ...progress });
    return { warnings: fileWarnings, asset: result && { url, size: result.size, pieces: result.pieces } };
  });

  const assets: ManifestAssetJson[] = [];
  for (const [index, { warnings: fileWarnings, asset: entry }] of hashed.entries()) {
    warnings.push(...fileWarnings);
    if (!entry) continue;
    const found = files[index]!;
    const fileName = found.relative[found.relative.length - 1]!;
    let contentType = assetContentType(fileName);
    if (contentType === undefined) {
      contentType = FALLBACK_CONTENT_TYPE;
      warnings.push(`${found.relative.join('/')}: unknown file type, listed as ${FALLBACK_CONTENT_TYPE}`);
    }
    assets.push({ url: entry.url, size: entry.size, contentType, pieceSize, pieces: entry.pieces });
  }
  if (assets.length === 0) warnings.push(`no assets found in ${dir}`);
  return {
    manifest: { version: MANIFEST_VERSION, assets, ...(ignoreQuery.length > 0 ? { ignoreQuery } : {}) },
    warnings,
    fingerprints,
    reused: progress.reused,
  };
}
