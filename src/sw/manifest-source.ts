import { parseManifest, type Manifest } from '../shared/manifest.js';
import { absentForGood, cacheAbsenceRecords, nextAbsence, type AbsenceRecords, type ManifestAbsence } from './kill-switch.js';

/**
 * Least time (ms) between two manifest reloads asked for by hash mismatches: a stale manifest
 * mismatches on every piece, and one reload per 10 s is enough to pick up a redeploy.
 */
const RELOAD_INTERVAL_MS = 10_000;
/**
 * Age (ms) after which a request for an asset has the manifest fetched again, in the background
 * (the request does not wait). A worker that answers everything from its store and peers never
 * sees the origin's new bytes, so without this it would keep a replaced file's old version for
 * as long as it lives; with it, a republished manifest reaches it within a minute. The fetch is
 * conditional (`cache: 'no-cache'`): an unchanged manifest costs a 304 per minute of playback.
 */
const MANIFEST_MAX_AGE_MS = 60_000;
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
/**
 * What a manifest answered with 410 Gone, or 404 for long enough (see ABSENT_MIN_MS), stands for:
 * the operator removed peerfetch for good (kill switch).
 */
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
/** What a ManifestSource needs besides its URL (injected, so it runs in tests without a worker). */
export interface ManifestSourceOptions {
  /** Called with every manifest that differs from the one before. */
  onChange?: (change: ManifestChange) => void;
  /** Where runs of 404 answers are kept across worker restarts. Default: Cache Storage. */
  absence?: AbsenceRecords;
  /** The clock (ms since the epoch). Default: Date.now. */
  now?: () => number;
}

export class ManifestSource {
  readonly url: string;
  readonly #onChange: (change: ManifestChange) => void;
  readonly #absenceRecords: AbsenceRecords;
  readonly #now: () => number;
  /** The current run of 404 answers, once read from its record. */
  #absence: Promise<ManifestAbsence | undefined> | undefined;
  /** A reload asked for while reloads were throttled (see invalidate). */
  #deferredReload: ReturnType<typeof setTimeout> | undefined;
  #current: Manifest | undefined;
  #currentText: string | undefined;
  #loading: Promise<Manifest | undefined> | undefined;
  /** When the fetch behind `#loading` (or the last one) started. */
  #loadedAt = 0;
  /** Failed loads in a row, and when the next one may be tried (negative cache). */
  #failures = 0;
  #retryAt = 0;

  constructor(url: string, { onChange = () => {}, absence = cacheAbsenceRecords, now = Date.now }: ManifestSourceOptions = {}) {
    this.url = url;
    this.#onChange = onChange;
    this.#absenceRecords = absence;
    this.#now = now;
  }

  current(): Manifest | undefined {
    return this.#current;
  }

  /**
   * A request the manifest does not cover came by: a manifest kept current by a watcher (it has
   * a refresh hint) is reloaded, at most once per hint, so a stream that started after our last
   * load is found. Does not wait.
   */
  refreshIfWatched(now = this.#now()): void {
    const refreshMs = this.#current?.refreshMs;
    if (refreshMs !== undefined && !this.#loading && now - this.#loadedAt >= refreshMs) void this.load();
  }

  /** An asset is being requested: a manifest older than MANIFEST_MAX_AGE_MS is fetched again. Does not wait. */
  revalidate(now = this.#now()): void {
    if (this.#current && !this.#loading && now - this.#loadedAt >= MANIFEST_MAX_AGE_MS) void this.load();
  }

  load(): Promise<Manifest | undefined> {
    if (!this.#loading && this.#now() < this.#retryAt) return Promise.resolve(this.#current);
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

  /**
   * Origin bytes did not match the manifest: it is probably stale, reload it. Throttled: within
   * RELOAD_INTERVAL_MS of the last load, the reload happens once that time is over, so a manifest
   * republished just after the mismatch is still picked up without another one.
   */
  invalidate(now = this.#now()): void {
    const waitMs = this.#loadedAt + RELOAD_INTERVAL_MS - now;
    if (waitMs <= 0) return void this.load();
    this.#deferredReload ??= setTimeout(() => {
      this.#deferredReload = undefined;
      void this.load();
    }, waitMs);
  }

  /** Counts a failed load and keeps what we had (maybe nothing). */
  #failed(): Manifest | undefined {
    this.#failures++;
    this.#retryAt = this.#now() + Math.min(FAILED_RETRY_MAX_MS, FAILED_RETRY_MS * 2 ** (this.#failures - 1));
    return this.#current;
  }

  /**
   * Counts one load in the run of 404 answers (see kill-switch.ts); true once the manifest has been
   * missing for long enough to act as the kill switch. Only a change is written to the record.
   */
  async #noteAbsence(outcome: 'missing' | 'present'): Promise<boolean> {
    this.#absence ??= this.#absenceRecords.get(this.url);
    const previous = await this.#absence;
    const now = this.#now();
    const next = nextAbsence(previous, outcome, now);
    if (next !== previous) {
      this.#absence = Promise.resolve(next);
      await this.#absenceRecords.set(this.url, next);
    }
    return absentForGood(next, now);
  }

  async #fetch(): Promise<Manifest | undefined> {
    this.#loadedAt = this.#now();
    try {
      const response = await fetch(this.url, {
        cache: 'no-cache',
        credentials: 'same-origin',
        // A hanging manifest request must not block every later attempt.
        signal: AbortSignal.timeout(MANIFEST_FETCH_TIMEOUT_MS),
      });
      if (response.status === 410 || (response.status === 404 && (await this.#noteAbsence('missing')))) {
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
          await this.#noteAbsence('present');
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
