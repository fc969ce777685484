/** Width (ms) of one bucket of the history, and how many buckets it keeps (2 minutes): a route change is forgotten that fast. */
const BUCKET_MS = 10_000;
const BUCKETS = 12;

/**
 * The lowest delay seen recently on a path (LEDBAT's base delay, RFC 6817 §3.4.2): the path with
 * no queue of ours on it. What a delay measures above it is queueing. Kept as the lowest delay
 * per 10 s bucket over the last 2 minutes, so a path that got slower for good (a new route, a
 * clock that drifted) is measured against its new base soon after.
 *
 * @example
 * base.note(delayMs); const queueingMs = delayMs - base.value!;
 */
export class BaseDelay {
  readonly #now: () => number;
  /** Lowest delay per bucket, newest last. */
  #buckets: { start: number; min: number }[] = [];

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** The lowest delay (ms) in the history, or undefined before the first. */
  get value(): number | undefined {
    return this.#buckets.length === 0 ? undefined : Math.min(...this.#buckets.map((bucket) => bucket.min));
  }

  note(delayMs: number): void {
    const now = this.#now();
    const newest = this.#buckets.at(-1);
    if (newest && now - newest.start < BUCKET_MS) newest.min = Math.min(newest.min, delayMs);
    else this.#buckets = [...this.#buckets, { start: now, min: delayMs }].slice(-BUCKETS);
  }
}
