import { decodePeerMessage } from '../../src/shared/peer-codec.js';
import type { PeerMessage } from '../../src/shared/peer-messages.js';

/** How often (ms) a rate-limited fake line moves bytes. */
const LINE_TICK_MS = 5;

/**
 * One end of an ordered, reliable in-memory channel with RTCDataChannel's surface as Peer uses it.
 * Without a rate, frames arrive on the next timer turn; with `bytesPerSecond`, this end is a slow
 * uplink: frames wait in `bufferedAmount` and leave at that rate (driven by timers, so fake timers
 * drive it too), and `bufferedamountlow` fires as a browser fires it.
 */
export class FakeChannel extends EventTarget {
  readyState: RTCDataChannelState = 'open';
  binaryType = 'arraybuffer';
  bufferedAmount = 0;
  bufferedAmountLowThreshold = 0;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: (() => void) | null = null;
  onerror: (() => void) | null = null;
  other!: FakeChannel;
  /** Every message this end sent, decoded, for assertions. */
  readonly sent: PeerMessage[] = [];
  /** The most bytes ever queued at once. */
  maxBufferedAmount = 0;
  readonly #queue: { frame: ArrayBuffer; left: number }[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  /** The line this end sends over together with other channels, if any (see SharedLine). */
  line: SharedLine | undefined;
  /**
   * While set, a rate-limited end moves nothing: its frames wait in `bufferedAmount` until it is
   * cleared, as a home line's transport goes silent for a few seconds and then sends again.
   */
  silent = false;

  /** `eventLagMs`: how late the page handles `bufferedamountlow` (a busy page's event loop). */
  constructor(
    readonly bytesPerSecond?: number,
    readonly eventLagMs = 0,
  ) {
    super();
  }

  /** Whether bytes wait in this end's queue. */
  get queued(): boolean {
    return this.#queue.length > 0;
  }

  send(frame: Uint8Array): void {
    this.sent.push(decodePeerMessage(frame));
    const copy = frame.slice().buffer;
    if (!this.line && this.bytesPerSecond === undefined) {
      // Deliver asynchronously, in order, as a data channel does.
      setTimeout(() => this.other.onmessage?.({ data: copy }), 0);
      return;
    }
    this.#queue.push({ frame: copy, left: copy.byteLength });
    this.bufferedAmount += copy.byteLength;
    this.maxBufferedAmount = Math.max(this.maxBufferedAmount, this.bufferedAmount);
    if (this.line) this.line.start();
    else this.#timer ??= setInterval(() => this.#drain((this.bytesPerSecond! * LINE_TICK_MS) / 1000), LINE_TICK_MS);
  }

  /** Moves up to `budget` bytes of the queue onto the line (see SharedLine). */
  drain(budget: number): void {
    this.#drain(budget);
  }

  #drain(budget: number): void {
    if (this.silent) return;
    const before = this.bufferedAmount;
    while (budget > 0 && this.#queue.length > 0) {
      const head = this.#queue[0]!;
      const moved = Math.min(budget, head.left);
      head.left -= moved;
      budget -= moved;
      this.bufferedAmount -= moved;
      if (head.left === 0) {
        this.#queue.shift();
        this.other.onmessage?.({ data: head.frame });
      }
    }
    if (this.#queue.length === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
    if (before > this.bufferedAmountLowThreshold && this.bufferedAmount <= this.bufferedAmountLowThreshold) {
      if (this.eventLagMs > 0) setTimeout(() => this.dispatchEvent(new Event('bufferedamountlow')), this.eventLagMs);
      else this.dispatchEvent(new Event('bufferedamountlow'));
    }
  }

  close(): void {
    if (this.readyState === 'closed') return;
    this.readyState = 'closed';
    clearInterval(this.#timer);
    this.#queue.length = 0;
    this.onclose?.();
    this.other.close();
  }
}

/** Two connected ends; `aRate`/`bRate`: the line rate (bytes/s) each end sends at, unlimited when absent; `eventLagMs`: see FakeChannel. */
export function channelPair(aRate?: number, bRate?: number, eventLagMs = 0): [FakeChannel, FakeChannel] {
  const a = new FakeChannel(aRate, eventLagMs);
  const b = new FakeChannel(bRate, eventLagMs);
  a.other = b;
  b.other = a;
  return [a, b];
}

export const fakeConnection = () => ({ close() {}, connectionState: 'connected', onconnectionstatechange: null }) as unknown as RTCPeerConnection;

/**
 * One uplink that several channels send over, as a home's connections to several peers share its
 * line: every tick's bytes are split evenly among the channels with bytes queued (each connection's
 * congestion control takes its share), so a transfer sent beside another gets half the line.
 */
export class SharedLine {
  readonly #channels: FakeChannel[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(readonly bytesPerSecond: number) {}

  /** Makes `channel` send over this line. */
  add(channel: FakeChannel): void {
    channel.line = this;
    this.#channels.push(channel);
  }

  /** Bytes were queued: the line moves them from the next tick on. */
  start(): void {
    this.#timer ??= setInterval(() => this.#tick(), LINE_TICK_MS);
  }

  #tick(): void {
    const busy = this.#channels.filter((channel) => channel.queued);
    if (busy.length === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const share = (this.bytesPerSecond * LINE_TICK_MS) / 1000 / busy.length;
    for (const channel of busy) channel.drain(share);
  }
}
