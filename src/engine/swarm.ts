import { MAX_HELD_PIECES, runsOf, type PieceRuns } from '../shared/holdings.js';
import { PeerfetchError } from '../shared/errors.js';
import { verifyPiece } from '../shared/integrity.js';
import { streamKey, type Manifest, type ManifestAsset } from '../shared/manifest.js';
import { pieceCount, pieceSpan } from '../shared/piece-math.js';
import type { PieceStore, RemovedPieces } from '../store/piece-store.js';
import { SharedTasks } from '../shared/shared-tasks.js';
import { TokenBucket } from '../shared/token-bucket.js';
import { MAX_READING_HEADS, Peer, READING_MEMORY_MS, type ArrivingPiece, type PeerRecord } from './peer.js';
import { UploadLimiter } from './upload-limiter.js';
import { UploadTurns } from './upload-turns.js';
import { untilSettled } from './wake-ups.js';
import { finishFromOrigin, originMs, originSlackMs, silentAtLastChance } from './playback-slack.js';

/** Connected peers we aim for: enough sources for parallel pieces, few enough for a phone's radio. */
export const MAX_PEERS = 8;

/**
 * Time (ms) one peer gets for one piece before the next peer is tried, at least: a 256 KiB piece
 * takes ~50 ms at the 5 MB/s a channel carries here, so 3 s only trips on a stalled peer. A peer
 * expected to take longer (a home line, requests queued ahead) gets twice what it was expected to
 * take: cut at 3 s, a 1-2 Mbit/s line sending a piece behind another was cancelled part way, and
 * what it had queued still came and was thrown away (uplinks benchmark: 1.4 MB of 1.8 MB wasted).
 * The last peer that holds the piece gets the whole deadline: giving up on it early only fails
 * the piece.
 */
const PEER_ATTEMPT_TIMEOUT_MS = 3000;
/** How many times its expected delivery time a peer gets for a piece before the next is tried (see PEER_ATTEMPT_TIMEOUT_MS). */
const PEER_ATTEMPT_SLACK = 2;
/**
 * Longest wait (ms) of a piece the player needs on a prefetch of it already asked of a peer that
 * has not delivered a verified piece yet and has sent nothing of this one: a first piece's
 * deadline. An honest peer's first chunk comes within a round trip (milliseconds here, well under
 * a second across continents), and the piece then counts as the peer's proof; a peer that claims
 * pieces and stalls costs the player at most this, once per piece, until its stall is measured.
 */
const UNPROVEN_JOIN_WAIT_MS = 1000;
/**
 * Peers whose failures and stalls are remembered after they left (count, by id and by address,
 * the oldest forgotten first). A page meets a few dozen peers per video; each entry costs a
 * real WebRTC connection to create, so a hostile peer cannot grow this fast either.
 */
const MAX_REMEMBERED_PEERS = 128;
/**
 * A caller that joined a download started for someone else (a prefetch) and saw it fail with at
 * least this much (ms) of its own deadline left starts it again: the prefetch's attempt may have
 * been given up sooner than this caller needs.
 */
const REJOIN_MIN_MS = 500;
/**
 * How often (ms) a piece the player waits for checks the progress of the peer sending it against
 * the player's buffer (see fetchPiece's `bufferMs`): the span of one throughput sample
 * (Peer's RATE_WINDOW_MS), as the estimate of the peer's rate changes no faster.
 */
const LATE_CHECK_MS = 250;
/**
 * Pieces whose first bytes are kept after their peer download ended without the rest (count, the
 * oldest forgotten first): at 256 KiB pieces at most 1 MiB of unverified bytes, a few prefetches'
 * worth (MAX_PEER_PREFETCHES in the scheduler is 6, and few of them end part way at once).
 */
const MAX_LEFTOVERS = 4;
/**
 * Pieces announced while still arriving from the origin (count, the oldest forgotten first; see
 * markArriving): a live viewer's worker fetches a segment's few pieces at a time, and each is
 * dropped once stored. Past ARRIVING_MEMORY_MS one whose store notice never came (its transfer
 * failed unasked) is forgotten and withdrawn.
 */
const MAX_ARRIVING = 16;
const ARRIVING_MEMORY_MS = 20_000;
/**
 * Hellos one peer can make us send by what it says (per second, and in one burst): an honest peer
 * needs one when its page begins a stream (a video, a rendition, the first read after a long
 * pause), a few a minute. A hello may carry up to MAX_HOLDINGS_BYTES, so a peer naming new streams
 * or asking in a loop gets one a second, not one per message; what it asked meanwhile is answered
 * by that one (a hello answers every ask before it).
 */
const PEER_HELLOS_PER_S = 1;
const PEER_HELLO_BURST = 4;

/** What one peer was told of our holdings (see Swarm's privacy rule, #mayTell). */
interface Disclosure {
  /** Assets it was told we hold pieces of (in our last hello, or in haves since). */
  told: Set<string>;
  /** The streams our last hello to it covered: those our player read then and those it had said it reads. */
  streams: Set<string>;
  /** It asked for a hello (see the `reading` message) that was not sent yet. */
  asked: boolean;
  /** A hello put off by the budget (PEER_HELLOS_PER_S). */
  timer: ReturnType<typeof setTimeout> | undefined;
  budget: TokenBucket;
}

/** What the swarm reports upwards (the orchestrator turns these into stats and public events). */
export interface SwarmCallbacks {
  onPeerConnect(peer: Peer): void;
  onPeerDisconnect(peer: Peer, reason: string): void;
  /** `bytes`: the piece's, less its first bytes already handed to the player's origin fetch (the SW counted those). */
  onPieceVerified(asset: ManifestAsset, piece: number, peer: Peer, bytes: number): void;
  onPieceRejected(asset: ManifestAsset, piece: number, peer: Peer): void;
  onUploaded(peer: Peer, bytes: number, forwarded: boolean): void;
  /** A peer announced new pieces (the scheduler may have new work). */
  onPeerHave(peer: Peer): void;
  /** We no longer hold `piece` (the store evicted or deleted it). */
  onWithdrawn(assetId: string, piece: number): void;
  /** A peer holds pieces of an asset our manifest does not list: a live stream may have moved on. */
  onUnknownAsset(peer: Peer, asset: string): void;
  /** A peer's player reads `piece` of `assetId` and it is fetching it from the origin itself (see the `reading` message). */
  onPeerFetching(assetId: string, piece: number): void;
  /** A peer said where its player reads (which lines a prefetch should take may change, see Scheduler.onPeerReading). */
  onPeerReading?(peer: Peer): void;
  /** The bytes of a piece our worker is fetching from the origin, as they arrive (see markArriving). */
  openForward(asset: ManifestAsset, piece: number): ArrivingPiece;
}

