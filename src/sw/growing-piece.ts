import { PeerfetchError } from '../shared/errors.js';
import { verifyPiece } from '../shared/integrity.js';

/**
 * A piece whose bytes are still arriving from the origin. Readers get each byte range as soon
 * as it is there, so the player sees origin bytes as they arrive (startup as fast as plain
 * HTTP), while `done` resolves with the whole piece for hashing and storing. Several readers
 * (a stream and a prefetch, two overlapping Range requests) share one transfer.
 */
export class GrowingPiece {
  readonly data: Uint8Array;
  readonly done: Promise<Uint8Array>;
  /**
   * The whole asset, when the origin ignored the Range request and sent all of it: the loader
   * keeps every piece of it, instead of downloading the whole file again for each next piece.
   */
  wholeAsset: Uint8Array | undefined;
  #verified: Promise<boolean> | undefined;
  #received = 0;
  #failure: unknown;
  #wake: (() => void)[] = [];
  #resolve!: (data: Uint8Array) => void;
  #reject!: (error: unknown) => void;

  constructor(length: number) {
    this.data = new Uint8Array(length);
    this.done = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // `done` may have no listener when the piece fails; its rejection is reported through read().
    this.done.catch(() => {});
  }

  get received(): number {
    return this.#received;
  }

  /** Whether the piece failed: no more bytes will come. */
  get failed(): boolean {
    return this.#failure !== undefined;
  }

  /**
   * Whether the whole piece matches `sha256` (hex), once it is complete; false when it fails to
   * arrive. Hashed once, however many readers ask (the response that streams it and the store).
   */
  verify(sha256: string): Promise<boolean> {
    this.#verified ??= this.done.then(
      (data) => verifyPiece(data, sha256),
      () => false,
    );
    return this.#verified;
  }

  append(chunk: Uint8Array): void {
    const room = this.data.length - this.#received;
    if (chunk.length > room) {
      return this.fail(new PeerfetchError('origin-failed', 'the origin sent more bytes than the piece has'));
    }
    this.data.set(chunk, this.#received);
    this.#received += chunk.length;
    if (this.#received === this.data.length) this.#resolve(this.data);
    this.#notify();
  }

  fail(error: unknown): void {
    if (this.#failure !== undefined || this.#received === this.data.length) return;
    this.#failure = error;
    this.#reject(error);
    this.#notify();
  }

  /** Yields bytes `[from, to)` of the piece in order, each part as soon as it has arrived. */
  async *read(from: number, to: number): AsyncGenerator<Uint8Array> {
    let position = from;
    while (position < to) {
      if (this.#failure !== undefined) throw this.#failure;
      const available = Math.min(this.#received, to);
      if (available > position) {
        yield this.data.subarray(position, available);
        position = available;
        continue;
      }
      await new Promise<void>((resolve) => this.#wake.push(resolve));
    }
  }

  #notify(): void {
    const waiting = this.#wake;
    this.#wake = [];
    for (const wake of waiting) wake();
  }
}
