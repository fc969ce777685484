// Type-level tests of the public API: compiled by `npm run typecheck` (tsc -p test/types);
// a change that breaks what sites rely on fails the build.
import { expectTypeOf } from 'vitest';
import {
  start,
  Peerfetch,
  PeerfetchError,
  type CandidateType,
  type PeerfetchOptions,
  type PeerfetchStats,
  type RelayPolicy,
  type UnreachableReason,
} from '../../src/engine/index.js';

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
instance.addEventListener('swarm:unreachable', (event) => {
  expectTypeOf(event.detail.reason).toEqualTypeOf<UnreachableReason>();
  expectTypeOf(event.detail.reason).toEqualTypeOf<'no-server-reflexive' | 'gathering-timeout' | 'checks-failed'>();
  expectTypeOf(event.detail.peersInSwarm).toBeNumber();
  expectTypeOf(event.detail.attempts).toBeNumber();
});
const peer = instance.getStats().peerList[0]!;
expectTypeOf(peer.localCandidateType).toEqualTypeOf<CandidateType | undefined>();
expectTypeOf(peer.remoteCandidateType).toEqualTypeOf<'host' | 'srflx' | 'prflx' | 'relay' | undefined>();
expectTypeOf(peer.rttMs).toEqualTypeOf<number | undefined>();
expectTypeOf<PeerfetchOptions['relay']>().toEqualTypeOf<RelayPolicy | undefined>();
expectTypeOf<RelayPolicy>().toEqualTypeOf<'all' | 'ahead' | 'never'>();
expectTypeOf<PeerfetchOptions['debug']>().toEqualTypeOf<boolean | undefined>();
start({ relay: 'never', debug: true });
// @ts-expect-error: relay is one of all, ahead, never
start({ relay: 'sometimes' });
// @ts-expect-error: not an event of peerfetch
instance.addEventListener('peer:unknown', () => {});
// @ts-expect-error: tracker must be a string or a list of strings
start({ tracker: 42 });
expectTypeOf(window.peerfetch).toEqualTypeOf<Peerfetch | undefined>();
