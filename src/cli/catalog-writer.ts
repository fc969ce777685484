/**
 * Writes and reads the catalog form of a manifest (see src/shared/catalog.ts) beside the manifest
 * file: `peerfetch-catalog/<generation>/shard-<n>.json` and `peerfetch-catalog/pieces/<sha256>.bin`.
 *
 * A generation is named by the SHA-256 of its shards, so a page that loaded one manifest reads the
 * shards of that manifest, never a mix of two deploys. The generation the previous manifest named
 * is kept (pages that loaded it a moment ago still find its files) and older ones are deleted, with
 * the piece lists neither names. Piece lists are named by their own SHA-256, so an unchanged file
 * keeps its list (nothing is rewritten) and a list never changes under its name.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  catalogShard,
  encodePieceList,
  pieceListFileName,
  shardCountFor,
  shardFileName,
  type CatalogEntryJson,
  type CatalogShardJson,
} from '../shared/catalog.js';
import { streamKey, type ManifestAssetJson, type ManifestJson } from '../shared/manifest.js';

/** Folder, beside the manifest, of the catalog's files. */
export const CATALOG_FOLDER_NAME = 'peerfetch-catalog';
/** Folder of the piece lists within the catalog folder. */
const PIECES_FOLDER_NAME = 'pieces';
/**
 * Largest manifest (bytes of JSON) written in full by default: above it the catalog form is
 * written. 64 KiB is a few hundred assets, or the segments of about a quarter of an hour of HLS:
 * every page and worker downloads the manifest before its first frame, and a catalog makes that a
 * few hundred bytes plus one shard (about 12 KiB) whatever the size of the site.
 */
export const INLINE_MANIFEST_MAX_BYTES = 64 * 1024;
const GENERATION_PATTERN = /^[0-9a-f]{16}$/;
const PIECE_LIST_PATTERN = /^[0-9a-f]{64}\.bin$/;

/** When `peerfetch manifest` writes the catalog form: above INLINE_MANIFEST_MAX_BYTES, always, or never. */
export type CatalogMode = 'auto' | 'on' | 'off';

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The URL path of an asset URL as written (a path, or an absolute URL): what chooses its shard. */
function urlPath(url: string): string {
  return new URL(url, 'http://peerfetch.invalid/').pathname;
}

/** The key streamKey gives an asset URL as written (the manifest's URL does not change it). */
function streamOf(asset: Pick<ManifestAssetJson, 'url' | 'contentType'>): string {
  return streamKey({ href: new URL(asset.url, 'http://peerfetch.invalid/').href, contentType: asset.contentType });
}

/** Whether the catalog form should be written for `manifest` in `mode`. */
export function wantsCatalog(manifest: ManifestJson, mode: CatalogMode = 'auto'): boolean {
  if (mode !== 'auto') return mode === 'on';
  return JSON.stringify(manifest).length > INLINE_MANIFEST_MAX_BYTES;
}

/** The generation folder and piece lists a manifest's `catalog` names, as files under `folder`. */
function namedGeneration(manifest: unknown): string | undefined {
  const shards = (manifest as { catalog?: { shards?: unknown } } | undefined)?.catalog?.shards;
  if (typeof shards !== 'string') return undefined;
  const name = shards.replace(/\/+$/, '').split('/').pop();
  return name !== undefined && GENERATION_PATTERN.test(name) ? name : undefined;
}

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/** The piece lists the shards of one generation name. */
async function listsOf(generationFolder: string): Promise<Set<string>> {
  const names = new Set<string>();
  for (const file of await readdir(generationFolder).catch(() => [] as string[])) {
    const shard = (await readJson(path.join(generationFolder, file))) as CatalogShardJson | undefined;
    for (const entry of shard?.assets ?? []) if (typeof entry?.piecesSha256 === 'string') names.add(pieceListFileName(entry.piecesSha256));
  }
  return names;
}

async function writeAtomically(file: string, data: string | Uint8Array): Promise<void> {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  await writeFile(temporary, data);
  await rename(temporary, file);
}

/**
 * Writes the catalog of `manifest`'s assets beside `outFile` and returns the manifest to write at
 * `outFile`: its other fields, no assets, and `catalog` naming the folders (relative to the
 * manifest's URL). Each asset's entry names the next asset of its stream (`next`), since its
 * neighbours are in other shards, and keeps its place in the play order (`sequence`).
 *
 * @example
 * const { manifest } = await buildManifest('public');
 * const root = await writeCatalog(manifest, 'public/peerfetch-manifest.json');
 * await writeFile('public/peerfetch-manifest.json', JSON.stringify(root));
 */
