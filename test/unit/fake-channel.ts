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

  /** `eventLagMs`: how late the page handles `bufferedamountlow` (a busy page's event loop). */
  constructor(
    readonly bytesPerSecond?: number,
    readonly eventLagMs = 0,
  ) {
    super();
  }

  send(frame: Uint8Array): void {
    this.sent.push(decodePeerMessage(frame));
    const copy = frame.slice().buffer;
    if (this.bytesPerSecond === undefined) {
      // Deliver asynchronously, in order, as a data channel does.
      setTimeout(() => this.other.onmessage?.({ data: copy }), 0);
      return;
    }
    this.#queue.push({ frame: copy, left: copy.byteLength });
    this.bufferedAmount += copy.byteLength;
    this.maxBufferedAmount = Math.max(this.maxBufferedAmount, this.bufferedAmount);
    this.#timer ??= setInterval(() => this.#drain((this.bytesPerSecond! * LINE_TICK_MS) / 1000), LINE_TICK_MS);
  }

  #drain(budget: number): void {
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
    if (this.#queue.length === 0) {
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
