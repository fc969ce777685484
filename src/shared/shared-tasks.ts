import { PeerfetchError } from './errors.js';
import { newAbortController, type AbortSignalLike } from './platform.js';

interface Task<T> {
  promise: Promise<T>;
  controller: { abort(): void };
  waiters: number;
  /** The task's promise has settled: leaving waiters no longer abort it (what it started may still be running on purpose, e.g. a response body being read). */
  settled: boolean;
}

/**
 * Runs at most one task per key and lets several callers wait for it, each with its own
 * AbortSignal. A caller's abort only detaches that caller; the task itself is aborted when its
 * last waiter leaves. This is how a piece is never fetched twice at once (a player's stream and
 * a prefetch wanting the same piece share one transfer), while a seek still cancels transfers
 * nobody needs any more.
 *
 * @example
 * const tasks = new SharedTasks<Uint8Array>();
 * const bytes = await tasks.run('asset/3', (signal) => fetchPiece(3, signal), request.signal);
 */
export class SharedTasks<T, Signal extends AbortSignalLike = AbortSignalLike> {
  readonly #tasks = new Map<string, Task<T>>();

  /** Whether a task for `key` is running. */
  has(key: string): boolean {
    return this.#tasks.has(key);
  }

  /**
   * Aborts the task for `key` for every caller (its result is no longer wanted by anyone, e.g.
   * another source finishes the piece). Its waiters get whatever the task returns once aborted.
   */
  abort(key: string): void {
    const task = this.#tasks.get(key);
    if (!task || task.settled) return;
    task.controller.abort();
    this.#tasks.delete(key);
  }

  /** Joins the task for `key`, starting it with `start` if none runs. Rejects with `aborted` when `signal` aborts first. */
  run(key: string, start: (signal: Signal) => Promise<T>, signal?: AbortSignalLike): Promise<T> {
    if (signal?.aborted) return Promise.reject(new PeerfetchError('aborted', 'aborted before start'));
    let task = this.#tasks.get(key);
    if (!task) {
      const controller = newAbortController();
      // The platform's own AbortController: its signal is the runtime's real AbortSignal.
      const promise = start(controller.signal as Signal).finally(() => {
        created.settled = true;
        if (this.#tasks.get(key) === created) this.#tasks.delete(key);
      });
      const created: Task<T> = { promise, controller, waiters: 0, settled: false };
      this.#tasks.set(key, (task = created));
    }
    const joined = task;
    joined.waiters++;
    if (!signal) return joined.promise;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        reject(new PeerfetchError('aborted', 'the caller no longer needs this'));
        if (--joined.waiters === 0 && !joined.settled) {
          joined.controller.abort();
          if (this.#tasks.get(key) === joined) this.#tasks.delete(key);
        }
      };
      signal.addEventListener('abort', onAbort, { once: true });
      joined.promise.then(
        (value) => {
          signal.removeEventListener('abort', onAbort);
          resolve(value);
        },
        (error: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      );
    });
  }
}
