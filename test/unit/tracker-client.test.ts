import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_PEERS, Swarm, type SwarmCallbacks } from '../../src/engine/swarm.js';
import { TrackerClient } from '../../src/engine/tracker-client.js';
import type { Manifest } from '../../src/shared/manifest.js';
import { MemoryPieceStore } from '../../src/store/piece-store.js';

// The tracker client against a tracker that may be hostile, without a browser: the page's
// RTCPeerConnection and WebSocket are stand-ins that count what the client opens, and the clock is
// vitest's, so minutes of announces run in milliseconds.

/** RTCPeerConnection as rtc.ts uses it; counts the connections alive (made and not closed). */
class CountedPeerConnection extends EventTarget {
  static alive = 0;
  iceGatheringState = 'complete';
  localDescription: RTCSessionDescriptionInit | null = null;
  #closed = false;

  constructor() {
    super();
    CountedPeerConnection.alive++;
  }

  createDataChannel(): EventTarget & { readyState: string; binaryType: string } {
    return Object.assign(new EventTarget(), { readyState: 'connecting', binaryType: 'blob' });
  }

  async createOffer(): Promise<RTCSessionDescriptionInit> {
    return { type: 'offer', sdp: 'v=0 offer' };
  }

  async createAnswer(): Promise<RTCSessionDescriptionInit> {
    return { type: 'answer', sdp: 'v=0 answer' };
  }

  async setLocalDescription(description: RTCSessionDescriptionInit): Promise<void> {
    this.localDescription = description;
  }

  async setRemoteDescription(): Promise<void> {}

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    CountedPeerConnection.alive--;
  }
}

/** The tracker's end of the page's WebSocket: what the client sent, and a way to send it frames. */
class TrackerSocket {
  static readonly OPEN = 1;
  static last: TrackerSocket | undefined;
  readyState = 0;
  readonly sent: Array<Record<string, unknown>> = [];
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;

  constructor() {
    TrackerSocket.last = this;
    setTimeout(() => {
      this.readyState = TrackerSocket.OPEN;
      this.onopen?.();
    }, 0);
  }

  send(text: string): void {
    this.sent.push(JSON.parse(text) as Record<string, unknown>);
  }

