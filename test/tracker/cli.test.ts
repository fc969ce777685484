import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTrackerArgs } from '../../src/tracker/cli.js';
import { isPeerfetchError } from '../../src/shared/errors.js';
import { bundleTrackerCli } from './bundle.js';
import { announce, isReply, randomId, TestClient, waitFor } from './helpers.js';

let entry: string;
beforeAll(async () => {
  entry = await bundleTrackerCli();
});
afterAll(() => rmSync(entry, { force: true }));

interface Child {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function spawnTracker(args: string[]): Child {
  const proc = spawn(process.execPath, [entry, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { proc, stdout: () => out, stderr: () => err, exited };
}

describe('peerfetch tracker command', () => {
  it('prints one line once listening, serves HTTP, and exits 0 on SIGTERM after closing sockets with a reason', async () => {
    const child = spawnTracker(['--port', '0', '--host', '127.0.0.1', '--interval', '30']);
    try {
      const line = await waitFor('the listening line', () => /^peerfetch tracker listening on (ws:\/\/127\.0\.0\.1:(\d+))\n/.exec(child.stdout()), 15_000);
      const url = line[1]!;
      const http = url.replace('ws://', 'http://');

      const health = await fetch(`${http}/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ status: 'ok' });

      const ws = await TestClient.open(url);
      const infoHash = randomId();
      ws.send(announce(infoHash, randomId(), { peerfetch: { bytesFromPeers: 300, bytesFromOrigin: 100, bytesUploaded: 5 } }));
      expect(await ws.next(isReply)).toMatchObject({ interval: 30, incomplete: 1 });

      const stats = await fetch(`${http}/stats.json`);
      expect(stats.headers.get('access-control-allow-origin')).toBe('*');
      const body = await stats.json();
      expect(body.swarms[0]).toMatchObject({ peers: 1, bytesFromPeers: 300, bytesFromOrigin: 100, offloadRatio: 0.75 });

      const metrics = await (await fetch(`${http}/metrics`)).text();
      expect(metrics).toMatch(/^peerfetch_tracker_announces_total 1$/m);
      expect(metrics).toMatch(/^peerfetch_tracker_peers 1$/m);

      child.proc.kill('SIGTERM');
      expect(await ws.closed).toEqual({ code: 1001, reason: 'tracker is shutting down' });
      expect(await child.exited).toBe(0);
      expect(child.stdout().split('\n').filter(Boolean)).toHaveLength(1);
      // Logs are JSON lines on stderr.
      const logs = child.stderr().split('\n').filter(Boolean).map((l) => JSON.parse(l));
      expect(logs.map((l) => l.event)).toEqual(expect.arrayContaining(['tracker:listening', 'tracker:signal', 'tracker:closed']));
    } finally {
      child.proc.kill('SIGKILL');
    }
  });

  it('exits 0 on SIGINT too', async () => {
    const child = spawnTracker(['--port', '0']);
    try {
      await waitFor('the listening line', () => child.stdout().includes('listening on'), 15_000);
      child.proc.kill('SIGINT');
      expect(await child.exited).toBe(0);
    } finally {
      child.proc.kill('SIGKILL');
    }
  });

  it('fails with a non-zero exit on a bad flag', async () => {
    const child = spawnTracker(['--port', 'nope']);
    expect(await child.exited).toBe(1);
    expect(child.stderr()).toContain('--port must be a whole number (0 or more), got nope');
    expect(child.stdout()).toBe('');
  });

  it('parses every flag into options', () => {
    const { options, logLevel } = parseTrackerArgs([
      '--port', '9000', '--host', '0.0.0.0', '--redis', 'redis://127.0.0.1:6390',
      '--allow-origin', 'https://a.example', '--allow-origin', 'https://b.example',
      '--allow-swarm', 'ab'.repeat(20), '--trust-proxy', '--interval', '60', '--max-frame-bytes', '1000',
      '--max-offers', '3', '--max-connections-per-ip', '5', '--log-level', 'warn', '--transport', 'node',
      '--trusted-proxy', '10.0.0.0/8', '--trusted-proxy', '::1', '--max-peers-per-swarm-per-connection', '1',
      '--max-peers-per-swarm-per-ip', '8', '--max-messages-per-window-per-ip', '500', '--redis-optional',
      '--admin-port', '9001', '--admin-host', '10.0.0.1', '--max-report-bytes-per-sec', '1000', '--max-report-share', '0.5',
    ]);
    expect(options).toEqual({
      port: 9000, host: '0.0.0.0', redisUrl: 'redis://127.0.0.1:6390',
      allowOrigins: ['https://a.example', 'https://b.example'], allowSwarms: ['ab'.repeat(20)], trustProxy: true,
      announceIntervalSec: 60, maxFrameBytes: 1000, maxOffersPerAnnounce: 3, maxConnectionsPerIp: 5, transport: 'node',
      trustedProxies: ['10.0.0.0/8', '::1'], maxPeersPerSwarmPerConnection: 1, maxPeersPerSwarmPerIp: 8, maxMessagesPerWindowPerIp: 500, redisOptional: true,
      adminPort: 9001, adminHost: '10.0.0.1', maxReportBytesPerSec: 1000, maxReportShare: 0.5,
    });
    expect(parseTrackerArgs([], { PEERFETCH_ADMIN_TOKEN: 't'.repeat(16) }).options).toEqual({ adminToken: 't'.repeat(16) });
    expect(logLevel).toBe('warn');
    for (const bad of [['--redis', 'localhost:6379'], ['--allow-swarm', 'xyz'], ['--unknown'], ['--log-level', 'loud'], ['--transport', 'uws'], ['--trusted-proxy', 'proxy.example']]) {
      let error: unknown;
      try {
        parseTrackerArgs(bad);
      } catch (e) {
        error = e;
      }
      expect(isPeerfetchError(error, 'option-invalid')).toBe(true);
    }
  });

  it.each([
    [['--max-connections', '1.5'], '--max-connections must be a whole number (0 or more), got 1.5'],
    [['--max-offers', '-1'], '--max-offers must be a whole number (0 or more), got -1'],
    [['--allow-origin', 'www.example.com'], '--allow-origin must be a page origin: http(s)://host[:port] with no path, such as https://www.example.com, got www.example.com'],
    [['--allow-origin', 'https://www.example.com/video'], 'got https://www.example.com/video'],
    [['--port', '70000'], '--port must be 0-65535'],
    [['--interval', '5'], '--interval must be 15-600 seconds, got 5'],
    [['--redis-instance-ttl-ms', '0'], '--redis-instance-ttl-ms must be a positive number'],
  ])('%j is refused with a message naming the flag and what it accepts', (argv, message) => {
    expect(() => parseTrackerArgs(argv)).toThrow(message);
  });

  it('takes every option also from its PEERFETCH_* environment variable; flags win', () => {
    const env = {
      PEERFETCH_PORT: '9000',
      PEERFETCH_HOST: '::',
      PEERFETCH_REDIS: 'redis://10.0.0.5:6379',
      PEERFETCH_ALLOW_ORIGIN: 'https://a.example, https://b.example',
      PEERFETCH_TRUST_PROXY: 'true',
      PEERFETCH_MAX_CONNECTIONS: '1000',
      PEERFETCH_TURN_URL: 'turn:turn.example:3478?transport=udp',
      PEERFETCH_TURN_SECRET: 's3cret',
      PEERFETCH_LOG_LEVEL: 'warn',
    };
    const { options, logLevel } = parseTrackerArgs(['--port', '8001', '--allow-origin', 'https://c.example'], env);
    expect(options).toMatchObject({
      port: 8001, host: '::', redisUrl: 'redis://10.0.0.5:6379', allowOrigins: ['https://c.example'], trustProxy: true,
      maxConnections: 1000, turnUrls: ['turn:turn.example:3478?transport=udp'], turnSecret: 's3cret',
    });
    expect(logLevel).toBe('warn');
    expect(parseTrackerArgs([], { PEERFETCH_ALLOW_ORIGIN: 'https://a.example,https://b.example' }).options.allowOrigins).toEqual(['https://a.example', 'https://b.example']);
    expect(parseTrackerArgs(['--no-trust-proxy'], { PEERFETCH_TRUST_PROXY: '1' }).options.trustProxy).toBeUndefined();
    expect(parseTrackerArgs([], { PEERFETCH_TRUST_PROXY: '0' }).options.trustProxy).toBeUndefined();
    // A bad value from the environment names the variable and the flag.
    expect(() => parseTrackerArgs([], { PEERFETCH_MAX_CONNECTIONS: '1.5' })).toThrow('PEERFETCH_MAX_CONNECTIONS: --max-connections must be a whole number (0 or more), got 1.5');
    expect(() => parseTrackerArgs([], { PEERFETCH_PORT: '70000' })).toThrow('PEERFETCH_PORT: --port must be 0-65535');
  });
});
