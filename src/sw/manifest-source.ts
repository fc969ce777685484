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

/** A manifest that differs from the one before (or the first one), with the raw JSON it was parsed from (pages parse it again). */
export interface ManifestChange {
  manifest: Manifest;
  json: unknown;
  url: string;
}

/**
 * The manifest as the SW knows it: loaded once (it is the trust anchor, fetched from the site's
 * own origin), kept in memory, reloaded when origin bytes stop matching it, and, for live
 * streams, whenever the stream may have moved (see `loadSince`). A manifest that cannot be
 * loaded means "nothing is ours": every request passes through untouched.
 */
export class ManifestSource {
  readonly url: string;
  readonly #onChange: (change: ManifestChange) => void;
  #current: Manifest | undefined;
  #currentText: string | undefined;
  #loading: Promise<Manifest | undefined> | undefined;
  /** When the fetch behind `#loading` (or the last one) started. */
  #loadedAt = 0;
  /** Failed loads in a row, and when the next one may be tried (negative cache). */
  #failures = 0;
  #retryAt = 0;

  constructor(url: string, onChange: (change: ManifestChange) => void = () => {}) {
    this.url = url;
    this.#onChange = onChange;
  }

  current(): Manifest | undefined {
    return this.#current;
  }

  /**
   * A request the manifest does not cover came by: a manifest kept current by a watcher (it has
   * a refresh hint) is reloaded, at most once per hint, so a stream that started after our last
   * load is found. Does not wait.
   */
  refreshIfWatched(now = Date.now()): void {
    const refreshMs = this.#current?.refreshMs;
    if (refreshMs !== undefined && !this.#loading && now - this.#loadedAt >= refreshMs) void this.load();
  }

  load(): Promise<Manifest | undefined> {
    if (!this.#loading && Date.now() < this.#retryAt) return Promise.resolve(this.#current);
    this.#loading ??= this.#fetch().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  /**
   * The manifest as the origin had it at `time` or later: a fetch started before `time` is not
   * enough (the live manifest is written before the playlist that names a new segment, so a
   * manifest fetched after the playlist lists every segment in it). Shares a fetch that qualifies.
   */
  async loadSince(time: number): Promise<Manifest | undefined> {
    while (this.#loading) {
      const started = this.#loadedAt;
      const loaded = await this.#loading;
      if (started >= time) return loaded;
    }
    return this.load();
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
      if (response.status === 410) {
        this.#current = GONE;
        this.#currentText = undefined;
      } else if (!response.ok) {
        return this.#failed();
      } else {
        const text = await response.text();
        // A live manifest is fetched every few seconds and mostly unchanged: parse only what changed.
        if (text !== this.#currentText) {
          const json: unknown = JSON.parse(text);
          const url = response.url || this.url;
          const manifest = await parseManifest(json, url);
          this.#current = manifest;
          this.#currentText = text;
          // Also the first load: a restarted SW may have a newer manifest than the pages.
          this.#onChange({ manifest, json, url });
        }
      }
      this.#failures = 0;
      this.#retryAt = 0;
    } catch {
      // Offline, bad JSON or an invalid manifest: keep what we had (maybe nothing).
      return this.#failed();
    }
    return this.#current;
  }
}
