import { acceptOffer, channelOpen, createOffer, type Gathering, type PendingOffer } from './rtc.js';
import { parseTrackerIce, type TrackerIce } from './tracker-ice.js';
import { bytesToHex } from '../shared/hex.js';

/** Offers sent per announce while we want peers: as webtorrent does, enough to meet a few peers at once. */
const OFFERS_PER_ANNOUNCE = 5;
/** An unanswered offer's connection is closed after this long (ms); trackers drop offers similarly. */
const OFFER_TTL_MS = 50_000;
/** Time (ms) a connected WebRTC pair gets to open its data channel. */
const CHANNEL_OPEN_TIMEOUT_MS = 15_000;
/**
 * Announce interval (s) when the tracker names none, and the bounds we accept from a tracker. Below
 * 15 s a tracker would have every page announce (and make WebRTC offers) in a loop; above 10 min a
 * page would meet no new peer for that long, and past 2^31 ms (24.8 days) browsers fire a timer at
 * once (HTML timers clamp the delay to a signed 32-bit integer), so a huge interval is a loop too.
 */
const DEFAULT_INTERVAL_S = 120;
const MIN_INTERVAL_S = 15;
const MAX_INTERVAL_S = 600;
/** Reconnect backoff (ms): starts small so a tracker restart is invisible, caps so a dead one costs nothing. */
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 60_000;
/** WebSocket close codes by which a tracker refuses a client (RFC 6455: policy, too big, try again later). */
const REFUSAL_CLOSE_CODES = new Set([1008, 1009, 1013]);
/**
 * Longest wait (ms) for the reply to the first announce, which tells the ICE servers to make
 * offers with (see tracker-ice.ts). A tracker answers an announce in one round trip (well under a
 * second, even across continents); one that does not answer within 2 s gets host-only offers.
 */
const TRACKER_ICE_WAIT_MS = 2000;
/** How often (ms) byte counters are reported to the tracker for its swarm-wide offload figure. */
export const STATS_REPORT_INTERVAL_MS = 10_000;

/** Byte counters reported to the tracker in announces (an extra field other trackers ignore). */
export interface SwarmReport {
  bytesFromPeers: number;
  bytesFromOrigin: number;
  bytesUploaded: number;
}

/** How one connection attempt (an offer answered, or an offer of another peer answered by us) ended. */
export type ConnectionAttempt = { ok: true; peerId: string } | { ok: false; peerId: string; gathering: Gathering };

export interface TrackerClientOptions {
  url: string;
  infoHash: string;
  peerId: string;
  /** The site's own ICE servers; undefined: those this tracker hands out (its STUN, maybe TURN). */
  iceServers: RTCIceServer[] | undefined;
  /** Leave out TURN servers handed out by the tracker (relay policy 'never'). */
  withoutTurn?: boolean;
  /** How many more peers we want now, connections in progress counted (0 = announce without offers). */
  wantedPeers(): number;
  /**
   * Takes one of the page's peer-connection slots for a connection about to be made (an offer, or
   * an answer to one), so that the connections in progress count against the cap too. Returns the
   * function that gives it back, or undefined when every slot is taken (the offer is not made).
   */
  reservePeerSlot(): (() => void) | undefined;
  /** Whether we already hold a connection to `peerId` (so its offers are ignored). */
  isConnected(peerId: string): boolean;
  /** A data channel to `peerId` opened; the connection's slot is held until the returned promise settles. */
  onPeer(peerId: string, connection: RTCPeerConnection, channel: RTCDataChannel): void | Promise<void>;
  report(): SwarmReport;
  /**
   * The tracker cannot be reached, or refuses us (a `failure reason`, or a close with a reason):
   * called once per distinct problem until an announce succeeds again, not on every retry.
   */
  onProblem(code: TrackerProblemCode, message: string): void;
  /** The tracker said how many peers the swarm has (us included), from its announce response. */
  onSwarmSize?(peers: number): void;
  /**
   * Peers we are connected to (over any tracker). With the swarm's size, it bounds our offers: a
   * tracker relays each offer to another member, and members beyond the swarm's others are none.
   * Absent: offers are not bounded by the swarm's size.
   */
  connectedPeers?(): number;
  /** A connection attempt ended (opened, or failed with what our side gathered). */
  onAttempt?(attempt: ConnectionAttempt): void;
  /** Debug log of this client's decisions (undefined: off, and nothing is formatted). */
  log?: (message: string, ...details: unknown[]) => void;
  /** Injected for tests; defaults to the page's WebSocket. */
  WebSocket?: typeof WebSocket;
}

