import { describe, expect, it } from 'vitest';
import { findAsset, parseManifest, type ManifestJson } from '../../src/shared/manifest.js';
import { sha256Hex, verifyPiece } from '../../src/shared/integrity.js';
import { isPeerfetchError } from '../../src/shared/errors.js';
import { swarmInfoHash, binaryToHex, randomPeerId } from '../../src/shared/swarm-id.js';

const HASH = 'a'.repeat(64);
const valid = (): ManifestJson => ({
  version: 1,
  assets: [{ url: '/media/film.mp4', size: 300 * 1024, contentType: 'video/mp4', pieceSize: 256 * 1024, pieces: [HASH, HASH] }],
});

async function codeOf(raw: unknown): Promise<string | undefined> {
  try {
    await parseManifest(raw, 'https://site.example/peerfetch-manifest.json');
    return undefined;
  } catch (error) {
    return isPeerfetchError(error) ? error.code : 'not-a-peerfetch-error';
  }
}

describe('parseManifest', () => {
  it('resolves URLs against the manifest URL and derives a content id', async () => {
    const manifest = await parseManifest(valid(), 'https://site.example/peerfetch-manifest.json');
    const [asset] = manifest.assets;
    expect(asset?.href).toBe('https://site.example/media/film.mp4');
    expect(asset?.id).toMatch(/^[0-9a-f]{16}$/);
    expect(findAsset(manifest, 'https://site.example/media/film.mp4#t=3')).toBe(asset);
    expect(findAsset(manifest, 'https://site.example/media/other.mp4')).toBeUndefined();
  });

  it('gives different content ids to different bytes', async () => {
    const other = valid();
    other.assets[0]!.pieces = [HASH, 'b'.repeat(64)];
    const [a] = (await parseManifest(valid(), 'https://x.example/')).assets;
    const [b] = (await parseManifest(other, 'https://x.example/')).assets;
    expect(a?.id).not.toBe(b?.id);
  });

  const broken = (change: (manifest: ManifestJson & Record<string, unknown>) => void) => {
    const manifest = valid() as ManifestJson & Record<string, unknown>;
    change(manifest);
    return manifest;
  };

  it.each([
    ['not an object', 'hello'],
    ['a wrong version', broken((m) => (m.version = 2))],
    ['assets not an array', broken((m) => ((m as Record<string, unknown>).assets = {}))],
    ['an asset without url', broken((m) => ((m.assets[0] as unknown as Record<string, unknown>).url = ''))],
    ['a negative size', broken((m) => (m.assets[0]!.size = -1))],
    ['a tiny piece size', broken((m) => (m.assets[0]!.pieceSize = 10))],
    ['a bad hash', broken((m) => (m.assets[0]!.pieces = ['xyz', HASH]))],
    ['too few pieces', broken((m) => (m.assets[0]!.pieces = [HASH]))],
    ['a duplicate asset', broken((m) => m.assets.push({ ...m.assets[0]! }))],
  ])('rejects %s with manifest-invalid', async (_name, raw) => {
    expect(await codeOf(raw)).toBe('manifest-invalid');
  });
});

describe('integrity and swarm ids', () => {
  it('hashes with SHA-256 and verifies pieces', async () => {
    const data = new TextEncoder().encode('abc');
    expect(await sha256Hex(data)).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(await verifyPiece(data, await sha256Hex(data))).toBe(true);
    expect(await verifyPiece(new Uint8Array([1]), await sha256Hex(data))).toBe(false);
  });

  it('derives a 20-byte info hash from the swarm key (SHA-1)', async () => {
    const infoHash = await swarmInfoHash('abc');
    expect(infoHash).toHaveLength(20);
    expect(binaryToHex(infoHash)).toBe('a9993e364706816aba3e25717850c26c9cd0d89d');
  });

  it('makes 20-character printable peer ids', () => {
    const id = randomPeerId((length) => new Uint8Array(length).fill(7));
    expect(id).toHaveLength(20);
    expect(id.startsWith('-PF0100-')).toBe(true);
  });
});
