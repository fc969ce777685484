import { PlatformCustomEvent, PlatformEventTarget, type EventLike, type ListenerOptions } from './platform.js';

/**
 * The platform's Event type where the program that uses peerfetch has one (the DOM lib, Node's
 * types), so that a typed target is also an `EventTarget` to the type checker; else its `type`.
 */
type PlatformEvent = typeof globalThis extends { Event: { prototype: infer E } } ? E : EventLike;

/** The event listeners get: a CustomEvent whose `detail` type comes from the emitter's event map. */
export type TypedEvent<Detail> = PlatformEvent & { readonly detail: Detail };

/** A listener of one event: a function, or an object with `handleEvent` (DOM). */
export type TypedListener<Detail> = ((event: TypedEvent<Detail>) => void) | { handleEvent(event: TypedEvent<Detail>): void };

/** The platform EventTarget's methods, with event names and `detail` types from `EventMap`. */
export interface TypedEventListeners<EventMap> {
  addEventListener<Type extends keyof EventMap & string>(type: Type, listener: TypedListener<EventMap[Type]> | null, options?: boolean | ListenerOptions): void;
  removeEventListener<Type extends keyof EventMap & string>(type: Type, listener: TypedListener<EventMap[Type]> | null, options?: boolean | { capture?: boolean }): void;
  dispatchEvent(event: EventLike): boolean;
}

/**
 * The platform's EventTarget seen through an event map: the same constructor, only typed (a
 * class's `extends` cannot name its own type parameters, a generic constructor can take them).
 */
const TypedEventTargetBase = PlatformEventTarget as new <EventMap>() => TypedEventListeners<EventMap>;

/**
 * An EventTarget (the platform's own: `instanceof EventTarget` holds, `{ once: true }` and
 * `signal` work) whose event names and `detail` types come from one map, so listeners are typed:
 * `target.addEventListener('peer:connect', (event) => event.detail.peerId)`.
 */
export class TypedEventTarget<EventMap extends object> extends TypedEventTargetBase<EventMap> {
  #muted = false;

  /**
   * Dispatches a CustomEvent of `type` with `detail`. A throwing listener never breaks the emitter
   * or the other listeners: the platform reports its error (window `error`, Node
   * `uncaughtException`) and goes on (DOM Standard, "inner invoke").
   */
  protected emit<Type extends keyof EventMap & string>(type: Type, detail: EventMap[Type]): void {
    if (!this.#muted) this.dispatchEvent(new PlatformCustomEvent(type, { detail }));
  }

  /** No event is dispatched from now on (destroy(): no events after destroy). */
  protected muteEvents(): void {
    this.#muted = true;
  }
}
