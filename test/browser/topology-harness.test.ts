import { spawnSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../harness/browser.js';
import { startProcess } from '../harness/processes.js';
import { useTopology } from '../harness/use-topology.js';
import { INTERNET_ADDRESS, TURN_ADDRESS, type Visitor } from '../harness/topology.mjs';

// The NAT topology harness (test/harness/topology.mjs) does what the NAT tests and the WAN
// benchmark rely on, checked with plain UDP from node processes inside the visitors' namespaces:
// a cone NAT keeps one public port per socket, a symmetric NAT does not, unsolicited packets from
// the internet are dropped at the router, UDP can be blocked or allowed to the TURN address only,
// visitors of one home reach each other directly, and line caps and loss are in place.

const net = useTopology(
  {
    homes: [
      { nat: 'cone', visitors: 2 },
      { nat: 'symmetric' },
      { udp: 'blocked' },
      { udp: 'turn-only', uplinkKbit: 2000, downlinkKbit: 8000, lossPercent: 1 },
    ],
  },
  () => [],
);

/** A UDP socket on the internet that records who sent what. */
interface Listener {
  socket: Socket;
  port: number;
  seen: Array<{ from: string; text: string }>;
}

async function listen(address: string): Promise<Listener> {
  const socket = createSocket('udp4');
  const seen: Listener['seen'] = [];
  socket.on('message', (message, from) => seen.push({ from: `${from.address}:${from.port}`, text: message.toString() }));
  await new Promise<void>((resolve) => socket.bind(0, address, resolve));
  return { socket, port: socket.address().port, seen };
}

/**
 * Runs node inside `visitor`'s namespace: one UDP socket bound to `localPort` sends `text` to each
 * target (`host:port`) every 200 ms and prints what it receives, until stopped.
 */
async function sendFrom(visitor: Visitor, text: string, targets: string[], localPort = 0) {
  const script = `
    const socket = require('node:dgram').createSocket('udp4');
    socket.on('message', (m, from) => console.log('got ' + m + ' from ' + from.address));
    const sendAll = () => {
      for (const target of process.argv.slice(1)) {
        const [host, port] = target.split(':');
        socket.send(${JSON.stringify(text)}, Number(port), host);
      }
    };
    socket.bind(${localPort}, () => {
      console.log('bound ' + socket.address().port);
      sendAll();
      // Again every 200 ms until stopped: a lossy line may drop one.
      setInterval(sendAll, 200);
    });`;
  const [command, args] = visitor.command(process.execPath, ['-e', script, ...targets]);
  return startProcess(command, args, { readyPattern: /bound (\d+)/, name: `udp from ${visitor.name}` });
}

/** Packets counted by the router's rule whose line matches `pattern` (iptables -v -x -n -L). */
function ruleCount(router: string, table: string, chain: string, pattern: RegExp): number {
  const out = spawnSync('ip', ['netns', 'exec', router, 'iptables', '-t', table, '-v', '-x', '-n', '-L', chain], { encoding: 'utf8' }).stdout;
  const line = out.split('\n').find((l) => pattern.test(l));
  if (!line) throw new Error(`no rule matching ${pattern} in ${router} ${table}/${chain}:\n${out}`);
  return Number(line.trim().split(/\s+/)[0]);
}

let servers: Listener;
let other: Listener;
let turn: Listener;
beforeAll(async () => {
  [servers, other, turn] = await Promise.all([listen(INTERNET_ADDRESS), listen(INTERNET_ADDRESS), listen(TURN_ADDRESS)]);
});
afterAll(() => {
  for (const l of [servers, other, turn]) l?.socket.close();
});

describe('topology harness', () => {
  it('a cone NAT maps one socket to one public address and port for every destination', async () => {
    const [home] = net.topology.homes;
    const sender = await sendFrom(home!.visitors[0]!, 'cone', [`${INTERNET_ADDRESS}:${servers.port}`, `${INTERNET_ADDRESS}:${other.port}`]);
    try {
      const [a, b] = await waitFor(() => servers.seen.find((s) => s.text === 'cone') && other.seen.find((s) => s.text === 'cone') && [servers.seen.find((s) => s.text === 'cone')!, other.seen.find((s) => s.text === 'cone')!], { what: 'both packets' });
      expect(a.from.split(':')[0]).toBe(home!.wanAddress);
      expect(a.from).toBe(b.from);
      // The mapping also lets answers in: a reply to the public port reaches the visitor.
      const [, port] = a.from.split(':');
      servers.socket.send('reply', Number(port), home!.wanAddress);
      await waitFor(() => sender.stdout().includes(`got reply from ${INTERNET_ADDRESS}`), { what: 'the reply' });
    } finally {
      await sender.stop();
    }
  });

  it('a symmetric NAT maps one socket to a new public port per destination', async () => {
    const home = net.topology.homes[1]!;
    const sender = await sendFrom(home.visitors[0]!, 'symmetric', [`${INTERNET_ADDRESS}:${servers.port}`, `${INTERNET_ADDRESS}:${other.port}`]);
    try {
      const a = await waitFor(() => servers.seen.find((s) => s.text === 'symmetric'), { what: 'the first packet' });
      const b = await waitFor(() => other.seen.find((s) => s.text === 'symmetric'), { what: 'the second packet' });
      expect(a.from.split(':')[0]).toBe(home.wanAddress);
      expect(a.from).not.toBe(b.from);
    } finally {
      await sender.stop();
    }
  });

  it('drops unsolicited packets from the internet at the router', async () => {
    const home = net.topology.homes[0]!;
    const before = ruleCount(home.router, 'mangle', 'PREROUTING', /DROP .*ctstate (NEW,INVALID|INVALID,NEW)/);
    // A visitor listens on a port no mapping exists for; a packet to the router's address there is dropped.
    const listener = await sendFrom(home.visitors[0]!, 'nothing', [], 40_000);
    try {
      servers.socket.send('unsolicited', 40_000, home.wanAddress);
      await waitFor(() => ruleCount(home.router, 'mangle', 'PREROUTING', /DROP .*ctstate (NEW,INVALID|INVALID,NEW)/) > before, { what: 'the drop rule to count it' });
      expect(listener.stdout()).not.toContain('got unsolicited');
    } finally {
      await listener.stop();
    }
  });

  it('blocks UDP leaving a home with udp: blocked', async () => {
    const home = net.topology.homes[2]!;
    const sender = await sendFrom(home.visitors[0]!, 'blocked', [`${INTERNET_ADDRESS}:${servers.port}`, `${TURN_ADDRESS}:${turn.port}`]);
    try {
      await waitFor(() => ruleCount(home.router, 'filter', 'FORWARD', /DROP +17 /) >= 4, { what: 'two rounds of packets dropped' });
      expect([...servers.seen, ...turn.seen].filter((s) => s.text === 'blocked')).toEqual([]);
    } finally {
      await sender.stop();
    }
  });

  it('lets UDP leave a home with udp: turn-only for the TURN address only', async () => {
    const home = net.topology.homes[3]!;
    const sender = await sendFrom(home.visitors[0]!, 'turn-only', [`${INTERNET_ADDRESS}:${servers.port}`, `${TURN_ADDRESS}:${turn.port}`]);
    try {
      await waitFor(() => turn.seen.some((s) => s.text === 'turn-only'), { what: 'the packet to the TURN address' });
      await waitFor(() => ruleCount(home.router, 'filter', 'FORWARD', /DROP +17 .*!198\.18\.0\.2 /) >= 1, { what: 'the packet to the servers dropped' });
      expect(servers.seen.filter((s) => s.text === 'turn-only')).toEqual([]);
    } finally {
      await sender.stop();
    }
  });

  it('lets two visitors of one home reach each other directly on their LAN', async () => {
    const [first, second] = net.topology.homes[0]!.visitors;
    const receiver = await sendFrom(first!, 'none', [], 40_001);
    try {
      const sender = await sendFrom(second!, 'neighbour', [`${first!.address}:40001`]);
      try {
        await waitFor(() => receiver.stdout().includes(`got neighbour from ${second!.address}`), { what: 'the LAN packet' });
      } finally {
        await sender.stop();
      }
    } finally {
      await receiver.stop();
    }
  });

  it('caps the line of a home in each direction, drops packets at random on it, and changes both on demand', () => {
    const home = net.topology.homes[3]!;
    const uplink = () => spawnSync('ip', ['netns', 'exec', home.router, 'tc', 'qdisc', 'show', 'dev', 'wan'], { encoding: 'utf8' }).stdout;
    const downlinks = () => spawnSync('tc', ['qdisc', 'show'], { encoding: 'utf8' }).stdout;
    const lossRules = () => spawnSync('ip', ['netns', 'exec', home.router, 'iptables', '-S', 'line-loss'], { encoding: 'utf8' }).stdout;
    expect(uplink()).toMatch(/tbf .*rate 2Mbit/);
    expect(downlinks()).toMatch(/tbf .*rate 8Mbit/);
    // iptables stores the probability as a 32-bit fraction: 0.01 reads back as 0.00999999978, 0.05 as 0.04999999981.
    expect(lossRules().match(/statistic --mode random --probability 0\.0099999/g)).toHaveLength(2);

    home.shape({ uplinkKbit: 5000, lossPercent: 0 });
    expect(uplink()).toMatch(/tbf .*rate 5Mbit/);
    expect(downlinks()).toMatch(/tbf .*rate 8Mbit/);
    expect(lossRules()).not.toMatch(/statistic/);
    home.shape({ uplinkKbit: null, downlinkKbit: null, lossPercent: 5 });
    expect(uplink()).not.toMatch(/tbf/);
    expect(downlinks()).not.toMatch(/tbf/);
    expect(lossRules().match(/statistic --mode random --probability 0\.0499999/g)).toHaveLength(2);
    expect(home).toMatchObject({ uplinkKbit: 0, downlinkKbit: 0, lossPercent: 5 });
    expect(() => home.shape({ uplinkKbit: -1 })).toThrow(/positive/);
  });

  it('counts the bytes that crossed a home line', async () => {
    const home = net.topology.homes[1]!;
    const before = home.lineBytes();
    const sender = await sendFrom(home.visitors[0]!, 'x'.repeat(1000), [`${INTERNET_ADDRESS}:${servers.port}`]);
    try {
      await waitFor(() => home.lineBytes().up >= before.up + 1000, { what: 'the line counter to move' });
    } finally {
      await sender.stop();
    }
  });
});
