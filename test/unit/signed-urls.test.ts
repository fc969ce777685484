import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../src/shared/manifest.js';
import { SignedUrls } from '../../src/sw/signed-urls.js';

// Different bytes per segment: an asset's id is its content's.
const segment = (url: string, hashDigit: string) => ({ url, size: 100, contentType: 'video/mp2t', pieceSize: 16 * 1024, pieces: [hashDigit.repeat(64)] });

async function segments() {
  const manifest = await parseManifest(
    { version: 1, ignoreQuery: ['token'], assets: [segment('/hls/seg1.ts', 'a'), segment('/hls/seg2.ts', 'b'), segment('/other/seg1.ts', 'c')] },
    'https://site.example/peerfetch-manifest.json',
  );
  return manifest.assets as [(typeof manifest.assets)[0], (typeof manifest.assets)[0], (typeof manifest.assets)[0]];
}

describe('SignedUrls: where the worker fetches an asset of a signed site', () => {
  it('uses the URL of the latest request for the asset, else its stream’s latest token, else its plain URL', async () => {
    const [first, second, elsewhere] = await segments();
    const urls = new SignedUrls();
    expect(urls.originUrl(first)).toBe('https://site.example/hls/seg1.ts');
    urls.remember(first, 'https://site.example/hls/seg1.ts?token=old&v=1', ['token']);
    urls.remember(first, 'https://site.example/hls/seg1.ts?token=new#t=2', ['token']);
    expect(urls.originUrl(first)).toBe('https://site.example/hls/seg1.ts?token=new');
    // Not requested yet (a prefetch for the swarm): the stream's latest token.
    expect(urls.originUrl(second)).toBe('https://site.example/hls/seg2.ts?token=new');
    // Another folder is another stream: no token of this one.
    expect(urls.originUrl(elsewhere)).toBe('https://site.example/other/seg1.ts');
  });

  it('keeps the last token when a request comes without one', async () => {
    const [first] = await segments();
    const urls = new SignedUrls();
    urls.remember(first, 'https://site.example/hls/seg1.ts?token=abc', ['token']);
    urls.remember(first, 'https://site.example/hls/seg1.ts', ['token']);
    expect(urls.originUrl(first)).toBe('https://site.example/hls/seg1.ts?token=abc');
  });
});