/**
 * A piece from peers, or why not. `partial`: the first bytes of the piece, received from peers
 * but not verified, handed over at the deadline so that another source finishes the piece
 * from there instead of fetching all of it again (only when asked for, see fetchPiece).
 */
export type PieceResult =
  | { ok: true; data: Uint8Array }
  | { ok: false; reason: 'no-peer' | 'slow-peers' | 'timeout' | 'rejected' | 'unknown-asset'; partial?: Uint8Array };

/**
 * The peers of this page's swarm, what each holds, and fetching verified pieces from them.
 * Every byte from a peer is checked against the manifest's SHA-256 before it leaves this class;
 * a peer that sends a bad piece is dropped and never accepted again.
 *
 * What a peer learns of the viewer (issue 13 item 7): what we hold of a stream (a video, one
 * rendition of it, DASH audio or an init segment, a live stream; see streamKey) is told to a peer
 * only while our player reads that stream (it read it within READING_MEMORY_MS: a page's players
 * read several streams at once), or once the peer said its player reads it (`reading`), and only
 * pieces of such a stream are sent to it; any other request is refused `not-found`, as for a piece
 * not held. So a peer learns what the viewer watches now or what it watches itself, never the
 * viewer's history, from hellos, haves, losses and requests alike.
 */
export class Swarm {
  readonly peers = new Map<string, Peer>();
  /** The cap on what this page uploads to all peers together. */
  readonly uploads = new UploadLimiter();
  /** The most urgent of this page's uploads to all peers goes first (see UploadTurns). */
  readonly #uploadTurns = new UploadTurns();
  readonly #banned = new Set<string>();
  /** Addresses (see readPathKey) of peers banned for bad bytes or garbage: a fresh id from there is banned too. */
  readonly #bannedPaths = new Set<string>();
  /** Address of each connected peer, where knowable. */
  readonly #pathOf = new Map<string, string>();
  /** Failures and stalls of peers that left, by `id:<peer id>` and `path:<address>` (see MAX_REMEMBERED_PEERS). */
  readonly #records = new Map<string, PeerRecord>();
  /** Connections being made (see reservePeerSlot). */
  #connecting = 0;
  #manifest: Manifest;
  #assets: Map<string, ManifestAsset>;
  readonly #store: PieceStore;
  readonly #callbacks: SwarmCallbacks;
  /**
   * What we hold, per asset id (only assets with pieces: a site's catalog may list 100,000), sent
   * in hellos and kept current by `markHave`. The asset stored to last is last in the map.
   */
  readonly #have = new Map<string, Set<number>>();
  /**
   * Where our player last read each stream (see streamKey), newest last, at most MAX_READING_HEADS
   * streams (see announceReading). Kept per stream, not per asset: a stream of segment files names
   * a new asset every few seconds, which would push out the streams read beside it.
   */
  readonly #reading = new Map<string, { asset: string; piece: number; at: number }>();
  /** What each connected peer was told of our holdings, by peer id. */
  readonly #disclosures = new Map<string, Disclosure>();
  /** streamKey of each asset, computed once per asset object (a new manifest brings new objects). */
  readonly #streamKeys = new WeakMap<ManifestAsset, string>();
  /** Peer downloads in progress, one per piece, shared by every caller that wants that piece. */
  readonly #downloads = new SharedTasks<PieceResult, AbortSignal>();
  /** Waits for what peers hold (see waitForHave, waitForHoldings; untilSettled): each wake-up is called when a peer said more. */
  readonly #haveWaiters = new Set<(from: Peer) => void>();
  /** Peers reached through a TURN relay (see PeerfetchOptions.relay). */
  readonly #relayed = new Set<string>();
  /** Whether relayed peers serve pieces the player waits for ('all'), or only prefetches ('ahead'). */
  relayedServeUrgent = true;
  /** Per piece download in progress, the peer asked for it now. */
  readonly #serving = new Map<string, Peer>();
  /** Per piece download in progress, the bytes kept from peers that stopped part way (see #download). */
  readonly #prefixes = new Map<string, Uint8Array>();
  /**
   * Per piece download in progress, the player's request that takes the piece as soon as it is
   * verified, before its store write (see fetchPiece's `handOver`): the page's store writes one
   * piece at a time, and on a busy page a verified piece waited there past its deadline and went
   * to the origin (live benchmark, 8 viewers at load 22-25: 36 of the 51 pieces handed to the
   * origin at their deadline). Prefetches still wait for the write, so that a page does not
   * download ahead of its store.
   */
  readonly #takers = new Map<string, (data: Uint8Array) => void>();
  /**
   * The first bytes of pieces whose peer download ended without the rest (a prefetch out of time,
   * every holder tried), unverified, with the peers that sent them: the next download of the piece
   * asks only for the rest, and a hand-over passes them on, instead of a line sending them again.
   * Dropped once the piece is held (see markHave).
   */
  readonly #leftovers = new Map<string, { bytes: Uint8Array; from: Peer[] }>();
  /** Bytes of a piece already handed to the player's origin fetch while its peer transfer goes on (see fetchPiece's checkLate), by `asset/piece`: counted once. */
  readonly #handedOver = new Map<string, number>();
  /**
   * Pieces our worker is fetching from the origin now, announced to peers as held (see
   * markArriving), by `asset/piece`: opened (their bytes asked of the worker) at the first request.
   */
  readonly #arriving = new Map<string, { assetId: string; piece: number; at: number; forward?: ArrivingPiece }>();
  /** Whether this page offers its pieces to peers (see setSeeding). */
  #seeding = true;
  readonly #stopListening: () => void;

  constructor(manifest: Manifest, store: PieceStore, callbacks: SwarmCallbacks) {
    this.#manifest = manifest;
    this.#assets = new Map(manifest.assets.map((asset) => [asset.id, asset]));
    this.#store = store;
    this.#callbacks = callbacks;
    // Pieces the store evicts (here or in the SW) or deletes are withdrawn from what peers are told.
    this.#stopListening = store.onRemoved((removed) => this.#withdraw(removed));
  }

  /**
   * Loads what the store already holds (pieces kept from earlier visits are seeded again): one
   * read of the store's keys, whatever the size of the manifest.
   */
  async loadHave(): Promise<void> {
    const held = await this.#store.held().catch(() => new Map<string, number[]>());
    for (const [id, pieces] of held) this.#holdStored(id, pieces);
  }

