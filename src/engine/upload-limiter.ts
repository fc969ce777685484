import { CHUNK_SIZE } from '../shared/peer-messages.js';
import { TokenBucket } from '../shared/token-bucket.js';
import { UploadBackoff } from './upload-backoff.js';

/**
 * Most bytes sent at once above the rate (the token bucket's depth): one chunk. Over any window
 * of W seconds at most `rate × W + BURST_BYTES` bytes go out, so a cap is a cap at every time
 * scale, not an average over seconds.
 */
const BURST_BYTES = CHUNK_SIZE;
/** Window (ms) over which the upload rate the backoff starts from is measured. */
const RATE_WINDOW_MS = 1000;

/**
 * Caps the bytes this page uploads to all its peers together (a token bucket): the cap a site or
 * viewer sets (`bytesPerSecond`, none by default), and below it the delay-based backoff
 * (UploadBackoff) that keeps seeding from slowing this page's own requests.
 */
export class UploadLimiter {
  #bytesPerSecond: number | undefined;
  /** Starts empty, with no rate until a cap or the backoff gives one (see #wait). */
  readonly #bucket: TokenBucket;
  #queue: Promise<void> = Promise.resolve();
  readonly #now: () => number;
  readonly backoff: UploadBackoff;
  /** Bytes taken in the current rate window, and the rate (bytes/s) measured over the last full one. */
  #window = { start: 0, bytes: 0 };
  #uploadRate = 0;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
    this.#bucket = new TokenBucket(0, BURST_BYTES, now, 0);
    this.backoff = new UploadBackoff(now);
  }

  /** The cap set by the site or viewer, in bytes per second, or undefined for none. */
  get bytesPerSecond(): number | undefined {
    return this.#bytesPerSecond;
  }

  set bytesPerSecond(value: number | undefined) {
    this.#bytesPerSecond = value !== undefined && value > 0 && Number.isFinite(value) ? value : undefined;
    this.#bucket.empty();
  }

  /** The rate uploads are held to now: the set cap or the backoff's rate, whichever is lower; undefined for none. */
  get effectiveRate(): number | undefined {
    const backoff = this.backoff.rate;
    const cap = this.#bytesPerSecond;
    if (backoff === undefined) return cap;
    return cap === undefined ? backoff : Math.min(cap, backoff);
  }

  /** What was uploaded over the last full second, in bytes per second (0 after a quiet second). */
  get uploadRate(): number {
    return this.#now() - this.#window.start >= 2 * RATE_WINDOW_MS ? 0 : this.#uploadRate;
  }

  /** One of this page's own requests took `delayMs` (see UploadBackoff). */
  noteOwnDelay(delayMs: number): void {
    this.backoff.noteDelay(delayMs, this.uploadRate);
  }

  /** Resolves when `bytes` may be sent; callers are served in order. */
  take(bytes: number): Promise<void> {
    this.#queue = this.#queue.then(() => this.#wait(bytes));
    return this.#queue;
  }

  async #wait(bytes: number): Promise<void> {
    const rate = this.effectiveRate;
    if (rate !== undefined) {
      // Time without a rate refills at the last one, at most one chunk (the bucket's depth).
      this.#bucket.rate = rate;
      const waitMs = this.#bucket.spend(bytes);
      if (waitMs > 0) {
        // setTimeout takes whole milliseconds (WebIDL long, the fraction dropped): rounding up keeps
        // the timer from firing before the debt is repaid.
        await new Promise((resolve) => setTimeout(resolve, Math.ceil(waitMs)));
        // The bytes go out now, not when the timer was due: a timer that fired late (a busy page)
        // must not count as credit, or the next chunk follows at once and two chunks go out
        // together (measured in Chromium: 32 KiB in 64 ms under a 100 kB/s cap). What is still owed
        // (a timer that fired early by the clock) stays owed by the next chunk.
        if (this.#bucket.tokens > 0) this.#bucket.empty();
      }
    }
    this.#count(bytes);
  }

  #count(bytes: number): void {
    const now = this.#now();
    if (now - this.#window.start >= RATE_WINDOW_MS) {
      const elapsed = now - this.#window.start;
      this.#uploadRate = elapsed >= 2 * RATE_WINDOW_MS ? 0 : (this.#window.bytes * 1000) / elapsed;
      this.#window = { start: now, bytes: 0 };
    }
    this.#window.bytes += bytes;
  }
}
