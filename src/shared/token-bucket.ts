import { monotonicNow } from './platform.js';

/**
 * A token bucket: `rate` tokens per second refill it up to `capacity`. The one rate arithmetic of
 * peerfetch: the page's upload cap (bytes, engine/upload-limiter.ts), the origin server's bandwidth
 * per connection (bytes, cli/origin-server.ts), the tracker's STUN answers (datagrams,
 * tracker/stun-server.ts) and its message budget per address (messages, tracker/address-budget.ts). The clock is injected so the arithmetic
 * is tested without waiting; the callers wait with their own runtime's timers and cancellation.
 *
 * @example
 * const bucket = new TokenBucket(1000, 500); // 1000 per second, bursts of 500, starts full
 * bucket.take(800); // 500: what it holds
 * bucket.waitMs(100); // 100: ms until 100 more are there
 */
export class TokenBucket {
  #capacity: number;
  #rate: number;
  #tokens: number;
  #last: number;
  readonly #now: () => number;

  /**
   * @param rate tokens per second, >= 0 (0: nothing refills until `rate` is set)
   * @param capacity largest burst, > 0
   * @param now clock in milliseconds; default the platform's monotonic clock
   * @param tokens what the bucket holds at first; default full
   */
  constructor(rate: number, capacity: number, now: () => number = monotonicNow, tokens = capacity) {
    this.#rate = rate;
    this.#capacity = capacity;
    this.#tokens = Math.min(capacity, tokens);
    this.#now = now;
    this.#last = now();
  }

  /** Largest burst. Setting it counts the time so far at the previous one; what the bucket holds beyond it goes. */
  get capacity(): number {
    return this.#capacity;
  }

  set capacity(value: number) {
    this.#refill();
    this.#capacity = value;
    this.#tokens = Math.min(value, this.#tokens);
  }

  /** Tokens per second. Setting it counts the time so far at the previous rate. */
  get rate(): number {
    return this.#rate;
  }

  set rate(value: number) {
    this.#refill();
    this.#rate = value;
  }

  #refill(): void {
    const now = this.#now();
    if (now > this.#last) this.#tokens = Math.min(this.#capacity, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
    this.#last = now;
  }

  /** Takes up to `max` whole tokens now and returns how many (possibly 0). */
  take(max: number): number {
    this.#refill();
    const granted = Math.max(0, Math.min(max, Math.floor(this.#tokens)));
    this.#tokens -= granted;
    return granted;
  }

  /** Milliseconds until `want` tokens (capped at the capacity) can be taken; 0 when they can now. */
  waitMs(want: number): number {
    this.#refill();
    const missing = Math.min(want, this.#capacity) - this.#tokens;
    if (missing <= 0) return 0;
    return this.#rate > 0 ? Math.ceil((missing * 1000) / this.#rate) : Infinity;
  }

  /**
   * Takes `amount` tokens whether the bucket holds them or not (what it lacks becomes a debt) and
   * returns the milliseconds until the debt is repaid: the caller goes ahead after that long.
   * Over any window of W seconds, spending then waiting lets at most `rate × W + capacity` through.
   */
  spend(amount: number): number {
    this.#refill();
    this.#tokens -= amount;
    if (this.#tokens >= 0) return 0;
    return this.#rate > 0 ? (-this.#tokens * 1000) / this.#rate : Infinity;
  }

  /** What the bucket holds now (below 0: a debt, see spend). */
  get tokens(): number {
    this.#refill();
    return this.#tokens;
  }

  /**
   * Sets what the bucket holds as of now, at most its capacity (below 0: a debt): the level of a
   * bucket kept elsewhere, such as the tracker's per-address budget shared by its instances.
   */
  setTokens(tokens: number): void {
    this.#tokens = Math.min(this.#capacity, tokens);
    this.#last = this.#now();
  }

  /** Leaves the bucket empty as of now (no credit for time that passed, no debt). */
  empty(): void {
    this.#tokens = 0;
    this.#last = this.#now();
  }
}
