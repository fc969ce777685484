import { PeerfetchError } from '../shared/errors.js';
import { isOlderLiveVersion, parseAsset, parseManifest, type Manifest, type ManifestAsset } from '../shared/manifest.js';
import type { PieceAnswer, WorkerToPage } from '../shared/bridge-messages.js';
import { randomPeerId, swarmInfoHash } from '../shared/swarm-id.js';
import { pieceSpan } from '../shared/piece-math.js';
import { TypedEventTarget } from '../shared/typed-events.js';
import { IdbPieceStore } from '../store/idb-piece-store.js';
import { MemoryPieceStore, type PieceStore } from '../store/piece-store.js';
import { resolveOptions, type PeerfetchOptions, type ResolvedOptions } from './options.js';
import type { Peer } from './peer.js';
import { isRelayed, readPathKey, readPeerPath, UNKNOWN_PATH, type PeerPath } from './peer-path.js';
import { ReachabilityMonitor, type UnreachableDetail } from './reachability.js';
import { PieceSources, StatsCounters, type PeerfetchStats } from './stats.js';
import { SwLink } from './sw-link.js';
import { MediaTakeovers } from './media-takeover.js';
import { ManifestHints } from './manifest-hints.js';
import { awaitingFirstFrame, bufferedAheadMs, liveReserveMs, playbackDeadlineMs } from './playback-slack.js';
import { Scheduler } from './scheduler.js';
import { Swarm } from './swarm.js';
import { TrackerClient } from './tracker-client.js';

/** How often (ms) the `stats` event fires: smooth enough for a live panel, cheap enough to ignore. */
const STATS_INTERVAL_MS = 1000;
/**
 * How often (ms) every peer's network path (candidate types, RTT) is read again after the read at
 * connect. Each read is a full RTCPeerConnection.getStats(): read every second for 7 peers it was
 * one of the page's largest costs (8 live viewers, V8 profile: getStats and its parsing about 7 s of
 * the 40 s the pages spent in peerfetch's code), and a path changes only when ICE picks another pair.
 */
const PATH_REFRESH_MS = 5000;
/**
 * Catalog assets one page takes from its worker (count): the videos it plays and the segments it
 * reads ahead into, far fewer in any real session; past it, more are not taken (their pieces come
 * from the origin), so the page's memory does not grow with the site's catalog.
 */
const MAX_CATALOG_ASSETS = 4096;

/** Events of a peerfetch instance, by name. */
export interface PeerfetchEventMap {
  stats: PeerfetchStats;
  'peer:connect': { peerId: string };
  'peer:disconnect': { peerId: string; reason: string };
  'piece:verified': { url: string; piece: number; peerId: string; bytes: number };
  'piece:rejected': { url: string; piece: number; peerId: string };
  /** A piece the SW asked for went to the origin instead of peers. */
  'asset:fallback': { url: string; piece: number; reason: string };
  /**
   * The tracker reports other peers but no connection to them succeeds; `reason` is what this page
   * observed (see README "Networks"). Fired once per problem, again only after a connection succeeded.
   */
  'swarm:unreachable': UnreachableDetail;
  error: { error: PeerfetchError };
}

/**
 * A running peerfetch instance: the page engine. Created by `start()` or the script tag.
 *
 * @example
 * const peerfetch = start({ tracker: 'wss://tracker.example' });
 * await peerfetch.ready;
 * peerfetch.addEventListener('stats', ({ detail }) => console.log(detail.offloadRatio));
 */
