/**
 * A token bucket in bytes: `rate` bytes per second refill it up to `capacity`. The origin server
 * keeps one per connection to cap its bandwidth the way a CDN edge does. The clock is injected so
 * the arithmetic is tested without waiting.
 */
export class TokenBucket {
  readonly rate: number;
  readonly capacity: number;
  private tokens: number;
  private last: number;
  private readonly now: () => number;

  /**
   * @param rate bytes per second, > 0
   * @param capacity largest burst in bytes, > 0; the bucket starts full
   * @param now clock in milliseconds
   */
  constructor(rate: number, capacity: number, now: () => number = () => performance.now()) {
    this.rate = rate;
    this.capacity = capacity;
    this.tokens = capacity;
    this.now = now;
    this.last = now();
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
  }

  /** Takes up to `max` whole bytes' worth of tokens now and returns how many (possibly 0). */
  take(max: number): number {
    this.refill();
    const granted = Math.max(0, Math.min(max, Math.floor(this.tokens)));
    this.tokens -= granted;
    return granted;
  }

  /** Milliseconds until `want` bytes (capped at the capacity) can be taken; 0 when they can now. */
  waitMs(want: number): number {
    this.refill();
    const missing = Math.min(want, this.capacity) - this.tokens;
    return missing <= 0 ? 0 : Math.ceil((missing * 1000) / this.rate);
  }
}

/**
 * Waits until the bucket grants some bytes (at least `min(max, quantum)` worth of waiting, so that
 * a slow rate sends a few larger writes instead of many 1-byte ones) and returns how many it
 * granted. Rejects with the signal's reason when `signal` aborts first.
 */
export async function takeTokens(bucket: TokenBucket, max: number, quantum: number, signal: AbortSignal): Promise<number> {
  for (;;) {
    signal.throwIfAborted();
    const wait = bucket.waitMs(Math.min(max, quantum));
    if (wait === 0) {
      const granted = bucket.take(max);
      if (granted > 0) return granted;
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(done, Math.max(1, wait));
      function done(): void {
        signal.removeEventListener('abort', aborted);
        resolve();
      }
      function aborted(): void {
        clearTimeout(timer);
        reject(signal.reason);
      }
      signal.addEventListener('abort', aborted, { once: true });
    });
  }
}