  async #loadHaveOf(asset: ManifestAsset): Promise<void> {
    this.#holdStored(asset.id, await this.#store.list(asset.id).catch(() => []));
  }

  /**
   * Takes stored pieces of an asset as held, within its pieces: of an asset the manifest lists
   * (now: a newer version may have dropped it), or, when the manifest names a catalog, of any
   * asset stored (this page knows only the catalog assets it loaded, and the store's pieces passed
   * their hashes when they were stored: seeding them needs no piece hashes).
   */
  #holdStored(id: string, pieces: Iterable<number>): void {
    const asset = this.#assets.get(id);
    if (!asset && !this.#manifest.catalog) return;
    const count = asset ? pieceCount(asset.size, asset.pieceSize) : MAX_HELD_PIECES;
    let held = this.#have.get(id);
    for (const piece of pieces) {
      if (piece >= count) continue;
      if (!held) this.#have.set(id, (held = new Set()));
      held.add(piece);
    }
  }

  /**
   * Follows a new version of the manifest (a live stream moved): new assets are held as far as
   * the store has them and peers' haves for them are taken; assets that left are forgotten here
   * and by every peer; peers are told of new live segments (see the `listed` message). Returns
   * the ids that came and went.
   */
  async setManifest(manifest: Manifest): Promise<{ added: ManifestAsset[]; removed: string[] }> {
    const assets = new Map(manifest.assets.map((asset) => [asset.id, asset]));
    const added = manifest.assets.filter((asset) => !this.#assets.has(asset.id));
    const removed = [...this.#assets.keys()].filter((id) => !assets.has(id));
    this.#manifest = manifest;
    this.#assets = assets;
    for (const id of removed) {
      this.#have.delete(id);
      for (const peer of this.peers.values()) peer.forget(id);
    }
    // A new live segment: peers whose manifest lags learn now that the origin lists it (they fetch
    // the manifest themselves), so its pieces' assigned members start fetching them at once. Each
    // member tells its peers once per segment, so the news spreads through a swarm that is not
    // fully connected too.
    for (const asset of added) if (asset.live) for (const peer of this.peers.values()) peer.announceListed(asset.id);
    for (const asset of added) {
      await this.#loadHaveOf(asset);
      for (const peer of this.peers.values()) peer.adopt(asset.id);
    }
    return { added, removed };
  }

  asset(id: string): ManifestAsset | undefined {
    return this.#assets.get(id);
  }

  isConnected(peerId: string): boolean {
    return this.peers.has(peerId) || this.#banned.has(peerId);
  }

  /** Whether a peer at this address (see readPathKey) sent bad bytes or garbage under some id. */
  isBannedPath(pathKey: string): boolean {
    return this.#bannedPaths.has(pathKey);
  }

  /**
   * What is known of peers at `pathKey`: a connected one's record (a peer coming back under a fresh
   * id connects before its old connection is seen to close, which can take until ICE consent fails),
   * else what was remembered when one left.
   */
  #recordAt(pathKey: string): PeerRecord | undefined {
    for (const [id, path] of this.#pathOf) {
      const live = this.peers.get(id);
      if (path === pathKey && live?.blemished) return live.record();
    }
    return this.#records.get(`path:${pathKey}`);
  }

  #remember(peer: Peer): void {
    if (!peer.blemished) return;
    const record = peer.record();
    const keys = [`id:${peer.id}`];
    const path = this.#pathOf.get(peer.id);
    if (path !== undefined) keys.push(`path:${path}`);
    for (const key of keys) {
      this.#records.delete(key); // re-inserted as the newest
      this.#records.set(key, record);
    }
    while (this.#records.size > MAX_REMEMBERED_PEERS) this.#records.delete(this.#records.keys().next().value!);
  }

  /** Peers still wanted: MAX_PEERS less the connected ones and those being connected. */
  wantedPeers(): number {
    return Math.max(0, MAX_PEERS - this.peers.size - this.#connecting);
  }

  /**
   * Takes a slot for a connection being made (an offer out, an offer being answered), so that the
   * page never holds more than MAX_PEERS connections, pending ones included: each
   * RTCPeerConnection costs memory, sockets and ICE work, and offers arrive as fast as a tracker
   * sends them. Returns the function that gives the slot back (once), or undefined when none is free.
   */
  reservePeerSlot(): (() => void) | undefined {
    if (this.wantedPeers() === 0) return undefined;
    this.#connecting++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#connecting--;
    };
  }

  /** We now hold `piece` (from the origin via the SW, or from a peer): tell every peer (unless we seed nothing). */
  markHave(assetId: string, piece: number): void {
    const asset = this.#assets.get(assetId);
    // A catalog asset another tab's worker request stored may be unknown to this page: still ours to seed.
    if (asset ? piece >= pieceCount(asset.size, asset.pieceSize) : !this.#manifest.catalog || piece >= MAX_HELD_PIECES) return;
    this.#leftovers.delete(`${assetId}/${piece}`);
    // Its uploads under way go on reading the forward they opened.
    this.#arriving.delete(`${assetId}/${piece}`);
    const held = this.#have.get(assetId) ?? new Set<number>();
    if (held.has(piece)) return;
    held.add(piece);
    // Last in the map: the hello lists the assets stored to most recently first.
    this.#have.delete(assetId);
    this.#have.set(assetId, held);
    this.#announce(assetId, piece);
  }

  /** Tells every peer that may know it (see #mayTell) that we hold `piece` (unless we seed nothing). */
  #announce(assetId: string, piece: number): void {
    if (!this.#seeding) return;
    const readNow = this.#streamsReadNow();
    for (const peer of this.peers.values()) {
      if (!this.#mayTell(peer, assetId, readNow)) continue;
      this.#disclosures.get(peer.id)?.told.add(assetId);
      peer.announceHave(assetId, piece);
    }
  }

  /**
   * Our worker began to receive `piece` from the origin (for our player, or as the member assigned
   * to fetch it for the swarm): peers are told we hold it, and those that ask get its bytes as they
   * arrive (see ForwardedPiece). At the live edge every member wants each new piece within moments
   * of the first: waiting for the whole piece to be fetched, stored and announced, the others ran
   * out of their deadline and fetched it from the origin too (live benchmark, 4 viewers: the viewer
   * at the edge fetched every new segment, 11.9 MB, and the others 3.5-4.5 MB each of the same pieces).
   * A transfer that fails is withdrawn (`lost`) once a request finds it failed, or after
   * ARRIVING_MEMORY_MS.
   */
  markArriving(assetId: string, piece: number): void {
    const asset = this.#assets.get(assetId);
    const key = `${assetId}/${piece}`;
    if (!asset || piece >= asset.pieces.length || this.holds(assetId, piece) || this.#arriving.has(key)) return;
    this.#forgetArriving();
    this.#arriving.set(key, { assetId, piece, at: performance.now() });
    if (this.#arriving.size > MAX_ARRIVING) this.#withdrawArriving(this.#arriving.keys().next().value!);
    this.#announce(assetId, piece);
  }

  /** Withdraws arriving pieces whose store notice did not come within ARRIVING_MEMORY_MS. */
  #forgetArriving(now = performance.now()): void {
    for (const [key, { at }] of this.#arriving) if (now - at > ARRIVING_MEMORY_MS) this.#withdrawArriving(key);
  }

  /** An arriving piece that will not be held: peers told of it are told it is lost. */
  #withdrawArriving(key: string): void {
    const arriving = this.#arriving.get(key);
    if (!arriving) return;
    this.#arriving.delete(key);
    this.#tellLost(arriving.assetId, arriving.piece);
  }

  /** Tells the peers told we hold `piece` (only they) that we no longer do, so they stop asking us for it. */
  #tellLost(assetId: string, piece: number): void {
    for (const peer of this.peers.values()) if (this.#disclosures.get(peer.id)?.told.has(assetId)) peer.announceLost(assetId, piece);
  }

  /** The bytes of an arriving piece for an upload, its forward opened at the first; undefined when it is not arriving or failed. */
  #readArriving(assetId: string, piece: number): ArrivingPiece | undefined {
    const key = `${assetId}/${piece}`;
    const arriving = this.#arriving.get(key);
    const asset = this.#assets.get(assetId);
    if (!arriving || !asset) return undefined;
    const forward = (arriving.forward ??= this.#callbacks.openForward(asset, piece));
    // A piece held meanwhile is no longer here (markHave drops it): a failed forward is not held.
    if (forward.failed) {
      this.#withdrawArriving(key);
      return undefined;
    }
    return forward;
  }

  /**
   * Whether this page offers its pieces to peers. Off (an upload limit of 0: a metered line, or a
   * viewer who does not want to upload), peers are told it holds nothing, so none asks it (a
   * repeated hello replaces what a peer knew we hold); requests queued or arriving before they
   * heard it are refused `not-found`. The page still downloads from peers.
   */
  setSeeding(seeding: boolean): void {
    if (seeding === this.#seeding) return;
    this.#seeding = seeding;
    for (const peer of this.peers.values()) {
      if (!seeding) peer.refuseUploads();
      this.#hello(peer);
    }
  }

  /**
   * Our player now reads `piece` of `assetId`: every peer is told (see the `reading` message),
   * and peers that connect later hear of it after our hello. A stream our player was not reading
   * (see #streamsReadNow) now asks every peer for its holdings of it (they tell them only from now
   * on), and peers may now be told what we hold of it. `origin`: we are fetching the piece from the
   * origin ourselves (told again for a piece already announced).
   */
  announceReading(assetId: string, piece: number, origin = false): void {
    const now = performance.now();
    const stream = this.#streamOf(assetId);
    const fresh = !this.#streamsReadNow(now).has(stream);
    this.#reading.delete(stream);
    this.#reading.set(stream, { asset: assetId, piece, at: now });
    if (this.#reading.size > MAX_READING_HEADS) this.#reading.delete(this.#reading.keys().next().value!);
    const held = fresh && [...this.#have].some(([id, pieces]) => pieces.size > 0 && this.#streamOf(id) === stream);
    for (const peer of this.peers.values()) {
      if (held && !this.#disclosures.get(peer.id)?.streams.has(stream)) this.#disclose(peer, false);
      peer.announceReading(assetId, piece, fresh, origin);
    }
  }

  /** The stream of an asset (see streamKey); an asset this page does not know is a stream of its own. */
  #streamOf(assetId: string): string {
    const asset = this.#assets.get(assetId);
    if (!asset) return assetId;
    let key = this.#streamKeys.get(asset);
    if (key === undefined) this.#streamKeys.set(asset, (key = streamKey(asset)));
    return key;
  }

  /**
   * The streams our player reads now: every stream it read within READING_MEMORY_MS, not only the
   * latest. A page reads several streams at once (a DASH player its video and audio segments and
   * their init segments; an ABR player the rendition it leaves while it starts the next; two
   * players): a rule of one stream withdrew a DASH player's video segments whenever it read its
   * audio, and a second dash.js or Shaka viewer took 41-285 kB of 0.8 MB from peers. A player that
   * plays a stream reads it at least once a segment (seconds); a stream not read for that long
   * (the scheduler too takes it for over then) is history and stops being told.
   */
  #streamsReadNow(now = performance.now()): Set<string> {
    const streams = new Set<string>();
    for (const [stream, { at }] of this.#reading) if (now - at <= READING_MEMORY_MS) streams.add(stream);
    return streams;
  }

  /** The streams `peer` said its player reads (its last MAX_READING_HEADS `reading` messages, whatever their age). */
  #streamsReadBy(peer: Peer): Set<string> {
    return new Set(peer.readingHeads(Infinity).map((head) => this.#streamOf(head.asset)));
  }

  /**
   * Whether `peer` may learn what we hold of `assetId`: we seed, and our player reads its stream
   * now or the peer said its player reads it (see the class comment).
   */
  #mayTell(peer: Peer, assetId: string, readNow = this.#streamsReadNow()): boolean {
    if (!this.#seeding) return false;
    const stream = this.#streamOf(assetId);
    return readNow.has(stream) || this.#streamsReadBy(peer).has(stream);
  }

  /**
   * Sends `peer` a hello: what it may know we hold (see #mayTell), the assets stored to most
   * recently first; with `onlyNews`, only when that names an asset it was not told of.
   */
  #hello(peer: Peer, onlyNews = false): void {
    const holdings = new Map<string, PieceRuns>();
    const readNow = this.#streamsReadNow();
    const readByPeer = this.#streamsReadBy(peer);
    if (this.#seeding) {
      for (const [id, held] of [...this.#have].reverse()) {
        const stream = this.#streamOf(id);
        if (held.size > 0 && (readNow.has(stream) || readByPeer.has(stream))) holdings.set(id, runsOf(held));
      }
    }
    const disclosure = this.#disclosures.get(peer.id);
    if (disclosure) {
      disclosure.streams = new Set([...readNow, ...readByPeer]);
      if (onlyNews && [...holdings.keys()].every((id) => disclosure.told.has(id))) return;
      disclosure.told = new Set(holdings.keys());
      disclosure.asked = false;
    }
    peer.hello(holdings);
  }

  /**
   * `peer` may know more of what we hold (it or our player began a stream), or it asked for a hello
   * (`asked`): it gets one when it asked or when the hello would tell it something new, within its
   * budget (PEER_HELLOS_PER_S); over it, one hello follows when the budget allows.
   */
  #disclose(peer: Peer, asked: boolean): void {
    const disclosure = this.#disclosures.get(peer.id);
    if (!disclosure || this.peers.get(peer.id) !== peer) return;
    disclosure.asked ||= asked;
    if (disclosure.timer !== undefined) return;
    const waitMs = disclosure.budget.waitMs(1);
    if (waitMs > 0) {
      disclosure.timer = setTimeout(() => {
        disclosure.timer = undefined;
        this.#disclose(peer, false);
      }, waitMs);
      return;
    }
    disclosure.budget.take(1);
    this.#hello(peer, !disclosure.asked);
  }

  /** `peer` said its player reads `assetId`: a stream it had not named may bring it news of our holdings; an ask is answered. */
  #onPeerReading(peer: Peer, assetId: string, ask: boolean): void {
    const disclosure = this.#disclosures.get(peer.id);
    if (!disclosure) return;
    if (ask || !disclosure.streams.has(this.#streamOf(assetId))) this.#disclose(peer, ask);
  }

  /** Piece indexes held of `assetId`, in order. */
  held(assetId: string): number[] {
    return [...(this.#have.get(assetId) ?? [])].sort((a, b) => a - b);
  }

  /** Forgets every held piece (the store was cleared) and tells every peer. */
  forgetAll(): void {
    this.#withdraw({});
  }

  /**
   * Pieces that left the store are no longer held: peers are told (`lost`), so they stop asking
   * us for them, and stats and hellos to new peers say so.
   */
  #withdraw({ asset, pieces }: RemovedPieces): void {
    for (const [id, held] of this.#have) {
      if (asset !== undefined && id !== asset) continue;
      for (const piece of pieces ?? [...held]) {
        if (!held.has(piece)) continue;
        held.delete(piece);
        this.#tellLost(id, piece);
        this.#callbacks.onWithdrawn(id, piece);
      }
    }
  }

  /**
   * A held piece's bytes for upload. A piece found gone (a removal whose notice has not come
   * yet) is withdrawn at once; the asking peer gets `not-found` and takes it elsewhere.
   */
  async #readHeld(assetId: string, piece: number): Promise<Uint8Array | undefined> {
    const data = await this.#store.get(assetId, piece).catch(() => undefined);
    if (!data) this.#withdraw({ asset: assetId, pieces: [piece] });
    return data;
  }

  holds(assetId: string, piece: number): boolean {
    return this.#have.get(assetId)?.has(piece) ?? false;
  }

  /**
   * Takes a peer whose data channel opened. `pathKey`: where its packets come from, when knowable
   * (see readPathKey): a fresh id from the address of a banned peer is banned at once, and one
   * from the address of a peer remembered as failing or stalling inherits that record.
   */
  addPeer(peerId: string, connection: RTCPeerConnection, channel: RTCDataChannel, pathKey?: string): void {
    if (pathKey !== undefined && this.#bannedPaths.has(pathKey)) this.#banned.add(peerId);
    if (this.isConnected(peerId) || this.peers.size >= MAX_PEERS) {
      connection.close();
      return;
    }
    const peer: Peer = new Peer(peerId, connection, channel, {
      pieceCount: (id) => {
        const asset = this.#assets.get(id);
        return asset && pieceCount(asset.size, asset.pieceSize);
      },
      onUnknownAsset: (from, asset) => this.#callbacks.onUnknownAsset(from, asset),
      // A piece of a stream the peer may not know we hold is refused as if we did not hold it.
      readPiece: async (id, piece) => {
        if (!this.#mayTell(peer, id)) return undefined;
        return this.holds(id, piece) ? this.#readHeld(id, piece) : this.#readArriving(id, piece);
      },
      onReading: (from, asset, ask, fetching) => {
        this.#onPeerReading(from, asset, ask);
        this.#callbacks.onPeerReading?.(from);
        if (fetching !== undefined) this.#callbacks.onPeerFetching(asset, fetching);
      },
      onHave: (from) => {
        for (const wake of this.#haveWaiters) wake(from);
        this.#callbacks.onPeerHave(from);
      },
      onUploaded: (from, bytes, forwarded) => this.#callbacks.onUploaded(from, bytes, forwarded),
      beforeUpload: (bytes) => this.uploads.take(bytes),
      onReceived: (from, delayMs, bytes, ms) => this.uploads.noteReceived(from.id, delayMs, bytes, ms),
      uploadTurn: this.#uploadTurns.turn(),
      onClose: (closed, reason) => {
        if (this.peers.get(closed.id) !== closed) return;
        this.uploads.line.forget(closed.id);
        if (closed.misbehaved) this.#banPeer(closed);
        this.#remember(closed);
        this.peers.delete(closed.id);
        clearTimeout(this.#disclosures.get(closed.id)?.timer);
        this.#disclosures.delete(closed.id);
        this.#pathOf.delete(closed.id);
        this.#relayed.delete(closed.id);
        this.#callbacks.onPeerDisconnect(closed, reason);
      },
    });
    const record = this.#records.get(`id:${peerId}`) ?? (pathKey === undefined ? undefined : this.#recordAt(pathKey));
    if (record) peer.inherit(record);
    if (pathKey !== undefined) this.#pathOf.set(peerId, pathKey);
    this.peers.set(peerId, peer);
    const budget = new TokenBucket(PEER_HELLOS_PER_S, PEER_HELLO_BURST, () => performance.now());
    this.#disclosures.set(peerId, { told: new Set(), streams: new Set(), asked: false, timer: undefined, budget });
    this.#hello(peer);
    // Where our player reads now (streams not read within memory stay untold); the last asks for the peer's holdings of them all.
    const now = performance.now();
    const heads = [...this.#reading.values()].filter(({ at }) => now - at <= READING_MEMORY_MS);
    heads.forEach(({ asset, piece }, index) => peer.announceReading(asset, piece, index === heads.length - 1));
    this.#callbacks.onPeerConnect(peer);
  }

  /** Marks a peer's path as going through a TURN relay (or not), as getStats() showed it. */
  markRelayed(peerId: string, relayed: boolean): void {
    if (relayed && this.peers.has(peerId)) this.#relayed.add(peerId);
    else this.#relayed.delete(peerId);
  }

  /** Connected peers that hold `piece` (for a piece the player waits for when `urgent`). */
  availability(assetId: string, piece: number, urgent = false): number {
    return this.#holders(assetId, piece, new Set(), urgent).length;
  }

  /**
   * Whether a peer holding `piece` is expected to deliver it within `ms`, after what it has to
   * send first: its outstanding requests at least as urgent as `urgencyMs` (the deadline the
   * request would carry; default `ms`). See Peer.expectedDelay.
   */
  canDeliverWithin(assetId: string, piece: number, ms: number, urgencyMs = ms, urgent = false): boolean {
    const asset = this.#assets.get(assetId);
    if (!asset) return false;
    const span = pieceSpan(piece, asset.size, asset.pieceSize);
    return this.#fastestMs(assetId, piece, span.end - span.start, urgencyMs, urgent) <= ms;
  }

  /**
   * Time (ms) `peerId` is expected to take to deliver `piece` of `assetId` once it holds it, after
   * what it has to send us as urgently (see Peer.expectedDelay); undefined for a peer not connected.
   */
  deliveryMs(peerId: string, assetId: string, piece: number, urgencyMs: number): number | undefined {
    const peer = this.peers.get(peerId);
    const asset = this.#assets.get(assetId);
    if (!peer || !asset) return undefined;
    const span = pieceSpan(piece, asset.size, asset.pieceSize);
    return peer.expectedDelay(span.end - span.start, urgencyMs) * 1000;
  }

  /** Whether a peer download of `piece` is in progress. */
  downloading(assetId: string, piece: number): boolean {
    return this.#downloads.has(`${assetId}/${piece}`);
  }

  /** Resolves true once some peer is connected and has said what it holds, false after `timeoutMs` or an abort. */
  waitForPeer(timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    if (this.peers.size > 0) return Promise.resolve(true);
    return untilSettled(this.#haveWaiters, () => true, timeoutMs, signal);
  }

  /** Resolves true as soon as a connected peer (with `from`, one of these peers) holds `piece`, false after `timeoutMs` or an abort. */
  waitForHave(assetId: string, piece: number, timeoutMs: number, signal: AbortSignal, from?: ReadonlySet<string>): Promise<boolean> {
    const holds = (peer: Peer) => (!from || from.has(peer.id)) && peer.has(assetId, piece);
    if ([...this.peers.values()].some((peer) => !peer.closed && holds(peer))) return Promise.resolve(true);
    return untilSettled(this.#haveWaiters, holds, timeoutMs, signal);
  }

  /** Whether some connected peer was asked what it holds and has not said yet (see Peer.holdingsPending). */
  get holdingsPending(): boolean {
    for (const peer of this.peers.values()) if (peer.holdingsPending) return true;
    return false;
  }

  /**
   * Resolves as soon as a connected peer holds `piece`, or no peer's holdings are pending any more
   * (every peer asked has answered, or its wait ended), at the latest after `timeoutMs` or an abort.
   */
  async waitForHoldings(assetId: string, piece: number, timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (this.availability(assetId, piece) > 0 || !this.holdingsPending) return;
    await untilSettled(this.#haveWaiters, (from) => from.has(assetId, piece) || !this.holdingsPending, timeoutMs, signal);
  }

  /**
   * A verified piece from peers, trying those that hold it (fastest expected first) until one
   * delivers good bytes or `deadlineMs` passes. Callers wanting the same piece share one
   * transfer; the transfer is cancelled at the peer when every caller has gone. Never rejects.
   * When no peer holding the piece is expected to deliver it within `deadlineMs` (its line is
   * too slow, or busy with requests as urgent), answers `slow-peers` at once instead of queueing
   * a request that cannot finish in time.
   *
   * `handOver`: the caller (the SW) finishes the piece from the origin when peers do not deliver
   * it: at the deadline, a piece partly received is handed over in `partial`, and the transfer is
   * stopped for every caller (a prefetch that asked for it too), so that no byte of it comes from
   * both. `bufferMs`: the play time the player has buffered (see playback-slack.ts): with it, the
   * piece is handed over before the deadline (`slow-peers`) as soon as the peer sending it is
   * expected to finish too late for the buffer (see finishFromOrigin); checked every
   * LATE_CHECK_MS against the peer's progress, and before a request is sent.
   * `urgent`: the player waits for this piece (relayed peers may be left out, see
   * PeerfetchOptions.relay). `from`: only these peers are asked (a prefetch the scheduler steers
   * away from lines others need more); a caller that joins the transfer later does not narrow it.
   * `urgencyMs`: how soon the piece is needed, when not at the deadline (a prefetch, whose deadline
   * only bounds it, needed when its player is expected to reach it): the peer is asked with it, and
   * serves its most urgent request first, across all the peers it uploads to (see UploadTurns).
   */
  async fetchPiece(
    assetId: string,
    piece: number,
    deadlineMs: number,
    signal: AbortSignal,
    {
      handOver = false,
      urgent = false,
      bufferMs,
      from,
      urgencyMs = deadlineMs,
    }: { handOver?: boolean; urgent?: boolean; bufferMs?: () => number | undefined; from?: ReadonlySet<string>; urgencyMs?: number } = {},
  ): Promise<PieceResult> {
    const asset = this.#assets.get(assetId);
    if (!asset || piece >= asset.pieces.length) return { ok: false, reason: 'unknown-asset' };
    const key = `${assetId}/${piece}`;
    const span = pieceSpan(piece, asset.size, asset.pieceSize);
    const size = span.end - span.start;
    let joining = this.#downloads.has(key);
    // Through a prefetch already asked of a fresh peer, the player waits for it only briefly
    // until that peer is sending this piece (a peer that claims pieces and stalls never does);
    // one sending it by then is waited for like any other (see whileProving).
    const serving = this.#serving.get(key);
    let unproven = joining && urgent && serving !== undefined && !serving.trusted && !serving.partial(assetId, piece)?.length;
    // Not even that when the fresh peer has sent us nothing at all and a trusted holder can deliver
    // the piece in time: the prefetch is stopped and the piece asked of that holder at once. A joining
    // viewer's first prefetches go to the first peer that said hello, often a line busy with the
    // viewers behind it, that serves them first (WAN benchmark: the fourth viewer's seg-001 and
    // seg-002 got no byte in 1.7-3.5 s from the second viewer's line, and went to the origin after the
    // 1 s wait while the third viewer, trusted, held them on a line serving only it). A fresh peer
    // sending us other pieces is on its way to trust, and is waited for as before.
    if (unproven && serving?.bytesDownloaded === 0 && this.#fastestMs(assetId, piece, size, urgencyMs, true) <= deadlineMs) {
      this.#downloads.abort(key);
      joining = unproven = false;
    }
    if (!joining && this.availability(assetId, piece, urgent) > 0) {
      if (this.#fastestMs(assetId, piece, size, urgencyMs, urgent) > deadlineMs) return { ok: false, reason: 'slow-peers' };
      // Only measured lines count as too late (see Peer.finishMs).
      const measuredMs = bufferMs && this.#fastestMs(assetId, piece, size, deadlineMs, urgent, true);
      if (measuredMs !== undefined && finishFromOrigin(measuredMs, originMs(size), bufferMs!())) return { ok: false, reason: 'slow-peers' };
    }
    // The partial is taken before this caller leaves the transfer: the last caller leaving
    // cancels it at the peer, and the bytes received so far with it.
    const caller = new AbortController();
    let partial: Uint8Array | undefined;
    /** Handed over before the deadline: the peer sending it would finish too late (see bufferMs). */
    let late = false;
    /** Handed over, but the peer's transfer goes on without this caller (see checkLate). */
    let keepLine = false;
    const started = performance.now();
    const dueAt = started + urgencyMs;
    const expire = () => {
      if (handOver && !signal.aborted) partial = this.#partialOf(asset, piece);
      caller.abort();
    };
    // A fresh peer is waited for past UNPROVEN_JOIN_WAIT_MS one such span at a time, each only
    // while it sent more of the piece in the last and is expected to send the rest in time. A home
    // line sends a 256 KiB piece in 1-2 s: cut after 1 s, every piece a player reached before the
    // line finished it went to the origin with the prefetch, and a peer behind such a line never
    // delivered a whole piece, so never earned trust (uplinks benchmark: the 2 Mbit/s viewer took
    // no whole piece from the 1 Mbit/s home ahead of it in 60 s). One that started well and then
    // went silent holds the player one span more, not until the deadline.
    const whileProving = (receivedBefore: number) => {
      const leftMs = deadlineMs - (performance.now() - started);
      const peer = this.#serving.get(key);
      const received = peer?.partial(assetId, piece)?.length ?? 0;
      // Nothing pending at the peer after bytes came: it sent the whole piece, now being verified
      // (hashing is not instant on a busy page), or its request ended and the next holder is asked.
      const sentAll = received === 0 && receivedBefore > 0;
      const finishMs = received > receivedBefore ? peer!.finishMs(assetId, piece) : undefined;
      if (sentAll || (finishMs !== undefined && finishMs <= leftMs)) {
        timer = setTimeout(() => whileProving(received), Math.min(leftMs, UNPROVEN_JOIN_WAIT_MS));
      } else {
        expire();
      }
    };
    // The first span is no longer than a playing player's buffer leaves the origin for the piece (0
    // buffered: before the first frame, see Scheduler.answer, when the player waits for it anyway).
    // A viewer that had just started, 1.9 s buffered, waited 1 s on a fresh peer's line busy with
    // the viewers ahead, and the origin, asked with 0.6-0.8 s left, was too late (WAN benchmark:
    // the fourth viewer's 1.65 s stall at 1.9 s of video).
    let timer = unproven
      ? setTimeout(() => whileProving(0), Math.min(deadlineMs, UNPROVEN_JOIN_WAIT_MS, originSlackMs(bufferMs?.() || undefined, size)))
      : setTimeout(expire, deadlineMs);
    const checkLate = () => {
      if (!bufferMs || late || signal.aborted || caller.signal.aborted) return;
      const peer = this.#serving.get(key);
      const peerMs = peer?.finishMs(assetId, piece);
      if (peerMs === undefined) return; // between two peers: the next one's request is being sent
      const received = this.#partialOf(asset, piece);
      const restMs = originMs(size - (received?.length ?? 0));
      const buffered = bufferMs();
      const silent = silentAtLastChance(peer!.silentMs, peerMs, restMs, buffered, LATE_CHECK_MS);
      if (!silent && !finishFromOrigin(peerMs, restMs, buffered)) return;
      // Handed over for the buffer's sake: no stall of the line (see Peer.excuse).
      peer!.excuse(assetId, piece);
      // The player's rest comes from the origin, and after a pause with most of the piece in, the
      // line's transfer goes on for the store: a fresh line's first large transfer comes with such
      // pauses, and with it cancelled the uplinks browser test's fresh seeder completed no piece
      // in five runs of seven, so never earned trust, and carried 7-15% of the video (27-60% once
      // trusted). Under half the piece is received twice.
      if (silent && (received?.length ?? 0) * 2 >= size) {
        keepLine = true;
        this.#handedOver.set(key, received?.length ?? 0);
        void this.#downloads.run(key, () => Promise.resolve({ ok: false, reason: 'timeout' }));
      }
      late = true;
      partial = received;
      caller.abort();
    };
    const lateChecks = handOver && bufferMs ? setInterval(checkLate, LATE_CHECK_MS) : undefined;
    const onAbort = () => caller.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) caller.abort();
    if (joining) checkLate();
    let take: ((data: Uint8Array) => void) | undefined;
    const verified = handOver && new Promise<PieceResult>((resolve) => this.#takers.set(key, (take = (data) => resolve({ ok: true, data }))));
    try {
      let joined = joining;
      for (;;) {
        const leftMs = deadlineMs - (performance.now() - started);
        const run = this.#downloads.run(key, (shared) => this.#download(asset, piece, leftMs, dueAt, shared, urgent, from), caller.signal);
        const result = await (verified ? Promise.race([run, verified]) : run);
        if (result.ok || !joined || result.reason !== 'timeout' || deadlineMs - (performance.now() - started) < REJOIN_MIN_MS) return result;
        joined = this.#downloads.has(key);
      }
    } catch {
      // The caller fetches the piece from the origin now (the rest of it after `partial`): nobody
      // needs it from a peer any more. A prefetch that asked for it too would otherwise go on
      // receiving it, and the piece would come from both (a second visitor's browser test:
      // 0.67-0.93 MB of a 1.2 MB video from the origin beside 1.1 MB from peers).
      if (handOver && !signal.aborted && !keepLine) this.#downloads.abort(key);
      const reason = late ? 'slow-peers' : 'timeout';
      return partial ? { ok: false, reason, partial } : { ok: false, reason };
    } finally {
      if (this.#takers.get(key) === take) this.#takers.delete(key);
      clearTimeout(timer);
      clearInterval(lateChecks);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Expected time (ms) until the fastest peer holding `piece` delivers its `bytes`, after what it
   * has to send first as urgently as `urgencyMs` (see Peer.expectedDelay); Infinity when none holds
   * it. `unmeasuredAsInstant`: a peer whose rate was not measured yet counts as 0.
   */
  #fastestMs(assetId: string, piece: number, bytes: number, urgencyMs: number, urgent: boolean, unmeasuredAsInstant = false): number {
    let fastest = Infinity;
    for (const peer of this.#holders(assetId, piece, new Set(), urgent)) {
      fastest = Math.min(fastest, unmeasuredAsInstant && !peer.throughputMeasured ? 0 : peer.expectedDelay(bytes, urgencyMs) * 1000);
    }
    return fastest;
  }

  /** The longest run of a piece's first bytes received from peers so far (unverified), if any. */
  #partialOf(asset: ManifestAsset, piece: number): Uint8Array | undefined {
    const key = `${asset.id}/${piece}`;
    let best = this.#prefixes.get(key) ?? this.#leftovers.get(key)?.bytes;
    for (const peer of this.peers.values()) {
      const partial = peer.partial(asset.id, piece);
      if (partial && partial.length > (best?.length ?? 0)) best = partial;
    }
    return best && best.length > 0 ? best : undefined;
  }

  /**
   * Downloads a piece from its holders, one at a time, fastest expected first. A peer that stops
   * part way (its attempt timed out, it rejected or left) leaves its bytes: the next peer is asked
   * for the rest only. The whole piece is verified; when bytes of several peers fail together,
   * nobody can be blamed (no ban), and the piece is not taken from them again in this download.
   * `dueAt`: when the piece is needed (performance.now() time, see fetchPiece's `urgencyMs`).
   */
  async #download(asset: ManifestAsset, piece: number, deadlineMs: number, dueAt: number, signal: AbortSignal, urgent: boolean, from?: ReadonlySet<string>): Promise<PieceResult> {
    const span = pieceSpan(piece, asset.size, asset.pieceSize);
    const bytes = span.end - span.start;
    const key = `${asset.id}/${piece}`;
    const endsAt = performance.now() + deadlineMs;
    const tried = new Set<string>();
    // What an earlier download of the piece left (see #leftovers): only the rest is asked for,
    // unless a peer that sent some of it was banned since.
    let leftover = this.#leftovers.get(key);
    this.#leftovers.delete(key);
    if (leftover?.from.some((peer) => this.#banned.has(peer.id))) leftover = undefined;
    /** Peers whose bytes are in `prefix`. */
    let contributors: Peer[] = leftover?.from ?? [];
    let prefix: Uint8Array | undefined = leftover?.bytes;
    /** `prefix` holds bytes of an earlier download: a whole that fails its hash blames nobody, and the peer is asked for all of it. */
    let inherited = leftover !== undefined;
    if (prefix) this.#prefixes.set(key, prefix);
    let rejected = false;
    /** The peer asked last: a download stopped for another that took the piece over (see fetchPiece) ends without touching that one's state. */
    let asked: Peer | undefined;
    try {
      while (!signal.aborted) {
        const left = bytes - (prefix?.length ?? 0);
        const remainingMs = endsAt - performance.now();
        const urgencyMs = Math.max(0, Math.round(dueAt - performance.now()));
        const candidates = this.#holders(asset.id, piece, tried, urgent)
          .filter((holder) => !from || from.has(holder.id))
          .map((peer) => ({ peer, delay: peer.expectedDelay(left, urgencyMs) }))
          .sort((a, b) => a.delay - b.delay);
        const peer = candidates[0]?.peer;
        if (!peer) break;
        tried.add(peer.id);
        let data: Uint8Array;
        // A timer rather than AbortSignal.timeout, so that tests drive it with a fake clock.
        const attempt = new AbortController();
        const expectedMs = candidates[0]!.delay * 1000 * PEER_ATTEMPT_SLACK;
        const attemptMs = candidates.length > 1 ? Math.min(Math.max(PEER_ATTEMPT_TIMEOUT_MS, expectedMs), remainingMs) : remainingMs;
        const attemptTimer = setTimeout(() => attempt.abort(), Math.max(attemptMs, 0));
        this.#serving.set(key, (asked = peer));
        try {
          const attemptSignal = AbortSignal.any([signal, attempt.signal]);
          data = await peer.request(asset.id, piece, bytes, attemptSignal, { prefix, deadlineMs: urgencyMs });
        } catch (error) {
          if (error instanceof PeerfetchError && error.code === 'codec-invalid') {
            this.#ban(peer, asset, piece);
            continue;
          }
          const partial = error instanceof PeerfetchError ? error.details.partial : undefined;
          if (partial instanceof Uint8Array && partial.length > (prefix?.length ?? 0)) {
            prefix = partial;
            contributors = [...contributors, peer];
            this.#prefixes.set(key, prefix);
          }
          continue;
        } finally {
          clearTimeout(attemptTimer);
        }
        if (!(await verifyPiece(data, asset.pieces[piece]!))) {
          rejected = true;
          if (inherited) {
            // The kept bytes may be the bad ones: the same peer is asked for the whole piece.
            tried.delete(peer.id);
          } else if (contributors.length === 0 || contributors.every((contributor) => contributor === peer)) {
            this.#ban(peer, asset, piece);
          } else {
            for (const contributor of contributors) tried.add(contributor.id);
          }
          prefix = undefined;
          inherited = false;
          contributors = [];
          this.#prefixes.delete(key);
          continue;
        }
        peer.noteVerified();
        this.#takers.get(key)?.(data);
        await this.#store.put({ asset: asset.id, piece, data }).catch(() => {});
        this.#callbacks.onPieceVerified(asset, piece, peer, data.length - (this.#handedOver.get(key) ?? 0));
        this.markHave(asset.id, piece);
        return { ok: true, data };
      }
    } finally {
      this.#handedOver.delete(key);
      if (prefix && !this.holds(asset.id, piece)) this.#keepLeftover(key, prefix, contributors);
      if (this.#serving.get(key) === asked) {
        this.#prefixes.delete(key);
        this.#serving.delete(key);
      }
    }
    if (signal.aborted) return { ok: false, reason: 'timeout' };
    return { ok: false, reason: rejected ? 'rejected' : tried.size === 0 ? 'no-peer' : 'timeout' };
  }

  /**
   * Keeps the first bytes of a piece whose download ended without the rest (see #leftovers). A
   * prefetch given up at its timeout on a slow line had received up to most of the piece, which the
   * next download (the plan asks for the piece again at once) fetched whole again.
   */
  #keepLeftover(key: string, bytes: Uint8Array, from: Peer[]): void {
    this.#leftovers.delete(key); // re-inserted as the newest
    this.#leftovers.set(key, { bytes, from });
    if (this.#leftovers.size > MAX_LEFTOVERS) this.#leftovers.delete(this.#leftovers.keys().next().value!);
  }

  /**
   * Open peers that hold `piece` of `assetId`, other than those in `except`; for a piece the player
   * waits for (`urgent`), only peers that earned trust (see Peer.trusted), and relayed peers only
   * when they serve those (relay policy 'all').
   */
  #holders(assetId: string, piece: number, except: ReadonlySet<string>, urgent = false): Peer[] {
    const skipRelayed = urgent && !this.relayedServeUrgent;
    return [...this.peers.values()].filter(
      (peer) =>
        !except.has(peer.id) &&
        !peer.closed &&
        peer.has(assetId, piece) &&
        !(urgent && !peer.trusted) &&
        !(skipRelayed && this.#relayed.has(peer.id)),
    );
  }

  #ban(peer: Peer, asset: ManifestAsset, piece: number): void {
    this.#banPeer(peer);
    this.#callbacks.onPieceRejected(asset, piece, peer);
    peer.close('sent a piece that failed its hash');
  }

  /** Never accepts this peer again, under its id nor (where knowable) from its address. */
  #banPeer(peer: Peer): void {
    this.#banned.add(peer.id);
    const path = this.#pathOf.get(peer.id);
    if (path !== undefined) this.#bannedPaths.add(path);
  }

  destroy(): void {
    this.#stopListening();
    for (const { timer } of this.#disclosures.values()) clearTimeout(timer);
    for (const peer of [...this.peers.values()]) peer.close('destroyed');
    this.peers.clear();
  }
}
