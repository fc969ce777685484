import { queueTask } from './platform.js';

/**
 * An EventTarget whose event names and `detail` types come from one map, so listeners are
 * typed: `target.addEventListener('peer:connect', (event) => event.detail.peerId)`.
 */
export interface TypedEvent<Detail> {
  readonly type: string;
  readonly detail: Detail;
}

type Listener<Detail> = (event: TypedEvent<Detail>) => void;

export class TypedEventTarget<EventMap extends object> {
  #listeners = new Map<keyof EventMap, Set<Listener<never>>>();

  addEventListener<Type extends keyof EventMap>(type: Type, listener: Listener<EventMap[Type]>): void {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(listener as Listener<never>);
  }

  removeEventListener<Type extends keyof EventMap>(type: Type, listener: Listener<EventMap[Type]>): void {
    this.#listeners.get(type)?.delete(listener as Listener<never>);
  }

  /** Calls every listener of `type`; a throwing listener never breaks the emitter or the others. */
  protected emit<Type extends keyof EventMap>(type: Type, detail: EventMap[Type]): void {
    const event: TypedEvent<EventMap[Type]> = { type: String(type), detail };
    for (const listener of this.#listeners.get(type) ?? []) {
      try {
        (listener as Listener<EventMap[Type]>)(event);
      } catch (error) {
        queueTask(() => {
          throw error;
        });
      }
    }
  }

  /** Drops every listener (used by destroy(): no events after destroy). */
  protected removeAllListeners(): void {
    this.#listeners.clear();
  }
}