  receive(frame: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  close(): void {
    this.readyState = 3;
  }
}

const INFO_HASH = 'i'.repeat(20);

function peerId(n: number): string {
  return `peer-${n}`.padEnd(20, '.');
}

const noCallbacks: SwarmCallbacks = {
  onPeerConnect: () => {},
  onPeerDisconnect: () => {},
  onPieceVerified: () => {},
  onPieceRejected: () => {},
  onUploaded: () => {},
  onPeerHave: () => {},
  onWithdrawn: () => {},
};

function startClient({ boundedBySwarm = false } = {}): { client: TrackerClient; swarm: Swarm; socket: () => TrackerSocket } {
  const swarm = new Swarm({ version: 1, assets: [], live: [] } as Manifest, new MemoryPieceStore(), noCallbacks);
  const client = new TrackerClient({
    url: 'wss://tracker.test',
    infoHash: INFO_HASH,
    peerId: peerId(0),
    iceServers: [],
    wantedPeers: () => swarm.wantedPeers(),
    ...(boundedBySwarm ? { connectedPeers: () => swarm.peers.size } : {}),
    reservePeerSlot: () => swarm.reservePeerSlot(),
    isConnected: (id) => swarm.isConnected(id),
    onPeer: (id, connection, channel) => swarm.addPeer(id, connection, channel),
    report: () => ({ bytesFromPeers: 0, bytesFromOrigin: 0, bytesUploaded: 0 }),
    onProblem: () => {},
    WebSocket: TrackerSocket as unknown as typeof WebSocket,
  });
  client.start();
  return { client, swarm, socket: () => TrackerSocket.last! };
}

const withOffers = (frame: Record<string, unknown>): boolean => Array.isArray(frame.offers) && frame.offers.length > 0;

describe('TrackerClient against a hostile tracker', () => {
  let client: TrackerClient | undefined;

  beforeEach(() => {
    vi.useFakeTimers();
    CountedPeerConnection.alive = 0;
    vi.stubGlobal('RTCPeerConnection', CountedPeerConnection);
    vi.stubGlobal('WebSocket', TrackerSocket);
  });

  afterEach(() => {
    client?.destroy();
    client = undefined;
    vi.unstubAllGlobals();
    vi.useRealTimers();
  });

  it('never holds more than MAX_PEERS connections, offers being made and answered included', async () => {
    const started = startClient();
    client = started.client;
    await vi.advanceTimersByTimeAsync(1);
    const tracker = started.socket();
    const firstAnnounce = tracker.sent.find(withOffers);
    expect((firstAnnounce?.offers as unknown[]).length).toBe(5);

    // A flood of offers from 100 peer ids: the free slots are answered, then our own unanswered
    // offers give way to peers that are there (a peer coming back must be answered), and no more.
    for (let n = 1; n <= 100; n++) tracker.receive({ action: 'announce', info_hash: INFO_HASH, peer_id: peerId(n), offer_id: `o${n}`, offer: { type: 'offer', sdp: 'v=0 flood' } });
    await vi.advanceTimersByTimeAsync(1);
    expect(tracker.sent.filter((f) => f.answer !== undefined)).toHaveLength(MAX_PEERS);
    expect(CountedPeerConnection.alive).toBe(MAX_PEERS);
    expect(started.swarm.wantedPeers()).toBe(0);
    // Asking for more peers makes no offer while every slot is taken.
    started.client.wantMorePeers();
    await vi.advanceTimersByTimeAsync(1);
    expect(tracker.sent.filter(withOffers)).toHaveLength(1);
    expect(CountedPeerConnection.alive).toBe(MAX_PEERS);

    // Answers whose channel never opens give their slot back (after the channel timeout), and so do
    // unanswered offers (after the offer lifetime): then offers are answered again.
    await vi.advanceTimersByTimeAsync(60_000);
    expect(CountedPeerConnection.alive).toBe(0);
    expect(started.swarm.wantedPeers()).toBe(MAX_PEERS);
    tracker.receive({ action: 'announce', info_hash: INFO_HASH, peer_id: peerId(200), offer_id: 'late', offer: { type: 'offer', sdp: 'v=0 late' } });
    await vi.advanceTimersByTimeAsync(1);
    expect(tracker.sent.filter((f) => f.answer !== undefined)).toHaveLength(MAX_PEERS + 1);
  });

  it('makes no more offers than the swarm has members it is not connected to', async () => {
    const started = startClient({ boundedBySwarm: true });
    client = started.client;
    await vi.advanceTimersByTimeAsync(1);
    const tracker = started.socket();
    const offersSent = () => tracker.sent.filter(withOffers).map((frame) => (frame.offers as unknown[]).length);
    // Before the tracker told the swarm's size: the usual 5.
    expect(offersSent()).toEqual([5]);
    const alive = CountedPeerConnection.alive;
    // Alone in the swarm (the count includes us): an announce offers nothing, and makes no connection.
    tracker.receive({ action: 'announce', info_hash: INFO_HASH, interval: 120, complete: 0, incomplete: 1 });
    started.client.wantMorePeers();
    await vi.advanceTimersByTimeAsync(1);
    expect(offersSent()).toEqual([5]);
    expect(CountedPeerConnection.alive).toBe(alive);
    // Two others: two offers.
    tracker.receive({ action: 'announce', info_hash: INFO_HASH, interval: 120, complete: 1, incomplete: 2 });
    started.client.wantMorePeers();
    await vi.advanceTimersByTimeAsync(1);
    expect(offersSent()).toEqual([5, 2]);
  });

  it('clamps the announce interval a tracker names on both sides', async () => {
    const started = startClient();
    client = started.client;
    await vi.advanceTimersByTimeAsync(1);
    const tracker = started.socket();
    // A huge interval: past 2^31 ms a timer fires at once, so unclamped this is an announce loop;
    // clamped, announces with offers come every 10 minutes, not every 300 years. (The timer running
    // when the reply came still uses the default 120 s.)
    tracker.receive({ action: 'announce', info_hash: INFO_HASH, interval: 1e10, complete: 0, incomplete: 1 });
    await vi.advanceTimersByTimeAsync(121_000);
    expect(tracker.sent.filter(withOffers)).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(598_000);
    expect(tracker.sent.filter(withOffers)).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(tracker.sent.filter(withOffers)).toHaveLength(3);

    // A tiny interval: at most one announce with offers per 15 s (after the last offers expired).
    await vi.advanceTimersByTimeAsync(60_000);
    tracker.receive({ action: 'announce', info_hash: INFO_HASH, interval: 0.001, complete: 0, incomplete: 1 });
    started.client.wantMorePeers();
    await vi.advanceTimersByTimeAsync(14_000);
    expect(tracker.sent.filter(withOffers)).toHaveLength(4);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(tracker.sent.filter(withOffers)).toHaveLength(5);
  });
});
