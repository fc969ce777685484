import { findAsset, type Manifest, type ManifestAsset } from '../shared/manifest.js';
import { pieceCount } from '../shared/piece-math.js';

/**
 * Fragment given to a taken-over element's URL. Chromium keys the media data it keeps by URL
 * (fragment included) and CORS mode, and refuses SW-built bytes for data that began with a
 * network response: reloading the same URL reuses that data and fails (measured, Chromium 156:
 * `PIPELINE_ERROR_READ` right after the reload), while the same URL with a fragment is a new
 * resource that the SW answers from its first byte. Not a media fragment (`#t=`), so the
 * element starts where it is told to.
 */
export const TAKEOVER_FRAGMENT = 'peerfetch';

/**
 * The page's media elements that are loading a URL from the network: a first visit's player
 * that started while the page was parsed, before the SW controlled the page. Elements playing
 * a MediaSource (hls.js, Shaka: `blob:` URLs) fetch each segment on their own and need nothing.
 */
export function mediaLoadingFromNetwork(root: ParentNode = document): HTMLMediaElement[] {
  return [...root.querySelectorAll<HTMLMediaElement>('video, audio')].filter(
    (media) => media.networkState !== HTMLMediaElement.NETWORK_EMPTY && /^https?:/.test(media.currentSrc),
  );
}

/** Where an element stands in its resource, in seconds. */
export interface MediaProgress {
  currentTime: number;
  duration: number;
  /** End of the buffered range that holds the playhead (0 when none does). */
  bufferedEnd: number;
}

/** The pieces a takeover of an element at `progress` concerns. */
export interface TakeoverPieces {
  /** The first piece the element has not loaded at all: pieces from here on are what a takeover can gain. */
  firstUnloaded: number;
  /**
   * The pieces the reloaded element reads again although it had them: its first piece (an MP4's
   * header) and those from just before the playhead to its buffered end. A takeover waits until
   * these are in the store, so that it never has the viewer fetch from the origin what it had.
   */
  reread: number[];
}

/**
 * Seconds before the playhead that the reloaded element may read again: it resumes at the keyframe
 * at or before its position, one GOP back at most. Streaming encodes put a keyframe every 2 s
 * (ffmpeg `-g 50` at 25 fps in the benchmark's and the tests' media) to 4 s; 5 s covers either.
 */
const REREAD_BEFORE_PLAYHEAD_SECONDS = 5;

/** The piece holding the byte at `seconds` of `duration`, the bytes spread evenly over time (see takeoverPieces). */
function pieceAtSeconds(asset: Pick<ManifestAsset, 'size' | 'pieceSize'>, duration: number, seconds: number): number {
  const last = pieceCount(asset.size, asset.pieceSize) - 1;
  return Math.min(last, Math.max(0, Math.floor(((seconds / duration) * asset.size) / asset.pieceSize)));
}

/**
 * Which pieces a takeover of an element loading `asset` from the network concerns, estimated from
 * its position and buffered range. Chromium reports a progressive file's buffered range as its
 * downloaded bytes scaled linearly to the duration (BufferedDataSourceHostImpl), so the same
 * scaling gives the bytes back. Undefined while the duration is unknown (no metadata yet).
 */
export function takeoverPieces(asset: Pick<ManifestAsset, 'size' | 'pieceSize'>, { currentTime, duration, bufferedEnd }: MediaProgress): TakeoverPieces | undefined {
  if (!Number.isFinite(duration) || duration <= 0) return undefined;
  const count = pieceCount(asset.size, asset.pieceSize);
  const pieceAt = (seconds: number) => pieceAtSeconds(asset, duration, seconds);
  // The piece holding the buffered end is loaded in part: the element reads all of it again.
  const lastLoaded = pieceAt(Math.max(bufferedEnd, currentTime));
  const reread = new Set([0]);
  for (let piece = pieceAt(currentTime - REREAD_BEFORE_PLAYHEAD_SECONDS); piece <= lastLoaded; piece++) reread.add(piece);
  return { firstUnloaded: bufferedEnd >= duration ? count : lastLoaded + 1, reread: [...reread].sort((a, b) => a - b) };
}