export async function writeCatalog(manifest: ManifestJson, outFile: string): Promise<ManifestJson> {
  const folder = path.join(path.dirname(outFile), CATALOG_FOLDER_NAME);
  const piecesFolder = path.join(folder, PIECES_FOLDER_NAME);
  await mkdir(piecesFolder, { recursive: true });
  const existingLists = new Set(await readdir(piecesFolder));
  const { assets } = manifest;
  const count = shardCountFor(assets.length);
  const shards: CatalogEntryJson[][] = Array.from({ length: count }, () => []);
  for (const [position, asset] of assets.entries()) {
    const list = encodePieceList(asset.pieces);
    const piecesSha256 = sha256(list);
    const listName = pieceListFileName(piecesSha256);
    if (!existingLists.has(listName)) {
      await writeAtomically(path.join(piecesFolder, listName), list);
      existingLists.add(listName);
    }
    const entry: CatalogEntryJson = { url: asset.url, size: asset.size, contentType: asset.contentType, pieceSize: asset.pieceSize, piecesSha256, sequence: asset.sequence ?? position };
    const following = assets[position + 1];
    if (following && streamOf(following) === streamOf(asset)) entry.next = following.url;
    shards[catalogShard(urlPath(asset.url), count)]!.push(entry);
  }
  const texts = shards.map((entries) => JSON.stringify({ assets: entries } satisfies CatalogShardJson));
  const generation = sha256(texts.join('\n')).slice(0, 16);
  const generationFolder = path.join(folder, generation);
  await mkdir(generationFolder, { recursive: true });
  for (const [shard, text] of texts.entries()) await writeAtomically(path.join(generationFolder, shardFileName(shard)), text);

  // Keep this generation and the one the manifest being replaced names; delete the rest.
  const previous = namedGeneration(await readJson(outFile));
  const kept = new Set([generation, ...(previous ? [previous] : [])]);
  const keptLists = new Set<string>();
  for (const name of kept) for (const list of await listsOf(path.join(folder, name))) keptLists.add(list);
  for (const name of await readdir(folder)) {
    if (GENERATION_PATTERN.test(name) && !kept.has(name)) await rm(path.join(folder, name), { recursive: true, force: true });
  }
  for (const name of existingLists) {
    if (PIECE_LIST_PATTERN.test(name) && !keptLists.has(name)) await rm(path.join(piecesFolder, name), { force: true });
  }

  const { assets: _inline, ...rest } = manifest;
  return { ...rest, assets: [], catalog: { shards: `${CATALOG_FOLDER_NAME}/${generation}/`, count, pieces: `${CATALOG_FOLDER_NAME}/${PIECES_FOLDER_NAME}/` } };
}

/**
 * The assets of the catalog a manifest at `outFile` names, in full (piece hashes from the lists),
 * in play order: how a later run reuses the hashes of unchanged files. Undefined when the manifest
 * names no catalog or a file of it is missing or does not match.
 */
export async function readCatalog(manifest: ManifestJson, outFile: string): Promise<ManifestAssetJson[] | undefined> {
  const generation = namedGeneration(manifest);
  if (!generation || !manifest.catalog) return undefined;
  const folder = path.join(path.dirname(outFile), CATALOG_FOLDER_NAME);
  const assets: ManifestAssetJson[] = [];
  for (let shard = 0; shard < manifest.catalog.count; shard++) {
    const parsed = (await readJson(path.join(folder, generation, shardFileName(shard)))) as CatalogShardJson | undefined;
    if (!Array.isArray(parsed?.assets)) return undefined;
    for (const entry of parsed.assets) {
      let list: Buffer;
      try {
        list = await readFile(path.join(folder, PIECES_FOLDER_NAME, pieceListFileName(entry.piecesSha256)));
      } catch {
        return undefined;
      }
      if (sha256(list) !== entry.piecesSha256) return undefined;
      const pieces: string[] = [];
      for (let at = 0; at < list.length; at += 32) pieces.push(list.subarray(at, at + 32).toString('hex'));
      assets.push({ url: entry.url, size: entry.size, contentType: entry.contentType, pieceSize: entry.pieceSize, pieces, sequence: entry.sequence });
    }
  }
  return assets.sort((a, b) => (a.sequence ?? 0) - (b.sequence ?? 0)).map(({ sequence: _sequence, ...asset }) => asset);
}
