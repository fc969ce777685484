import { MAX_DIRECT_MEDIA_URLS } from '../shared/bridge-messages.js';

/**
 * Most pages remembered: a site has a few tabs open, and a page that is gone only costs its
 * entry until this many newer pages pushed it out.
 */
const MAX_PAGES = 64;

/**
 * Media URLs that a page's elements began loading from the network before this SW controlled
 * the page (a first visit). Their later requests (seeks, reconnects) must pass through: Chromium
 * refuses a media resource assembled from a network response and a SW-built one, even for the
 * same URL; measured in Chromium 156: a seek answered by the SW fails with
 * `PIPELINE_ERROR_READ: FFmpegDemuxer: data source error` (docs/architecture.md).
 */
export class DirectMedia {
  readonly #byPage = new Map<string, Set<string>>();

  /** The page `clientId` has elements loading these URLs from the network. */
  add(clientId: string, urls: string[]): void {
    if (!clientId) return;
    const known = this.#byPage.get(clientId) ?? new Set<string>();
    for (const url of urls) {
      // The oldest goes first: a page cannot make the SW keep more than this many of its URLs.
      const key = withoutFragment(url);
      if (!known.has(key) && known.size >= MAX_DIRECT_MEDIA_URLS) known.delete(known.values().next().value!);
      known.add(key);
    }
    this.#byPage.delete(clientId);
    this.#byPage.set(clientId, known);
    if (this.#byPage.size > MAX_PAGES) this.#byPage.delete(this.#byPage.keys().next().value!);
  }

  /** The page reloads its element of `url` as a new resource, which the SW answers. */
  delete(clientId: string, url: string): void {
    this.#byPage.get(clientId)?.delete(withoutFragment(url));
  }

  /** Whether a request of `clientId` for `url` belongs to a resource that began on the network. */
  has(clientId: string, url: string): boolean {
    return this.#byPage.get(clientId)?.has(withoutFragment(url)) ?? false;
  }
}

function withoutFragment(url: string): string {
  return url.split('#', 1)[0]!;
}
