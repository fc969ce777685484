import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CATALOG_FOLDER_NAME, readCatalog, wantsCatalog, writeCatalog } from '../../src/cli/catalog-writer.js';
import { catalogShard, decodePieceList, encodePieceList, shardCountFor, SHARD_TARGET_ASSETS } from '../../src/shared/catalog.js';
import { isPeerfetchError } from '../../src/shared/errors.js';
import { assetId, assetIdOf, checkCatalogEntry, parseAsset, parseManifest, type ManifestAssetJson, type ManifestJson } from '../../src/shared/manifest.js';
import { CatalogSource } from '../../src/sw/catalog-source.js';

// The catalog form of a manifest (issue 11 item 3): shards of a few dozen assets, per-asset piece
// lists checked against the SHA-256 their entry names, and a worker that loads one asset's files
// when it is first requested, and treats anything that does not load or match as not listed.

const hex = (data: string) => createHash('sha256').update(data).digest('hex');
const PIECE = 256 * 1024;

/** A synthetic asset: `pieces` piece hashes derived from its name (no file needed). */
function asset(url: string, pieces: number, contentType = 'video/mp4'): ManifestAssetJson {
  return { url, size: pieces * PIECE - 1000, contentType, pieceSize: PIECE, pieces: Array.from({ length: pieces }, (_, n) => hex(`${url}#${n}`)) };
}

const folders: string[] = [];
afterEach(async () => {
  await Promise.all(folders.splice(0).map((folder) => rm(folder, { recursive: true, force: true })));
});

async function site(): Promise<string> {
  const folder = await mkdtemp(join(tmpdir(), 'peerfetch-catalog-unit-'));
  folders.push(folder);
  return folder;
}

/** A fetch over the files of `folder`, as `http://site.example/` serves them (404 when missing). */
function folderFetch(folder: string, requested: string[] = []) {
  return async (url: string): Promise<Response> => {
    requested.push(url);
    const path = new URL(url).pathname;
    try {
      return new Response(await readFile(join(folder, decodeURIComponent(path))));
    } catch {
      return new Response('not found', { status: 404 });
    }
  };
}

describe('catalog format', () => {
  it.each([
    [0, 1],
    [1, 1],
    [SHARD_TARGET_ASSETS, 1],
    [SHARD_TARGET_ASSETS + 1, 2],
    [5001, 128],
    [100_000, 2048],
  ])('%i assets make %i shards', (assets, shards) => {
    expect(shardCountFor(assets)).toBe(shards);
  });

  it('spreads the assets of one folder over the shards, the same in every runtime', () => {
    const counts = new Array<number>(64).fill(0);
    for (let n = 0; n < 6400; n++) counts[catalogShard(`/videos/${n}/index.mp4`, 64)]!++;
    expect(Math.max(...counts)).toBeLessThan(200);
    expect(Math.min(...counts)).toBeGreaterThan(50);
    // FNV-1a 32 of the path (3663232040) modulo the count: the builder (Node) and every worker (browsers) compute this.
    expect(catalogShard('/media/film.mp4', 1024)).toBe(40);
    expect(catalogShard('/media/film.mp4', 1)).toBe(0);
  });

  it('a piece list round-trips, and is refused when its length or SHA-256 is not the one its entry names', async () => {
    const entry = asset('/v.mp4', 3);
    const list = encodePieceList(entry.pieces);
    expect(list).toHaveLength(3 * 32);
    const piecesSha256 = createHash('sha256').update(list).digest('hex');
    expect(await decodePieceList(list, { ...entry, piecesSha256 })).toEqual(entry.pieces);
    const other = list.slice();
    other[5]! ^= 1;
    expect(await decodePieceList(other, { ...entry, piecesSha256 })).toBeUndefined();
    expect(await decodePieceList(list.subarray(0, 64), { ...entry, piecesSha256 })).toBeUndefined();
    expect(await decodePieceList(list, { ...entry, size: PIECE * 5, piecesSha256 })).toBeUndefined();
  });

  it('an asset has one id listed in full or in a catalog (known from its list SHA-256 before the list loads)', async () => {
    const entry = asset('/v.mp4', 4);
    const piecesSha256 = createHash('sha256').update(encodePieceList(entry.pieces)).digest('hex');
    expect(await assetIdOf(entry.size, entry.pieceSize, piecesSha256)).toBe(await assetId(entry));
    expect((await parseAsset(entry, 'https://site.example/peerfetch-manifest.json')).id).toBe(await assetId(entry));
  });

  it('a manifest names its catalog; bad catalog fields and entries are manifest-invalid', async () => {
    const parsed = await parseManifest(
      { version: 1, assets: [], catalog: { shards: 'peerfetch-catalog/0123456789abcdef/', count: 128, pieces: '/peerfetch-catalog/pieces' } },
      'https://site.example/app/peerfetch-manifest.json',
    );
    expect(parsed.catalog).toEqual({ shardsHref: 'https://site.example/app/peerfetch-catalog/0123456789abcdef/', piecesHref: 'https://site.example/peerfetch-catalog/pieces/', count: 128 });
    for (const catalog of [{ shards: 'a/', pieces: 'b/', count: 3 }, { shards: 'a/', pieces: 'b/', count: 0 }, { shards: '', pieces: 'b/', count: 1 }, 'yes']) {
      await expect(parseManifest({ version: 1, assets: [], catalog }, 'https://site.example/m.json')).rejects.toMatchObject({ code: 'manifest-invalid' });
    }
    let error: unknown;
    try {
      checkCatalogEntry({ url: '/v.mp4', size: 10, contentType: 'video/mp4', pieceSize: PIECE, piecesSha256: 'nothex' }, 0);
    } catch (caught) {
      error = caught;
    }
    expect(isPeerfetchError(error, 'manifest-invalid')).toBe(true);
  });
});

