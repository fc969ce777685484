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
/**
 * Most line time (ms) the queue may hold: what a cancel still lets through, on top of what the
 * network holds. Growing the target whenever the queue was found empty let a busy page (the
 * refill comes late, so the queue is often empty) grow it to 256 KiB-1 MiB on 1-2 Mbit/s lines,
 * 2-3 s of line time that every cancel still sent (uplinks benchmark, load 45: 0.7 MB queued on a
 * 2 Mbit/s line when a cancel came).
 */
const MAX_SEND_QUEUE_MS = 250;
/**
 * Shortest wait (ms) that measures the line: a wait ended sooner says nothing of it (the browser's
 * SCTP stack takes a whole congestion window off the queue at once, which looked like 67 MB/s on a
 * 2 Mbit/s line).
 */
const MIN_SAMPLE_MS = 50;
/** Largest target (bytes) before the line's rate was measured: 128 KiB, half a second at 2 Mbit/s. */
const UNMEASURED_MAX_SEND_QUEUE_BYTES = 128 * 1024;
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

  /**
   * A wait for the queue ended: it held `before` bytes, now `after`, `elapsedMs` later. Only a
   * queue still holding bytes measures the line (an empty one may have drained long before the
   * page looked): the target is then that rate's SEND_QUEUE_MS. A queue found empty doubles the
   * target, within MAX_SEND_QUEUE_MS of the measured line.
   */
  onDrained(before: number, after: number, elapsedMs: number): void {
    if (after > 0 && elapsedMs >= MIN_SAMPLE_MS && before > after) {
      const sample = ((before - after) * 1000) / elapsedMs;
      this.#rate = this.#rate === undefined ? sample : this.#rate * (1 - RATE_SMOOTHING) + sample * RATE_SMOOTHING;
    }
    const ceiling = this.#rate === undefined ? UNMEASURED_MAX_SEND_QUEUE_BYTES : Math.max(MIN_SEND_QUEUE_BYTES, (this.#rate * MAX_SEND_QUEUE_MS) / 1000);
    const wanted = after === 0 ? this.#target * 2 : this.#rate === undefined ? this.#target : (this.#rate * SEND_QUEUE_MS) / 1000;
    this.#target = Math.round(Math.min(MAX_SEND_QUEUE_BYTES, ceiling, Math.max(MIN_SEND_QUEUE_BYTES, wanted)));
  }
}
