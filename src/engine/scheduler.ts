import { streamKey, type Manifest, type ManifestAsset } from '../shared/manifest.js';
import { READING_MEMORY_MS, type Peer } from './peer.js';
import type { PieceResult, Swarm } from './swarm.js';
import { mixedHash } from '../shared/string-hash.js';
import { pieceSpan } from '../shared/piece-math.js';
import { originSlackMs, playbackDeadlineMs } from './playback-slack.js';
import { untilSettled } from './wake-ups.js';
import { MAX_HELD_PIECES } from '../shared/holdings.js';

/**
 * Pieces prefetched ahead of a stream's head (count). 8 pieces of 256 KiB are ~14 s of
 * 1.2 Mbit/s video: enough for peers to deliver well before the player needs them, little
 * enough that a viewer who stops early has not cost the swarm much.
 */
const PREFETCH_WINDOW_PIECES = 8;
/**
 * Peer prefetches in flight at once: several peers in parallel. Each peer gets only what it can
 * deliver within its stream's queue time (StreamHead.queueMs, see #plan), and the player's own
 * requests overtake prefetches at the sender, so this bounds concurrency, not the load on one line.
 */
const MAX_PEER_PREFETCHES = 6;
/**
 * A peer is given another prefetch only while everything it has to send us drains within this
 * time (ms) at its measured rate, at least: the SW's plain deadline for a piece the player reads
 * next (4 s, PEER_DEADLINE_MS), so that a prefetched piece the player catches up with is not still
 * queued on a slow line when its deadline comes. On a 2 Mbit/s uplink that is about four 256 KiB
 * pieces. A stream whose player has buffered more may queue for as long as its pieces' deadline
 * (see StreamHead.queueMs).
 */
const PREFETCH_QUEUE_MS = 4000;
/** Origin prefetches in flight at once (through the SW), per page. */
const MAX_ORIGIN_PREFETCHES = 2;
/** Pieces remembered as fetched from the origin by a peer (see Scheduler.onPeerFetching): the latest ones, a live window of 6 segments of up to 10 pieces. */
const MAX_FETCHED_BY_PEERS = 64;
/**
 * Timeout (ms) of one peer prefetch; prefetches have no player waiting, only a bound. Also how
 * urgent a prefetch says it is while its player's pace is not known (see #prefetchUrgencyMs).
 */
const PEER_PREFETCH_TIMEOUT_MS = 10_000;
/**
 * How much later (ms) than the prefetches of the stream's earlier pieces, in flight or asked in the
 * same plan, a prefetch is due at least. The peer sends a viewer's pieces in the order they are due
 * and the player reads them in stream order: a later piece due first at the peer left an earlier one
 * unsent or part sent until the player reached it and handed it to the origin. Asked before the
 * player's pace was known, the first prefetches say 10 s, and the next ones, dated by the pace, said
 * 4-6 s: the uplinks browser test's fresh seeder then completed no piece and never earned trust (7%
 * of the video from it in 2 of 5 runs). Not just as late: the peer dates a request from its arrival,
 * and requests sent a few ms apart that arrive together were due in the reverse order (the same
 * test). Pieces asked together at the 10 s cap so go up to 0.7 s past it, the last the peer sends.
 */
const LATER_PIECE_MS = 100;
/**
 * Least play time (ms) a player must have read of a stream before its pace dates prefetches (see
 * StreamHead.pace): two 2 s HLS segments. The buffer grows a segment at a time while the
 * pieces are counted as asked, so a shorter span misjudges the pace by half or more.
 */
const MIN_PACE_MS = 4000;
/**
 * Longest wait (ms) for the swarm member assigned to fetch a piece from the origin to announce it
 * when the player asks for it. Bounded well under the SW's peer deadline, so the origin still
 * rescues the piece in time when that member is slow or gone.
 */
const OWNER_WAIT_MS = 2000;
/**
 * How many pieces behind where a member's player last read (its `reading`) the member may still be
 * fetching: its SW loads a response's next pieces together with the one it serves (see the SW's
 * LOOKAHEAD_PIECES), and the `have` follows the piece's arrival and storage. Without it a piece
 * its owner was fetching from the origin looked unwanted to a member asking for it just after the
 * owner's next `reading`, and went to the origin twice (flash crowd browser test: the owner had
 * read 1-3 pieces on each time, and the crowd took 1.4-2.2 copies of the video from the origin).
 */
const OWNER_LOADING_BEHIND_PIECES = 3;
/**
 * Least time (ms) a live piece keeps of its deadline for the transfer from its assigned member,
 * when it waits for that member to announce it; more when that member's line is expected to take
 * longer (its measured rate). A 256 KiB piece crosses a data channel in about 50 ms here (5 MB/s),
 * and one not finished at the deadline is handed over part way, the origin sending the rest.
 * A live piece waits for the rest of its deadline, not half of it: at the edge the member fetches
 * the piece from the origin while the others ask for it (each learns of a new segment within
 * milliseconds of the first, see the `listed` message), and an origin at 3 Mbit/s needs 0.7 s for
 * a 256 KiB piece, more than half the plain 1 s live deadline.
 */
const LIVE_TRANSFER_MS = 300;
/** An origin prefetch not reported back within this time (ms) is given up, freeing its slot. */
const ORIGIN_PREFETCH_TIMEOUT_MS = 20_000;
/**
 * How long (ms) after the tracker reported other peers in the swarm a piece may wait for the
 * first connection to one of them (a WebRTC handshake takes well under a second here). Only
 * pieces after a stream's first wait: the player is already busy with the first one.
 */
const JOIN_GRACE_MS = 2500;
/**
 * Longest wait (ms), from the first peer connected, of a joining member's prefetches for the other
 * peers the tracker reported. The lines a prefetch takes are chosen among the connected holders
 * (see #prefetchSources): planned with the first peer alone, the whole read-ahead window went to
 * it, and the first to connect is as often the viewer far ahead whose line the viewers between
 * need (WAN benchmark: the fourth viewer's first six prefetches went to the first viewer's line,
 * connected 8 and 138 ms before the two others; seg-001 and seg-002 then went to the origin with
 * 1.3-2.7 s buffered while the third viewer's line, the one furthest behind, was idle). The peers
 * the tracker sends our offers to connect within a few hundred ms of each other here; a peer that
 * never connects (a NAT no candidate crosses) holds the prefetches this long, once.
 */