describe('writing a catalog', () => {
  it('a 5,001-asset manifest becomes a manifest of a few hundred bytes and 128 shards of a few dozen assets, which give back every asset', async () => {
    const folder = await site();
    const outFile = join(folder, 'peerfetch-manifest.json');
    const assets = [asset('/media/clip.mp4', 40), ...Array.from({ length: 5000 }, (_, n) => asset(`/library/track-${n}.m4a`, 1, 'audio/mp4'))];
    const manifest: ManifestJson = { version: 1, assets, ignoreQuery: ['token'] };
    expect(wantsCatalog(manifest)).toBe(true);
    expect(wantsCatalog({ version: 1, assets: assets.slice(0, 10) })).toBe(false);
    const root = await writeCatalog(manifest, outFile);
    await writeFile(outFile, JSON.stringify(root));
    expect(root.assets).toEqual([]);
    expect(root.ignoreQuery).toEqual(['token']);
    expect(root.catalog!.count).toBe(128);
    expect(JSON.stringify(root).length).toBeLessThan(300);
    const shardFolder = join(folder, root.catalog!.shards);
    const shardSizes = await Promise.all((await readdir(shardFolder)).map(async (file) => (await stat(join(shardFolder, file))).size));
    expect(shardSizes).toHaveLength(128);
    expect(Math.max(...shardSizes)).toBeLessThan(16 * 1024);
    expect(await readCatalog(root, outFile)).toEqual(assets);
  });

  it('names the next asset of a stream (its neighbours are in other shards), and keeps the play order', async () => {
    const folder = await site();
    const outFile = join(folder, 'peerfetch-manifest.json');
    const segments = Array.from({ length: 3 }, (_, n) => asset(`/hls/seg${n}.ts`, 2, 'video/mp2t'));
    const root = await writeCatalog({ version: 1, assets: [...segments, asset('/media/film.mp4', 3)] }, outFile);
    await writeFile(outFile, JSON.stringify(root));
    const source = new CatalogSource(await parseManifest(root, 'http://site.example/peerfetch-manifest.json') as never, 'http://site.example/peerfetch-manifest.json', { fetch: folderFetch(folder) });
    const first = await source.resolve('http://site.example/hls/seg0.ts');
    const last = await source.resolve('http://site.example/hls/seg2.ts');
    const film = await source.resolve('http://site.example/media/film.mp4');
    expect(first?.nextHref).toBe('http://site.example/hls/seg1.ts');
    expect(last?.nextHref).toBeUndefined();
    expect(film?.nextHref).toBeUndefined();
    expect([first?.index, last?.index, film?.index]).toEqual([0, 2, 3]);
  });

  it('a second run keeps unchanged piece lists and the generation the previous manifest named, and deletes older ones', async () => {
    const folder = await site();
    const outFile = join(folder, 'peerfetch-manifest.json');
    const write = async (assets: ManifestAssetJson[]) => {
      const root = await writeCatalog({ version: 1, assets }, outFile);
      await writeFile(outFile, JSON.stringify(root));
      return root.catalog!.shards.split('/').filter(Boolean).pop()!;
    };
    const one = await write([asset('/a.mp4', 2), asset('/b.mp4', 2)]);
    const two = await write([asset('/a.mp4', 2), asset('/c.mp4', 2)]);
    const three = await write([asset('/a.mp4', 2), asset('/d.mp4', 2)]);
    const generations = (await readdir(join(folder, CATALOG_FOLDER_NAME))).filter((name) => name !== 'pieces');
    expect(generations.sort()).toEqual([two, three].sort());
    expect(generations).not.toContain(one);
    // Lists of a, c (the previous generation) and d remain; b's is gone.
    expect(await readdir(join(folder, CATALOG_FOLDER_NAME, 'pieces'))).toHaveLength(3);
  });
});