export type TrackerProblemCode = 'tracker-unreachable' | 'tracker-refused';

type TrackerMessage = Record<string, unknown>;

/**
 * One WebSocket tracker, spoken to in the WebTorrent tracker protocol: announces carry our
 * offers, the tracker relays them to other peers of the swarm and relays their answers back;
 * offers from others arrive the same way and we answer them. A tracker that is down is retried
 * with backoff and never surfaces as an exception.
 */
export class TrackerClient {
  readonly #options: TrackerClientOptions;
  readonly #offers = new Map<string, OfferInFlight>();
  #socket: WebSocket | undefined;
  #announceTimer: ReturnType<typeof setTimeout> | undefined;
  #reportTimer: ReturnType<typeof setInterval> | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #reconnectDelay = RECONNECT_MIN_MS;
  #intervalS = DEFAULT_INTERVAL_S;
  /** The swarm's size (us included) as the tracker last said it; undefined before it did. */
  #swarmSize: number | undefined;
  #started = false;
  #destroyed = false;
  /** The last problem reported (see onProblem), cleared by a successful announce. */
  #problem: string | undefined;
  /** ICE servers from the tracker's replies (the newest TURN credential wins). */
  #trackerIce: TrackerIce = {};
  /** Resolves once the ICE servers to use are known: the site's, or the tracker's first reply (or its wait passed). */
  readonly #iceReady: Promise<void>;
  #settleIce: () => void = () => {};
  #iceSettled = false;
  #iceTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: TrackerClientOptions) {
    this.#options = options;
    this.#iceReady = new Promise((resolve) => (this.#settleIce = resolve));
    if (options.iceServers) this.#iceKnown();
  }

  /** The configuration of every new peer connection: the site's ICE servers, else the tracker's. */
  rtcConfig(): RTCConfiguration {
    const { iceServers, withoutTurn } = this.#options;
    if (iceServers) return { iceServers };
    const { stun, turn } = this.#trackerIce;
    return { iceServers: [stun, withoutTurn ? undefined : turn].filter((server): server is RTCIceServer => server !== undefined) };
  }

  #iceKnown(): void {
    if (this.#iceSettled) return;
    this.#iceSettled = true;
    clearTimeout(this.#iceTimer);
    this.#settleIce();
  }

  start(): void {
    if (this.#started || this.#destroyed) return;
    this.#started = true;
    this.#connect();
    this.#reportTimer = setInterval(() => this.#announce(undefined, false), STATS_REPORT_INTERVAL_MS);
  }

  /** Announces now with fresh offers (e.g. after losing a peer). */
  wantMorePeers(): void {
    this.#announce(undefined, true);
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#announce('stopped', false);
    this.#destroyed = true;
    clearTimeout(this.#announceTimer);
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#iceTimer);
    clearInterval(this.#reportTimer);
    for (const offer of this.#offers.values()) this.#dropOffer(offer);
    this.#offers.clear();
    const socket = this.#socket;
    this.#socket = undefined;
    socket?.close(1000, 'peerfetch destroyed');
  }

  #connect(): void {
    if (this.#destroyed) return;
    const WebSocketImpl = this.#options.WebSocket ?? WebSocket;
    let socket: WebSocket;
    try {
      socket = new WebSocketImpl(this.#options.url);
    } catch {
      return this.#reportProblem('tracker-unreachable', `invalid tracker URL ${this.#options.url}`);
    }
    this.#socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.#reconnectDelay = RECONNECT_MIN_MS;
      if (this.#iceSettled) return this.#announce('started', true);
      // The reply says which ICE servers to make offers with: offers follow it (see tracker-ice.ts).
      this.#announce('started', false);
      this.#iceTimer = setTimeout(() => {
        this.#options.log?.(`tracker ${this.#options.url}: no announce reply within ${TRACKER_ICE_WAIT_MS} ms; offers with host candidates only`);
        this.#iceKnown();
        this.#announce(undefined, true);
      }, TRACKER_ICE_WAIT_MS);
    };
    socket.onmessage = (event) => this.#onMessage(event.data);
    socket.onclose = (event) => {
      if (this.#socket !== socket || this.#destroyed) return;
      if (!opened) this.#reportProblem('tracker-unreachable', `cannot connect to the tracker ${this.#options.url}`);
      // Refusals, not restarts or idle closes: policy (origin not allowed, rate limit), frame too
      // big, try again later (tracker full), and application codes.
      else if (REFUSAL_CLOSE_CODES.has(event.code) || event.code >= 4000) this.#reportProblem('tracker-refused', `the tracker ${this.#options.url} closed the connection: ${event.reason || 'no reason given'} (${event.code})`);
      this.#socket = undefined;
      clearTimeout(this.#announceTimer);
      this.#reconnectTimer = setTimeout(() => this.#connect(), this.#reconnectDelay);
      this.#reconnectDelay = Math.min(this.#reconnectDelay * 2, RECONNECT_MAX_MS);
    };
    // An error is always followed by close; the close handler retries.
    socket.onerror = () => {};
  }

  #reportProblem(code: TrackerProblemCode, message: string): void {
    if (message === this.#problem) return;
    this.#problem = message;
    this.#options.onProblem(code, message);
  }

  #send(message: TrackerMessage): void {
    if (this.#socket?.readyState === WebSocket.OPEN) this.#socket.send(JSON.stringify(message));
  }

  #announce(event: 'started' | 'stopped' | undefined, withOffers: boolean): void {
    if (this.#destroyed || this.#socket?.readyState !== WebSocket.OPEN) return;
    const report = this.#options.report();
    const base: TrackerMessage = {
      action: 'announce',
      info_hash: this.#options.infoHash,
      peer_id: this.#options.peerId,
      uploaded: report.bytesUploaded,
      downloaded: report.bytesFromPeers + report.bytesFromOrigin,
      // peerfetch peers are partial seeds of many assets: "left" has no single meaning, and a
      // non-zero value makes trackers count us as leechers that want peers.
      left: 1,
      peerfetch: report,
      ...(event ? { event } : {}),
    };
    // Until the ICE servers are known no offer is made (the reply that tells them brings the offers).
    const wanted = withOffers && this.#iceSettled ? Math.min(this.#options.wantedPeers(), OFFERS_PER_ANNOUNCE, this.#othersNotConnected()) : 0;
    if (wanted === 0) {
      this.#send({ ...base, numwant: 0 });
    } else {
      void this.#makeOffers(wanted).then((offers) => this.#send({ ...base, numwant: offers.length, offers }));
    }
    if (withOffers) {
      clearTimeout(this.#announceTimer);
      this.#announceTimer = setTimeout(() => this.#announce(undefined, true), this.#intervalS * 1000);
    }
  }

  /**
   * Members of the swarm we are not connected to, as far as the tracker's count tells. An offer
   * beyond them reaches nobody new (the tracker relays it to a member we are connected to, who
   * ignores it) and still costs a peer connection for OFFER_TTL_MS: the first viewer of a swarm
   * made 5 offers to nobody, and in a swarm of 8 every member made offers at each announce to
   * members it was already connected to (8 live viewers, V8 profile: making offers and answering
   * them, mostly RTCPeerConnection construction, was the pages' largest cost in peerfetch's code,
   * 10 s of 40 s, most of it while players started).
   */
  #othersNotConnected(): number {
    const size = this.#swarmSize;
    const connected = this.#options.connectedPeers?.();
    if (size === undefined || connected === undefined) return OFFERS_PER_ANNOUNCE;
    return Math.max(0, size - 1 - connected);
  }

  async #makeOffers(count: number): Promise<{ offer: RTCSessionDescriptionInit; offer_id: string }[]> {
    const slots: Array<() => void> = [];
    for (let i = 0; i < count; i++) {
      const release = this.#options.reservePeerSlot();
      if (!release) break;
      slots.push(release);
    }
    const config = this.rtcConfig();
    const made = await Promise.allSettled(slots.map(() => createOffer(config)));
    if (this.#options.log) {
      const gathered = made.flatMap((result) => (result.status === 'fulfilled' ? [result.value.gathering] : []));
      const types = [...new Set(gathered.flatMap((gathering) => gathering.candidateTypes))].join(', ') || 'none';
      const timedOut = gathered.filter((gathering) => gathering.timedOut).length;
      this.#options.log(`tracker ${this.#options.url}: made ${gathered.length} offers with ICE servers ${iceUrls(config)}; candidates: ${types}${timedOut ? `; gathering timed out in ${timedOut}` : ''}`);
    }
    const offers: { offer: RTCSessionDescriptionInit; offer_id: string }[] = [];
    made.forEach((result, i) => {
      const release = slots[i]!;
      if (result.status !== 'fulfilled') return release();
      if (this.#destroyed) {
        result.value.connection.close();
        return release();
      }
      const offerId = randomHex(20);
      const timer = setTimeout(() => {
        const pending = this.#offers.get(offerId);
        if (pending) this.#dropOffer(pending);
        this.#offers.delete(offerId);
      }, OFFER_TTL_MS);
      this.#offers.set(offerId, { ...result.value, timer, release });
      offers.push({ offer: result.value.offer, offer_id: offerId });
    });
    return offers;
  }

  /**
   * Frees the slot of our oldest unanswered offer for an offer that arrived: a peer offering now is
   * there, ours are only hopes (an offer waits up to OFFER_TTL_MS). Without this a page whose
   * pending offers filled its slots could not answer a peer that came back, for up to 50 s
   * (measured: P2P turned off and on again met no peer). The total stays capped, so a tracker
   * flooding offers still gets no more connections than slots.
   */
  #slotOfOldestOffer(): (() => void) | undefined {
    const oldest = this.#offers.entries().next().value;
    if (!oldest) return undefined;
    const [offerId, offer] = oldest;
    this.#offers.delete(offerId);
    this.#dropOffer(offer);
    return this.#options.reservePeerSlot();
  }

  #dropOffer(offer: OfferInFlight): void {
    clearTimeout(offer.timer);
    offer.connection.close();
    offer.release();
  }

  #onMessage(raw: unknown): void {
    if (typeof raw !== 'string') return;
    let message: TrackerMessage;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed !== 'object' || parsed === null) return;
      message = parsed as TrackerMessage;
    } catch {
      return; // not a tracker message: ignored, as other clients do
    }
    if (message.info_hash !== undefined && message.info_hash !== this.#options.infoHash) return;
    if (typeof message['failure reason'] === 'string') {
      return this.#reportProblem('tracker-refused', `the tracker ${this.#options.url} refused: ${message['failure reason']}`);
    }
    // The swarm's size first: the first announce reply's offers are bounded by it.
    const { complete, incomplete } = message;
    if (typeof complete === 'number' && typeof incomplete === 'number' && Number.isFinite(complete + incomplete)) {
      this.#swarmSize = complete + incomplete;
      this.#options.onSwarmSize?.(complete + incomplete);
    }
    if (typeof message.interval === 'number' && Number.isFinite(message.interval)) {
      this.#intervalS = Math.min(MAX_INTERVAL_S, Math.max(MIN_INTERVAL_S, message.interval));
      this.#problem = undefined; // an announce reply: the tracker serves us again
      this.#onAnnounceReply(message.peerfetch);
    }
    const fromPeer = typeof message.peer_id === 'string' ? message.peer_id : undefined;
    const offerId = typeof message.offer_id === 'string' ? message.offer_id : undefined;
    if (!fromPeer || !offerId || fromPeer === this.#options.peerId) return;
    if (isDescription(message.offer)) void this.#answerOffer(fromPeer, offerId, message.offer);
    else if (isDescription(message.answer)) void this.#acceptAnswer(fromPeer, offerId, message.answer);
  }

  /** An announce reply: takes the ICE servers it hands out; the first one releases the offers. */
  #onAnnounceReply(field: unknown): void {
    if (this.#options.iceServers) return;
    const ice = parseTrackerIce(field, this.#options.url);
    if (ice.stun || ice.turn) {
      this.#trackerIce = { stun: ice.stun ?? this.#trackerIce.stun, turn: ice.turn ?? this.#trackerIce.turn };
      this.#options.log?.(`tracker ${this.#options.url} hands out ICE servers: ${iceUrls(this.rtcConfig())}`);
    }
    if (this.#iceSettled) return;
    if (!ice.stun && !ice.turn) this.#options.log?.(`tracker ${this.#options.url} hands out no ICE servers: host candidates only`);
    this.#iceKnown();
    this.#announce(undefined, true);
  }

  async #answerOffer(fromPeer: string, offerId: string, offer: RTCSessionDescriptionInit): Promise<void> {
    if (this.#destroyed || this.#options.isConnected(fromPeer)) return;
    // Offers arrive as fast as the tracker (or whoever controls it) sends them: each answer is a
    // connection, so answers take a slot like our own offers, and none is made once all are taken.
    const release = this.#options.reservePeerSlot() ?? this.#slotOfOldestOffer();
    if (!release) return;
    await this.#iceReady;
    let accepted: Awaited<ReturnType<typeof acceptOffer>>;
    try {
      if (this.#destroyed) throw new Error('destroyed');
      accepted = await acceptOffer(this.rtcConfig(), offer);
    } catch {
      release();
      return; // an offer this browser cannot answer: that peer is skipped
    }
    if (this.#destroyed) {
      accepted.connection.close();
      release();
      return;
    }
    this.#send({
      action: 'announce',
      info_hash: this.#options.infoHash,
      peer_id: this.#options.peerId,
      to_peer_id: fromPeer,
      offer_id: offerId,
      answer: accepted.answer,
    });
    await this.#whenOpen(fromPeer, accepted.connection, accepted.channel, accepted.gathering).finally(release);
  }

  async #acceptAnswer(fromPeer: string, offerId: string, answer: RTCSessionDescriptionInit): Promise<void> {
    const pending = this.#offers.get(offerId);
    if (!pending) return;
    this.#offers.delete(offerId);
    if (this.#options.isConnected(fromPeer)) return this.#dropOffer(pending);
    clearTimeout(pending.timer);
    try {
      await pending.connection.setRemoteDescription(answer);
    } catch {
      pending.connection.close();
      pending.release();
      return; // an answer this browser cannot use: that peer is skipped
    }
    await this.#whenOpen(fromPeer, pending.connection, Promise.resolve(pending.channel), pending.gathering).finally(pending.release);
  }

  async #whenOpen(peerId: string, connection: RTCPeerConnection, channel: Promise<RTCDataChannel>, gathering: Gathering): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('no data channel')), CHANNEL_OPEN_TIMEOUT_MS);
      });
      const open = await channelOpen(await Promise.race([channel, timeout]), CHANNEL_OPEN_TIMEOUT_MS);
      if (this.#destroyed || this.#options.isConnected(peerId)) return connection.close();
      this.#options.onAttempt?.({ ok: true, peerId });
      await this.#options.onPeer(peerId, connection, open);
    } catch {
      const iceState = connection.iceConnectionState;
      connection.close();
      if (this.#destroyed) return;
      this.#options.log?.(`connection to peer ${peerId} failed (ICE ${iceState}); our candidates: ${gathering.candidateTypes.join(', ') || 'none'}${gathering.timedOut ? ', gathering timed out' : ''}`);
      this.#options.onAttempt?.({ ok: false, peerId, gathering });
    } finally {
      clearTimeout(timer);
    }
  }
}

/** An offer sent and not yet answered: its connection, its expiry timer and its peer slot. */
type OfferInFlight = PendingOffer & { timer: ReturnType<typeof setTimeout>; release: () => void };

/** The URLs of a configuration's ICE servers, for the debug log (credentials are left out). */
function iceUrls(config: RTCConfiguration): string {
  return (config.iceServers ?? []).flatMap((server) => server.urls).join(' ') || 'none';
}

function isDescription(value: unknown): value is RTCSessionDescriptionInit {
  if (typeof value !== 'object' || value === null) return false;
  const { type, sdp } = value as Record<string, unknown>;
  return (type === 'offer' || type === 'answer') && typeof sdp === 'string';
}

function randomHex(bytes: number): string {
  return bytesToHex(crypto.getRandomValues(new Uint8Array(bytes)));
}
