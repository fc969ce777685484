import { PeerfetchError } from '../shared/errors.js';
import { decodePeerMessage, encodePeerMessage } from '../shared/peer-codec.js';
import { CHUNK_SIZE, MAX_REQUEST_DEADLINE_MS, PEER_PROTOCOL_VERSION, type PeerMessage } from '../shared/peer-messages.js';
import { Bitfield } from '../shared/bitfield.js';
import { forEachRunPiece, type Holdings, type PieceRuns } from '../shared/holdings.js';
import { takeEarlyMessages } from './rtc.js';
import { SendPacer } from './send-pacer.js';
import type { UploadTurn } from './upload-turns.js';

/**
 * Download rate (bytes/s) assumed for a peer before it was measured: 8 Mbit/s, a good home
 * uplink. A first piece from a new peer then fits the player's 1 s first-piece deadline, and the
 * first measurement (a quarter second of its line, see RATE_WINDOW_MS) replaces the guess.
 */
const ASSUMED_THROUGHPUT_BPS = 1_000_000;
/**
 * Rate (bytes/s) at which what is already queued at a peer is assumed to drain until its line was
 * measured: 1 Mbit/s, the slowest home uplink a viewer shares from. A new peer then takes one
 * prefetch ahead of another within the 4 s a prefetch may queue (scheduler PREFETCH_QUEUE_MS), not
 * all six at once on the 8 Mbit/s guess: on a 1 Mbit/s line six pieces are 12 s of sending, which
 * the player caught up with (uplinks benchmark). A lone request still counts the guess.
 */
const UNMEASURED_QUEUE_BPS = 125_000;
/** Round-trip time (ms) assumed before one was measured: a request crossing a continent and back. */
const ASSUMED_RTT_MS = 150;
/** Weight of the newest measurement in the throughput and round-trip moving averages. */
const THROUGHPUT_SMOOTHING = 0.3;
/**
 * A request given up after this long (ms) measures the peer: what it delivered meanwhile is its
 * rate right now. Shorter waits say too little (a piece may just be starting).
 */
const STALL_MIN_ELAPSED_MS = 500;
/**
 * How long (ms) a stall measurement overrides the moving average: the peer is not waited for
 * again meanwhile, then gets another chance (its uplink may have recovered). This long for a peer
 * whose line we never measured sending (one that claims pieces and sends nothing looks so).
 */
const STALL_MEMORY_MS = 15_000;
/**
 * The same (ms) for a peer whose line we measured sending: a home line goes silent for a few
 * seconds now and then (the transport across a capped router's queue), and comes back at its rate.
 * With 15 s, the only line ahead of a viewer, cut once soon after it joined while silent for 1-2 s,
 * carried none of its pieces for the next 15-30 s (uplinks benchmark: 1% of its video from peers).
 */
const MEASURED_LINE_STALL_MEMORY_MS = 4000;
/**
 * Longest stall memory (ms). Each stall in a row, with no piece delivered in between, doubles the
 * memory (15, 30, 60 s ...; 4, 8, 16 s ... on a measured line): a peer that claims pieces and
 * never sends them is asked again only a few times per video, not every 15 s, while one bad
 * minute of an honest uplink costs little more than that minute.
 */
const MAX_STALL_MEMORY_MS = 240_000;
/**
 * Busy time (ms) over which one throughput sample is taken: at 2 Mbit/s it spans four chunks,
 * so a slow line is known within a quarter second of its first piece, not after the whole piece.
 */
const RATE_WINDOW_MS = 250;
/**
 * Half-life (ms) of a peer's failure count: an honest peer that failed a few requests (a
 * congested minute, a piece it had just lost) is ranked normally again after a minute or two,
 * while one that keeps failing keeps a high count.
 */
const FAILURE_HALF_LIFE_MS = 30_000;
/** Seconds of expected delay one (undecayed) failure adds to a peer's rank. */
const FAILURE_PENALTY_S = 0.5;
/**
 * Assets unknown to us whose haves a peer may park (count). A live stream's newest segment
 * reaches some members' manifests before ours; their haves for it are kept until our manifest
 * lists it (see `adopt`). A few segments' worth; the oldest goes first, so a hostile peer cannot grow it.
 */
export const MAX_PENDING_ASSETS = 32;
/** Highest piece index parked per unknown asset (+1): a live segment has a handful of pieces. */
export const MAX_PENDING_PIECES = 4096;
/**
 * Stream heads kept (count): those a peer's `reading` messages named, and the streams our own
 * players read (see Swarm.announceReading). A page plays a few streams at once (video and audio,
 * their init segments, a few players); the oldest goes first, so a peer cannot grow it.
 */
export const MAX_READING_HEADS = 8;
/**
 * How long (ms) a stream head counts after it last moved, ours and peers': a stream whose head has
 * not moved for this long is over (paused long, closed or seeked away), and its window is no
 * longer fetched (see Scheduler).
 */
export const READING_MEMORY_MS = 30_000;
/**
 * Least time (ms) between two `received` reports to a peer sending us chunks: often enough that
 * its pace follows its line's queue within a few of them (see LinePacer), one a chunk on a 1 Mbit/s line.
 */
const RECEIVED_REPORT_MS = 100;
/** A line silent for this long (ms) starts a new report: the silence is not its rate. */
const RECEIVED_IDLE_MS = 500;
/**
 * `performance.now()` time `at` as ms since the epoch: the clock a chunk's `at` is in, on both
 * ends, so that a receiver's delay differs from the true one-way delay only by the two clocks' offset.
 */
const epochMs = (at: number): number => performance.timeOrigin + at;
/** Requests from one peer queued at once; more is answered `busy`, so a greedy peer cannot hog us. */
export const MAX_QUEUED_UPLOADS = 16;
/**
 * Messages other than the chunks we asked for that a peer may send per second, and in one burst
 * (count). An honest peer sends a few per piece that changes hands (have, request, cancel,
 * reject): even at 100 MB/s of 64 KiB pieces that is under 2000 a second. A peer far above it is
 * flooding (repeated haves, requests that can only be refused, chunks nobody asked for) and is
 * closed and banned like one that sends garbage.
 */