export class Peerfetch extends TypedEventTarget<PeerfetchEventMap> {
  /** Resolves once the manifest is loaded and the SW controls the page (a down tracker does not delay it). */
  readonly ready: Promise<void>;
  readonly options: ResolvedOptions;
  readonly #stats = new StatsCounters();
  readonly #sources = new PieceSources();
  readonly #link: SwLink;
  #store: PieceStore | undefined;
  #swarm: Swarm | undefined;
  #scheduler: Scheduler | undefined;
  /** Our id in the swarm (the WebTorrent peer_id), fixed for the life of the instance. */
  readonly #peerId = randomPeerId((length) => crypto.getRandomValues(new Uint8Array(length)));
  #trackers: TrackerClient[] = [];
  #statsTimer: ReturnType<typeof setInterval> | undefined;
  #destroyed = false;
  #p2p: boolean;
  #uploadLimit: number | undefined;
  #manifest: Manifest | undefined;
  /** Catalog assets the SW described to this page (see shared/catalog.ts), by id: they stay while the page lives. */
  readonly #catalogAssets = new Map<string, ManifestAsset>();
  /** Manifest versions being applied, one after another (see #followManifest). */
  #manifestUpdates: Promise<void> = Promise.resolve();
  /** Manifest reloads asked for by peers naming assets we do not know (a live stream moved on). */
  readonly #hints = new ManifestHints({
    isKnown: (asset) => this.#swarm?.asset(asset) !== undefined,
    reload: () => this.#fetchManifestJson().then(({ json, url }) => this.#followManifest(json, url)),
  });
  /** Aborted by destroy(): cancels a pending leadership request. */
  readonly #lifetime = new AbortController();
  #releaseLeadership: (() => void) | undefined;
  /** Aborted when P2P is turned off while waiting to lead. */
  #leadership: AbortController | undefined;
  #finalStats: PeerfetchStats | undefined;
  /** A first visit's media elements left on the network, until they are taken over (see media-takeover.ts). */
  #takeovers: MediaTakeovers | undefined;
  /** Whether the tracker's last announce reply counted other members of the swarm; undefined before one came (see MediaTakeovers' early takeover). */
  #othersInSwarm: boolean | undefined;
  /** A peer has said what it holds (its hello): until then a connected peer's pieces are unknown. */
  #heardFromPeer = false;
  /** Network path per connected peer, refreshed on the stats tick (getStats() must stay synchronous). */
  readonly #paths = new Map<string, PeerPath>();
  #refreshingPaths = false;
  /** When the paths were last read again (see PATH_REFRESH_MS). */
  #pathsReadAt = 0;
  readonly #reachability = new ReachabilityMonitor((detail) => {
    this.#log?.(`swarm unreachable: ${detail.reason} (${detail.peersInSwarm} peers in the swarm, ${detail.attempts} failed attempts)`);
    this.emit('swarm:unreachable', detail);
  });
  /** console.debug when the `debug` option is on; undefined otherwise, so `#log?.(…)` costs nothing. */
  readonly #log: ((message: string, ...details: unknown[]) => void) | undefined;

  constructor(options: PeerfetchOptions = {}) {
    super();
    let invalidOptions: unknown;
    try {
      this.options = resolveOptions(options, location);
    } catch (error) {
      // Invalid options start nothing (no SW, no swarm): the page loads everything from the
      // origin as it would without peerfetch, and `ready` and the `error` event say why.
      invalidOptions = error;
      this.options = resolveOptions({ p2p: false }, location);
    }
    this.#p2p = this.options.p2p;
    if (this.options.debug) this.#log = (message, ...details) => console.debug(`[peerfetch] ${message}`, ...details);
    this.#uploadLimit = this.options.uploadLimit;
    this.#link = new SwLink(
      (request, signal) => this.#answerPieceRequest(request, signal),
      (notice) => this.#onNotice(notice),
    );
    this.ready = invalidOptions === undefined ? this.#start() : Promise.reject(invalidOptions);
    // `ready` rejecting is reported as an `error` event; an unobserved rejection must not
    // become an uncaught error on the site.
    this.ready.catch((error: unknown) => this.#fail(error));
  }

  /** Counters so far: zeros before `ready`, the last values after `destroy()`. */
  getStats(): PeerfetchStats {
    if (this.#finalStats) return this.#finalStats;
    const peers = [...(this.#swarm?.peers.values() ?? [])].map(({ id, bytesDownloaded, bytesUploaded, throughput, trusted }) => ({
      id,
      bytesDownloaded,
      bytesUploaded,
      throughput: Math.round(throughput),
      trusted,
      ...(this.#paths.get(id) ?? UNKNOWN_PATH),
    }));
    return this.#stats.snapshot(peers, this.#sources.snapshot());
  }

  /**
   * Turns peer-to-peer on or off at run time. Off: leaves the swarm and closes every peer; the
   * SW keeps answering from the local store and the origin.
   */
  setP2P(enabled: boolean): void {
    if (this.#destroyed || enabled === this.#p2p) return;
    this.#p2p = enabled;
    if (!this.#swarm) return; // start() picks the setting up
    if (enabled) return this.#leadWhenFirst(this.#swarm);
    this.#leaveSwarm();
  }

  /** Whether this instance takes part in the swarm (see setP2P). */
  get p2p(): boolean {
    return this.#p2p;
  }

  /** Caps what this page uploads to all peers together, in bytes per second; 0 uploads nothing, undefined removes the cap. */
  setUploadLimit(bytesPerSecond: number | undefined): void {
    this.#uploadLimit = bytesPerSecond;
    if (this.#swarm) this.#applyUploadLimit(this.#swarm);
  }

  /** The upload limit on the swarm: 0 stops seeding (peers are told we hold nothing), any other value caps it. */
  #applyUploadLimit(swarm: Swarm): void {
    swarm.setSeeding(this.#uploadLimit !== 0);
    swarm.uploads.bytesPerSecond = this.#uploadLimit;
  }

  /** Deletes every piece this site stored on this device (they are fetched again when needed). */
  async clearStorage(): Promise<void> {
    await this.#store?.delete();
    this.#swarm?.forgetAll();
    const manifest = this.#manifest;
    if (manifest) for (const asset of this.#known(manifest)) this.#sources.track(asset.id, asset.href, asset.pieces.length, []);
  }

  /** The assets this page knows: the manifest's, and the catalog assets its worker described. */
  #known(manifest: Manifest): ManifestAsset[] {
    const listed = new Set(manifest.assets.map((asset) => asset.id));
    return [...manifest.assets, ...[...this.#catalogAssets.values()].filter((asset) => !listed.has(asset.id))];
  }

  /**
   * Takes a catalog asset the SW described (before it asks for pieces of it, or in answer to our
   * `resolve`): it joins the swarm and the prefetch plan. Applied in order with manifest versions;
   * one that does not parse is ignored.
   */
  #followAsset(json: unknown, url: string): Promise<void> {
    this.#manifestUpdates = this.#manifestUpdates.then(async () => {
      let asset: ManifestAsset;
      try {
        asset = await parseAsset(json, url);
      } catch {
        return;
      }
      const swarm = this.#swarm;
      const manifest = this.#manifest;
      if (this.#destroyed || !swarm || !manifest || this.#catalogAssets.has(asset.id) || this.#catalogAssets.size >= MAX_CATALOG_ASSETS) return;
      this.#catalogAssets.set(asset.id, asset);
      const { added } = await swarm.setManifest({ ...manifest, assets: this.#known(manifest) });
      if (this.#destroyed) return;
      this.#scheduler?.addAssets([asset]);
      for (const each of added) this.#sources.track(each.id, each.href, each.pieces.length, swarm.held(each.id));
    });
    return this.#manifestUpdates;
  }

  /**
   * Applies a manifest version (from the SW, which reloads it as a live stream moves, or our own
   * reload): new assets join the swarm and the prefetch plan, assets that left are forgotten and
   * their stored pieces deleted (a live segment that left the window is never asked for again).
   * Versions apply in order; a manifest that does not parse is ignored.
   */
  #followManifest(json: unknown, url: string): Promise<void> {
    this.#manifestUpdates = this.#manifestUpdates.then(async () => {
      let manifest: Manifest;
      try {
        manifest = await parseManifest(json, url);
      } catch {
        return;
      }
      const swarm = this.#swarm;
      if (this.#destroyed || !swarm) return;
      // The worker's reload and our own may finish out of order: never step back.
      if (this.#manifest && isOlderLiveVersion(manifest, this.#manifest)) return;
      const { added, removed } = await swarm.setManifest({ ...manifest, assets: this.#known(manifest) });
      if (this.#destroyed) return;
      if (added.length > 0) this.#log?.(`manifest lists ${added.map((asset) => asset.href).join(', ')}`);
      this.#manifest = manifest;
      this.#scheduler?.setManifest(manifest);
      for (const asset of added) this.#sources.track(asset.id, asset.href, asset.pieces.length, swarm.held(asset.id));
      // Catalog assets stay (#known keeps them): only assets that left the manifest's own list go.
      for (const id of removed) {
        this.#sources.untrack(id);
        void this.#store?.delete(id).catch(() => {});
      }
    });
    return this.#manifestUpdates;
  }

  /** A peer holds or lists an asset we do not know: with a live stream playing, our manifest may be behind (see ManifestHints). */
  #onUnknownAsset(asset: string): void {
    const live = this.#manifest?.live.some((stream) => !stream.ended);
    if (live && !this.#destroyed) this.#hints.hint(asset);
  }

  /** Leaves the swarm, closes every connection and stops all events. Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#finalStats = this.getStats();
    this.#destroyed = true;
    clearInterval(this.#statsTimer);
    this.#hints.stop();
    for (const tracker of this.#trackers) tracker.destroy();
    this.#trackers = [];
    this.#scheduler?.stop();
    this.#takeovers?.stop();
    this.#swarm?.destroy();
    this.#link.deactivate();
    this.#lifetime.abort();
    this.#releaseLeadership?.();
    this.#store?.close();
    this.muteEvents();
  }

  async #start(): Promise<void> {
    const { options } = this;
    // The SW's first install is the slowest step of a first visit: the manifest, the store and
    // the swarm (tracker, WebRTC handshakes) get ready meanwhile, so peers are there sooner.
    const registering = this.#link.register(options.sw, { manifest: options.manifest, storeCapBytes: options.storeCapBytes });
    registering.catch(() => {}); // awaited below; a failure must not surface before that
    const storeOpening = IdbPieceStore.open({ capBytes: options.storeCapBytes }).catch(() => new MemoryPieceStore(options.storeCapBytes));
    let manifest: Manifest;
    try {
      manifest = await this.#loadManifest();
    } catch (error) {
      void storeOpening.then((store) => store.close());
      throw error;
    }
    const store = await storeOpening;
    if (this.#destroyed) return store.close();
    this.#store = store;
    const swarm = this.#createSwarm(manifest, store);
    await swarm.loadHave();
    if (this.#destroyed) return;
    for (const asset of manifest.assets) this.#sources.track(asset.id, asset.href, asset.pieces.length, swarm.held(asset.id));
    this.#swarm = swarm;
    this.#scheduler = new Scheduler({
      manifest,
      swarm,
      // Before joining a swarm (or with P2P off) this page is its own swarm of one.
      selfId: () => this.#peerId,
      prefetchFromOrigin: (asset, piece) => {
        this.#log?.(`piece ${piece} of ${asset.href}: fetching it from the origin for the swarm`);
        this.#link.prefetch(asset.id, piece);
      },
      stopOriginPrefetch: (asset, piece) => this.#link.stopPrefetch(asset, piece),
      resolve: (href) => this.#link.resolve(href),
    });
    this.#link.listen();
    this.#manifest = manifest;
    this.#applyUploadLimit(swarm);
    swarm.relayedServeUrgent = options.relay === 'all';
    this.#statsTimer = setInterval(() => {
      this.#refreshPaths();
      this.emit('stats', this.getStats());
    }, STATS_INTERVAL_MS);
    if (this.#p2p) this.#leadWhenFirst(swarm);
    try {
      await registering;
    } catch (error) {
      // Without the SW nothing reaches the player through peerfetch: do not stay in the swarm.
      this.#leaveSwarm();
      throw error;
    }
    // On a first visit, media loaded until now went to the network (see media-takeover.ts).
    this.#log?.(`the service worker controls the page, ${Math.round(performance.now())} ms after navigation`);
    if (this.#p2p) this.#takeOverMedia(manifest);
  }

  /**
   * A first visit's player that started before the SW controlled the page loads from the network
   * to its end (see media-takeover.ts): it is reloaded through the SW early, while it has loaded
   * little, or once a connected peer holds pieces it has not loaded. Only with P2P on: with it off
   * nobody gets its pieces and the reload would gain nothing.
   */
  #takeOverMedia(manifest: Manifest): void {
    const direct = this.#link.directMedia;
    this.#link.directMedia = [];
    const swarm = this.#swarm;
    if (direct.length === 0 || !swarm) return;
    this.#takeovers = new MediaTakeovers(direct, manifest, {
      holds: (asset, piece) => swarm.holds(asset, piece),
      peerHolds: (asset, piece) => swarm.availability(asset, piece) > 0,
      fetchFromPeers: async (asset, piece, timeoutMs) => (await swarm.fetchPiece(asset, piece, timeoutMs, this.#lifetime.signal)).ok,
      prefetchFromOrigin: (asset, piece) => this.#link.prefetch(asset, piece),
      peersExpected: () => this.#othersInSwarm !== false && !this.#heardFromPeer,
      reading: (asset, piece) => swarm.announceReading(asset, piece),
      seeds: () => this.#uploadLimit !== 0,
      beforeReload: (url) => this.#link.takeover(url),
      log: this.#log && ((message) => this.#log?.(`takeover: ${message}`)),
    });
  }

  /**
   * Tabs of one site showing the same swarm share one presence in it: the tab holding the Web
   * Lock for the swarm leads (holds the peers and answers every tab's piece requests through
   * the SW); the others wait for the lock and take over when the leader closes.
   */
  #leadWhenFirst(swarm: Swarm): void {
    const lead = async () => {
      if (this.#destroyed || !this.#p2p) return;
      this.#link.activate();
      await this.#joinSwarm(swarm);
      // Hold the lock until destroy() (or the tab's end, when the browser releases it).
      await new Promise<void>((release) => (this.#releaseLeadership = release));
    };
    if (!navigator.locks) return void lead();
    this.#leadership = new AbortController();
    navigator.locks
      .request(`peerfetch:${this.options.swarm}`, { signal: AbortSignal.any([this.#lifetime.signal, this.#leadership.signal]) }, lead)
      .catch(() => {
        // Aborted by destroy() while waiting: nothing to do.
      });
  }

  async #loadManifest(): Promise<Manifest> {
    const { json, url } = await this.#fetchManifestJson();
    return parseManifest(json, url);
  }

  /** The manifest's JSON and the URL it came from; rejects with manifest-fetch-failed or manifest-invalid. */
  async #fetchManifestJson(): Promise<{ json: unknown; url: string }> {
    let response: Response;
    try {
      response = await fetch(this.options.manifest, { cache: 'no-cache', credentials: 'same-origin' });
    } catch (error) {
      throw new PeerfetchError('manifest-fetch-failed', `could not fetch ${this.options.manifest}`, { cause: String(error) });
    }
    if (!response.ok) {
      throw new PeerfetchError('manifest-fetch-failed', `${this.options.manifest} answered ${response.status}`, {
        status: response.status,
      });
    }
    let json: unknown;
    try {
      json = await response.json();
    } catch {
      // Typically a host that answers unknown paths with its index.html and 200.
      throw new PeerfetchError('manifest-invalid', `${this.options.manifest} is not JSON (content-type ${response.headers.get('content-type') ?? 'none'}): was the manifest deployed at this URL?`);
    }
    return { json, url: response.url || this.options.manifest };
  }

  #createSwarm(manifest: Manifest, store: PieceStore): Swarm {
    return new Swarm(manifest, store, {
      openForward: (asset, piece) => {
        const span = pieceSpan(piece, asset.size, asset.pieceSize);
        return this.#link.forward(asset.id, piece, span.end - span.start, asset.pieces[piece]!);
      },
      onPeerConnect: (peer) => {
        this.emit('peer:connect', { peerId: peer.id });
        this.#scheduler?.reschedule();
        void this.#readPath(peer);
      },
      onPeerReading: () => this.#scheduler?.onPeerReading(),
      onPeerHave: () => {
        this.#heardFromPeer = true;
        this.#scheduler?.reschedule();
        void this.#takeovers?.consider();
      },
      onPeerDisconnect: (peer, reason) => {
        this.#paths.delete(peer.id);
        this.#log?.(`peer ${peer.id} disconnected: ${reason}`);
        this.emit('peer:disconnect', { peerId: peer.id, reason });
        for (const tracker of this.#trackers) tracker.wantMorePeers();
      },
      onPieceVerified: (asset, piece, peer, bytes) => {
        this.#stats.add('bytesFromPeers', bytes);
        this.#sources.mark(asset.id, piece, 'p');
        this.#log?.(`piece ${piece} of ${asset.href} from peer ${peer.id} (${bytes} bytes, verified)`);
        this.emit('piece:verified', { url: asset.href, piece, peerId: peer.id, bytes });
      },
      onPieceRejected: (asset, piece, peer) => {
        this.#log?.(`piece ${piece} of ${asset.href} from peer ${peer.id} failed its hash: peer banned`);
        this.emit('piece:rejected', { url: asset.href, piece, peerId: peer.id });
      },
      onUploaded: (_peer, bytes, forwarded) => {
        this.#stats.add('bytesUploaded', bytes);
        if (forwarded) this.#stats.add('bytesForwarded', bytes);
      },
      onWithdrawn: (assetId, piece) => this.#sources.unmark(assetId, piece),
      onUnknownAsset: (_peer, asset) => this.#onUnknownAsset(asset),
      onPeerFetching: (asset, piece) => this.#scheduler?.onPeerFetching(asset, piece),
    });
  }

  /** Leaves the swarm (P2P off): trackers, peers, leadership; the engine stops answering the SW. */
  #leaveSwarm(): void {
    for (const tracker of this.#trackers) tracker.destroy();
    this.#trackers = [];
    this.#takeovers?.stop();
    for (const peer of [...(this.#swarm?.peers.values() ?? [])]) peer.close('peer-to-peer turned off');
    this.#link.retire();
    this.#leadership?.abort();
    this.#releaseLeadership?.();
    this.#releaseLeadership = undefined;
  }

  async #joinSwarm(swarm: Swarm): Promise<void> {
    const infoHash = await swarmInfoHash(this.options.swarm);
    const peerId = this.#peerId;
    if (this.#destroyed) return;
    const { iceServers, relay } = this.options;
    this.#log?.(`joining swarm ${this.options.swarm} through ${this.options.trackers.join(', ') || 'no tracker'}; ICE servers: ${iceServers ? 'the site\'s' : 'each tracker\'s'}; relay: ${relay}`);
    this.#trackers = this.options.trackers.map(
      (url) =>
        new TrackerClient({
          url,
          infoHash,
          peerId,
          iceServers,
          withoutTurn: relay === 'never',
          log: this.#log,
          onAttempt: (attempt) => this.#reachability.onAttempt(attempt, swarm.peers.size),
          wantedPeers: () => swarm.wantedPeers(),
          connectedPeers: () => swarm.peers.size,
          reservePeerSlot: () => swarm.reservePeerSlot(),
          isConnected: (id) => swarm.isConnected(id),
          onPeer: (id, connection, channel) => this.#admitPeer(swarm, id, connection, channel),
          report: () => {
            const { bytesFromPeers, bytesFromOrigin, bytesUploaded } = this.getStats();
            return { bytesFromPeers, bytesFromOrigin, bytesUploaded };
          },
          onProblem: (code, message) => this.#fail(new PeerfetchError(code, message, { tracker: url })),
          onSwarmSize: (peers) => {
            this.#othersInSwarm = peers > 1;
            this.#reachability.onSwarmSize(peers);
            this.#scheduler?.onSwarmSize(peers);
          },
        }),
    );
    for (const tracker of this.#trackers) tracker.start();
  }

  /**
   * A data channel to `peerId` opened: the peer joins the swarm with its address (read before it
   * is used at all, so that a fresh id from a banned address never gets a request; its first
   * messages wait in the channel's early buffer meanwhile).
   */
  async #admitPeer(swarm: Swarm, peerId: string, connection: RTCPeerConnection, channel: RTCDataChannel): Promise<void> {
    const pathKey = await readPathKey(connection);
    if (this.#destroyed || !this.#p2p) return connection.close();
    if (pathKey !== undefined && swarm.isBannedPath(pathKey)) this.#log?.(`peer ${peerId} refused: a peer at its address was banned`);
    swarm.addPeer(peerId, connection, channel, pathKey);
  }

  async #answerPieceRequest(
    request: Extract<WorkerToPage, { type: 'piece-request' }>,
    signal: AbortSignal,
  ): Promise<PieceAnswer> {
    const swarm = this.#swarm;
    const scheduler = this.#scheduler;
    let asset = swarm?.asset(request.asset);
    if (!swarm || !scheduler || this.#destroyed) return { type: 'piece-miss', reason: 'not-ready' };
    if (!asset) {
      // The SW sends its new manifest before asking for its assets: it may still be being applied.
      await this.#manifestUpdates;
      asset = swarm.asset(request.asset);
      if (!asset || this.#destroyed) return { type: 'piece-miss', reason: 'unknown-asset' };
    }
    // A piece read far ahead of a playing player may wait longer for peers on slow lines; one a
    // short buffer cannot wait for goes to the origin early (see Swarm.fetchPiece).
    const bufferMs = () => bufferedAheadMs(pageMedia());
    const deadlineMs = playbackDeadlineMs(request.deadlineMs, request.maxDeadlineMs, bufferMs(), asset.live && liveReserveMs(asset.live.segmentMs));
    const result = await scheduler.answer(asset, request.piece, deadlineMs, request.first, signal, bufferMs, () => awaitingFirstFrame(pageMedia()));
    if (result.ok) {
      const data = result.data.buffer.slice(result.data.byteOffset, result.data.byteOffset + result.data.byteLength) as ArrayBuffer;
      return { type: 'piece', data };
    }
    this.#log?.(`piece ${request.piece} of ${asset.href} from the origin: ${result.reason} (deadline ${deadlineMs} ms, buffer ${Math.round(bufferMs() ?? -1)} ms)`);
    this.emit('asset:fallback', { url: asset.href, piece: request.piece, reason: result.reason });
    if (!result.partial) return { type: 'piece-miss', reason: result.reason };
    const partial = result.partial.buffer.slice(result.partial.byteOffset, result.partial.byteOffset + result.partial.byteLength) as ArrayBuffer;
    return { type: 'piece-miss', reason: result.reason, partial };
  }

  #onNotice(notice: WorkerToPage): void {
    if (this.#destroyed) return;
    if (notice.type === 'bytes-served') return this.#stats.add('bytesServed', notice.bytes);
    if (notice.type === 'manifest') return void this.#followManifest(notice.manifest, notice.url);
    if (notice.type === 'asset') return void this.#followAsset(notice.asset, notice.url);
    // A live piece's origin bytes began to arrive at the SW: offered to peers (see Swarm.markArriving).
    if (notice.type === 'piece-arriving') return this.#whenKnown(notice.asset, () => this.#swarm?.markArriving(notice.asset, notice.piece));
    if (notice.type !== 'piece-delivered') return;
    this.#whenKnown(notice.asset, () => this.#onDelivered(notice));
  }

  /**
   * Runs `then` now, or, for an asset this page does not know yet, once the manifest versions and
   * catalog assets being applied are (the SW learns of a new live segment, and describes a catalog
   * asset, just before it reports its pieces): once, so that stats count the piece and peers hear of it.
   */
  #whenKnown(assetId: string, then: () => void): void {
    if (this.#swarm && !this.#swarm.asset(assetId)) void this.#manifestUpdates.then(() => !this.#destroyed && then());
    else then();
  }

  /** A piece the SW delivered for this page: counted, and seeded once stored. */
  #onDelivered(notice: Extract<WorkerToPage, { type: 'piece-delivered' }>): void {
    const counter = { origin: 'bytesFromOrigin', store: 'bytesFromStore', peers: 'bytesFromPeers' } as const;
    this.#stats.add(counter[notice.source], notice.bytes);
    if (notice.source !== 'store') this.#sources.mark(notice.asset, notice.piece, notice.source === 'origin' ? 'o' : 'p');
    if (notice.stored) {
      this.#swarm?.markHave(notice.asset, notice.piece);
      this.#takeovers?.onStored(notice.asset, notice.piece);
    }
    if (notice.source === 'origin') this.#scheduler?.onStored(notice.asset, notice.piece);
    // Seeding backs off when this visitor's own requests wait behind its uploads: past 100 ms, or 500 ms while its players have 10 s buffered (see UploadBackoff).
    if (notice.source === 'origin' && typeof notice.latencyMs === 'number') this.#swarm?.uploads.noteOwnDelay(notice.latencyMs, bufferedAheadMs(pageMedia()));
  }

  /**
   * Reads a peer's network path (at connect, then every PATH_REFRESH_MS): a relayed one is closed
   * (relay 'never') or kept out of the pieces the player waits for (relay 'ahead').
   */
  async #readPath(peer: Peer): Promise<void> {
    const path = await readPeerPath(peer.connection);
    if (this.#destroyed || peer.closed || this.#swarm?.peers.get(peer.id) !== peer) return;
    const known = this.#paths.get(peer.id);
    this.#paths.set(peer.id, path);
    const relayed = isRelayed(path);
    if (!known || isRelayed(known) !== relayed) {
      this.#log?.(`peer ${peer.id} path: ${path.localCandidateType ?? '?'} -> ${path.remoteCandidateType ?? '?'}, rtt ${path.rttMs ?? '?'} ms${relayed ? `, relayed (relay: ${this.options.relay})` : ''}`);
    }
    if (relayed && this.options.relay === 'never') return peer.close('relayed path (relay: never)');
    this.#swarm?.markRelayed(peer.id, relayed);
  }

  /** Refreshes every peer's path (candidate types, RTT) in the background, every PATH_REFRESH_MS; one pass at a time. */
  #refreshPaths(): void {
    const peers = [...(this.#swarm?.peers.values() ?? [])];
    if (this.#refreshingPaths || peers.length === 0 || Date.now() - this.#pathsReadAt < PATH_REFRESH_MS) return;
    this.#pathsReadAt = Date.now();
    this.#refreshingPaths = true;
    void Promise.all(peers.map((peer) => this.#readPath(peer))).finally(() => (this.#refreshingPaths = false));
  }

  #fail(error: unknown): void {
    if (this.#destroyed) return;
    const wrapped =
      error instanceof PeerfetchError
        ? error
        : new PeerfetchError('bridge-invalid', error instanceof Error ? error.message : String(error));
    this.emit('error', { error: wrapped });
  }
}

/** The page's media elements, whose buffers say how long a piece may take (see bufferedAheadMs). */
function pageMedia(): Iterable<HTMLMediaElement> {
  return typeof document === 'undefined' ? [] : document.querySelectorAll<HTMLMediaElement>('video, audio');
}
