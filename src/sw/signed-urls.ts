import { splitSignedUrl, streamKey, withSignature, type ManifestAsset } from '../shared/manifest.js';

/**
 * Most entries kept (count): an asset's URL is needed while its pieces are fetched, and a live
 * stream brings a new segment every few seconds for hours; 256 covers a page's buffer of HLS
 * segments many times over and costs a few tens of kilobytes at most.
 */
const MAX_REMEMBERED = 256;

/**
 * The signed URLs pages requested assets at (query parameters the manifest ignores for matching
 * but the origin checks: ManifestJson.ignoreQuery), so that the worker's own origin requests carry
 * a token the origin accepts. An asset the page asked for is fetched at the URL of its latest
 * request, the least likely to have expired; one it did not ask for yet (a segment prefetched for
 * the swarm) borrows the parameters of the latest request in its stream (a CDN token that covers
 * a folder, as most do for HLS), and without any goes to its plain URL.
 */
export class SignedUrls {
  readonly #latest = new Map<string, string>();

  /** A page requested `asset` at `requestUrl`. */
  remember(asset: ManifestAsset, requestUrl: string, ignoreQuery: readonly string[] | undefined): void {
    const { signature } = splitSignedUrl(requestUrl, ignoreQuery);
    if (!signature) return;
    this.#set(asset.id, requestUrl.split('#', 1)[0]!);
    this.#set(streamKey(asset), signature);
  }

  /** Where the worker fetches `asset` from the origin. */
  originUrl(asset: ManifestAsset): string {
    return this.#latest.get(asset.id) ?? withSignature(asset.href, this.#latest.get(streamKey(asset)) ?? '');
  }

  #set(key: string, value: string): void {
    this.#latest.delete(key);
    this.#latest.set(key, value);
    if (this.#latest.size > MAX_REMEMBERED) this.#latest.delete(this.#latest.keys().next().value!);
  }
}
