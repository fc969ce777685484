/**
 * Where `peerfetch manifest` keeps the fingerprints of the files it hashed, so that the next run
 * over the same folder reads only what changed (a large library re-published after adding one file
 * takes seconds, not hours).
 *
 * The fingerprints live in the user's cache folder, not beside the manifest: the manifest's folder
 * is usually the web root, and inode numbers and file times are nobody else's business. A cache
 * entry is used only together with the exact manifest it was written with (its SHA-256), so a
 * manifest edited, replaced or copied from elsewhere means a full run.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseManifest, type ManifestJson } from '../shared/manifest.js';
import { readCatalog } from './catalog-writer.js';
import type { ManifestReuse } from './build-manifest.js';

interface CacheFile {
  version: 1;
  outFile: string;
  manifestSha256: string;
  fingerprints: Record<string, string>;
}

/** The cache folder: $XDG_CACHE_HOME/peerfetch, else ~/.cache/peerfetch. */
export function cacheFolder(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'peerfetch', 'manifests');
}

function sha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The cache file for the manifest at `outFile` (an absolute path). */
export function cacheFileFor(outFile: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(cacheFolder(env), `${sha256(outFile).slice(0, 16)}.json`);
}

/**
 * What the previous run over `outFile` left to reuse: undefined when there is no cache, the
 * manifest is missing, or it is not the one the cache was written with.
 */
export async function loadManifestReuse(outFile: string, env: NodeJS.ProcessEnv = process.env): Promise<ManifestReuse | undefined> {
  let cache: CacheFile;
  let manifestText: Buffer;
  try {
    cache = JSON.parse(await readFile(cacheFileFor(outFile, env), 'utf8')) as CacheFile;
    manifestText = await readFile(outFile);
  } catch {
    return undefined;
  }
  if (cache?.version !== 1 || cache.outFile !== outFile || cache.manifestSha256 !== sha256(manifestText)) return undefined;
  if (typeof cache.fingerprints !== 'object' || cache.fingerprints === null) return undefined;
  try {
    // Validated like a page validates it; the base URL only resolves URLs, which reuse compares as written.
    const json = JSON.parse(manifestText.toString('utf8')) as ManifestJson;
    const parsed = await parseManifest(json, 'http://localhost/');
    // A catalog's assets are in its shards and piece lists beside the manifest.
    const assets = parsed.catalog ? await readCatalog(json, outFile) : parsed.assets;
    if (!assets) return undefined;
    return { manifest: { version: parsed.version, assets }, fingerprints: cache.fingerprints };
  } catch {
    return undefined;
  }
}

/** Records the fingerprints of the run that wrote `manifestText` to `outFile`. Failing to write the cache only costs the next run time. */
export async function saveManifestReuse(outFile: string, manifestText: string, fingerprints: Record<string, string>, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const file = cacheFileFor(outFile, env);
  const cache: CacheFile = { version: 1, outFile, manifestSha256: sha256(manifestText), fingerprints };
  try {
    await mkdir(path.dirname(file), { recursive: true });
    const temporary = `${file}.${process.pid}.tmp`;
    await writeFile(temporary, JSON.stringify(cache));
    await rename(temporary, file);
  } catch {
    // A read-only home or a full disk: the manifest is written all the same.
  }
}