describe("a worker's catalog source", () => {
  async function written(): Promise<{ folder: string; source: CatalogSource; requested: string[]; root: ManifestJson }> {
    const folder = await site();
    const outFile = join(folder, 'peerfetch-manifest.json');
    const assets = [asset('/media/clip.mp4', 5), ...Array.from({ length: 300 }, (_, n) => asset(`/library/track-${n}.m4a`, 1, 'audio/mp4'))];
    const root = await writeCatalog({ version: 1, assets, ignoreQuery: ['token'] }, outFile);
    await writeFile(outFile, JSON.stringify(root));
    const requested: string[] = [];
    const manifest = await parseManifest(root, 'http://site.example/peerfetch-manifest.json');
    const source = new CatalogSource(manifest as never, 'http://site.example/peerfetch-manifest.json', { fetch: folderFetch(folder, requested) });
    return { folder, source, requested, root };
  }

  it('loads one shard and one piece list for an asset, and answers at once afterwards, whatever the signed URL token', async () => {
    const { source, requested } = await written();
    const clip = await source.resolve('http://site.example/media/clip.mp4?token=abc');
    expect(clip).toMatchObject({ href: 'http://site.example/media/clip.mp4', size: 5 * PIECE - 1000 });
    expect(clip!.pieces).toEqual(asset('/media/clip.mp4', 5).pieces);
    expect(clip!.id).toBe(await assetId(asset('/media/clip.mp4', 5)));
    expect(requested).toHaveLength(2);
    expect(source.peek('http://site.example/media/clip.mp4?token=other')).toBe(clip);
    expect(source.byId(clip!.id)).toBe(clip);
    expect(source.describe(clip!)).toMatchObject({ url: '/media/clip.mp4', pieces: clip!.pieces });
    await source.resolve('http://site.example/media/clip.mp4');
    expect(requested).toHaveLength(2);
  });

  it('a URL the catalog does not list, a damaged list and a missing one are not peerfetch\'s', async () => {
    const { folder, source, root } = await written();
    expect(await source.resolve('http://site.example/media/other.mp4')).toBeUndefined();
    const track = asset('/library/track-7.m4a', 1, 'audio/mp4');
    const listName = `${createHash('sha256').update(encodePieceList(track.pieces)).digest('hex')}.bin`;
    await writeFile(join(folder, root.catalog!.pieces, listName), new Uint8Array(32));
    expect(await source.resolve('http://site.example/library/track-7.m4a')).toBeUndefined();
    const other = asset('/library/track-8.m4a', 1, 'audio/mp4');
    await rm(join(folder, root.catalog!.pieces, `${createHash('sha256').update(encodePieceList(other.pieces)).digest('hex')}.bin`));
    expect(await source.resolve('http://site.example/library/track-8.m4a')).toBeUndefined();
    expect(await source.resolve('http://site.example/library/track-9.m4a')).toBeDefined();
  });

  it('a shard that is not a shard (an error page, a bad entry) lists nothing', async () => {
    const { folder, source, root } = await written();
    const shardFolder = join(folder, root.catalog!.shards);
    for (const file of await readdir(shardFolder)) await writeFile(join(shardFolder, file), '<html>not found</html>');
    expect(await source.resolve('http://site.example/media/clip.mp4')).toBeUndefined();
  });
});
