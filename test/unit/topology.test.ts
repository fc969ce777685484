import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { coturnCommand, turnCredentials } from '../harness/coturn.mjs';
import { normalizeHomes, secureOriginArgs, tbfArgs } from '../harness/topology.mjs';

// The pure parts of the NAT topology harness (test/harness/topology.mjs) and the coturn helper;
// the namespaces, NATs and line caps themselves are checked in test/browser/topologies.test.ts.

describe('normalizeHomes', () => {
  it('fills in the defaults: a cone NAT, one visitor, open UDP, no caps, no loss', () => {
    expect(normalizeHomes({ homes: [{}] })).toEqual([{ nat: 'cone', udp: 'open', visitors: 1, uplinkKbit: 0, downlinkKbit: 0, lossPercent: 0 }]);
  });

  it('keeps what was given', () => {
    const [home] = normalizeHomes({ homes: [{ nat: 'symmetric', udp: 'turn-only', visitors: 2, uplinkKbit: 2000, downlinkKbit: 20000, lossPercent: 1 }] });
    expect(home).toEqual({ nat: 'symmetric', udp: 'turn-only', visitors: 2, uplinkKbit: 2000, downlinkKbit: 20000, lossPercent: 1 });
  });

  it.each([
    [{ homes: [] }, /at least one home/],
    [{ homes: [{ nat: 'full-cone' }] }, /nat must be 'cone' or 'symmetric'/],
    [{ homes: [{ udp: 'tcp' }] }, /udp must be/],
    [{ homes: [{ visitors: 0 }] }, /visitors must be/],
    [{ homes: [{ visitors: 1.5 }] }, /visitors must be/],
    [{ homes: [{ uplinkKbit: -1 }] }, /uplinkKbit must be a positive number/],
    [{ homes: [{ downlinkKbit: Number.NaN }] }, /downlinkKbit must be a positive number/],
    [{ homes: [{ lossPercent: 100 }] }, /lossPercent must be/],
  ])('rejects %j', (spec, message) => {
    expect(() => normalizeHomes(spec as never)).toThrow(message);
  });
});

describe('tbfArgs', () => {
  it('caps at the given rate with a 400 ms queue and a 4 KiB bucket at home-line rates', () => {
    expect(tbfArgs('wan', 2000)).toEqual(['qdisc', 'add', 'dev', 'wan', 'root', 'tbf', 'rate', '2000kbit', 'burst', '4096', 'latency', '400ms']);
  });

  it('gives fast lines a bucket of one 100 Hz tick of bytes', () => {
    // 100 Mbit/s = 12.5 MB/s; one 10 ms tick = 125 000 bytes.
    expect(tbfArgs('wan', 100_000)).toContain('125000');
  });

  it('refuses a rate that is not positive', () => {
    expect(() => tbfArgs('wan', 0)).toThrow(/positive/);
  });
});

describe('coturn helper', () => {
  it('makes a STUN-only server without a secret and a TURN server with one', () => {
    const [command, stunArgs] = coturnCommand({ address: '198.18.0.2', port: 3478 });
    expect(command).toBe('turnserver');
    expect(stunArgs).toContain('--stun-only');
    const [, turnArgs] = coturnCommand({ address: '198.18.0.2', secret: 's3cret' });
    expect(turnArgs).not.toContain('--stun-only');
    expect(turnArgs).toEqual(expect.arrayContaining(['--use-auth-secret', '--static-auth-secret', 's3cret', '--relay-ip', '198.18.0.2']));
  });

  it('refuses bad input', () => {
    expect(() => coturnCommand({ address: 'localhost' })).toThrow(/IPv4/);
    expect(() => coturnCommand({ address: '198.18.0.2', port: 70000 })).toThrow(/port/);
    expect(() => coturnCommand({ address: '198.18.0.2', secret: '' })).toThrow(/secret/);
  });

  it('makes REST-scheme credentials: expiry:user and base64 HMAC-SHA1 of it', () => {
    const now = Date.UTC(2026, 11, 4, 12, 0, 0);
    const { username, credential } = turnCredentials('s3cret', { ttlSeconds: 600, user: 'alice', now });
    expect(username).toBe(`${now / 1000 + 600}:alice`);
    expect(credential).toBe(createHmac('sha1', 's3cret').update(username).digest('base64'));
  });
});

describe('secureOriginArgs', () => {
  it('names every origin in one flag, or none', () => {
    expect(secureOriginArgs(['http://198.18.0.1:8080', 'http://198.18.0.1:8081'])).toEqual(['--unsafely-treat-insecure-origin-as-secure=http://198.18.0.1:8080,http://198.18.0.1:8081']);
    expect(secureOriginArgs([])).toEqual([]);
  });
});
