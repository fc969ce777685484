import { PeerfetchError } from '../shared/errors.js';

/** Bounds (ms) of an origin request's progress: see {@link ORIGIN_PROGRESS_BOUNDS}. */
export interface ProgressBounds {
  /** Longest wait for the response headers. */
  headersMs: number;
  /** Longest wait for the next body bytes. */
  idleMs: number;
}

/**
 * How long an origin may make no progress before its request is dropped (ms). A slow but alive
 * origin answers a Range request in well under a second and, once its body flows, sends bytes
 * every few milliseconds even on a 1 Mbit/s line; a CDN filling its cache from a far shield takes
 * a few seconds to its headers at worst. A body goes quiet for seconds only when packets are
 * lost repeatedly: Linux retransmits after 0.2, 0.4, 0.8, 1.6, 3.2 s, so 10 s tolerates five losses
 * of the same segment in a row. The manifest fetch has the same 10 s bound (manifest-source.ts).
 */
export const ORIGIN_PROGRESS_BOUNDS: ProgressBounds = { headersMs: 10_000, idleMs: 10_000 };

/** The error a stalled origin request fails with. */
export function stalledError(url: string, phase: 'headers' | 'body'): PeerfetchError {
  return new PeerfetchError('origin-failed', `the origin sent no ${phase === 'headers' ? 'response headers' : 'bytes'} in time for ${url}`, {
    stalled: phase,
  });
}

/** Whether `error` is a request dropped by its watchdog (see {@link WatchedRequest}). */
export function isStall(error: unknown): boolean {
  return error instanceof PeerfetchError && error.details.stalled !== undefined;
}

/**
 * One fetch under a progress watchdog: it is aborted when its headers take longer than
 * `headersMs`, or its body brings no bytes for `idleMs` (the reader calls `progress()` on each
 * chunk). Without it a stalled origin held the player's response, the other pieces waiting on
 * the asset's first response and the worker's `waitUntil` forever. `signal` (the caller's)
 * aborts it too. Call `end()` once the body is read or dropped.
 */
export class WatchedRequest {
  readonly #controller = new AbortController();
  readonly #bounds: ProgressBounds;
  readonly #outer: AbortSignal | undefined;
  readonly #onOuterAbort = () => this.#controller.abort(this.#outer?.reason);
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stall: PeerfetchError | undefined;
  #url = '';

  constructor(bounds: ProgressBounds, signal?: AbortSignal) {
    this.#bounds = bounds;
    this.#outer = signal;
    if (signal?.aborted) this.#controller.abort(signal.reason);
    else signal?.addEventListener('abort', this.#onOuterAbort, { once: true });
  }

  /** Why the watchdog dropped the request, if it did. */
  get stall(): PeerfetchError | undefined {
    return this.#stall;
  }

  /** Fetches `url`; rejects with a stall error when no headers came within the bound. */
  async fetch(url: string, init: RequestInit): Promise<Response> {
    this.#url = url;
    this.#arm('headers', this.#bounds.headersMs);
    try {
      const response = await fetch(url, { ...init, signal: this.#controller.signal });
      this.#arm('body', this.#bounds.idleMs);
      return response;
    } catch (error) {
      this.end();
      throw this.#stall ?? error;
    }
  }

  /** Body bytes arrived: the idle bound starts again. */
  progress(): void {
    if (this.#timer !== undefined) this.#arm('body', this.#bounds.idleMs);
  }

  /** The error to report for a failed body read: the stall when the watchdog caused it. */
  failure(error: unknown): unknown {
    return this.#stall ?? error;
  }

  /** Stops the watchdog and detaches from the caller's signal. Idempotent. */
  end(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#outer?.removeEventListener('abort', this.#onOuterAbort);
  }

  #arm(phase: 'headers' | 'body', ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#stall = stalledError(this.#url, phase);
      this.#controller.abort(this.#stall);
    }, ms);
  }
}