/**
 * Bytes a first visit's element may have loaded from the network for an early takeover, one that
 * gains nothing from peers yet (see earlyTakeoverPieces). The reload drops what the element loaded
 * past its playhead, and the SW reads that again, from the origin where no peer holds it: this
 * bounds what the origin may send a viewer twice, once per visit. In the benchmark (1.2 Mbit/s MP4,
 * 3 Mbit/s per origin connection) the element loads about 0.37 MB a second and the SW controlled
 * the page 0.8-1.7 s after navigation (load 1 to 25), so a takeover at control finds 0.3-0.65 MB
 * loaded; 2 MiB leaves room for a slower control and for the wait for peers (EARLY_PEER_WAIT_MS).
 */
export const EARLY_TAKEOVER_MAX_BYTES = 2 * 1024 * 1024;

/**
 * Seconds past the playhead of the pieces an early takeover puts in the store before the reload:
 * the element plays on from the network while they come (well under a second from the origin), and
 * the reloaded element then resumes from the store, a short wait instead of one origin round trip
 * per piece it needs to start again.
 */
const EARLY_RESUME_AHEAD_SECONDS = 2;

/**
 * The pieces to have in the store before an early takeover of an element loading `asset` from the
 * network: its first piece (an MP4's header) and those from a keyframe before the playhead to a
 * little past it. Undefined when the element has loaded more than EARLY_TAKEOVER_MAX_BYTES (the
 * reload would have the origin send too much again), or before its duration is known.
 *
 * Why early: a first viewer's element never goes through the SW on its own (one long network
 * request), so without a takeover its pieces never reach the store and no later viewer can get
 * them from it; each later viewer is then in the same position and the swarm shares nothing
 * (benchmark before this rule: 0.0% offload for the player in the page, MP4).
 */
export function earlyTakeoverPieces(asset: Pick<ManifestAsset, 'size' | 'pieceSize'>, progress: MediaProgress): number[] | undefined {
  const pieces = takeoverPieces(asset, progress);
  if (!pieces || pieces.firstUnloaded * asset.pieceSize > EARLY_TAKEOVER_MAX_BYTES) return undefined;
  const count = pieceCount(asset.size, asset.pieceSize);
  if (pieces.firstUnloaded >= count) return undefined;
  const { currentTime, duration } = progress;
  const pieceAt = (seconds: number) => pieceAtSeconds(asset, duration, seconds);
  const resume = new Set([0]);
  for (let piece = pieceAt(currentTime - REREAD_BEFORE_PLAYHEAD_SECONDS); piece <= pieceAt(currentTime + EARLY_RESUME_AHEAD_SECONDS); piece++) resume.add(piece);
  return [...resume].sort((a, b) => a - b);
}

/** What a page gives its takeovers (see MediaTakeovers). */
export interface TakeoverComponents {
  /** Whether the local store holds the piece. */
  holds(assetId: string, piece: number): boolean;
  /** Whether a connected peer holds the piece. */
  peerHolds(assetId: string, piece: number): boolean;
  /** Fetches a piece from peers (never the origin) into the store; true once it is there. */
  fetchFromPeers(assetId: string, piece: number, timeoutMs: number): Promise<boolean>;
  /** Asks the SW to fetch a piece from the origin into the store; MediaTakeovers.onStored tells when it is there. */
  prefetchFromOrigin(assetId: string, piece: number): void;
  /** Whether peers may come with pieces: the tracker has not answered yet, or reported other members and none has said what it holds. */
  peersExpected(): boolean;
  /** Whether this page uploads to peers (its upload limit is not 0): an early takeover gains the swarm nothing otherwise. */
  seeds(): boolean;
  /** Clock (ms); injected for tests. Default: performance.now. */
  now?: () => number;
  /**
   * Tells peers where the element reads (see Swarm.announceReading): they tell a page what they
   * hold of a video, and serve it pieces of it, only once it said it reads that video.
   */
  reading(assetId: string, piece: number): void;
  /** Tells the SW that the element of `url` is reloaded as a new resource; false when it did not confirm. */
  beforeReload(url: string): Promise<boolean>;
  /** The engine's debug log (see PeerfetchOptions.debug). */
  log?: (message: string) => void;
}