const CONTROL_MESSAGES_PER_S = 2000;
const CONTROL_MESSAGES_BURST = 4000;
/** Urgency (ms) of a request that states none: after every request that does (a prefetch's budget). */
const DEFAULT_UPLOAD_DEADLINE_MS = MAX_REQUEST_DEADLINE_MS;
/**
 * How long (ms) the plan waits for a peer to say what it holds (its hello) before it goes on as if
 * the peer held nothing more. A peer sends its hello the moment its channel opens, so it comes one
 * trip after ours opened: a few ms on a LAN, 300 ms on a relayed path across continents. 2 s is
 * several such trips plus a page busy with a long task. Waiting costs the pieces this page would
 * fetch from the origin for the swarm meanwhile (their owner, see Scheduler); not waiting cost
 * fetching pieces the peer held (WAN benchmark: each viewer after the first fetched two of them).
 */
export const HOLDINGS_WAIT_MS = 2000;
/**
 * A peer whose hello has not come this long (ms) after its channel opened is closed: a hello is
 * the first thing every peer sends, so one still silent by now is broken or hostile, and it holds
 * one of the page's few connection slots (MAX_PEERS) for nothing. Five times HOLDINGS_WAIT_MS, so
 * a page that was only busy (its hello late, the plan already going on without it) is kept.
 */
export const HELLO_DEADLINE_MS = 10_000;

/** What a Peer needs from the swarm (passed down; a Peer never reaches up). */
export interface PeerHandlers {
  /** Piece count of an asset id, or undefined for an asset we don't know (its haves are parked, see `adopt`). */
  pieceCount(asset: string): number | undefined;
  /** The peer holds pieces of an asset our manifest does not list (a live stream moved on before our manifest did). */
  onUnknownAsset(peer: Peer, asset: string): void;
  /** Bytes of a stored piece to upload, or of one still arriving from the origin (forwarded as it comes), or undefined. */
  readPiece(asset: string, piece: number): Promise<Uint8Array | ArrivingPiece | undefined>;
  /**
   * The peer announced pieces (hello, have) or withdrew one (lost, not-found), or what it holds is
   * taken as said (its hello did not come within HOLDINGS_WAIT_MS, see `holdingsPending`).
   */
  onHave(peer: Peer): void;
  /** `forwarded`: the piece was still arriving from the origin (see ArrivingPiece). */
  onUploaded(peer: Peer, bytes: number, forwarded: boolean): void;
  /**
   * The peer said its player reads `asset` (see the `reading` message): it may now be told what we
   * hold of that stream; `ask`: it waits for a hello in answer. Absent: nothing is told.
   * `fetching`: the piece it reads, which it is fetching from the origin itself (`origin`).
   */
  onReading?(peer: Peer, asset: string, ask: boolean, fetching?: number): void;
  /** Resolves when `bytes` more may be uploaded (the page's upload cap). */
  beforeUpload(bytes: number): Promise<void>;
  /** The peer reported how our chunks reached it (see the `received` message). */
  onReceived?(peer: Peer, delayMs: number, bytes: number, ms: number): void;
  /** This peer's place among the page's uploads to all its peers: the most urgent is sent first (see UploadTurns). */
  uploadTurn?: UploadTurn;
  onClose(peer: Peer, reason: string): void;
}

/**
 * What a swarm remembers of a peer after it left, so that coming back (under the same id, or a
 * fresh one from the same address, see readPathKey) does not wipe its record: recent failures and
 * stalls. Trust is not carried: a peer that comes back earns it again.
 */
export interface PeerRecord {
  failureScore: number;
  failureAt: number;
  stall: { rate: number; at: number; memoryMs: number } | undefined;
  stallsInARow: number;
}

/** Options of one request. */
export interface RequestOptions {
  /** Bytes of the piece already received elsewhere: the peer sends the rest only. */
  prefix?: Uint8Array;
  /** How soon (ms) the piece is needed; the peer serves its most urgent request first. */
  deadlineMs?: number;
}

interface Download {
  sentAt: number;
  asset: string;
  piece: number;
  /** The whole piece being assembled; bytes [0, next) are in. */
  buffer: Uint8Array;
  next: number;
  /** Bytes this request asked for (the piece minus its prefix). */
  asked: number;
  deadlineMs: number;
  /** Nothing else was outstanding at this peer when it was sent: its first chunk measures the round trip. */
  measuresRtt: boolean;
  firstChunkAt: number | undefined;
  /** This peer's bytesDownloaded when the request was sent, then just before its first chunk: what its line sent us since (see #noteGivenUp). */
  lineBytesAt: number;
  /** Cancelled because the player cannot wait, not because the peer stalled (see `excuse`). */
  excused: boolean;
  resolve(data: Uint8Array): void;
  reject(error: PeerfetchError): void;
}

/** When a download is due (performance.now() time): the peer sends the one due first first. */
function dueAt(download: Download): number {
  return download.sentAt + download.deadlineMs;
}

/**
 * A piece still arriving from the origin at this page's worker, sent to peers as its bytes come
 * (see Swarm.markArriving): `bytes` is the whole piece's buffer, of which the first `available`
 * are there. `more()` resolves once more are, or the piece `failed` (no more will come).
 */
export interface ArrivingPiece {
  readonly bytes: Uint8Array;
  readonly available: number;
  readonly failed: boolean;
  more(): Promise<void>;
}

/** One piece being sent to the remote peer. */
interface Upload {
  id: number;
  asset: string;
  piece: number;
  /** Next byte of the piece to send. */
  offset: number;
  /** When it must be there (ms, performance.now() time): the most urgent upload is served first. */
  due: number;
  data: Uint8Array | ArrivingPiece | undefined;
  /** Waiting for more of an arriving piece: skipped until it comes, so that it holds no other upload back. */
  starved: boolean;
}

/**
 * One connected remote peer: the peerfetch peer protocol over one WebRTC data channel.
 * Downloads are pull-based (`request`); uploads are interleaved chunk by chunk, the most urgent
 * request first, through a short send queue (SendPacer) so that a cancel or an urgent request
 * takes effect at once on a slow uplink.
 */
