/**
 * One wait on news that other code announces by calling every wake-up in `waiters` (a peer said
 * what it holds, an upload ended, a manifest version arrived): resolves true at the first call
 * whose news `settled` accepts, false after `timeoutMs` or when `signal` aborts. Its wake-up leaves
 * the set either way, so an announcer may call the set's wake-ups while they remove themselves.
 */
export function untilSettled<News>(
  waiters: Set<(news: News) => void>,
  settled: (news: News) => boolean,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<boolean> {
  return new Promise((resolve) => {
    const finish = (found: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      waiters.delete(wake);
      resolve(found);
    };
    const wake = (news: News) => settled(news) && finish(true);
    const onAbort = () => finish(false);
    const timer = setTimeout(() => finish(false), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    waiters.add(wake);
  });
}
