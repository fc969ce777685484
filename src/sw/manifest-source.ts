import { parseManifest, type Manifest } from '../shared/manifest.js';

/**
 * Least time (ms) between two manifest reloads asked for by hash mismatches: a stale manifest
 * mismatches on every piece, and one reload per 10 s is enough to pick up a redeploy.
 */
const RELOAD_INTERVAL_MS = 10_000;
/** Longest time (ms) one manifest fetch may take before it counts as failed. */
const MANIFEST_FETCH_TIMEOUT_MS = 10_000;
/**
 * Wait (ms) before a manifest that failed to load is asked for again, doubled after each failure
 * up to the maximum. Without it a site without a manifest (or with a broken one) paid one manifest
 * request per media request; 10 s still picks up a fixed deploy quickly, 5 min caps the cost of a
 * manifest that stays missing at one request per 5 min per worker.
 */
const FAILED_RETRY_MS = 10_000;
const FAILED_RETRY_MAX_MS = 300_000;
/** What a manifest answered with 410 Gone stands for: the operator removed peerfetch for good (kill switch). */
const GONE: Manifest = { version: 1, assets: [], live: [], disabled: true };

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
  /** Failed loads in a row, and when the next one may be tried (negative cache). */
  #failures = 0;
  #retryAt = 0;

  constructor(url: string) {
    this.url = url;
  }

  current(): Manifest | undefined {
    return this.#current;
  }

  load(): Promise<Manifest | undefined> {
    if (!this.#loading && Date.now() < this.#retryAt) return Promise.resolve(this.#current);
    this.#loading ??= this.#fetch().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  /** Origin bytes did not match the manifest: it is probably stale, reload it (throttled). */
  invalidate(now = Date.now()): void {
    if (now - this.#loadedAt >= RELOAD_INTERVAL_MS) void this.load();
  }

  /** Counts a failed load and keeps what we had (maybe nothing). */
  #failed(): Manifest | undefined {
    this.#failures++;
    this.#retryAt = Date.now() + Math.min(FAILED_RETRY_MAX_MS, FAILED_RETRY_MS * 2 ** (this.#failures - 1));
    return this.#current;
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
      if (response.status === 410) this.#current = GONE;
      else if (!response.ok) return this.#failed();
      else this.#current = await parseManifest(await response.json(), response.url || this.url);
      this.#failures = 0;
      this.#retryAt = 0;
    } catch {
      // Offline, bad JSON or an invalid manifest: keep what we had (maybe nothing).
      return this.#failed();
    }
    return this.#current;
  }
}