export class Peer {
  readonly id: string;
  readonly connection: RTCPeerConnection;
  readonly #channel: RTCDataChannel;
  readonly #handlers: PeerHandlers;
  readonly #have = new Map<string, Bitfield>();
  /** Haves for assets we do not know yet, per asset id: single pieces announced after the hello. */
  readonly #pending = new Map<string, { pieces: Set<number> }>();
  /**
   * The hello's holdings of assets we do not know yet (a large site's catalog is learnt asset by
   * asset as they are requested): taken when we learn the asset (see `adopt`). Bounded by the
   * hello's size (MAX_HOLDINGS_BYTES), and replaced, not grown, by a later hello.
   */
  #helloHoldings = new Map<string, PieceRuns>();
  /** Where this peer's player reads, per asset id, and when it said so (see `reading`). */
  readonly #reading = new Map<string, { piece: number; at: number }>();
  readonly #downloads = new Map<number, Download>();
  readonly #uploads = new Map<number, Upload>();
  readonly #pacer = new SendPacer();
  #uploading = false;
  #nextRequestId = 1;
  #closed = false;
  /** Bytes received from / sent to this peer, for per-peer throughput. */
  bytesDownloaded = 0;
  bytesUploaded = 0;
  /** Measured download rate in bytes per second (moving average over busy time). */
  throughput = ASSUMED_THROUGHPUT_BPS;
  #throughputMeasured = false;
  /** Whether `throughput` was measured (else it is the assumed ASSUMED_THROUGHPUT_BPS). */
  get throughputMeasured(): boolean {
    return this.#throughputMeasured;
  }
  /** Measured round-trip time (ms): a request sent to an idle peer until its first chunk. */
  rttMs = ASSUMED_RTT_MS;
  #rttMeasured = false;
  /** Busy time and bytes since the last throughput sample; the arrival of the last chunk while busy. */
  #window = { bytes: 0, ms: 0 };
  #lastChunkAt: number | undefined;
  /** Failure count at `#failureAt`, decaying with FAILURE_HALF_LIFE_MS. */
  #failureScore = 0;
  #failureAt = 0;
  /** The rate (bytes/s) of the last request given up on while this peer was serving it, when, and for how long it counts. */
  #stall: { rate: number; at: number; memoryMs: number } | undefined;
  /** When the line last completed a piece of ours, and its bytesDownloaded then (see #noteGivenUp). */
  #lastDelivery: { at: number; lineBytes: number } | undefined;
  /** What the next `received` report to the peer says: since when, the bytes, the least delay of a full chunk. */
  #receipt: { since: number; bytes: number; delayMs: number; lastAt: number } | undefined;
  /** Stalls since the last piece this peer delivered (see MAX_STALL_MEMORY_MS). */
  #stallsInARow = 0;
  /** Pieces from this peer that passed their hash: a peer with none is not trusted yet (see `trusted`). */
  #verifiedPieces = 0;
  /** Closed for breaking the protocol (garbage, a text frame, a flood): the swarm bans it like a bad piece. */
  #misbehaved = false;
  /** When its first hello arrived (performance.now() time); undefined before. */
  #greetedAt: number | undefined;
  /**
   * Since when (performance.now() time) we wait for it to say what it holds (see holdingsPending):
   * its first hello, or a hello answering our `reading` that asked; undefined when we do not.
   */
  #holdingsDueSince: number | undefined;
  /** Tells the engine when a wait for its holdings ended without them (HOLDINGS_WAIT_MS). */
  #holdingsTimer: ReturnType<typeof setTimeout> | undefined;
  /** Closes the peer when its hello does not come (HELLO_DEADLINE_MS). */
  #helloDeadline: ReturnType<typeof setTimeout> | undefined;
  /** Our `reading` messages that asked for a hello, and how many of them its last hello answered. */
  #asksSent = 0;
  #asksAnswered = 0;
  /** Its `reading` messages that asked for a hello (our hellos say how many they answer). */
  #asksReceived = 0;
  /** Token bucket of control messages (see CONTROL_MESSAGES_PER_S): tokens left, at performance.now() time. */
  #controlBudget = { tokens: CONTROL_MESSAGES_BURST, at: performance.now() };

  /** Requests in flight to this peer. */
  get inFlight(): number {
    return this.#downloads.size;
  }

