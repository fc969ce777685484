import { describe, expect, it } from 'vitest';
import { ReachabilityMonitor, type UnreachableDetail } from '../../src/engine/reachability.js';
import { parseTrackerIce } from '../../src/engine/tracker-ice.js';
import { addressKey } from '../../src/engine/peer-path.js';

describe('ICE servers from an announce reply', () => {
  const turn = { urls: ['turn:turn.example:3478?transport=udp'], username: '1800000000:ab12', credential: 'c2VjcmV0' };

  it('builds the STUN URL from the host the page reached the tracker by', () => {
    expect(parseTrackerIce({ stunPort: 3478 }, 'wss://tracker.example/announce')).toEqual({ stun: { urls: 'stun:tracker.example:3478' } });
    expect(parseTrackerIce({ stunPort: 3479 }, 'ws://[2001:db8::1]:8000')).toEqual({ stun: { urls: 'stun:[2001:db8::1]:3479' } });
    expect(parseTrackerIce({ stunPort: 3478, turn }, 'wss://t.example')).toEqual({ stun: { urls: 'stun:t.example:3478' }, turn });
  });

  it.each<[string, unknown]>([
    ['no field (another tracker)', undefined],
    ['a string', 'stun:evil.example'],
    ['a port out of range', { stunPort: 70000 }],
    ['a fractional port', { stunPort: 3478.5 }],
    ['TURN without a credential', { turn: { urls: turn.urls, username: 'u' } }],
    ['TURN with a URL of another scheme', { turn: { ...turn, urls: ['https://turn.example'] } }],
    ['TURN with a huge username', { turn: { ...turn, username: 'x'.repeat(10_000) } }],
  ])('ignores %s', (_, field) => {
    expect(parseTrackerIce(field, 'wss://t.example')).toEqual({});
  });
});

describe('swarm reachability', () => {
  const failed = (types: string[], timedOut = false) => ({ ok: false as const, peerId: 'p', gathering: { timedOut, candidateTypes: types } });

  function monitor() {
    const told: UnreachableDetail[] = [];
    return { told, reachability: new ReachabilityMonitor((detail) => told.push(detail)) };
  }

  it('tells the reason once, after two failed attempts in a swarm with others and no open connection', () => {
    const { told, reachability } = monitor();
    reachability.onSwarmSize(3);
    reachability.onAttempt(failed(['host']), 0);
    expect(told).toEqual([]);
    reachability.onAttempt(failed(['host']), 0);
    reachability.onAttempt(failed(['host']), 0);
    expect(told).toEqual([{ reason: 'no-server-reflexive', peersInSwarm: 3, attempts: 2 }]);
  });

  it.each<[string, string[], boolean, UnreachableDetail['reason']]>([
    ['gathering cut short', ['host'], true, 'gathering-timeout'],
    ['no srflx or relay candidate', ['host'], false, 'no-server-reflexive'],
    ['srflx gathered, checks failed', ['host', 'srflx'], false, 'checks-failed'],
    ['relay gathered, checks failed', ['host', 'relay'], false, 'checks-failed'],
  ])('%s: %s', (_, types, timedOut, reason) => {
    const { told, reachability } = monitor();
    reachability.onSwarmSize(2);
    reachability.onAttempt(failed(types, timedOut), 0);
    reachability.onAttempt(failed(types, timedOut), 0);
    expect(told.map((detail) => detail.reason)).toEqual([reason]);
  });

  it('says nothing while alone or connected, and tells again after a connection succeeded in between', () => {
    const { told, reachability } = monitor();
    reachability.onSwarmSize(1);
    reachability.onAttempt(failed(['host']), 0);
    reachability.onAttempt(failed(['host']), 0);
    expect(told, 'alone in the swarm').toEqual([]);
    reachability.onSwarmSize(2);
    reachability.onAttempt(failed(['host']), 1);
    expect(told, 'a peer is connected').toEqual([]);
    reachability.onAttempt(failed(['host', 'srflx']), 0);
    expect(told.map((detail) => detail.reason)).toEqual(['checks-failed']);
    reachability.onAttempt(failed(['host']), 0);
    expect(told, 'once per problem').toHaveLength(1);
    reachability.onAttempt({ ok: true, peerId: 'q' }, 0);
    reachability.onAttempt(failed(['host'], true), 0);
    reachability.onAttempt(failed(['host'], true), 0);
    expect(told.map((detail) => detail.reason)).toEqual(['checks-failed', 'gathering-timeout']);
  });
});

describe('a peer\'s address, as bans and slow-peer memory key it', () => {
  it.each([
    ['198.51.100.7', '198.51.100.7'],
    ['2001:db8:0:1:aaaa:bbbb:cccc:dddd', '2001:db8:0:1::/64'],
    ['2001:db8:0:1::9', '2001:db8:0:1::/64'],
    ['[2001:0DB8::1]', '2001:db8:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['0d4e1a2b-6c3f-4e5d-9a8b-7c6d5e4f3a2b.local', undefined],
    ['', undefined],
    ['2001:db8::1::2', undefined],
    ['not an address', undefined],
  ])('%s -> %s', (address, key) => {
    expect(addressKey(address)).toBe(key);
  });
});