/**
 * Longest wait (ms) for one piece a takeover reads from peers before the reload. Nothing waits on
 * it (the element plays on from the network meanwhile); a piece that does not come in time leaves
 * the element on the network until the next attempt.
 */
const TAKEOVER_PIECE_MS = 8000;
/**
 * Rounds of reading pieces from peers before one reload: the element keeps loading from the
 * network meanwhile, so each round may find a few more pieces to read. On a LAN one round takes
 * well under a second; on a line slower than the element's own download the rounds never catch up,
 * and the takeover is left for a later attempt.
 */
const TAKEOVER_ROUNDS = 4;
/**
 * Longest wait (ms), from the first check, for the peers the tracker reported before an early
 * takeover goes ahead without them. A connected peer holding pieces the element lacks makes the
 * takeover read again from that peer what the reload drops, so the origin sends nothing twice; in
 * the staggered benchmark a later viewer connected to its first peer 1.2-2.3 s after navigation
 * (load 13-25), under a second after the SW controlled its page.
 */
const EARLY_PEER_WAIT_MS = 2000;
/**
 * Time (ms) between two checks of elements left on the network: peers' holdings change without
 * any event when a piece arrives while an attempt was under way, and an attempt that failed is
 * tried again. A check reads the element and the peers' bitfields: nothing to measure.
 */
const TAKEOVER_CHECK_MS = 1000;

/**
 * The first visit's media elements that loaded from the network before the SW controlled the page
 * (see mediaLoadingFromNetwork), and their takeover, by one of two rules:
 * - it pays: a connected peer holds pieces the element has not loaded; the element is reloaded
 *   once the pieces it would read again came from peers, so the origin sends it nothing twice;
 * - early: the element has loaded little (EARLY_TAKEOVER_MAX_BYTES), no peer the tracker reported
 *   is still expected (EARLY_PEER_WAIT_MS), the page seeds (its upload limit is not 0), and
 *   nothing is to be gained from peers: the element is
 *   reloaded once its first piece and those at its playhead are in the store (from peers where
 *   they hold them, else the origin), so that from then on its pieces go into the store and reach
 *   the viewers after it. This costs the origin at most what the element had loaded past its
 *   playhead, once; without it every viewer of a first visit downloaded the whole video from the
 *   origin (see earlyTakeoverPieces).
 * An element that has loaded more than that and gains nothing from peers stays on the network.
 */
export class MediaTakeovers {
  readonly #pending: Set<HTMLMediaElement>;
  readonly #manifest: Manifest;
  readonly #components: TakeoverComponents;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  /** The last reason logged per element: a check every second logs only what changed. */
  readonly #lastWhy = new WeakMap<HTMLMediaElement, string>();
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #now: () => number;
  readonly #startedAt: number;
  /** Per piece (`asset/piece`), the early takeovers waiting for it to be stored (see onStored). */
  readonly #storedWaiters = new Map<string, Set<() => void>>();

  constructor(media: HTMLMediaElement[], manifest: Manifest, components: TakeoverComponents) {
    this.#pending = new Set(media);
    this.#manifest = manifest;
    this.#components = components;
    this.#now = components.now ?? (() => performance.now());
    this.#startedAt = this.#now();
    this.#timer = setInterval(() => void this.consider(), TAKEOVER_CHECK_MS);
    // An element whose metadata was not in yet can be taken over early as soon as it is.
    for (const element of media) element.addEventListener('loadedmetadata', () => void this.consider(), { once: true });
    void this.consider();
  }

  /** A piece reached the store (from the origin through the SW, or from a peer). */
  onStored(assetId: string, piece: number): void {
    const key = `${assetId}/${piece}`;
    const waiters = this.#storedWaiters.get(key);
    this.#storedWaiters.delete(key);
    for (const resolve of waiters ?? []) resolve();
  }

  /** Peers or their holdings changed: check the elements again (one pass at a time). Resolves when the checks asked for so far are done. */
  consider(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    // Nothing in a pass rejects (its components never do); a bug must not stop later checks.
    this.#running = this.#pass().catch(() => {}).then(() => {
      this.#running = undefined;
      if (this.#pending.size === 0) this.stop();
      if (!this.#again) return;
      this.#again = false;
      return this.consider();
    });
    return this.#running;
  }

