import { describe, expect, it } from 'vitest';
import { TypedEventTarget } from '../../src/shared/typed-events.js';

interface ThingEvents {
  'thing:done': { count: number };
}

class Thing extends TypedEventTarget<ThingEvents> {
  fire(count: number): void {
    this.emit('thing:done', { count });
  }
  destroy(): void {
    this.muteEvents();
  }
}

describe('TypedEventTarget', () => {
  it("is the platform's EventTarget and dispatches CustomEvents with the detail", () => {
    const thing = new Thing();
    expect(thing).toBeInstanceOf(EventTarget);
    const seen: unknown[] = [];
    thing.addEventListener('thing:done', (event) => seen.push([event instanceof CustomEvent, event.type, event.detail.count]));
    thing.fire(3);
    expect(seen).toEqual([[true, 'thing:done', 3]]);
  });

  it('honours { once: true }, signal, handleEvent objects and removeEventListener', () => {
    const thing = new Thing();
    const controller = new AbortController();
    const calls = { once: 0, signal: 0, object: 0, removed: 0 };
    thing.addEventListener('thing:done', () => calls.once++, { once: true });
    thing.addEventListener('thing:done', () => calls.signal++, { signal: controller.signal });
    thing.addEventListener('thing:done', { handleEvent: (event) => (calls.object += event.detail.count) });
    const removed = (): void => void calls.removed++;
    thing.addEventListener('thing:done', removed);
    thing.removeEventListener('thing:done', removed);
    thing.fire(1);
    controller.abort();
    thing.fire(2);
    expect(calls).toEqual({ once: 1, signal: 1, object: 3, removed: 0 });
  });

  it('dispatches nothing once muted (no events after destroy)', () => {
    const thing = new Thing();
    let calls = 0;
    thing.addEventListener('thing:done', () => calls++);
    thing.destroy();
    thing.fire(1);
    expect(calls).toBe(0);
  });
});
