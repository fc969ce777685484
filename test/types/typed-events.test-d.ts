// Type-level tests of typed events: compiled by `npm run typecheck` (tsc -p test/types). Each
// `@ts-expect-error` line must fail to compile; the build fails if one compiles.
import { expectTypeOf } from 'vitest';
import { start, type PeerfetchStats, type TypedEvent } from '../../src/engine/index.js';
import { TypedEventTarget } from '../../src/shared/typed-events.js';

interface ThingEvents {
  'thing:done': { count: number };
  'thing:failed': { reason: string };
}

class Thing extends TypedEventTarget<ThingEvents> {
  fire(): void {
    this.emit('thing:done', { count: 1 });
    this.emit('thing:failed', { reason: 'x' });
    // @ts-expect-error: not an event of Thing
    this.emit('thing:lost', { count: 1 });
    // @ts-expect-error: the detail of thing:done is { count: number }
    this.emit('thing:done', { count: '1' });
    // @ts-expect-error: the detail of thing:failed is { reason: string }
    this.emit('thing:failed', { count: 1 });
  }
}

const thing = new Thing();
// The platform's EventTarget, with its options.
const thingAsTarget: EventTarget = thing;
const controller = new AbortController();
thing.addEventListener('thing:done', (event) => expectTypeOf(event.detail.count).toBeNumber(), { once: true, signal: controller.signal });
thing.addEventListener('thing:failed', (event) => expectTypeOf(event).toEqualTypeOf<TypedEvent<{ reason: string }>>());
// @ts-expect-error: not an event of Thing
thing.addEventListener('thing:lost', () => {});
// @ts-expect-error: the detail of thing:done has no reason
thing.addEventListener('thing:done', (event) => event.detail.reason);
// @ts-expect-error: a listener of another detail type
thing.addEventListener('thing:done', (event: TypedEvent<{ count: string }>) => event);
// @ts-expect-error: emit is the emitter's own
thing.emit('thing:done', { count: 1 });

// The same on the public instance.
const instance = start({ tracker: 'wss://tracker.example' });
const instanceAsTarget: EventTarget = instance;
instance.addEventListener('stats', (event) => expectTypeOf(event.detail).toEqualTypeOf<PeerfetchStats>(), { signal: controller.signal });
instance.addEventListener('peer:connect', () => {}, { once: true });
// @ts-expect-error: peer:connect carries { peerId: string }
instance.addEventListener('peer:connect', (event: TypedEvent<{ peerId: number }>) => event);
// @ts-expect-error: stats carries PeerfetchStats, which has no url
instance.addEventListener('stats', (event) => event.detail.url);
