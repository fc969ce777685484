/**
 * Least time (ms) between two manifest reloads asked for by peers that hold or list assets we do
 * not know. At a live edge every member announces the newest segment within a few hundred ms: one
 * reload catches up with all of them, and a peer announcing made-up assets costs at most 4
 * requests a second.
 */
export const HINT_RELOAD_INTERVAL_MS = 250;
/** Assets named by peers and waiting for a reload (count): one live segment at a time in practice; bounds what made-up names cost. */
const MAX_HINTED_ASSETS = 64;

export interface ManifestHintsComponents {
  /** Whether the manifest applied so far lists `asset`. */
  isKnown(asset: string): boolean;
  /** Fetches the manifest from the origin and applies it; settles once applied (or failed). */
  reload(): Promise<void>;
  /** The clock (ms). Default: Date.now. */
  now?: () => number;
}

/**
 * Peers named assets our manifest does not list: with a live stream playing, our manifest is
 * behind, and it is fetched again from the origin (what peers say is never used but as this
 * hint). The first hint reloads at once; later ones wait for the interval and for the reload
 * under way, and are dropped when a version applied meanwhile lists their assets. At a live edge
 * every peer names each new segment, mostly while our reload (or the worker's, when the player
 * reloads its playlist) is under way: each of those hints cost one more manifest fetch and parse
 * (8 viewers: 2.0 MB of manifests and playlists against 0.2 MB of playlists for origin-only).
 */
export class ManifestHints {
  readonly #components: ManifestHintsComponents;
  /** Assets named and not yet looked for by a reload. */
  readonly #hinted = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #fetching = false;
  #lastReloadAt = -Infinity;
  #stopped = false;

  constructor(components: ManifestHintsComponents) {
    this.#components = components;
  }

  /** A peer named `asset`, which our manifest does not list. */
  hint(asset: string): void {
    if (this.#stopped) return;
    if (this.#hinted.size >= MAX_HINTED_ASSETS) this.#hinted.delete(this.#hinted.values().next().value!);
    this.#hinted.add(asset);
    this.#schedule();
  }

  /** No reload from now on. Idempotent. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#hinted.clear();
  }

  #now(): number {
    return (this.#components.now ?? Date.now)();
  }

  #schedule(): void {
    // One reload at a time: hints that arrive during its fetch are looked at once it is applied.
    if (this.#timer !== undefined || this.#fetching || this.#hinted.size === 0) return;
    const waitMs = this.#lastReloadAt + HINT_RELOAD_INTERVAL_MS - this.#now();
    if (waitMs <= 0) return this.#reload();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#reload();
    }, waitMs);
  }

  #reload(): void {
    if (this.#stopped) return;
    for (const asset of this.#hinted) if (this.#components.isKnown(asset)) this.#hinted.delete(asset);
    if (this.#hinted.size === 0) return;
    this.#hinted.clear();
    this.#lastReloadAt = this.#now();
    this.#fetching = true;
    void this.#components
      .reload()
      .catch(() => {})
      .finally(() => {
        this.#fetching = false;
        if (!this.#stopped) this.#schedule();
      });
  }
}
