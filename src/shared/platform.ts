/**
 * The few Web platform globals that shared code needs. `src/shared` compiles against the es2022
 * lib only (it runs in the page, the service worker and Node), so these are typed here, minimally,
 * instead of pulling in a DOM or Node lib. All three runtimes provide them natively (Node >= 20).
 */
interface SubtleDigest {
  digest(algorithm: 'SHA-256' | 'SHA-1', data: Uint8Array): Promise<ArrayBuffer>;
}
interface Utf8Encoder {
  encode(input: string): Uint8Array;
}
interface Utf8Decoder {
  decode(input: Uint8Array): string;
}
interface UrlLike {
  readonly href: string;
}
/** The part of AbortSignal shared code uses; the real AbortSignal of every runtime satisfies it. */
export interface AbortSignalLike {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}
interface AbortControllerLike {
  readonly signal: AbortSignalLike;
  abort(): void;
}
interface PlatformGlobals {
  AbortController: new () => AbortControllerLike;
  crypto: { subtle: SubtleDigest };
  URL: new (url: string, base?: string) => UrlLike;
  queueMicrotask(callback: () => void): void;
  performance: { now(): number };
  TextEncoder: new () => Utf8Encoder;
  TextDecoder: new (label?: string, options?: { fatal?: boolean }) => Utf8Decoder;
}

const platform = globalThis as unknown as PlatformGlobals;

export const subtle: SubtleDigest = platform.crypto.subtle;
export const utf8Encoder: Utf8Encoder = new platform.TextEncoder();
export const utf8Decoder: Utf8Decoder = new platform.TextDecoder('utf-8', { fatal: true });

/** WHATWG URL constructor (resolves relative URLs, throws TypeError on invalid ones). */
export const PlatformURL = platform.URL;
/** Runs `callback` after the current task; used to rethrow listener errors without breaking emitters. */
export const queueTask = (callback: () => void): void => platform.queueMicrotask(callback);

/**
 * Milliseconds on the platform's monotonic clock (`performance.now()`), looked up on each call so
 * that test clocks installed later (vitest's fake timers) apply.
 */
export const monotonicNow = (): number => platform.performance.now();

/** A new AbortController of the running platform. */
export const newAbortController = (): AbortControllerLike => new platform.AbortController();
