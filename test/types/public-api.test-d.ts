// Type-level tests of the public API: compiled by `npm run typecheck` (tsc -p test/types);
// a change that breaks what sites rely on fails the build.
import { expectTypeOf } from 'vitest';
import { start, Peerfetch, PeerfetchError, type PeerfetchOptions, type PeerfetchStats } from '../../src/engine/index.js';

expectTypeOf(start).parameter(0).toEqualTypeOf<PeerfetchOptions | undefined>();
expectTypeOf(start).returns.toEqualTypeOf<Peerfetch>();

const instance = start({ tracker: ['wss://a.example', 'wss://b.example'], iceServers: [], p2p: false });
expectTypeOf(instance.ready).toEqualTypeOf<Promise<void>>();
expectTypeOf(instance.getStats()).toEqualTypeOf<PeerfetchStats>();
expectTypeOf(instance.getStats().offloadRatio).toBeNumber();
expectTypeOf(instance.destroy).returns.toBeVoid();

instance.addEventListener('peer:connect', (event) => expectTypeOf(event.detail.peerId).toBeString());
instance.addEventListener('piece:rejected', (event) => expectTypeOf(event.detail.url).toBeString());
instance.addEventListener('stats', (event) => expectTypeOf(event.detail).toEqualTypeOf<PeerfetchStats>());
instance.addEventListener('error', (event) => expectTypeOf(event.detail.error).toEqualTypeOf<PeerfetchError>());
// @ts-expect-error: not an event of peerfetch
instance.addEventListener('peer:unknown', () => {});
// @ts-expect-error: tracker must be a string or a list of strings
start({ tracker: 42 });
expectTypeOf(window.peerfetch).toEqualTypeOf<Peerfetch | undefined>();