export const JOIN_SETTLE_MS = 500;
/**
 * Longest wait (ms) of a piece the player asks for on the answers of the peers we just asked what
 * they hold (a `reading` that begins a stream, see Swarm.announceReading). A peer tells what it holds
 * of a stream only once we read it, a round trip after the request that began it (milliseconds on a
 * LAN, a router's queue on a busy home line): without the wait, the first piece of every stream went
 * to the origin while a peer holding it was answering (LAN benchmark: every viewer after the first
 * fetched its first 256 KiB from the origin, 0.7 s at 3 Mbit/s, where a peer sends it in 20 ms).
 * At most a third of the piece's deadline, so that the origin can still deliver it in time.
 */
const HOLDINGS_ANSWER_WAIT_MS = 300;
/** URLs remembered as asked of the SW (count), so each is asked once; far more than a session reads ahead into. */
const MAX_RESOLVING = 4096;
/** A stream whose head has not moved for this long (ms) is over; peers' heads count as long (see READING_MEMORY_MS). */
const STREAM_IDLE_MS = READING_MEMORY_MS;

interface StreamHead {
  asset: ManifestAsset;
  piece: number;
  updatedAt: number;
  /**
   * How long (ms) a prefetch of this stream may queue at a peer: the deadline its player's last
   * request got (what the buffer spares, up to the SW's 8 s, see playback-slack.ts), at least
   * PREFETCH_QUEUE_MS. The player's request for a piece being prefetched waits for it as long,
   * so a line too slow for 4 s but fast enough for 8 s still carries the stream (uplinks benchmark:
   * a 1 Mbit/s home shared by three viewers sends each a 256 KiB piece in 4-6 s, and was left idle).
   */
  queueMs: number;
  /** The play time (ms) the page's players have buffered (see Scheduler.answer); undefined when the SW gave none. */
  bufferMs: (() => number | undefined) | undefined;
  /**
   * The player's pace on this stream: since when it is measured, what the player had buffered then,
   * the bytes of the pieces it read since (those before its head), and the play time (ms) per byte
   * they give once they span MIN_PACE_MS of play time. Undefined while nothing plays; measured
   * again from a seek.
   */
  pace: { at: number; bufferMs: number; bytes: number; msPerByte?: number } | undefined;
}

export interface SchedulerComponents {
  manifest: Manifest;
  swarm: Swarm;
  selfId: () => string | undefined;
  /** Has the SW fetch a piece from the origin into the store (it announces it when stored). */
  prefetchFromOrigin(asset: ManifestAsset, piece: number): void;
  /** Has the SW stop such a fetch, unless a response reads the piece (see onPeerFetching). */
  stopOriginPrefetch?(assetId: string, piece: number): void;
  /**
   * Has the SW load the catalog asset at `href` (the next asset of a stream, named by the one
   * before it) and describe it to this page, which then calls `addAssets`. Absent: not followed.
   */
  resolve?(href: string): void;
  now?: () => number;
}

/** What the tracker last said about the swarm's size, and when. */
interface SwarmSize {
  peers: number;
  at: number;
}

/**
 * Decides where each piece comes from, ahead of the player and at its deadline:
 * - ahead of each stream's head, pieces that peers hold are prefetched from peers (rarest first,
 *   several peers in parallel); pieces nobody holds are fetched from the origin by exactly one
 *   member of the swarm (a stable hash of the piece picks it), then spread through the swarm, so a
 *   flash crowd fetches each piece from the origin once instead of once per viewer;
 * - at the deadline (the SW asking for a piece the player reads next), a peer that can deliver
 *   is used, the assigned member is waited for briefly, and otherwise the SW goes to the origin.
 */
export class Scheduler {
  readonly #components: SchedulerComponents;
  readonly #heads = new Map<string, StreamHead>();
  #assetOrder: Map<string, number>;
  /** Catalog assets this page knows (see addAssets), by URL, for streams that name their next asset. */
  readonly #byHref = new Map<string, ManifestAsset>();
  /** URLs asked of the SW (see SchedulerComponents.resolve), once each. */
  readonly #resolving = new Set<string>();
  /** Answers waiting for this scheduler to hear of their asset, each checking at every version or catalog asset heard (see #untilKnown). */
  readonly #hearing = new Set<() => void>();
  /** Origin prefetches asked of the SW and not yet reported back, by `asset/piece`. */
  readonly #originRequested = new Map<string, { assetId: string; piece: number; at: number }>();
  /** Pieces a peer said it fetches from the origin itself, by `asset/piece` (see onPeerFetching). */
  readonly #fetchedByPeers = new Set<string>();
  #peerPrefetches = 0;
  /** When (the scheduler's clock) each peer prefetch in flight is needed, by `asset/piece` (see LATER_PIECE_MS). */
  readonly #prefetchesDueAt = new Map<string, number>();
  #scheduled = false;
  #stopped = false;
  #swarmSize: SwarmSize | undefined;
  /** When (the scheduler's clock) the first peer connected, while this member's first plans wait for the others (see JOIN_SETTLE_MS). */
  #firstPeerAt: number | undefined;
  /** The others connected, or JOIN_SETTLE_MS passed: the plan chooses among the peers it has from then on. */
  #settled = false;
  /**
   * Per peer, per stream (streamKey): whether its player read further on than ours when we first
   * saw both heads there, so that it plays ahead of ours (see #upstreamFetching). Decided once:
   * later heads are where the players' buffers end, and a viewer on a fast line fills its buffer
   * past the reading head of one ahead of it in the video on a slow line.
   */
  readonly #aheadWhenMet = new WeakMap<Peer, Map<string, boolean>>();

