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
/** The part of Event shared code uses. */
export interface EventLike {
  readonly type: string;
}
/** A CustomEvent: an Event carrying `detail`. */
export interface CustomEventLike<Detail> extends EventLike {
  readonly detail: Detail;
}
/** Options of addEventListener (DOM): `once` removes the listener after its first call, `signal` when it aborts. */
export interface ListenerOptions {
  capture?: boolean;
  once?: boolean;
  passive?: boolean;
  signal?: AbortSignalLike;
}
/** The platform's EventTarget (window, worker and Node alike). */
export interface EventTargetLike {
  addEventListener(type: string, listener: ((event: never) => void) | null, options?: boolean | ListenerOptions): void;
  removeEventListener(type: string, listener: ((event: never) => void) | null, options?: boolean | { capture?: boolean }): void;
  dispatchEvent(event: EventLike): boolean;
}
interface AbortControllerLike {
  readonly signal: AbortSignalLike;
  abort(): void;
}
interface PlatformGlobals {
  AbortController: new () => AbortControllerLike;
  crypto: { subtle: SubtleDigest };
  URL: new (url: string, base?: string) => UrlLike;
  performance: { now(): number };
  EventTarget: new () => EventTargetLike;
  CustomEvent: new <Detail>(type: string, init: { detail: Detail }) => CustomEventLike<Detail>;
  TextEncoder: new () => Utf8Encoder;
  TextDecoder: new (label?: string, options?: { fatal?: boolean }) => Utf8Decoder;
}

const platform = globalThis as unknown as PlatformGlobals;

export const subtle: SubtleDigest = platform.crypto.subtle;
export const utf8Encoder: Utf8Encoder = new platform.TextEncoder();
export const utf8Decoder: Utf8Decoder = new platform.TextDecoder('utf-8', { fatal: true });

/** WHATWG URL constructor (resolves relative URLs, throws TypeError on invalid ones). */
export const PlatformURL = platform.URL;

/**
 * Milliseconds on the platform's monotonic clock (`performance.now()`), looked up on each call so
 * that test clocks installed later (vitest's fake timers) apply.
 */
export const monotonicNow = (): number => platform.performance.now();

/** The platform's EventTarget and CustomEvent constructors (typed-events.ts builds on them). */
export const PlatformEventTarget = platform.EventTarget;
export const PlatformCustomEvent = platform.CustomEvent;

/** A new AbortController of the running platform. */
export const newAbortController = (): AbortControllerLike => new platform.AbortController();
