/**
 * Smallest send-queue target (bytes): two chunks, so one is on its way while the next is queued.
 * At 1 Mbit/s it is a quarter second of line time, the most a cancel or an urgent request waits.
 */
export const MIN_SEND_QUEUE_BYTES = 32 * 1024;
/**
 * Largest target (bytes). Chromium kills a channel whose queue reaches 16 MiB (measured); 1 MiB
 * keeps a fast line (5–12 MB/s between two Chromium pages here) busy through event-loop pauses.
 */
export const MAX_SEND_QUEUE_BYTES = 1024 * 1024;
/**
 * Line time (ms) the queue should hold: enough to cover the page's event-loop delay before it
 * refills the queue, short enough that a cancel or a more urgent request takes effect at once.
 */
const SEND_QUEUE_MS = 100;
/** Weight of the newest rate sample in the smoothed send rate. */
const RATE_SMOOTHING = 0.5;

/**
 * How much an uploader keeps queued in one data channel (`bufferedAmount`): a small target
 * sized from the rate the channel actually drains at, instead of megabytes. Bytes handed to the
 * channel cannot be taken back, so a big queue on a slow uplink means seconds of data that a
 * cancel cannot stop and an urgent request must wait behind (issue: 2 Mbit/s uplinks).
 *
 * The rate is measured only while the uploader waits for the queue to drain (the line is the
 * limit then); a queue found empty after a wait means the line is faster than the target
 * allows, and the target doubles.
 *
 * @example
 * if (channel.bufferedAmount > pacer.target) { const before = channel.bufferedAmount; … wait for bufferedamountlow …; pacer.onDrained(before, channel.bufferedAmount, elapsedMs); }
 */
export class SendPacer {
  #target = MIN_SEND_QUEUE_BYTES;
  /** Smoothed drain rate in bytes per second, once measured. */
  #rate: number | undefined;

  /** Bytes the queue may hold before the uploader waits. */
  get target(): number {
    return this.#target;
  }

  /** The queue level (bytes) at which the uploader is woken to refill it: half the target. */
  get lowThreshold(): number {
    return Math.floor(this.#target / 2);
  }

  /** The measured drain rate (bytes/s), undefined before the first wait. */
  get rate(): number | undefined {
    return this.#rate;
  }

  /** A wait for the queue ended: it held `before` bytes, now `after`, `elapsedMs` later. */
  onDrained(before: number, after: number, elapsedMs: number): void {
    if (after === 0) {
      this.#target = Math.min(MAX_SEND_QUEUE_BYTES, this.#target * 2);
      return;
    }
    if (elapsedMs <= 0 || before <= after) return;
    const sample = ((before - after) * 1000) / elapsedMs;
    this.#rate = this.#rate === undefined ? sample : this.#rate * (1 - RATE_SMOOTHING) + sample * RATE_SMOOTHING;
    const wanted = (this.#rate * SEND_QUEUE_MS) / 1000;
    this.#target = Math.round(Math.min(MAX_SEND_QUEUE_BYTES, Math.max(MIN_SEND_QUEUE_BYTES, wanted)));
  }
}
