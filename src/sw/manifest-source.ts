import { parseManifest, type Manifest } from '../shared/manifest.js';

/**
 * Least time (ms) between two manifest reloads asked for by hash mismatches: a stale manifest
 * mismatches on every piece, and one reload per 10 s is enough to pick up a redeploy.
 */
const RELOAD_INTERVAL_MS = 10_000;
/** Longest time (ms) one manifest fetch may take before it counts as failed. */
const MANIFEST_FETCH_TIMEOUT_MS = 10_000;

/**
 * The manifest as the SW knows it: loaded once (it is the trust anchor, fetched from the site's
 * own origin), kept in memory, reloaded when origin bytes stop matching it. A manifest that
 * cannot be loaded means "nothing is ours": every request passes through untouched.
 */
export class ManifestSource {
  readonly url: string;
  #current: Manifest | undefined;
  #loading: Promise<Manifest | undefined> | undefined;
  #loadedAt = 0;

  constructor(url: string) {
    this.url = url;
  }

  current(): Manifest | undefined {
    return this.#current;
  }

  load(): Promise<Manifest | undefined> {
    this.#loading ??= this.#fetch().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  /** Origin bytes did not match the manifest: it is probably stale, reload it (throttled). */
  invalidate(now = Date.now()): void {
    if (now - this.#loadedAt >= RELOAD_INTERVAL_MS) void this.load();
  }

  async #fetch(): Promise<Manifest | undefined> {
    this.#loadedAt = Date.now();
    try {
      const response = await fetch(this.url, {
        cache: 'no-cache',
        credentials: 'same-origin',
        // A hanging manifest request must not block every later attempt.
        signal: AbortSignal.timeout(MANIFEST_FETCH_TIMEOUT_MS),
      });
      if (!response.ok) return this.#current;
      this.#current = await parseManifest(await response.json(), response.url || this.url);
    } catch {
      // Offline, bad JSON or an invalid manifest: keep what we had (maybe nothing).
    }
    return this.#current;
  }
}