  /**
   * How much this peer's messages make us keep (its queued requests, the unknown assets and
   * pieces of them parked for it): bounded by MAX_QUEUED_UPLOADS, MAX_PENDING_ASSETS and
   * MAX_PENDING_PIECES whatever it sends. For tests and diagnostics.
   */
  get keptState(): { uploads: number; parkedAssets: number; parkedPieces: number; helloAssets: number; readingHeads: number } {
    let parkedPieces = 0;
    for (const pending of this.#pending.values()) parkedPieces += pending.pieces.size;
    return { uploads: this.#uploads.size, parkedAssets: this.#pending.size, parkedPieces, helloAssets: this.#helloHoldings.size, readingHeads: this.#reading.size };
  }

  /**
   * Whether this peer delivered a piece that passed its hash. The player does not ask a peer that
   * has not (see Swarm: it waits on one only briefly, through a prefetch already asked of it):
   * anyone can connect and claim every piece, so a fresh peer earns trust on prefetches, where a
   * stall costs nothing but a retry elsewhere.
   */
  get trusted(): boolean {
    return this.#verifiedPieces > 0;
  }

  /** A piece from this peer passed its hash (the swarm verifies, the peer only assembles). */
  noteVerified(): void {
    this.#verifiedPieces++;
    this.#stallsInARow = 0;
  }

  /**
   * Whether we wait for this peer to say what it holds: its hello, or its answer to our `reading`
   * that asked (a peer tells us what it holds of a stream only once we said we read it), has not
   * come, for less than HOLDINGS_WAIT_MS. Meanwhile it holds nothing more as far as we know, which
   * is not the same as holding nothing more (a channel opens a round trip before the hello comes):
   * the plan fetches nothing from the origin that the peer may hold. Past the wait the plan goes on
   * without it (`onHave` says when).
   */
  get holdingsPending(): boolean {
    return this.#holdingsDueSince !== undefined && performance.now() - this.#holdingsDueSince < HOLDINGS_WAIT_MS;
  }

  /**
   * Whether this peer may not have said yet where its player reads: its first hello came less than
   * HOLDINGS_WAIT_MS ago, and no `reading` since. A page sends its `reading` messages right after its
   * hello, but each message is a task of its own here, and the plan that runs on the hello sees what
   * the peer holds before where it reads (see Scheduler's #prefetchSources).
   */
  get readingPending(): boolean {
    // Before its hello the comparison with undefined is false.
    return this.#reading.size === 0 && this.#greetedAt! > performance.now() - HOLDINGS_WAIT_MS;
  }

  /** Whether the peer broke the protocol (closed with reason 'invalid message', 'text frame' or 'flooding'). */
  get misbehaved(): boolean {
    return this.#misbehaved;
  }

  /** This peer's failures and stalls, for the swarm to remember after it leaves. */
  record(): PeerRecord {
    return { failureScore: this.#failureScore, failureAt: this.#failureAt, stall: this.#stall, stallsInARow: this.#stallsInARow };
  }

  /** Takes over what the swarm remembered of this peer (under another id, or an earlier connection). */
  inherit(record: PeerRecord): void {
    this.#failureScore = record.failureScore;
    this.#failureAt = record.failureAt;
    this.#stall = record.stall;
    this.#stallsInARow = record.stallsInARow;
  }

  /** Whether there is anything worth remembering: failures not yet decayed, or a stall still in memory. */
  get blemished(): boolean {
    const stall = this.#stall;
    return this.failures >= 0.1 || (stall !== undefined && performance.now() - stall.at < stall.memoryMs);
  }

  /** Recent failures (rejected, timed out, closed requests), decaying by half every FAILURE_HALF_LIFE_MS; lowers the rank. */
  get failures(): number {
    return this.#failureScore * 0.5 ** ((performance.now() - this.#failureAt) / FAILURE_HALF_LIFE_MS);
  }

  #addFailure(): void {
    this.#failureScore = this.failures + 1;
    this.#failureAt = performance.now();
  }

  /**
   * Expected seconds until this peer delivers `bytes` more: a round trip, then what it sends
   * first (the rest of outstanding requests due no later than `deadlineMs` from now; all of them
   * when it is not given), then these bytes, at its measured rate. Lower is better. By when each
   * is due, not by the deadline it was sent with: the peer sends the request due first, so a
   * prefetch asked with 10 s six seconds ago goes before one asked now with 5 s (as finishMs counts
   * it); counted after it, the plan's room on a line and the player's `slow-peers` check (Swarm)
   * saw less queued ahead of a piece than the line sends first.
   */
  expectedDelay(bytes: number, deadlineMs?: number): number {
    const ahead = this.#bytesDueBy(deadlineMs === undefined ? Infinity : performance.now() + deadlineMs, true);
    const rate = Math.max(this.#currentThroughput(), 1);
    const queueRate = this.#throughputMeasured ? rate : Math.min(rate, UNMEASURED_QUEUE_BPS);
    return this.rttMs / 1000 + ahead / queueRate + bytes / rate + this.failures * FAILURE_PENALTY_S;
  }

  /**
   * Expected ms until this peer has sent us the rest of `piece` of `asset`, which we asked it for:
   * first what it sends before it (our outstanding requests due earlier: the peer serves the most
   * urgent first), then the rest of the piece, at its current rate; plus a round trip while nothing
   * of the piece has arrived. Undefined when no request for the piece is outstanding, or before
   * the peer's rate was measured (the assumed rate says nothing about this line: a LAN peer would
   * look slower than the origin with a few prefetches queued).
   */
  finishMs(asset: string, piece: number): number | undefined {
    if (!this.#throughputMeasured) return undefined;
    let target: Download | undefined;
    for (const download of this.#downloads.values()) {
      if (download.asset === asset && download.piece === piece && (!target || download.next > target.next)) target = download;
    }
    if (!target) return undefined;
    const bytes = target.buffer.length - target.next + this.#bytesDueBy(dueAt(target), false);
    const roundTripMs = target.firstChunkAt === undefined ? this.rttMs : 0;
    return roundTripMs + (bytes * 1000) / Math.max(this.#currentThroughput(), 1);
  }

  /**
   * How long (ms) this line has sent us nothing while our requests wait: since its last chunk, or
   * since the oldest outstanding request when none came since; 0 with nothing outstanding. The
   * rate behind finishMs moves only when chunks arrive, so a silent line keeps its last estimate.
   */
  get silentMs(): number {
    let since = this.#lastChunkAt;
    if (since === undefined) for (const download of this.#downloads.values()) since = Math.min(since ?? Infinity, download.sentAt);
    return since === undefined ? 0 : performance.now() - since;
  }

  /**
   * Bytes still to come of our requests at this peer due before `time` (performance.now() time),
   * or at it too when `orAt`. The peer sends the most urgent request first, so these come before
   * a piece due at `time`; a new request due at the same time as one outstanding comes after it,
   * and an outstanding one (with `orAt` false, itself left out) does not wait for its equals.
   */
  #bytesDueBy(time: number, orAt: boolean): number {
    let bytes = 0;
    for (const download of this.#downloads.values()) {
      const due = dueAt(download);
      if (orAt ? due <= time : due < time) bytes += download.buffer.length - download.next;
    }
    return bytes;
  }

  /** The moving average, or a recent stall's rate when lower (a congested uplink shows there first). */
  #currentThroughput(): number {
    const stall = this.#stall;
    if (!stall || performance.now() - stall.at > stall.memoryMs) return this.throughput;
    return Math.min(this.throughput, stall.rate);
  }

  /**
   * A request is given up on (a deadline, a cancel): when the peer was serving it (the most
   * urgent outstanding one, which the peer sends first) for long enough, what its line sent us
   * meanwhile is the peer's rate now: of this request and of any other of ours it sent meanwhile
   * (one due earlier that came after this one's first chunk took the line for a while).
   */
  #noteGivenUp(download: Download): void {
    // While a request due earlier was outstanding, the peer was (rightly) sending that one: this
    // request's slow progress says nothing about the line (measured: on a 2 Mbit/s uplink the
    // third of three pieces asked for together looked like a stall and the peer was shunned).
    if (this.#bytesDueBy(dueAt(download), false) > 0) return;
    // Served from its first chunk on (before that, the round trip and what was sent ahead of it),
    // or, with none, from when the line last completed a piece of ours after it was asked: a line
    // that paused for 2.5 s after a fresh connection's first burst completed the piece it paused
    // in, and the requests queued behind it, given up on a moment later, measured its rate over
    // the pause and had it refused (uplinks browser test: the seeder then carried 11% of the video).
    const delivered = download.firstChunkAt === undefined && this.#lastDelivery && this.#lastDelivery.at > download.sentAt ? this.#lastDelivery : undefined;
    const servedSince = download.firstChunkAt ?? delivered?.at ?? download.sentAt;
    const elapsedMs = performance.now() - servedSince;
    if (elapsedMs < STALL_MIN_ELAPSED_MS) return;
    // Requests given up on together are one stall; a stall after the memory of the last one ran
    // out (the peer got another chance and failed it) is the next in a row.
    const previous = this.#stall;
    if (!previous || performance.now() - previous.at > previous.memoryMs) this.#stallsInARow++;
    const firstMemoryMs = this.#throughputMeasured ? MEASURED_LINE_STALL_MEMORY_MS : STALL_MEMORY_MS;
    const memoryMs = Math.min(MAX_STALL_MEMORY_MS, firstMemoryMs * 2 ** (this.#stallsInARow - 1));
    // The line's bytes, not this request's: a piece handed over to the origin while the player
    // waited for it had often waited behind another piece, and measured on its own bytes the only
    // line ahead of a viewer looked several times slower than it was, for STALL_MEMORY_MS.
    this.#stall = { rate: ((this.bytesDownloaded - (delivered?.lineBytes ?? download.lineBytesAt)) * 1000) / elapsedMs, at: performance.now(), memoryMs };
  }

  constructor(id: string, connection: RTCPeerConnection, channel: RTCDataChannel, handlers: PeerHandlers) {
    this.id = id;
    this.connection = connection;
    this.#channel = channel;
    this.#handlers = handlers;
    channel.binaryType = 'arraybuffer';
    channel.bufferedAmountLowThreshold = this.#pacer.lowThreshold;
    const early = takeEarlyMessages(channel);
    channel.onmessage = (event) => this.#onFrame(event.data);
    // Replayed after the constructor, so the swarm has registered this peer before its hello is handled.
    if (early.length > 0) queueMicrotask(() => early.forEach((data) => this.#onFrame(data)));
    channel.onclose = () => this.close('channel closed');
    channel.onerror = () => this.close('channel error');
    connection.onconnectionstatechange = () => {
      if (connection.connectionState === 'failed' || connection.connectionState === 'closed') this.close('connection lost');
    };
    this.#awaitHoldings();
    this.#helloDeadline = setTimeout(() => {
      if (this.#greetedAt === undefined) this.close('no hello');
    }, HELLO_DEADLINE_MS);
  }

  /**
   * Starts waiting for the peer to say what it holds (see holdingsPending), unless a wait is under
   * way: a hello answers every ask sent before it, so the wait ends with the first hello that
   * answers them all, or HOLDINGS_WAIT_MS after it began.
   */
  #awaitHoldings(): void {
    if (this.holdingsPending) return;
    const since = performance.now();
    this.#holdingsDueSince = since;
    clearTimeout(this.#holdingsTimer);
    this.#holdingsTimer = setTimeout(() => {
      if (this.#holdingsDueSince === since && !this.#closed) this.#handlers.onHave(this);
    }, HOLDINGS_WAIT_MS);
  }

  /**
   * Sends our hello (protocol version and what we hold); must be the first message. Sent again
   * later, it replaces what the peer knew we hold (see Swarm.setSeeding).
   */
  hello(holdings: Holdings): void {
    this.#send({ type: 'hello', version: PEER_PROTOCOL_VERSION, holdings, asks: this.#asksReceived });
  }

  /** Refuses every queued upload (`not-found`, so the peer asks us no more for those pieces): we stopped seeding. */
  refuseUploads(): void {
    for (const id of [...this.#uploads.keys()]) this.#send({ type: 'reject', id, reason: 'not-found' });
    this.#uploads.clear();
  }

  announceHave(asset: string, piece: number): void {
    this.#send({ type: 'have', asset, piece });
  }

  /**
   * Tells the peer where our player now reads (see the `reading` message). `ask`: we just began
   * the stream (or connected): the peer answers with a hello, and we wait for it (holdingsPending).
   * `origin`: we are fetching the piece from the origin ourselves.
   */
  announceReading(asset: string, piece: number, ask = false, origin = false): void {
    if (ask && !this.#closed) {
      this.#asksSent++;
      this.#awaitHoldings();
    }
    this.#send({ type: 'reading', asset, piece, ...(ask && { ask }), ...(origin && { origin }) });
  }

  /**
   * Where this peer's player read, per asset id, said within the last `maxAgeMs`: the piece of its
   * latest `reading` of each (at most MAX_READING_HEADS assets).
   */
  readingHeads(maxAgeMs: number, now = performance.now()): Array<{ asset: string; piece: number }> {
    const heads: Array<{ asset: string; piece: number }> = [];
    for (const [asset, { piece, at }] of this.#reading) if (now - at <= maxAgeMs) heads.push({ asset, piece });
    return heads;
  }

  /** Tells the peer we no longer hold `piece` (evicted or cleared), so it stops asking us for it. */
  announceLost(asset: string, piece: number): void {
    this.#send({ type: 'lost', asset, piece });
  }

  /** Tells the peer our manifest now lists `asset`, a new live segment (see the `listed` message). */
  announceListed(asset: string): void {
    this.#send({ type: 'listed', asset });
  }

  has(asset: string, piece: number): boolean {
    return this.#have.get(asset)?.has(piece) ?? false;
  }

  /** We now know `asset` (our manifest lists it, or its entry was loaded): takes the haves this peer sent for it before. */
  adopt(asset: string): void {
    const runs = this.#helloHoldings.get(asset);
    this.#helloHoldings.delete(asset);
    if (runs) this.#setHave(asset, runs);
    const pending = this.#pending.get(asset);
    this.#pending.delete(asset);
    if (pending) for (const piece of pending.pieces) this.#addHave(asset, piece);
  }

  /** `asset` left our manifest: forgets what this peer holds of it. */
  forget(asset: string): void {
    this.#have.delete(asset);
    this.#pending.delete(asset);
    this.#helloHoldings.delete(asset);
  }

  #park(asset: string): { pieces: Set<number> } {
    let pending = this.#pending.get(asset);
    if (!pending) {
      if (this.#pending.size >= MAX_PENDING_ASSETS) this.#pending.delete(this.#pending.keys().next().value!);
      this.#pending.set(asset, (pending = { pieces: new Set() }));
      // Said once per asset: its hello may have named it already.
      if (!this.#helloHoldings.has(asset)) this.#handlers.onUnknownAsset(this, asset);
    }
    return pending;
  }

  /** Records one have; false when it changes nothing (a piece past the asset's end, or one already announced). */
  #addHave(asset: string, piece: number): boolean {
    const count = this.#handlers.pieceCount(asset);
    if (count === undefined || piece >= count) return false;
    let bits = this.#have.get(asset);
    if (!bits) this.#have.set(asset, (bits = new Bitfield(count)));
    if (bits.has(piece)) return false;
    bits.set(piece);
    return true;
  }

  /**
   * Our player cannot wait for this peer to finish `piece` (its buffer would run out first, see
   * Swarm.fetchPiece): another source takes it over, and cancelling our request for it measures no
   * stall. The line was sending at the rate the decision was made on; marked slow on the half
   * second since its last chunk, the only peer ahead of a viewer was refused for 15 s (WAN
   * benchmark: a stall of 31 kB/s on a line measured at 111 kB/s, then every piece it held went
   * to the origin as too slow, and the viewer fetched the pieces it owned of them for the swarm).
   */
  excuse(asset: string, piece: number): void {
    for (const download of this.#downloads.values()) if (download.asset === asset && download.piece === piece) download.excused = true;
  }

  /** The bytes of `piece` received so far from this peer's outstanding request for it (a copy), if any. */
  partial(asset: string, piece: number): Uint8Array | undefined {
    let best: Download | undefined;
    for (const download of this.#downloads.values()) {
      if (download.asset === asset && download.piece === piece && download.next > (best?.next ?? 0)) best = download;
    }
    return best && best.buffer.slice(0, best.next);
  }

  /**
   * Requests a piece (the rest of it after `options.prefix`); resolves with the whole piece, not
   * yet verified. Abort to cancel it at the peer too. A request that ends without the whole piece
   * (aborted, rejected, peer gone) rejects with the bytes received so far, prefix included, in
   * `error.details.partial` (a Uint8Array, absent when none), so that another source can finish it.
   */
  request(asset: string, piece: number, expectedBytes: number, signal: AbortSignal, options: RequestOptions = {}): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new PeerfetchError('peer-closed', 'peer is closed', { peer: this.id }));
    const prefix = options.prefix && options.prefix.length < expectedBytes ? options.prefix : undefined;
    const deadlineMs = Math.min(options.deadlineMs ?? DEFAULT_UPLOAD_DEADLINE_MS, MAX_REQUEST_DEADLINE_MS);
    const id = this.#nextRequestId++;
    return new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = () => {
        const download = this.#downloads.get(id);
        if (!download) return;
        if (!download.excused) this.#noteGivenUp(download);
        this.#forget(id);
        this.#send({ type: 'cancel', id });
        download.reject(new PeerfetchError('aborted', 'request cancelled', { peer: this.id }));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const settle = () => signal.removeEventListener('abort', onAbort);
      const buffer = new Uint8Array(expectedBytes);
      if (prefix) buffer.set(prefix);
      const from = prefix?.length ?? 0;
      const download: Download = {
        sentAt: performance.now(),
        asset,
        piece,
        buffer,
        next: from,
        asked: expectedBytes - from,
        deadlineMs,
        measuresRtt: this.#downloads.size === 0,
        firstChunkAt: undefined,
        lineBytesAt: this.bytesDownloaded,
        excused: false,
        resolve: (data) => (settle(), resolve(data)),
        reject: (error) => {
          settle();
          if (error.code !== 'aborted' && error.code !== 'codec-invalid' && error.details.reason !== 'not-found') this.#addFailure();
          if (download.next > 0 && error.code !== 'codec-invalid') error.details.partial = download.buffer.slice(0, download.next);
          reject(error);
        },
      };
      this.#downloads.set(id, download);
      this.#send({ type: 'request', id, asset, piece, ...(from > 0 ? { from } : {}), deadlineMs });
    });
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#holdingsTimer);
    clearTimeout(this.#helloDeadline);
    const downloads = [...this.#downloads.values()];
    this.#downloads.clear();
    for (const download of downloads) {
      download.reject(new PeerfetchError('peer-closed', `peer closed: ${reason}`, { peer: this.id }));
    }
    this.#uploads.clear();
    this.#handlers.uploadTurn?.idle();
    try {
      this.#channel.close();
      this.connection.close();
    } catch {
      // Already closed by the browser.
    }
    this.#handlers.onClose(this, reason);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Removes a finished or abandoned download; a peer with nothing outstanding is no longer busy. */
  #forget(id: number): void {
    this.#downloads.delete(id);
    if (this.#downloads.size === 0) this.#lastChunkAt = undefined;
  }

  #send(message: PeerMessage): void {
    if (this.#closed || this.#channel.readyState !== 'open') return;
    try {
      this.#channel.send(encodePeerMessage(message) as Uint8Array<ArrayBuffer>);
    } catch {
      this.close('send failed');
    }
  }

  /** Closes a peer that broke the protocol; the swarm bans it (see `misbehaved`). */
  #closeMisbehaving(reason: string): void {
    this.#misbehaved = true;
    this.close(reason);
  }

  #onFrame(data: unknown): void {
    if (this.#closed) return;
    if (!(data instanceof ArrayBuffer)) return this.#closeMisbehaving('text frame');
    let message: PeerMessage;
    try {
      message = decodePeerMessage(new Uint8Array(data));
    } catch {
      // A peer that speaks garbage is not worth keeping (and may be hostile).
      return this.#closeMisbehaving('invalid message');
    }
    if ((message.type !== 'chunk' || !this.#downloads.has(message.id)) && !this.#takeControlToken()) return this.#closeMisbehaving('flooding');
    switch (message.type) {
      case 'hello':
        if (message.version !== PEER_PROTOCOL_VERSION) return this.close('protocol version mismatch');
        this.#onHello(message.holdings);
        this.#greetedAt ??= performance.now();
        // A hello without the count is from a peer that lists all it holds: nothing left to wait for.
        this.#asksAnswered = Math.max(this.#asksAnswered, message.asks ?? this.#asksSent);
        if (this.#asksAnswered >= this.#asksSent) this.#holdingsDueSince = undefined;
        return this.#handlers.onHave(this);
      case 'have': {
        if (this.#handlers.pieceCount(message.asset) === undefined) {
          if (message.piece < MAX_PENDING_PIECES) this.#park(message.asset).pieces.add(message.piece);
          return;
        }
        // A have that changes nothing (a repeat, as a flooding peer sends them) costs no planning.
        if (!this.#addHave(message.asset, message.piece)) return;
        return this.#handlers.onHave(this);
      }
      case 'reading': {
        // Re-inserted as the newest; the oldest head goes when a peer names too many assets.
        this.#reading.delete(message.asset);
        this.#reading.set(message.asset, { piece: message.piece, at: performance.now() });
        if (this.#reading.size > MAX_READING_HEADS) this.#reading.delete(this.#reading.keys().next().value!);
        if (message.ask) this.#asksReceived++;
        this.#handlers.onReading?.(this, message.asset, message.ask === true, message.origin && message.piece);
        return this.#handlers.onHave(this);
      }
      case 'listed':
        // Only news for us when our manifest lacks the asset: parked like a have, the swarm is told
        // once per asset and peer (the orchestrator reloads the manifest from the origin).
        if (this.#handlers.pieceCount(message.asset) === undefined) this.#park(message.asset);
        return;
      case 'lost': {
        const bits = this.#have.get(message.asset);
        if (!bits?.has(message.piece)) return;
        bits.clear(message.piece);
        return this.#handlers.onHave(this);
      }
      case 'request':
        if (this.#uploads.size >= MAX_QUEUED_UPLOADS || this.#uploads.has(message.id)) {
          return this.#send({ type: 'reject', id: message.id, reason: 'busy' });
        }
        this.#uploads.set(message.id, {
          id: message.id,
          asset: message.asset,
          piece: message.piece,
          offset: message.from ?? 0,
          due: performance.now() + (message.deadlineMs ?? DEFAULT_UPLOAD_DEADLINE_MS),
          data: undefined,
          starved: false,
        });
        return void this.#drainUploads();
      case 'cancel':
        // Whatever was not handed to the channel yet is never sent.
        this.#uploads.delete(message.id);
        return;
      case 'chunk':
        return this.#onChunk(message);
      case 'received':
        // A report from a peer we never sent anything is not about our line.
        if (this.bytesUploaded > 0) this.#handlers.onReceived?.(this, message.delayMs, message.bytes, message.ms);
        return;
      case 'reject': {
        const download = this.#downloads.get(message.id);
        if (!download) return;
        this.#forget(message.id);
        if (message.reason === 'not-found') {
          // It no longer holds the piece (evicted before its `lost` reached us): ask it no more.
          this.#have.get(download.asset)?.clear(download.piece);
          this.#handlers.onHave(this);
        }
        return download.reject(
          new PeerfetchError('peer-closed', `peer rejected the request: ${message.reason}`, { peer: this.id, reason: message.reason }),
        );
      }
    }
  }

  /** Takes one message from the control budget; false when the peer is over it. */
  #takeControlToken(): boolean {
    const now = performance.now();
    const budget = this.#controlBudget;
    budget.tokens = Math.min(CONTROL_MESSAGES_BURST, budget.tokens + (Math.max(0, now - budget.at) * CONTROL_MESSAGES_PER_S) / 1000);
    budget.at = now;
    if (budget.tokens < 1) return false;
    budget.tokens--;
    return true;
  }

  /** A hello replaces what we knew this peer to hold; holdings of assets we do not know yet wait for `adopt`. */
  #onHello(holdings: Holdings): void {
    this.#have.clear();
    this.#helloHoldings = new Map();
    let unknown: string | undefined;
    for (const [asset, runs] of holdings) {
      if (this.#handlers.pieceCount(asset) === undefined) {
        this.#helloHoldings.set(asset, runs);
        unknown ??= asset;
      } else {
        this.#setHave(asset, runs);
      }
    }
    // Once per hello, not per asset: on a large site most of a peer's assets are unknown to us.
    if (unknown !== undefined) this.#handlers.onUnknownAsset(this, unknown);
  }

  /** Records the pieces of `runs` as held (those past the asset's end are a lie and ignored). */
  #setHave(asset: string, runs: PieceRuns): void {
    const count = this.#handlers.pieceCount(asset);
    if (count === undefined) return;
    const bits = new Bitfield(count);
    forEachRunPiece(runs, count, (piece) => bits.set(piece));
    this.#have.set(asset, bits);
  }

  #onChunk(chunk: Extract<PeerMessage, { type: 'chunk' }>): void {
    const download = this.#downloads.get(chunk.id);
    if (!download) return; // Cancelled or already done: late chunks are expected, not an error.
    // Our own uploads send a piece in order; anything else (wrong size, a gap, an overlap) is a broken or hostile peer.
    if (chunk.total !== download.buffer.length || chunk.offset !== download.next) {
      this.#forget(chunk.id);
      download.reject(new PeerfetchError('codec-invalid', 'peer sent a chunk that does not continue the piece', { peer: this.id }));
      return;
    }
    const now = performance.now();
    if (download.firstChunkAt === undefined) {
      download.firstChunkAt = now;
      download.lineBytesAt = this.bytesDownloaded;
      if (download.measuresRtt) this.#noteRtt(now - download.sentAt);
    }
    if (this.#lastChunkAt !== undefined) this.#noteBusy(chunk.data.length, now - this.#lastChunkAt);
    this.#lastChunkAt = now;
    download.buffer.set(chunk.data, chunk.offset);
    download.next += chunk.data.length;
    this.bytesDownloaded += chunk.data.length;
    if (chunk.at !== undefined) this.#noteReceipt(chunk.data.length, chunk.at, now);
    if (download.next >= download.buffer.length) {
      this.#forget(chunk.id);
      // A request completed since the stall was measured: the line delivers again, and the moving
      // average (busy-time samples, slow ones included) is the estimate once more. Otherwise a peer
      // that stalled once is refused for STALL_MEMORY_MS while it delivers fine (WAN benchmark: a
      // viewer on a 2 Mbit/s home line refused the only peer ahead of it for 15 s after one
      // request had waited behind another).
      if (this.#stall && this.#stall.at < now) this.#stall = undefined;
      this.#lastDelivery = { at: now, lineBytes: this.bytesDownloaded };
      download.resolve(download.buffer);
    }
  }

  /**
   * Tells the peer, every RECEIVED_REPORT_MS, how its chunks reached us: the bytes since the last
   * report and the least one-way delay of a full chunk (a short last chunk of a piece spends less
   * time on the line and would lower the base its queueing is measured from).
   */
  #noteReceipt(bytes: number, sentAt: number, now: number): void {
    const delayMs = bytes === CHUNK_SIZE ? Math.round(epochMs(now) - sentAt) : Infinity;
    const receipt = this.#receipt;
    if (!receipt || now - receipt.lastAt > RECEIVED_IDLE_MS) {
      // The first chunk opens the span; its bytes came before it. Its delay is reported at once,
      // alone: a line sending under a chunk per RECEIVED_IDLE_MS never completes a span, and its
      // pace, cut to its floor, heard nothing and never grew again (mixed swarm: a 2 Mbit/s line
      // held at 16 kB/s for 15 s after its first overshoot, the viewer behind it 57% from peers
      // instead of 95%). It also dates the line's base from a chunk sent into an idle line.
      this.#receipt = { since: now, bytes: 0, delayMs, lastAt: now };
      if (delayMs !== Infinity) this.#send({ type: 'received', bytes: 0, ms: 0, delayMs });
      return;
    }
    receipt.bytes += bytes;
    receipt.delayMs = Math.min(receipt.delayMs, delayMs);
    receipt.lastAt = now;
    if (now - receipt.since < RECEIVED_REPORT_MS || receipt.delayMs === Infinity) return;
    this.#send({ type: 'received', bytes: receipt.bytes, ms: Math.round(now - receipt.since), delayMs: receipt.delayMs });
    this.#receipt = { since: now, bytes: 0, delayMs: Infinity, lastAt: now };
  }

  #noteRtt(ms: number): void {
    this.rttMs = this.#rttMeasured ? this.rttMs * (1 - THROUGHPUT_SMOOTHING) + ms * THROUGHPUT_SMOOTHING : ms;
    this.#rttMeasured = true;
  }

  /**
   * `bytes` arrived `ms` after the previous chunk while a request was outstanding throughout:
   * busy time of the peer's line. Every RATE_WINDOW_MS of it is one throughput sample, so the
   * rate excludes round trips and idle time, and counts requests queued behind each other once.
   */
  #noteBusy(bytes: number, ms: number): void {
    this.#window.bytes += bytes;
    this.#window.ms += ms;
    if (this.#window.ms < RATE_WINDOW_MS) return;
    const rate = (this.#window.bytes * 1000) / this.#window.ms;
    this.throughput = this.#throughputMeasured ? this.throughput * (1 - THROUGHPUT_SMOOTHING) + rate * THROUGHPUT_SMOOTHING : rate;
    this.#throughputMeasured = true;
    this.#window = { bytes: 0, ms: 0 };
  }

  /** The queued upload to send a chunk of next: the most urgent, then the oldest request. */
  #nextUpload(): Upload | undefined {
    let next: Upload | undefined;
    for (const upload of this.#uploads.values()) if (!upload.starved && (!next || upload.due < next.due)) next = upload;
    return next;
  }

  /**
   * Sends queued uploads chunk by chunk, always a chunk of the most urgent one, keeping the
   * channel's queue at the pacer's small target: a cancel stops a piece at the next chunk, and
   * an urgent request overtakes a prefetch within one queue's worth of line time.
   */
  async #drainUploads(): Promise<void> {
    if (this.#uploading) return;
    this.#uploading = true;
    try {
      for (let upload = this.#nextUpload(); upload && !this.#closed; upload = this.#nextUpload()) {
        if (!upload.data) {
          const data = await this.#handlers.readPiece(upload.asset, upload.piece).catch(() => undefined);
          if (!this.#uploads.has(upload.id)) continue; // cancelled meanwhile
          upload.data = data;
        }
        const source = upload.data;
        const arriving = source instanceof Uint8Array ? undefined : source;
        const whole = source instanceof Uint8Array ? source : source?.bytes;
        // An arriving piece that failed ends its uploads like a piece not held: the asker keeps
        // what it received and takes the rest elsewhere (see `request`).
        if (!whole || upload.offset >= whole.length || arriving?.failed) {
          this.#uploads.delete(upload.id);
          this.#send({ type: 'reject', id: upload.id, reason: 'not-found' });
          continue;
        }
        const available = arriving ? arriving.available : whole.length;
        if (arriving && upload.offset >= available) {
          this.#starve(upload, arriving);
          continue;
        }
        if (this.#channel.bufferedAmount > this.#pacer.target) {
          await this.#queueDrained();
          continue; // a cancel or a more urgent request may have come meanwhile
        }
        // Another peer's upload due earlier is being sent over the same line: it goes first.
        if (await this.#handlers.uploadTurn?.wait(upload.due)) continue;
        const chunk = whole.subarray(upload.offset, Math.min(upload.offset + CHUNK_SIZE, available));
        await this.#handlers.beforeUpload(chunk.length);
        if (this.#closed) break;
        if (!this.#uploads.has(upload.id)) continue; // cancelled while waiting for the upload cap
        this.#send({ type: 'chunk', id: upload.id, offset: upload.offset, total: whole.length, data: chunk, at: Math.round(epochMs(performance.now())) });
        this.#handlers.uploadTurn?.sent(upload.due);
        upload.offset += chunk.length;
        if (upload.offset >= whole.length) this.#uploads.delete(upload.id);
        this.bytesUploaded += chunk.length;
        this.#handlers.onUploaded(this, chunk.length, arriving !== undefined);
      }
    } finally {
      this.#uploading = false;
      this.#handlers.uploadTurn?.idle();
    }
  }

  /**
   * Sets aside an upload that has sent all of its arriving piece that is there, until more comes:
   * the line meanwhile sends other uploads (or idles, giving its turn to other peers' uploads).
   */
  #starve(upload: Upload, arriving: ArrivingPiece): void {
    upload.starved = true;
    void arriving.more().then(() => {
      upload.starved = false;
      if (this.#uploads.has(upload.id)) void this.#drainUploads();
    });
  }

  /** Waits until the channel's queue is down to the pacer's low threshold, and tells the pacer how fast it drained. */
  async #queueDrained(): Promise<void> {
    const before = this.#channel.bufferedAmount;
    const startedAt = performance.now();
    this.#channel.bufferedAmountLowThreshold = this.#pacer.lowThreshold;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.#channel.removeEventListener('bufferedamountlow', done);
        this.#channel.removeEventListener('close', done);
        resolve();
      };
      this.#channel.addEventListener('bufferedamountlow', done);
      this.#channel.addEventListener('close', done);
    });
    this.#pacer.onDrained(before, this.#channel.bufferedAmount, performance.now() - startedAt);
  }
}