  constructor(components: SchedulerComponents) {
    this.#components = components;
    this.#assetOrder = new Map(components.manifest.assets.map((asset, index) => [asset.id, index]));
  }

  /** Follows a new version of the manifest (a live stream moved): new segments join the prefetch windows. */
  setManifest(manifest: Manifest): void {
    this.#components.manifest = manifest;
    this.#assetOrder = new Map(manifest.assets.map((asset, index) => [asset.id, index]));
    for (const [key, head] of this.#heads) {
      if (!this.#knows(head.asset)) this.#heads.delete(key);
    }
    for (const heard of this.#hearing) heard();
    this.reschedule();
  }

  /** Catalog assets the SW described (see shared/catalog.ts): they may be read and read ahead into. */
  addAssets(assets: Iterable<ManifestAsset>): void {
    for (const asset of assets) this.#byHref.set(asset.href, asset);
    for (const heard of this.#hearing) heard();
    this.reschedule();
  }

  /** Whether `asset` is in the manifest version this scheduler follows, or a catalog asset it was given. */
  #knows(asset: ManifestAsset): boolean {
    return this.#assetOrder.has(asset.id) || this.#byHref.get(asset.href) === asset;
  }

  /**
   * Resolves once this scheduler knows `asset` (see #knows), at the latest after `timeoutMs`. The
   * swarm takes a new manifest version first and reads what the store holds of its new assets
   * before the scheduler hears of it (see Peerfetch's #followManifest), and the SW asks for a new
   * segment's pieces right after it sent the version: answered in between, a piece's owner seemed
   * not to want it (its read-ahead window ended at the last segment the scheduler knew), and
   * the player went to the origin at once while the owner fetched it too (live benchmark, 4 viewers:
   * the viewer whose playlist reloads came first in the segment cycle sent 23 pieces to the origin so,
   * with 5 s buffered, 17 of them fetched from the origin by their owner too).
   */
  #untilKnown(asset: ManifestAsset, timeoutMs: number): Promise<boolean> | undefined {
    if (this.#knows(asset)) return;
    return untilSettled(this.#hearing, () => this.#knows(asset), timeoutMs);
  }

  /**
   * The swarm member that fetches `piece` from the origin when no peer holds it: one of the members
   * that play its stream (us, and the peers whose player reads the same video or rendition, see
   * the `reading` message), picked by a stable hash so that every member picks the same one. A
   * peer watching another video of the page is never assigned it: it would never fetch it. The
   * set is the same for every member of a stream whatever their positions, so that two members
   * never each leave a piece to the other.
   *
   * Rendezvous hashing (the member with the highest hash of piece and member id owns it): a swarm
   * is not always fully connected, so two members may count different members; they still agree
   * on the owner of every piece whose owner both count. With the piece's hash modulo the number of
   * members, one member more or less moved nearly every piece: in the live benchmark (8 viewers
   * with 5-7 peers each) 15 of the 80 pieces of segments 5-44 were fetched for the swarm by two or
   * three members, and 21 by none, whose players all waited for it and then went to the origin.
   */
  ownerOf(assetId: string, piece: number, members = this.#members(assetId)): string | undefined {
    let owner: string | undefined;
    let highest = -1;
    for (const member of members) {
      const weight = mixedHash(`${assetId}/${piece}/${member}`);
      // Members come sorted: a tie goes to the same member everywhere.
      if (weight > highest) [owner, highest] = [member, weight];
    }
    return owner;
  }

  /** Us and the connected peers that play the stream of `assetId` (see ownerOf), sorted; empty before we have an id. */
  #members(assetId: string): string[] {
    const self = this.#components.selfId();
    if (!self) return [];
    const { swarm } = this.#components;
    const asset = swarm.asset(assetId);
    const key = asset && streamKey(asset);
    const members = [self];
    for (const peer of swarm.peers.values()) {
      const reads = peer.readingHeads(READING_MEMORY_MS).some((head) => {
        const read = swarm.asset(head.asset);
        return head.asset === assetId || (read !== undefined && streamKey(read) === key);
      });
      if (reads) members.push(peer.id);
    }
    return members.sort();
  }

  /**
   * Whether the member `owner` wants `piece` now: its player reads at the piece or within the
   * read-ahead window before it, so it is fetching it (a member behind in the stream fetches it
   * later, one that seeked past it never will), or read on just past it while fetching it (see
   * OWNER_LOADING_BEHIND_PIECES): only then does a player wait for it.
   */
  #ownerWants(owner: string, assetId: string, piece: number): boolean {
    const peer = this.#components.swarm.peers.get(owner);
    return (
      peer !== undefined &&
      peer
        .readingHeads(READING_MEMORY_MS)
        .some((head) => this.#wants(head, assetId, piece) || (head.asset === assetId && piece < head.piece && head.piece - piece <= OWNER_LOADING_BEHIND_PIECES))
    );
  }

  /**
   * Whether a player reading at `head` wants `piece` of `assetId`: the piece is the head's own or
   * in the read-ahead window after it, which the scheduler of that player fetches (the same
   * PREFETCH_WINDOW_PIECES in every member).
   */
  #wants(head: { asset: string; piece: number }, assetId: string, piece: number): boolean {
    if (head.asset === assetId) return piece >= head.piece && piece <= head.piece + PREFETCH_WINDOW_PIECES;
    const asset = this.#components.swarm.asset(head.asset);
    if (!asset) return false;
    for (const [next, nextPiece] of this.#window({ asset, piece: head.piece })) {
      if (next.id === assetId && nextPiece === piece) return true;
    }
    return false;
  }

  /** The tracker reported `peers` peers in the swarm (us included). */
  onSwarmSize(peers: number): void {
    this.#swarmSize = { peers, at: this.#now() };
  }

  /** A peer said where its player reads: a joining member's plan may have waited for it (see #settling). */
  onPeerReading(): void {
    if (!this.#settled) this.reschedule();
  }

  /** Time (ms) left to wait for a first peer: the tracker said others are there and none is connected yet. */
  #joinGraceLeft(): number {
    const size = this.#swarmSize;
    if (!size || size.peers <= 1 || this.#components.swarm.peers.size > 0) return 0;
    return Math.max(0, JOIN_GRACE_MS - (this.#now() - size.at));
  }

  /**
   * Whether this member has just joined the swarm and the plan waits for more of the peers the
   * tracker reported before it takes any line (see JOIN_SETTLE_MS). Plans again when the wait ends.
   */
  #settling(): boolean {
    if (this.#settled) return false;
    const connected = this.#components.swarm.peers.size;
    const size = this.#swarmSize;
    if (connected === 0) return false;
    const now = this.#now();
    if (this.#firstPeerAt === undefined) {
      this.#firstPeerAt = now;
      setTimeout(() => this.reschedule(), JOIN_SETTLE_MS);
    }
    // Each connected peer said what it holds and where it reads: the plan that runs on a hello sees
    // the holdings before the `reading` (see Peer.readingPending), and would take the newcomer's
    // line for one far ahead's.
    const told = [...this.#components.swarm.peers.values()].every((peer) => !peer.holdingsPending && !peer.readingPending);
    // With one other member there is no line to choose: a seeder (it reads nothing, so `told` would
    // wait out the bound) is asked at once (uplinks browser test: the seeder's share fell below the
    // floor with the wait).
    if (!size || size.peers <= 2 || (connected >= size.peers - 1 && told) || now - this.#firstPeerAt >= JOIN_SETTLE_MS) this.#settled = true;
    return !this.#settled;
  }

  /**
   * Answers the SW's request for a piece the player will read next. `bufferMs`: the play time the
   * player has buffered now (undefined when nothing plays): a peer expected to deliver too late
   * for it is not waited for (see Swarm.fetchPiece). `starting`: whether the page's player has
   * not shown its first frame yet (see awaitingFirstFrame).
   */
  async answer(
    asset: ManifestAsset,
    piece: number,
    deadlineMs: number,
    first: boolean,
    signal: AbortSignal,
    bufferMs?: () => number | undefined,
    starting?: () => boolean,
  ): Promise<PieceResult> {
    const { swarm } = this.#components;
    const started = this.#now();
    const span = pieceSpan(piece, asset.size, asset.pieceSize);
    const pieceBytes = span.end - span.start;
    // At most a third of the deadline and what the buffer leaves the origin, as the wait on holdings below.
    await this.#untilKnown(asset, Math.min(deadlineMs / 3, originSlackMs(bufferMs?.(), pieceBytes)));
    this.#noteHead(asset, piece, deadlineMs, bufferMs);
    // A live player's latency is set by its first frame and never caught up (hls.js stays three
    // segments behind the edge it saw), so every piece it asks for before that frame is treated as
    // a response's first: no wait for a first peer or for the member assigned to the piece, whose
    // cost would be added to every second of the session (waiting saves at most a segment of
    // origin bytes; an on-demand player only starts later), fresh holders asked as a prefetch, and
    // nothing counted as buffered.
    const waitsNow = first || (asset.live !== undefined && starting?.() === true);
    const grace = waitsNow ? 0 : Math.min(this.#joinGraceLeft(), deadlineMs / 2);
    // Joining a swarm whose peers are not connected yet: a piece the player does not need this
    // instant waits for them instead of going to the origin (the flash crowd and late joiners).
    if (grace > 0) await swarm.waitForPeer(grace, signal);
    if (swarm.availability(asset.id, piece, true) === 0) {
      // No longer than the player's buffer leaves the origin to deliver the piece (a live viewer that
      // joined with the stream plays with about a second buffered, and a peer connects at any time).
      const holdingsWaitMs = Math.min(HOLDINGS_ANSWER_WAIT_MS, deadlineMs / 3, originSlackMs(bufferMs?.(), pieceBytes));
      if (holdingsWaitMs > 0) await swarm.waitForHoldings(asset.id, piece, holdingsWaitMs, signal);
      // The start of a stream (startup, a seek) held only by peers that connected moments ago, none
      // of which has earned trust yet (see Swarm): it is asked of them as a prefetch, which the
      // player joins below, so a fresh peer holds it as a prefetch would (UNPROVEN_JOIN_WAIT_MS,
      // longer only while it sends), and one slower than the origin hands it over as soon as its
      // line is measured (a first piece counts as nothing buffered, see `buffered`). Otherwise every
      // viewer's first piece came from the origin (LAN benchmark: 0.7 s at 3 Mbit/s, where a peer
      // on the LAN sends it in 20 ms).
      // So too a piece the player asks while the plan still waits for the peers joining with us.
      if ((waitsNow || (!asset.live && this.#settling())) && !signal.aborted && swarm.availability(asset.id, piece) > 0 && !swarm.downloading(asset.id, piece)) {
        // Asked as the plan's prefetches are while the pace is unknown: asked as urgently as the
        // player needs it, it overtook at the peer the prefetches its line had begun, none finished
        // before the player handed it over, and the line never earned trust (uplinks browser test:
        // 3-10% of the video from the seeder instead of 27-60%).
        this.#prefetchFromPeers(asset, piece, this.#prefetchSources(asset, piece, deadlineMs), PEER_PREFETCH_TIMEOUT_MS);
      }
    }
    // A buffer that spares more than the plain deadline waits that much longer for a viewer ahead
    // of us that is fetching the piece on a faster line than its holders' (see #upstreamFetching).
    const spareMs = deadlineMs - PREFETCH_QUEUE_MS;
    const upstream = !waitsNow && spareMs > 0 && !swarm.downloading(asset.id, piece) && this.#upstreamFetching(asset, piece, deadlineMs);
    if (upstream) await swarm.waitForHave(asset.id, piece, spareMs, signal, upstream);
    const owner = this.ownerOf(asset.id, piece);
    const canWait =
      !waitsNow &&
      swarm.availability(asset.id, piece, true) === 0 &&
      !swarm.downloading(asset.id, piece) &&
      owner !== undefined &&
      // Our own piece is asked of us only when our SW is not fetching it: a peer said it fetches it (see onPeerFetching).
      (owner === this.#components.selfId() ? this.#fetchedByPeers.has(`${asset.id}/${piece}`) : this.#ownerWants(owner, asset.id, piece));
    let announcedMeanwhile = false;
    if (canWait) {
      // Another member that wants this piece is assigned it and is probably fetching it from the
      // origin now, or a peer fetches our own piece (a live viewer with 5 s buffered asked for it
      // 0.4 s after the viewer at the edge, and went to the origin while it could have waited).
      const claimedBefore = swarm.availability(asset.id, piece) > 0;
      const transferMs = Math.max(LIVE_TRANSFER_MS, (owner && swarm.deliveryMs(owner, asset.id, piece, deadlineMs)) || 0);
      // A live player's buffer is a few seconds, often less than the deadline (one that joined with
      // the stream plays a segment behind the edge): the wait leaves the origin the time it needs.
      const liveLeftMs = Math.min(deadlineMs - (this.#now() - started), originSlackMs(bufferMs?.(), pieceBytes));
      const waitMs = asset.live ? Math.max(0, liveLeftMs - transferMs) : Math.min(OWNER_WAIT_MS, deadlineMs / 2);
      if (!(await swarm.waitForHave(asset.id, piece, waitMs, signal))) {
        // The owner is fetching the piece from the origin now, or is about to, as the SW will for
        // us: it is told not to and to take it from us (live benchmark, 4 viewers: the viewer that
        // joined with the stream had about 1 s buffered at each new segment, could not wait, and
        // 76 of the run's 88 pieces came from the origin twice, the owners' fetch starting 20-45 ms
        // after its own).
        // Not when the wait ended because the player dropped its request: nobody fetches it then.
        if (!signal.aborted && (asset.live || owner !== this.#components.selfId())) swarm.announceReading(asset.id, piece, true);
        return { ok: false, reason: 'no-peer' };
      }
      // A member that announced the piece while we waited (it fetched it from the origin as
      // assigned) is asked for it even before it earned trust: in a flash crowd that is how the
      // origin serves each piece once. A peer that merely claims pieces claimed it before the wait.
      announcedMeanwhile = !claimedBefore;
    }
    // `urgent`: the player waits for this piece (relayed peers may be left out, see PeerfetchOptions.relay).
    if (!announcedMeanwhile && swarm.availability(asset.id, piece, true) === 0 && !swarm.downloading(asset.id, piece)) {
      // Assigned to another member, which reads the video and does not want the piece yet (or only
      // just did): it is told that the SW fetches it now, so that it takes the piece from us rather
      // than fetch it too when it reaches it a moment later (uncapped homes, 2 viewers: the second
      // viewer, its head 8 pieces behind the first's, fetched for the swarm 0.2 s after the first
      // viewer's player had sent the same piece to the origin, three pieces in a run, 5% of its video).
      if (!asset.live && owner !== undefined && owner !== this.#components.selfId() && !signal.aborted) swarm.announceReading(asset.id, piece, true);
      return { ok: false, reason: 'no-peer' };
    }
    const remaining = Math.max(0, deadlineMs - (this.#now() - started));
    // The SW finishes a piece partly received at the deadline from the origin.
    // Before the first frame nothing is buffered: the player waits for this piece now.
    const buffered = waitsNow ? () => bufferMs?.() ?? 0 : bufferMs;
    return swarm.fetchPiece(asset.id, piece, remaining, signal, { handOver: true, urgent: !announcedMeanwhile, bufferMs: buffered });
  }

  /** Something changed (a have, a new peer, a stored piece): plan again, once per task. */
  reschedule(): void {
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#plan();
    });
  }

  stop(): void {
    this.#stopped = true;
    this.#heads.clear();
  }

  #now(): number {
    return (this.#components.now ?? Date.now)();
  }

  /**
   * The player asked for `piece` of `asset` with `deadlineMs` (see StreamHead.queueMs), with
   * `bufferMs` of play time buffered (see StreamHead.pace).
   */
  #noteHead(asset: ManifestAsset, piece: number, deadlineMs: number, bufferMs?: () => number | undefined): void {
    const key = streamKey(asset);
    const current = this.#heads.get(key);
    const queueMs = Math.max(PREFETCH_QUEUE_MS, deadlineMs);
    const now = this.#now();
    // A stream reads forward; an earlier piece means a seek back, a later one the stream moving on.
    if (!current || current.asset !== asset || current.piece !== piece) {
      const buffered = bufferMs?.();
      let pace = current?.pace;
      // Read on within the window (the SW asks for no piece the store holds): the pieces read since
      // `pace.at` play for the wall time since plus what the buffer grew by.
      const readOn = current && [...this.#window(current)].find(([next, nextPiece]) => next.id === asset.id && nextPiece === piece);
      if (pace && buffered !== undefined && readOn) {
        pace.bytes += readOn[2];
        const playedMs = now - pace.at + buffered - pace.bufferMs;
        if (playedMs >= MIN_PACE_MS) pace.msPerByte = playedMs / pace.bytes;
      } else {
        // A seek, a pause, a first read: measured again from here.
        pace = buffered === undefined ? undefined : { at: now, bufferMs: buffered, bytes: 0 };
      }
      this.#heads.set(key, { asset, piece, updatedAt: now, queueMs, bufferMs, pace });
      // Peers assign us the pieces we read ahead of here from now on (see ownerOf).
      this.#components.swarm.announceReading(asset.id, piece);
    } else {
      current.updatedAt = now;
      current.queueMs = queueMs;
      current.bufferMs = bufferMs;
    }
    this.reschedule();
  }

  /**
   * How urgent (ms, see fetchPiece's `urgencyMs`) a prefetch of a piece `bytesAhead` bytes after
   * `head`'s start is: the time until its player plays it (what it has buffered, then those bytes
   * at its pace) less the reserve a player's own request keeps for the origin, as that request's
   * deadline would be (see playbackDeadlineMs). A home line serving several viewers then sends first
   * the pieces of the viewer whose buffer runs out first, not those asked first (WAN benchmark: the
   * second viewer, 3-4 s buffered, handed 12 pieces to the origin while the first viewer's line sent
   * prefetches of viewers 10 s and more ahead of their players). PEER_PREFETCH_TIMEOUT_MS while
   * nothing plays or the pace is not known.
   */
  #prefetchUrgencyMs(head: StreamHead, bytesAhead: number): number {
    const buffered = head.bufferMs?.();
    const msPerByte = head.pace?.msPerByte;
    if (buffered === undefined || msPerByte === undefined) return PEER_PREFETCH_TIMEOUT_MS;
    return playbackDeadlineMs(PREFETCH_QUEUE_MS, PEER_PREFETCH_TIMEOUT_MS, buffered + bytesAhead * msPerByte);
  }


  /**
   * The next pieces after a head, continuing into the following assets of the same stream, each
   * with the bytes of the stream from the start of the head's piece to its own start.
   */
  *#window(head: Pick<StreamHead, 'asset' | 'piece'>): Generator<[ManifestAsset, number, number]> {
    let asset: ManifestAsset | undefined = head.asset;
    let piece = head.piece + 1;
    let yielded = 0;
    const first = pieceSpan(head.piece, asset.size, asset.pieceSize);
    let bytes = first.end - first.start;
    const key = streamKey(head.asset);
    while (yielded < PREFETCH_WINDOW_PIECES && asset) {
      if (piece < asset.pieces.length) {
        yield [asset, piece, bytes];
        const span = pieceSpan(piece, asset.size, asset.pieceSize);
        bytes += span.end - span.start;
        yielded++;
        piece++;
        continue;
      }
      asset = this.#nextOf(asset);
      piece = 0;
      if (asset && streamKey(asset) !== key) return;
    }
  }

  /**
   * The asset after `asset` in its stream: the one it names (a catalog asset; asked of the SW when
   * this page does not know it yet, and then there next time), else the next in the manifest.
   */
  #nextOf(asset: ManifestAsset): ManifestAsset | undefined {
    if (asset.nextHref !== undefined) {
      const next = this.#byHref.get(asset.nextHref);
      if (!next && !this.#resolving.has(asset.nextHref) && this.#components.resolve) {
        if (this.#resolving.size >= MAX_RESOLVING) this.#resolving.clear();
        this.#resolving.add(asset.nextHref);
        this.#components.resolve(asset.nextHref);
      }
      return next;
    }
    const index = this.#assetOrder.get(asset.id);
    return index === undefined ? undefined : this.#components.manifest.assets[index + 1];
  }

  #plan(): void {
    if (this.#stopped) return;
    const { swarm } = this.#components;
    const now = this.#now();
    const self = this.#components.selfId();
    const fromPeers: { asset: ManifestAsset; piece: number; availability: number; order: number; queueMs: number; urgencyMs: number }[] = [];
    // Members per asset, once per plan: each look walks every peer's reading heads, and a plan runs
    // at every have (8 live viewers, V8 profile: 3 s of the 40 s the pages spent in peerfetch's code).
    const membersOf = new Map<string, string[]>();
    const members = (assetId: string) => membersOf.get(assetId) ?? membersOf.set(assetId, this.#members(assetId)).get(assetId)!;
    // A peer whose hello has not come yet seems to hold nothing: fetching its pieces from the
    // origin as their owner would fetch what it holds (WAN benchmark: each viewer joining after
    // the first fetched two pieces the first one held, in the plan right after connecting). The
    // wait is bounded (HOLDINGS_WAIT_MS): a peer that never says hello does not stop it for good.
    const everyPeerSaid = ![...swarm.peers.values()].some((peer) => peer.holdingsPending);
    let order = 0;
    for (const [key, head] of this.#heads) {
      if (now - head.updatedAt > STREAM_IDLE_MS) {
        this.#heads.delete(key);
        continue;
      }
      this.#meetHeads(key, head);
      // When the stream's earlier pieces in flight or about to be asked are due (see LATER_PIECE_MS),
      // from the head's own: the player that joined its prefetch waits for it now.
      let earlierDueAt = this.#prefetchesDueAt.get(`${head.asset.id}/${head.piece}`) ?? 0;
      // And no later than its later pieces in flight: a line with room for the small pieces only
      // took the segments' second pieces first, and a first piece asked after them said 10 s and
      // queued at the peer behind four of them when its player reached it (uplinks-even benchmark:
      // the second viewer's seg-004 piece 0 handed to the origin with nothing received).
      const window = [...this.#window(head)];
      // When the first of each piece's later pieces in flight is due (Infinity: none), once per
      // plan from the window's end back, not a pass over the rest of the window per piece.
      const laterDueAt = window.map(() => Infinity);
      for (let i = window.length - 2; i >= 0; i--) {
        const [later, laterPiece] = window[i + 1]!;
        laterDueAt[i] = Math.min(laterDueAt[i + 1]!, this.#prefetchesDueAt.get(`${later.id}/${laterPiece}`) ?? Infinity);
      }
      for (const [i, [asset, piece, bytesAhead]] of window.entries()) {
        order++;
        const pieceKey = `${asset.id}/${piece}`;
        earlierDueAt = Math.max(earlierDueAt, this.#prefetchesDueAt.get(pieceKey) ?? 0);
        // Nor a piece this member fetches from the origin for the swarm: its SW may take a while to
        // store it, and a line asked for it meanwhile sent it again (uplinks benchmark: 0.3 MB of
        // the 1 Mbit/s line's scarce bytes per run).
        if (swarm.holds(asset.id, piece) || swarm.downloading(asset.id, piece) || this.#originRequested.has(pieceKey)) continue;
        // A piece a viewer ahead is fetching waits for it (see #upstreamFetching) while its player
        // spares more than the plain deadline: a buffer to spare, or a piece it reaches later than
        // that. A viewer that had just started (2-4 s buffered) took from the first viewer's line,
        // its own only source, the pieces the second viewer was fetching on it (WAN benchmark: a
        // segment the line sends in 1.6 s took the second viewer 2.7 s, and its next segment went to
        // the origin with 1.2 s buffered).
        const dueMs = this.#prefetchUrgencyMs(head, bytesAhead);
        const spareMs = Math.max(dueMs, head.queueMs);
        if (spareMs > PREFETCH_QUEUE_MS && this.#upstreamFetching(asset, piece, spareMs)) continue;
        const availability = swarm.availability(asset.id, piece);
        // Held only by peers too slow to deliver it in time even with nothing else to send: as if
        // nobody held it (fetchPiece would refuse it). Urgency 0 counts none of their queue.
        if (availability > 0 && swarm.canDeliverWithin(asset.id, piece, head.queueMs, 0)) {
          const urgencyMs = Math.max(0, Math.min(Math.max(dueMs, earlierDueAt + LATER_PIECE_MS - now), laterDueAt[i]! - LATER_PIECE_MS - now));
          earlierDueAt = now + urgencyMs;
          fromPeers.push({ asset, piece, availability, order, queueMs: head.queueMs, urgencyMs });
        } else if (
          self &&
          everyPeerSaid &&
          members(asset.id).length > 1 &&
          this.ownerOf(asset.id, piece, members(asset.id)) === self &&
          // Held by lines too slow for the queue but able to send it before the player plays it:
          // left to them (a later plan or the player's own request decides), as the viewers behind
          // will take it from them too (WAN benchmark: the fourth viewer fetched for the swarm two
          // pieces the first two viewers held, 0.5 MB the origin need not have sent).
          !(availability > 0 && swarm.canDeliverWithin(asset.id, piece, dueMs, 0))
        ) {
          // Alone in wanting it, the player's own stream fetches what it needs; splitting only pays with company.
          this.#requestFromOrigin(asset, piece);
        }
      }
    }
    // Rarest first spreads pieces through the swarm fastest; ties go to the earliest needed.
    fromPeers.sort((a, b) => a.availability - b.availability || a.order - b.order);
    // A live stream's pieces are asked of any holder (see #prefetchSources): no line to choose.
    const settling = this.#settling();
    for (const { asset, piece, queueMs, urgencyMs } of fromPeers) {
      if (this.#peerPrefetches >= MAX_PEER_PREFETCHES) break;
      if (settling && !asset.live) continue;
      const from = this.#prefetchSources(asset, piece, queueMs);
      // Each start adds to a holder's queue (the request is sent at once): a piece whose holders'
      // lines are full waits for a later plan (a prefetch ending plans again).
      const room = from
        ? [...from].some((peerId) => (swarm.deliveryMs(peerId, asset.id, piece, urgencyMs) ?? Infinity) <= queueMs)
        : swarm.canDeliverWithin(asset.id, piece, queueMs, urgencyMs);
      if (!room) continue;
      this.#prefetchFromPeers(asset, piece, from, urgencyMs);
    }
  }

  /**
   * Fetches `piece` from peers for the store, nobody waiting on it yet (`from`: only these peers),
   * needed in `urgencyMs` (see Swarm.fetchPiece).
   */
  #prefetchFromPeers(asset: ManifestAsset, piece: number, from: ReadonlySet<string> | undefined, urgencyMs: number): void {
    const key = `${asset.id}/${piece}`;
    this.#peerPrefetches++;
    this.#prefetchesDueAt.set(key, this.#now() + urgencyMs);
    void this.#components.swarm
      .fetchPiece(asset.id, piece, PEER_PREFETCH_TIMEOUT_MS, new AbortController().signal, { from, urgencyMs })
      .finally(() => {
        this.#peerPrefetches--;
        this.#prefetchesDueAt.delete(key);
        this.reschedule();
      });
  }

  /**
   * Notes, for each peer whose player reads the stream of `head` and was not seen there before,
   * whether it read further on than our player (see #aheadWhenMet).
   */
  #meetHeads(key: string, head: StreamHead): void {
    const ours = this.#streamPosition([{ asset: head.asset.id, piece: head.piece }], head.asset);
    for (const peer of this.#components.swarm.peers.values()) {
      let met = this.#aheadWhenMet.get(peer);
      if (met?.has(key)) continue;
      const theirs = this.#streamPosition(peer.readingHeads(READING_MEMORY_MS), head.asset);
      if (theirs === -Infinity) continue;
      if (!met) this.#aheadWhenMet.set(peer, (met = new Map()));
      met.set(key, theirs > ours);
    }
  }

  /**
   * The peers ahead of us in the video (see #aheadWhenMet) that are fetching `piece` now (their
   * player reads at it or within the read-ahead window before it) and would send it to us sooner
   * than the trusted peers that hold it (as urgently as `urgencyMs`; a line not yet measured is
   * assumed fast, see Peer); undefined when none. A player whose
   * buffer spares time waits for them rather than take the piece from a slower line or the origin:
   * in the uplinks benchmark the 20 Mbit/s viewer, 15-19 s buffered, took pieces from the 2 Mbit/s
   * line that the 5 Mbit/s viewer ahead of it, 4-5 s buffered, was fetching from it too (26 and 23
   * pieces), and that viewer handed every third piece to the origin; in the quiet run of main
   * 2a4339c the 20 Mbit/s viewer took 74% of its video from the origin and sent 4.4 MB to the
   * viewers ahead of it. A piece nobody holds is left to its assigned member (see ownerOf).
   */
  #upstreamFetching(asset: ManifestAsset, piece: number, urgencyMs: number): Set<string> | undefined {
    const { swarm } = this.#components;
    if (swarm.availability(asset.id, piece) === 0) return undefined;
    const key = streamKey(asset);
    let fetching: Set<string> | undefined;
    for (const peer of swarm.peers.values()) {
      if (peer.closed || !peer.trusted || peer.has(asset.id, piece) || !this.#aheadWhenMet.get(peer)?.get(key)) continue;
      if (!peer.readingHeads(READING_MEMORY_MS).some((head) => this.#wants(head, asset.id, piece))) continue;
      const ms = swarm.deliveryMs(peer.id, asset.id, piece, urgencyMs);
      if (ms !== undefined && !swarm.canDeliverWithin(asset.id, piece, ms, urgencyMs, true)) (fetching ??= new Set()).add(peer.id);
    }
    return fetching;
  }

  /**
   * The peers a prefetch of `piece` may ask (undefined: any holder, the fastest first): of the
   * holders whose line can send it within `queueMs` (its stream's, see StreamHead.queueMs), those
   * furthest behind in its stream (a holder not reading it counts as furthest behind: its line
   * serves nobody's playback). The viewers behind a member can take pieces from it and those ahead
   * of it cannot, so a member far ahead is the only source of the next viewers after it, and a
   * prefetch that takes its line while a viewer nearer us holds the piece too takes it from them
   * (WAN benchmark, 2 Mbit/s homes joining 8 s apart: the first viewer sent the third and fourth
   * 6.2 MB while the second, who had no other peer ahead, took 4.2 MB of its 9.4 MB from the
   * origin). A live stream's viewers all read near its edge: any holder. A piece the player waits
   * for asks any holder (see answer). A holder that has just said hello and not yet where it reads
   * (see Peer.readingPending) counts as furthest ahead until it does: counted as not reading, the
   * first viewer's line took, at every later viewer's join, the prefetches of the plan that ran
   * between its hello and its `reading` (WAN benchmark: three pieces of the third viewer's first
   * segments on the line the second viewer had as its only source).
   */
  #prefetchSources(asset: ManifestAsset, piece: number, queueMs: number): Set<string> | undefined {
    if (asset.live) return undefined;
    const { swarm } = this.#components;
    const holders: { id: string; position: number }[] = [];
    for (const peer of swarm.peers.values()) {
      if (peer.closed || !peer.has(asset.id, piece)) continue;
      if ((swarm.deliveryMs(peer.id, asset.id, piece, 0) ?? Infinity) > queueMs) continue;
      holders.push({ id: peer.id, position: peer.readingPending ? Infinity : this.#streamPosition(peer.readingHeads(READING_MEMORY_MS), asset) });
    }
    const furthestBehind = Math.min(...holders.map((holder) => holder.position));
    const from = holders.filter((holder) => holder.position === furthestBehind);
    return from.length === holders.length ? undefined : new Set(from.map((holder) => holder.id));
  }

  /**
   * Where in the stream of `asset` a member reads, from its reading heads: a number that grows
   * along the stream (manifest order, then piece: a peer holds no piece past MAX_HELD_PIECES, and
   * 2^53 / MAX_HELD_PIECES assets stay exact), the furthest of its heads in that stream;
   * -Infinity when it reads none of it (or it is not in the manifest's order: catalog assets).
   */
  #streamPosition(heads: Array<{ asset: string; piece: number }>, asset: ManifestAsset): number {
    const key = streamKey(asset);
    let position = -Infinity;
    for (const head of heads) {
      const index = this.#assetOrder.get(head.asset);
      const read = this.#components.swarm.asset(head.asset);
      if (index === undefined || !read || streamKey(read) !== key) continue;
      position = Math.max(position, index * MAX_HELD_PIECES + head.piece);
    }
    return position;
  }

  #requestFromOrigin(asset: ManifestAsset, piece: number): void {
    const key = `${asset.id}/${piece}`;
    const now = this.#now();
    const { swarm } = this.#components;
    // A segment that left the live window (the swarm has forgotten it; this plan's head still reads
    // it until the scheduler hears of the new manifest): the SW no longer lists it either and met
    // each such prefetch with a manifest reload from the origin, and its slot, freed below at once,
    // was asked again at every plan (live benchmark, 8 viewers at load 30: a lagging viewer asked
    // for one piece 11 times in 1.7 s).
    if (swarm.asset(asset.id) === undefined) return;
    for (const [pending, { assetId, piece: pendingPiece, at }] of this.#originRequested) {
      // A piece that arrived otherwise (from a peer, or the player's own request) frees its slot:
      // the SW reports nothing for a prefetch the store already answers, and a slot held until
      // the timeout stopped this member fetching what it was assigned (live bench: 15 s without
      // an origin prefetch while its pieces went to the origin once per viewer).
      if (now - at > ORIGIN_PREFETCH_TIMEOUT_MS || swarm.holds(assetId, pendingPiece) || swarm.asset(assetId) === undefined) this.#originRequested.delete(pending);
    }
    if (this.#originRequested.has(key) || this.#originRequested.size >= MAX_ORIGIN_PREFETCHES || this.#fetchedByPeers.has(key)) return;
    this.#originRequested.set(key, { assetId: asset.id, piece, at: now });
    this.#components.prefetchFromOrigin(asset, piece);
  }

  /**
   * A peer is fetching `piece` of `assetId` from the origin itself (its player could not wait for
   * the piece's owner). When it is assigned to us, we do not fetch it too: a fetch not begun yet
   * (the peer often asks before the owner's plan starts it: live benchmark, 4 viewers, by 20-45 ms)
   * never starts, and one under way (by 14-420 ms in other runs) stops, its slot free again; the
   * piece is prefetched from that peer once it has it, and our player waits for it there. A peer
   * that says so falsely costs what an owner that never fetches costs: each viewer's wait, then the
   * origin. Only pieces assigned to us are ever looked up here; the set keeps the latest
   * MAX_FETCHED_BY_PEERS pieces, so a flood of these keeps little.
   */
  onPeerFetching(assetId: string, piece: number): void {
    const key = `${assetId}/${piece}`;
    // Bounded by dropping the oldest notice (a Set keeps insertion order), never the newest.
    if (this.#fetchedByPeers.add(key).size > MAX_FETCHED_BY_PEERS) this.#fetchedByPeers.delete(this.#fetchedByPeers.values().next().value!);
    if (this.#originRequested.delete(key)) this.#components.stopOriginPrefetch?.(assetId, piece);
  }

  /** The SW stored a piece (or reported one): an origin prefetch slot is free again. */
  onStored(assetId: string, piece: number): void {
    this.#originRequested.delete(`${assetId}/${piece}`);
    this.reschedule();
  }
}
