import { verifyPiece } from '../shared/integrity.js';
import type { ArrivingPiece } from './peer.js';

/**
 * Longest silence (ms) of the worker forwarding a piece before the piece counts as failed: an
 * origin sends a 256 KiB piece in under a second at the 3 Mbit/s of a slow CDN edge; a worker of
 * another deploy that does not know the `forward` message never answers at all.
 */
export const FORWARD_SILENCE_MS = 5000;

/**
 * The bytes of a piece this page's worker is fetching from the origin, passed on to the peers that
 * ask for it while they arrive (see Swarm.markArriving): at the live edge every member wants each
 * new piece at once, and a member waiting for another to hold the whole piece first ran out of time
 * and fetched it from the origin too. Its bytes go out unverified (the asker verifies the whole
 * piece), but the last one is held back until the whole piece matched its hash here, so that a
 * member whose origin sent bytes that fail (a stale manifest) never completes a bad piece at a
 * peer, which would ban it.
 */
export class ForwardedPiece implements ArrivingPiece {
  readonly bytes: Uint8Array;
  readonly #sha256: string;
  #received = 0;
  #verified = false;
  #failed = false;
  #wake: (() => void)[] = [];

  constructor(size: number, sha256: string) {
    this.bytes = new Uint8Array(size);
    this.#sha256 = sha256;
  }

  /** Bytes the worker sent so far (the whole piece once it equals bytes.length). */
  get received(): number {
    return this.#received;
  }

  get available(): number {
    return this.#verified ? this.bytes.length : Math.min(this.#received, this.bytes.length - 1);
  }

  get failed(): boolean {
    return this.#failed;
  }

  /** The next bytes from the worker, in order; more than the piece has fails it. Once whole, it is verified. */
  append(chunk: Uint8Array): void {
    if (this.settled) return;
    if (chunk.length > this.bytes.length - this.#received) return this.fail();
    this.bytes.set(chunk, this.#received);
    this.#received += chunk.length;
    this.#notify();
    if (this.#received < this.bytes.length) return;
    void verifyPiece(this.bytes, this.#sha256).then((good) => {
      if (!good) return this.fail();
      this.#verified = true;
      this.#notify();
    });
  }

  fail(): void {
    if (this.settled) return;
    this.#failed = true;
    this.#notify();
  }

  get settled(): boolean {
    return this.#failed || this.#verified;
  }

  more(): Promise<void> {
    if (this.settled) return Promise.resolve();
    return new Promise((resolve) => this.#wake.push(resolve));
  }

  #notify(): void {
    const waiting = this.#wake;
    this.#wake = [];
    for (const wake of waiting) wake();
  }
}
