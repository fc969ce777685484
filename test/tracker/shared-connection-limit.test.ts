// The order of events around one share of an address's connections with the other instances:
// which connections an instance closes when the address turns out over its limit everywhere.
// The cluster answers each share when the test says, with the other instances' count it names;
// test/tracker/redis-limits.test.ts shows the same limits over a real Redis and tracker processes.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AddressUsage, Cluster, SharedAddressUse } from '../../src/tracker/cluster.js';
import { ADDRESS_SHARE_INTERVAL_MS, TrackerServer } from '../../src/tracker/tracker-server.js';
import type { ClientSocket } from '../../src/tracker/transport.js';

const LIMIT = 4;
const ATTACKER = '198.51.100.7';

/** A client socket that records how the tracker closed it, and reports the close as a transport does. */
class RecordingSocket implements ClientSocket {
  isOpen = true;
  closedWith: { code: number; reason: string } | undefined;
  /** Tells the tracker the connection is gone (TransportHandler.closed). */
  gone = (): void => {};
  send(): void {}
  bufferedAmount(): number {
    return 0;
  }
  close(code: number, reason: string): void {
    this.closedWith ??= { code, reason };
    this.terminate();
  }
  terminate(): void {
    if (!this.isOpen) return;
    this.isOpen = false;
    queueMicrotask(() => this.gone());
  }
  ping(): void {}
}

interface PendingShare {
  usage: AddressUsage[];
  answer(otherConnections: number): Promise<void>;
  /** Redis did not answer. */
  fail(): Promise<void>;
}

/** Lets the tracker take a share's answer or failure (a promise reaction) before the test looks. */
const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A cluster that only shares address counts, each share answered by the test. */
function controlledCluster(): { cluster: Cluster; shares: PendingShare[] } {
  const shares: PendingShare[] = [];
  const unused = (): never => {
    throw new Error('not used by these tests');
  };
  const cluster: Cluster = {
    instanceId: 'instance-under-test',
    announce: unused,
    leave: unused,
    locate: unused,
    relay: unused,
    totals: unused,
    close: async () => {},
    shareAddresses: (usage) =>
      new Promise<SharedAddressUse[]>((resolve, reject) => {
        shares.push({
          usage,
          async answer(otherConnections) {
            resolve(usage.map(() => ({ otherConnections, tokens: 1000, version: 1 })));
            await settled();
          },
          async fail() {
            reject(new Error('Connection is closed.'));
            await settled();
          },
        });
      }),
  };
  return { cluster, shares };
}

let server: TrackerServer;
let shares: PendingShare[];

beforeEach(async () => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
  server = new TrackerServer({ host: '127.0.0.1', port: 0, maxConnectionsPerIp: LIMIT, logger: { log: () => {} } });
  const controlled = controlledCluster();
  server.cluster = controlled.cluster;
  shares = controlled.shares;
  await server.listen();
});

afterEach(async () => {
  await server.close();
  vi.useRealTimers();
});

function connect(ip: string): RecordingSocket {
  const socket = new RecordingSocket();
  const connection = server.open(socket, { remoteAddress: ip, origin: undefined, forwardedFor: undefined });
  if (connection) socket.gone = () => server.closed(connection);
  return socket;
}

/** Lets the share interval pass and returns the share it started. */
function nextShare(): PendingShare {
  const before = shares.length;
  vi.advanceTimersByTime(ADDRESS_SHARE_INTERVAL_MS);
  expect(shares).toHaveLength(before + 1);
  return shares.at(-1)!;
}

describe('closing connections over the limit counted over all instances', () => {
  it('closes the newest connections opened since the last share, including one opened while it was on its way', async () => {
    const [first, second] = [connect(ATTACKER), connect(ATTACKER)];
    const share = nextShare();
    expect(share.usage).toEqual([expect.objectContaining({ address: ATTACKER, connections: 2 })]);
    const third = connect(ATTACKER);
    // The other instances hold three: six of four, the two newest go.
    await share.answer(3);
    expect([first, second, third].map((s) => s.isOpen)).toEqual([true, false, false]);
    expect(third.closedWith).toEqual({ code: 1013, reason: 'too many connections from this address' });
  });

  it('never closes a connection older than the last share, though a connection opened during it was closed by it', async () => {
    const [first] = [connect(ATTACKER), connect(ATTACKER)];
    const share = nextShare();
    connect(ATTACKER);
    await share.answer(3);
    // One left here. Another instance, which had not yet learnt of these, let the address open a
    // fourth there: the one connection here is older than this instance's last share, so the
    // instance where the address grew closes the surplus, not this one.
    const next = nextShare();
    expect(next.usage).toEqual([expect.objectContaining({ address: ATTACKER, connections: 1 })]);
    await next.answer(4);
    expect(first.isOpen).toBe(true);
  });

  it('never closes a connection older than the last share, though one opened since was closed by its client', async () => {
    const first = connect(ATTACKER);
    await nextShare().answer(0);
    connect(ATTACKER).terminate();
    await Promise.resolve();
    await nextShare().answer(LIMIT);
    expect(first.isOpen).toBe(true);
  });

  it('after a share Redis did not answer, the next closes what the address opened since the last one answered', async () => {
    const first = connect(ATTACKER);
    await nextShare().answer(0);
    const second = connect(ATTACKER);
    await nextShare().fail();
    const third = connect(ATTACKER);
    const share = nextShare();
    expect(share.usage).toEqual([expect.objectContaining({ address: ATTACKER, connections: 3 })]);
    // Three here and three elsewhere: two over, the two opened since the last answered share.
    await share.answer(3);
    expect([first, second, third].map((s) => s.isOpen)).toEqual([true, false, false]);
  });
});