  /** No more takeovers (P2P off, destroy). */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    for (const waiters of this.#storedWaiters.values()) for (const resolve of waiters) resolve();
    this.#storedWaiters.clear();
  }

  async #pass(): Promise<void> {
    for (const media of [...this.#pending]) {
      if (this.#stopped) return;
      const { outcome, why } = await this.#attempt(media);
      if (outcome !== 'not-yet') this.#pending.delete(media);
      if (this.#lastWhy.get(media) !== why) this.#components.log?.(`player of ${withoutFragment(media.currentSrc)} at ${media.currentTime.toFixed(1)} s: ${why}`);
      this.#lastWhy.set(media, why);
    }
  }

  /** Reloads `media` when a takeover gains pieces from peers and costs no origin bytes. */
  async #attempt(media: HTMLMediaElement): Promise<{ outcome: 'taken-over' | 'not-yet' | 'never'; why: string }> {
    const url = withoutFragment(media.currentSrc);
    const asset = findAsset(this.#manifest, url);
    if (!asset) return { outcome: 'never', why: 'not a manifest asset, left on the network' };
    if (fullyLoaded(media)) return { outcome: 'never', why: 'loaded whole from the network, left there' };
    const { holds, peerHolds, fetchFromPeers, reading } = this.#components;
    for (let round = 0; round < TAKEOVER_ROUNDS; round++) {
      if (this.#stopped || withoutFragment(media.currentSrc) !== url) return { outcome: 'never', why: 'source changed, left alone' };
      const progress = progressOf(media);
      const pieces = takeoverPieces(asset, progress);
      if (!pieces) return { outcome: 'not-yet', why: 'no duration yet' };
      // Where it loads from the network next: peers tell what they hold of the video from then on.
      reading(asset.id, Math.min(pieces.firstUnloaded, asset.pieces.length - 1));
      let gain = false;
      for (let piece = pieces.firstUnloaded; piece < asset.pieces.length && !gain; piece++) gain = peerHolds(asset.id, piece);
      if (!gain) return this.#attemptEarly(media, url, asset, progress);
      const missing = pieces.reread.filter((piece) => !holds(asset.id, piece));
      if (missing.length === 0) {
        const outcome = await this.#reload(media, url);
        return { outcome, why: outcome === 'taken-over' ? `reloaded through the service worker (pieces it reads again: ${pieces.reread.join(', ')})` : 'the service worker did not confirm: left on the network' };
      }
      if (missing.some((piece) => !peerHolds(asset.id, piece))) return { outcome: 'not-yet', why: `pieces it would read again (${missing.join(', ')}) are not all held by peers: stays on the network` };
      // One at a time: each is asked of the fastest holder, whose line then carries one piece at once.
      for (const piece of missing) {
        if (!(await fetchFromPeers(asset.id, piece, TAKEOVER_PIECE_MS))) return { outcome: 'not-yet', why: `piece ${piece}, which it would read again, did not come from peers: stays on the network` };
      }
    }
    return { outcome: 'not-yet', why: 'still loading faster from the network than peers deliver what it would read again' };
  }

  /** The early takeover (see the class): no peer holds a piece the element lacks. */
  async #attemptEarly(media: HTMLMediaElement, url: string, asset: ManifestAsset, progress: MediaProgress): Promise<{ outcome: 'taken-over' | 'not-yet' | 'never'; why: string }> {
    const resume = earlyTakeoverPieces(asset, progress);
    if (!resume) return { outcome: 'not-yet', why: 'no peer holds a piece it has not loaded: stays on the network' };
    // Its pieces would reach nobody, and the reload costs a pause and pieces read again (not-yet: the limit may change).
    if (!this.#components.seeds()) return { outcome: 'not-yet', why: 'uploads nothing (upload limit 0), an early takeover gains nothing: stays on the network' };
    if (this.#components.peersExpected() && this.#now() - this.#startedAt < EARLY_PEER_WAIT_MS) return { outcome: 'not-yet', why: 'waiting for the peers the tracker reported' };
    const { holds, peerHolds, fetchFromPeers } = this.#components;
    const missing = resume.filter((piece) => !holds(asset.id, piece));
    // The origin's pieces come in parallel (a connection each), those from peers one at a time.
    const arriving = missing.filter((piece) => !peerHolds(asset.id, piece)).map((piece) => this.#fromOrigin(asset.id, piece));
    for (const piece of missing.filter((each) => peerHolds(asset.id, each))) {
      if (!(await fetchFromPeers(asset.id, piece, TAKEOVER_PIECE_MS))) arriving.push(this.#fromOrigin(asset.id, piece));
    }
    // The origin not delivering them now would fail the reloaded element's start too: stay on the network.
    if (!(await Promise.all(arriving)).every(Boolean)) return { outcome: 'not-yet', why: 'pieces to resume from not stored: stays on the network' };
    if (this.#stopped || withoutFragment(media.currentSrc) !== url) return { outcome: 'never', why: 'source changed, left alone' };
    const outcome = await this.#reload(media, url);
    return { outcome, why: outcome === 'taken-over' ? `reloaded early (resumes from pieces ${resume.join(', ')})` : 'the service worker did not confirm: left on the network' };
  }

  /** Has the SW fetch `piece` from the origin into the store; true once it is there, false after TAKEOVER_PIECE_MS or stop(). */
  #fromOrigin(assetId: string, piece: number): Promise<boolean> {
    if (this.#components.holds(assetId, piece)) return Promise.resolve(true);
    const key = `${assetId}/${piece}`;
    return new Promise<boolean>((resolve) => {
      const waiters = this.#storedWaiters.get(key) ?? new Set<() => void>();
      this.#storedWaiters.set(key, waiters);
      const stored = () => {
        clearTimeout(timer);
        resolve(!this.#stopped);
      };
      const timer = setTimeout(() => {
        waiters.delete(stored);
        resolve(false);
      }, TAKEOVER_PIECE_MS);
      waiters.add(stored);
      this.#components.prefetchFromOrigin(assetId, piece);
    });
  }

  /**
   * Reloads the element as a new resource that the SW answers (store, peers, origin), where it
   * was: same position, same play/pause state, same rate.
   *
   * What it costs, measured on a first visit (Chromium 156, 1.2 Mbit/s MP4 from an origin capped
   * at 3 Mbit/s): Chromium reads a progressive MP4 through one open-ended Range request and never
   * issues another one while it plays (the whole 9 MB file came through the first request; it
   * pauses reading when its buffer is full and resumes on the same connection), so without a
   * reload not one later byte goes through the SW. The reload shows as one short wait of the
   * element (`emptied`, `waiting`, then `playing`: 0.24 s with its bytes in the store).
   */
  async #reload(media: HTMLMediaElement, url: string): Promise<'taken-over' | 'never'> {
    if (!(await this.#components.beforeReload(url))) return 'never';
    // The element may have moved on (the site changed its source) while the SW answered.
    if (withoutFragment(media.currentSrc) !== url) return 'never';
    const position = media.currentTime;
    const playing = !media.paused;
    const rate = media.playbackRate;
    media.src = `${url}#${TAKEOVER_FRAGMENT}`;
    // Before the metadata is in, this sets the position the element starts at once it is.
    media.currentTime = position;
    media.playbackRate = rate;
    if (playing) await media.play().catch(() => {});
    return 'taken-over';
  }
}

function withoutFragment(url: string): string {
  return url.split('#', 1)[0]!;
}

function progressOf(media: HTMLMediaElement): MediaProgress {
  const { buffered, currentTime, duration } = media;
  let bufferedEnd = 0;
  for (let range = 0; range < buffered.length; range++) {
    if (buffered.start(range) <= currentTime && buffered.end(range) >= currentTime) bufferedEnd = buffered.end(range);
  }
  return { currentTime, duration, bufferedEnd };
}

/** Whether the element already has every byte it will play: a reload would gain nothing. */
function fullyLoaded(media: HTMLMediaElement): boolean {
  if (media.ended) return true;
  const { buffered, duration } = media;
  if (!Number.isFinite(duration) || buffered.length === 0) return false;
  // Chromium's buffered ranges end within a frame of the duration when the whole file is in.
  return buffered.start(0) <= media.currentTime && buffered.end(buffered.length - 1) >= duration - 0.1 && buffered.length === 1;
}
