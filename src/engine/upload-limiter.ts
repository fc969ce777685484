import { CHUNK_SIZE } from '../shared/peer-messages.js';
import { TokenBucket } from '../shared/token-bucket.js';
import { LinePacer } from './line-pacer.js';
import { UploadBackoff } from './upload-backoff.js';

/**
 * Most bytes sent at once above the rate (the token bucket's depth): one chunk. Over any window
 * of W seconds at most `rate × W + BURST_BYTES` bytes go out, so a cap is a cap at every time
 * scale, not an average over seconds.
 */
const BURST_BYTES = CHUNK_SIZE;
/**
 * Line time (ms) sent at once under the line's pace alone (the line bucket's depth, at least one
 * chunk): half the queueing the pace holds the line to. A fast line needs bursts (a timer fires
 * every few ms at best, later on a busy page); a slow one must not get them (after an idle
 * spell, a full bucket of 64 KiB is half a second of a 1 Mbit/s line's queue).
 */
const LINE_BURST_MS = 25;
/** The line's pace counts as holding uploads back for this long (ms) after it last did (see LinePacer.report). */
const HELD_BACK_MS = 250;
/** Window (ms) over which the upload rate the backoff starts from is measured. */
const RATE_WINDOW_MS = 1000;

/**
 * Caps the bytes this page uploads to all its peers together (a token bucket): the cap a site or
 * viewer sets (`bytesPerSecond`, none by default), and below it the delay-based backoff
 * (UploadBackoff) that keeps seeding from slowing this page's own requests, and the pacing to
 * what the uplink carries (LinePacer) that keeps uploads from overflowing its queue.
 */
export class UploadLimiter {
  #bytesPerSecond: number | undefined;
  /** The set cap and the backoff's rate, exactly (one chunk deep); starts empty (see #wait). */
  readonly #bucket: TokenBucket;
  /** The line's pace (LINE_BURST_MS deep, starts full), and when it last held an upload back. */
  readonly #lineBucket: TokenBucket;
  #lineHeldAt = -Infinity;
  #queue: Promise<void> = Promise.resolve();
  readonly #now: () => number;
  readonly backoff: UploadBackoff;
  readonly line: LinePacer;
  /** Bytes taken in the current rate window, and the rate (bytes/s) measured over the last full one. */
  #window = { start: 0, bytes: 0 };
  #uploadRate = 0;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
    this.#bucket = new TokenBucket(0, BURST_BYTES, now, 0);
    // Full: a lone chunk goes at once; what follows it waits for the pace.
    this.#lineBucket = new TokenBucket(0, BURST_BYTES, now);
    this.backoff = new UploadBackoff(now);
    this.line = new LinePacer(now);
  }

  /** The cap set by the site or viewer, in bytes per second, or undefined for none. */
  get bytesPerSecond(): number | undefined {
    return this.#bytesPerSecond;
  }

  set bytesPerSecond(value: number | undefined) {
    this.#bytesPerSecond = value !== undefined && value > 0 && Number.isFinite(value) ? value : undefined;
    this.#bucket.empty();
  }

  /** The rate uploads are held to now: the lowest of the set cap, the backoff's rate and the line's pace. */
  get effectiveRate(): number {
    return Math.min(this.#cappedRate() ?? Infinity, this.line.rate);
  }

  /** The set cap or the backoff's rate, whichever is lower; undefined for neither. */
  #cappedRate(): number | undefined {
    const backoff = this.backoff.rate;
    const cap = this.#bytesPerSecond;
    if (backoff === undefined) return cap;
    return cap === undefined ? backoff : Math.min(cap, backoff);
  }

  /** What was uploaded over the last full second, in bytes per second (0 after a quiet second). */
  get uploadRate(): number {
    return this.#now() - this.#window.start >= 2 * RATE_WINDOW_MS ? 0 : this.#uploadRate;
  }

  /** One of this page's own requests took `delayMs`, its players `ownBufferMs` ahead (see UploadBackoff). */
  noteOwnDelay(delayMs: number, ownBufferMs?: number): void {
    this.backoff.noteDelay(delayMs, this.uploadRate, this.line.clear, ownBufferMs);
  }

  /** A peer reported how our chunks reached it (see LinePacer.report). */
  noteReceived(peerId: string, delayMs: number, bytes: number, ms: number): void {
    this.line.report(peerId, delayMs, bytes, ms, this.#now() - this.#lineHeldAt < HELD_BACK_MS);
  }

  /** Resolves when `bytes` may be sent; callers are served in order. */
  take(bytes: number): Promise<void> {
    this.#queue = this.#queue.then(() => this.#wait(bytes));
    return this.#queue;
  }

  async #wait(bytes: number): Promise<void> {
    const lineRate = this.line.rate;
    this.#lineBucket.rate = lineRate;
    this.#lineBucket.capacity = Math.max(BURST_BYTES, (lineRate * LINE_BURST_MS) / 1000);
    const lineWaitMs = this.#lineBucket.spend(bytes);
    if (lineWaitMs > 0) this.#lineHeldAt = this.#now();
    // Time without a cap refills at the last rate, at most one chunk (the bucket's depth).
    const capped = this.#cappedRate();
    if (capped !== undefined) this.#bucket.rate = capped;
    const capWaitMs = capped === undefined ? 0 : this.#bucket.spend(bytes);
    const waitMs = Math.max(lineWaitMs, capWaitMs);
    if (waitMs > 0) {
      // setTimeout takes whole milliseconds (WebIDL long, the fraction dropped): rounding up keeps
      // the timer from firing before the debt is repaid.
      await new Promise((resolve) => setTimeout(resolve, Math.ceil(waitMs)));
      // The bytes go out now, not when the timer was due: a timer that fired late (a busy page)
      // must not count as credit against a cap, or the next chunk follows at once and two chunks go
      // out together (measured in Chromium: 32 KiB in 64 ms under a 100 kB/s cap). What is still
      // owed (a timer that fired early by the clock) stays owed by the next chunk. The line's pace
      // keeps such credit, up to its bucket's depth: a fast line needs it.
      if (capped !== undefined && this.#bucket.tokens > 0) this.#bucket.empty();
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
