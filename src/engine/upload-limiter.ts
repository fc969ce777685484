/**
 * Caps the bytes this page uploads to all its peers together (a token bucket), so a viewer on a
 * metered or slow uplink can share without hurting its own playback. No cap by default.
 */
export class UploadLimiter {
  #bytesPerSecond: number | undefined;
  #tokens = 0;
  #last = 0;
  #queue: Promise<void> = Promise.resolve();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** Bytes per second, or undefined for no cap. */
  get bytesPerSecond(): number | undefined {
    return this.#bytesPerSecond;
  }

  set bytesPerSecond(value: number | undefined) {
    this.#bytesPerSecond = value !== undefined && value > 0 && Number.isFinite(value) ? value : undefined;
    this.#tokens = 0;
    this.#last = this.#now();
  }

  /** Resolves when `bytes` may be sent; callers are served in order. */
  take(bytes: number): Promise<void> {
    this.#queue = this.#queue.then(() => this.#wait(bytes));
    return this.#queue;
  }

  async #wait(bytes: number): Promise<void> {
    const rate = this.#bytesPerSecond;
    if (rate === undefined) return;
    const now = this.#now();
    // At most one second of burst, so a cap is a cap and not an average over minutes.
    this.#tokens = Math.min(rate, this.#tokens + ((now - this.#last) / 1000) * rate);
    this.#last = now;
    this.#tokens -= bytes;
    if (this.#tokens < 0) await new Promise((resolve) => setTimeout(resolve, (-this.#tokens / rate) * 1000));
  }
}
