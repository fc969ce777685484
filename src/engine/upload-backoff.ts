import { BaseDelay } from './base-delay.js';

/**
 * Queueing delay (ms) above the base that this page's own requests may see before seeding backs
 * off: LEDBAT's target (RFC 6817 §2.5 allows at most 100 ms), the delay a home uplink's queue
 * adds when uploads fill it.
 */
const TARGET_QUEUEING_MS = 100;
/** The current delay is the lowest of this many newest samples (RFC 6817 §3.4.2 filters noise the same way). */
const CURRENT_SAMPLES = 3;
/** Factor applied to the upload rate for each sample over the target. */
const DECREASE_FACTOR = 0.7;
/** Bytes/s added to the upload rate per sample under the target, scaled by how far under it is. */
const INCREASE_STEP_BPS = 32 * 1024;
/** Lowest upload rate the backoff sets (bytes/s): one chunk a second, so peers still get something. */
export const MIN_BACKOFF_RATE_BPS = 16 * 1024;
/**
 * A rate above this multiple of what was actually uploaded no longer limits anything: the
 * backoff lets go (undefined) instead of climbing forever.
 */
const RELEASE_MULTIPLE = 2;
/**
 * Play time (ms) this page's players have buffered from which its own requests may wait longer
 * behind our uploads (COMFORTABLE_QUEUEING_MS): a player that far ahead of its playhead does not
 * feel a queue of a few hundred ms, while the peers behind this line feel every cut. The first
 * viewer of the mixed swarm (a 1 Mbit/s line, the second viewer's only source) filled its buffer
 * from the origin 15-20 s ahead while its requests waited 116-420 ms behind its uploads, and cut
 * them to 40-60 kB/s three to eight times per run at the later viewers' joins (uplinks benchmark,
 * logged). A page with less buffered, or with nothing playing, keeps TARGET_QUEUEING_MS.
 */
export const COMFORTABLE_BUFFER_MS = 10_000;
/**
 * Queueing delay (ms) this page's own requests may see while its players are comfortable: above
 * the 420 ms the uplinks benchmark's first viewer saw with its line paced (LinePacer keeps the
 * queue of our uploads short), so a paced line is not cut, and still a bound: a line our uploads
 * fill past it backs off as any other, whatever the buffer.
 */
export const COMFORTABLE_QUEUEING_MS = 500;
/**
 * Without a sample for this long (ms), this page is not fetching anything seeding could slow: the
 * backoff lets go. Two segments' time of a player that reads at its pace (an HLS segment every 2 s):
 * held for 20 s, the first viewer's cut taken while its player filled its buffer stayed on its
 * 1 Mbit/s line, the second viewer's only source, for 10 s after its last request (mixed swarm).
 */
const STALE_AFTER_MS = 5000;

/**
 * Seeding that never hurts the uploader, in the spirit of LEDBAT (RFC 6817): the delay of this
 * page's own requests (the time to the origin's response headers) is compared with the lowest
 * delay seen recently (the base, the path without our own queue); when uploads fill the home's
 * uplink, our own requests and acknowledgements wait behind them and the delay rises above the
 * base, so the upload rate is cut; when it falls back, the rate grows again until it no longer
 * limits anything.
 *
 * @example
 * backoff.noteDelay(latencyMs, uploadedBytesPerSecond);
 * const cap = backoff.rate; // bytes/s, or undefined: no backoff
 */
export class UploadBackoff {
  readonly #now: () => number;
  readonly #base: BaseDelay;
  #recent: number[] = [];
  #rate: number | undefined;
  #lastSampleAt = -Infinity;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
    this.#base = new BaseDelay(now);
  }

  /** The upload rate (bytes/s) seeding is held to, or undefined when it is not held back. */
  get rate(): number | undefined {
    if (this.#now() - this.#lastSampleAt > STALE_AFTER_MS) this.#rate = undefined;
    return this.#rate;
  }

  /** The lowest delay (ms) in the history, or undefined before the first sample. */
  get baseDelay(): number | undefined {
    return this.#base.value;
  }

  /**
   * One of this page's own requests took `delayMs` to answer; `uploadRate` is what was uploaded
   * recently (bytes/s), where a new cut starts from. `uplinkClear`: the peers our uploads go to
   * see no queue on the path from us (LinePacer), so a delay is not the uploads' doing.
   * `ownBufferMs`: the play time this page's players have buffered (undefined: none plays); from
   * COMFORTABLE_BUFFER_MS on, the delay's target is COMFORTABLE_QUEUEING_MS.
   */
  noteDelay(delayMs: number, uploadRate: number, uplinkClear = false, ownBufferMs?: number): void {
    if (!Number.isFinite(delayMs) || delayMs < 0) return;
    const now = this.#now();
    this.#lastSampleAt = now;
    this.#base.note(delayMs);
    this.#recent = [...this.#recent, delayMs].slice(-CURRENT_SAMPLES);
    const queueing = Math.min(...this.#recent) - this.baseDelay!;
    const target = (ownBufferMs ?? 0) >= COMFORTABLE_BUFFER_MS ? COMFORTABLE_QUEUEING_MS : TARGET_QUEUEING_MS;
    const offTarget = (target - queueing) / target;
    if (offTarget < 0) {
      // Uploading (next to) nothing, the delay is not ours to cut: another tab, the page's own
      // downloads, a busy machine. Cutting then would throttle the next peer for no gain. Nor
      // when the uplink carries no queue of ours: in the uplinks benchmark the first viewer (a
      // 1 Mbit/s line, its uploads paced under it) saw its own requests 340-420 ms late while its
      // player buffered 30 s ahead, and cut its uploads to 16 kB/s for 5 s, the only line of the
      // second viewer, which took its first 24 s of video from the origin meanwhile. With a queue
      // the pace cuts too: the page's own requests wait behind it, and the backoff keeps them
      // first (left to the pace alone, the 2 Mbit/s uploader stalled 25 ms for want of data in a
      // quiet run of the mixed swarm, where it had not before).
      if (uplinkClear || (this.#rate === undefined && uploadRate < MIN_BACKOFF_RATE_BPS)) return;
      const from = this.#rate ?? uploadRate;
      this.#rate = Math.max(MIN_BACKOFF_RATE_BPS, from * DECREASE_FACTOR);
      return;
    }
    if (this.#rate === undefined) return;
    // Well above what is uploaded, the rate binds nothing (there is less to send): let go.
    if (this.#rate > RELEASE_MULTIPLE * Math.max(uploadRate, MIN_BACKOFF_RATE_BPS)) this.#rate = undefined;
    else this.#rate += INCREASE_STEP_BPS * offTarget;
  }
}
