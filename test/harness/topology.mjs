// Real network topologies for tests and benchmarks (TESTING.md, "Real network topologies"):
// homes behind NAT routers, each router a network namespace, one namespace per visitor behind
// it, all joined by an "internet" that holds the servers on benchmark-range addresses
// (198.18.0.0/15, RFC 2544: never routed on the real internet).
//
//   internet (the caller's own namespace, made by test/harness/run.mjs or bench/run.mjs)
//     bridge pf<pid>i: 198.18.0.1 (servers: tracker, origin, page host), 198.18.0.2 (TURN)
//       |-- veth --> router of home 0: wan 198.18.1.1   MASQUERADE, drop unsolicited inbound
//       |              lan bridge 192.168.1.1/24 --> visitor 192.168.1.2, 192.168.1.3, ...
//       |-- veth --> router of home 1: wan 198.18.1.2
//                      lan bridge 192.168.2.1/24 --> visitor 192.168.2.2, ...
//
// Why the caller's namespace is the internet: the servers are then ordinary child processes
// (startProcess as everywhere else) listening on 198.18.0.1, and the test or benchmark reads their
// counters directly. That namespace is the private one `npm test` and `npm run bench` create, so
// nothing here touches the machine's real network; buildTopology refuses to run anywhere else.
// Routers and visitors are named namespaces (`ip netns add`), which `ip netns exec` can enter: that
// is how one Chromium process per visitor runs inside its home (see Visitor.executablePath).
// Names carry this process's id, so parallel runs never clash, and everything is removed on
// destroy(), on process exit and on SIGINT/SIGTERM.
//
// Line conditions per home (the home's access link, between its router and the internet):
// - rate caps: a tbf qdisc on each end's egress (uplink = the router's wan egress, downlink = the
//   internet end's egress toward the router);
// - random loss: iptables' statistic match in the router's FORWARD chain, per direction;
// - both can change while the topology runs (Home.shape), and Home.lineBytes() counts what
//   crossed the line, for figures such as bytes uploaded per home;
// - delay: none. This kernel has no netem qdisc ("Specified qdisc kind is unknown"), and a
//   user-space delay relay (a TUN device in the router) was left out: every path here has a
//   round-trip time well under a millisecond, so figures measured on these topologies show the
//   cost of NATs, rate caps and loss, not of distance.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The servers' address on the internet: tracker (and its STUN), origin, page host. */
export const INTERNET_ADDRESS = '198.18.0.1';
/** The TURN server's address on the internet, apart from the others so that `udp: 'turn-only'` can allow exactly it. */
export const TURN_ADDRESS = '198.18.0.2';
/** Prefix length of the internet: all of 198.18.0.0/15, one link (a bridge) for servers and routers. */
const INTERNET_PREFIX = 15;
/** Most homes one topology may have: router wan addresses are 198.18.1.1 .. 198.18.1.254. */
const MAX_HOMES = 254;
/** Most visitors per home: LAN addresses 192.168.N.2 .. 192.168.N.254. */
const MAX_VISITORS = 253;
/**
 * tbf bucket size floor, in bytes: 4 KiB (32 kbit, the size TESTING.md measured with a 2 Mbit/s
 * cap). Faster caps get more (see tbfArgs): a bucket smaller than one timer tick's worth of bytes
 * caps the rate below what was asked.
 */
const TBF_MIN_BURST_BYTES = 4096;
/**
 * Longest time a packet may wait in a capped link's queue, in ms: 400 ms, the queue TESTING.md
 * measured with. Home routers buffer generously (bufferbloat), and a shallow queue would turn
 * every burst of a data channel into loss.
 */
const TBF_QUEUE_MS = 400;
/** The kernel's tick the tbf bucket must cover, in Hz: 100 (the smallest CONFIG_HZ), so the bucket is big enough on any kernel. */
const TBF_TICK_HZ = 100;

const live = new Set();
let hooksInstalled = false;

function installHooks() {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // A crashed test or benchmark must not leave namespaces (and the browsers inside them) behind.
  process.once('exit', () => {
    for (const topology of live) topology.destroy();
  });
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      for (const topology of live) topology.destroy();
      // Die of the signal as before, unless the program handles it itself (bench/run.mjs exits
      // through process.exit, which runs the exit hook above anyway).
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

/** Runs a command to completion; throws an Error naming it and its stderr on failure. */
function sh(command, args) {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(`topology: ${command} ${args.join(' ')} failed: ${result.error?.message ?? result.stderr.trim()}`);
  }
  return result.stdout;
}

/** Like sh(), but never throws: for teardown, where a part may already be gone. */
function quiet(command, args) {
  spawnSync(command, args, { stdio: 'ignore' });
}

/** `tc qdisc add dev IF root tbf ...` arguments for a cap of `kbit` kbit/s. */
export function tbfArgs(device, kbit) {
  if (!(kbit > 0)) throw new Error(`topology: a rate cap must be a positive kbit/s figure, got ${kbit}`);
  const bytesPerSecond = (kbit * 1000) / 8;
  const burst = Math.max(TBF_MIN_BURST_BYTES, Math.ceil(bytesPerSecond / TBF_TICK_HZ));
  return ['qdisc', 'add', 'dev', device, 'root', 'tbf', 'rate', `${kbit}kbit`, 'burst', String(burst), 'latency', `${TBF_QUEUE_MS}ms`];
}

/**
 * Checks a topology description and fills in the defaults; throws a clear Error on bad input.
 * @param {import('./topology.d.mts').TopologySpec} spec
 * @returns {Required<import('./topology.d.mts').HomeSpec>[]}
 */
export function normalizeHomes(spec) {
  if (!spec || !Array.isArray(spec.homes) || spec.homes.length === 0) throw new Error('topology: give at least one home ({ homes: [{ ... }] })');
  if (spec.homes.length > MAX_HOMES) throw new Error(`topology: at most ${MAX_HOMES} homes`);
  return spec.homes.map((home, index) => {
    const where = `topology: home ${index}`;
    const nat = home.nat ?? 'cone';
    if (nat !== 'cone' && nat !== 'symmetric') throw new Error(`${where}: nat must be 'cone' or 'symmetric', got ${JSON.stringify(nat)}`);
    const udp = home.udp ?? 'open';
    if (!['open', 'blocked', 'turn-only'].includes(udp)) throw new Error(`${where}: udp must be 'open', 'blocked' or 'turn-only', got ${JSON.stringify(udp)}`);
    const visitors = home.visitors ?? 1;
    if (!Number.isInteger(visitors) || visitors < 1 || visitors > MAX_VISITORS) throw new Error(`${where}: visitors must be 1..${MAX_VISITORS}, got ${visitors}`);
    for (const key of ['uplinkKbit', 'downlinkKbit']) {
      if (home[key] !== undefined && !(Number.isFinite(home[key]) && home[key] > 0)) throw new Error(`${where}: ${key} must be a positive number, got ${home[key]}`);
    }
    const lossPercent = home.lossPercent ?? 0;
    if (!(Number.isFinite(lossPercent) && lossPercent >= 0 && lossPercent < 100)) throw new Error(`${where}: lossPercent must be 0..<100, got ${lossPercent}`);
    return { nat, udp, visitors, uplinkKbit: home.uplinkKbit ?? 0, downlinkKbit: home.downlinkKbit ?? 0, lossPercent };
  });
}

/** True when `pid` is a running process (signal 0 probes without touching it). */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/** Names of this harness's namespaces: `pft<pid>-<role>`. */
const NAME_PATTERN = /^pft(\d+)-/;

/**
 * Removes namespaces a killed run (SIGKILL gives no chance to clean up) left behind: only
 * those of this harness whose process no longer exists.
 */
function removeStaleNamespaces() {
  const listed = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  for (const line of listed.split('\n')) {
    const name = line.split(' ')[0];
    const match = NAME_PATTERN.exec(name);
    if (match && !alive(Number(match[1]))) killAndDelete(name);
  }
}

/** Kills whatever still runs in namespace `name` (only ours: the name says so), then deletes it. */
function killAndDelete(name) {
  const pids = spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).stdout ?? '';
  for (const pid of pids.split('\n').map(Number).filter((p) => p > 0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  quiet('ip', ['netns', 'del', name]);
}

/**
 * True when this process runs in the private network namespace made by `npm test` or
 * `npm run bench` (PEERFETCH_NETNS=1), as root: the only place buildTopology may change the network.
 */
export function canBuildTopology() {
  return process.platform === 'linux' && process.getuid?.() === 0 && process.env.PEERFETCH_NETNS === '1';
}

/**
 * Builds the topology described by `spec` (see the header of this file) and returns a handle to
 * its parts. Throws, after removing what it built so far, if a step fails.
 * @param {import('./topology.d.mts').TopologySpec} spec
 * @returns {import('./topology.d.mts').Topology}
 */
export function buildTopology(spec) {
  if (!canBuildTopology()) {
    throw new Error(
      'topology: refusing to build outside the private network namespace of `npm test` / `npm run bench` ' +
        `(needs root on Linux and PEERFETCH_NETNS=1, got uid ${process.getuid?.()} and PEERFETCH_NETNS=${process.env.PEERFETCH_NETNS ?? 'unset'})`,
    );
  }
  process.env.PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
  const homesSpec = normalizeHomes(spec);
  installHooks();
  removeStaleNamespaces();

  /** Sequence per process, so one process can hold several topologies at once. */
  const serial = nextSerial++;
  const prefix = `pft${process.pid}-${serial}`;
  const namespaces = [];
  // Interface names have at most 15 characters: the process id in base 36 (at most 5) keeps
  // this namespace's link names unique per run and short.
  const linkTag = `t${process.pid.toString(36)}${serial}`;
  const bridge = `${linkTag}i`;
  const ipPath = sh('sh', ['-c', 'command -v ip']).trim();
  const links = [];
  const launcherDir = mkdtempSync(join(tmpdir(), 'peerfetch-topology-'));
  let destroyed = false;

  const topology = {
    internet: { address: INTERNET_ADDRESS, turnAddress: TURN_ADDRESS, bridge },
    homes: [],
    visitors: [],
    destroy() {
      if (destroyed) return;
      destroyed = true;
      live.delete(topology);
      // Visitors first: their browsers hold sockets; then routers.
      for (const name of [...namespaces].reverse()) killAndDelete(name);
      for (const link of links) quiet('ip', ['link', 'del', link]);
      quiet('ip', ['link', 'del', bridge]);
      rmSync(launcherDir, { recursive: true, force: true });
    },
  };
  live.add(topology);

  const inNs = (name, command, args) => sh('ip', ['netns', 'exec', name, command, ...args]);
  const addNamespace = (name) => {
    sh('ip', ['netns', 'add', name]);
    namespaces.push(name);
    inNs(name, 'ip', ['link', 'set', 'lo', 'up']);
  };

  try {
    // The internet: a bridge in this namespace carrying the servers' addresses.
    sh('ip', ['link', 'add', bridge, 'type', 'bridge']);
    sh('ip', ['addr', 'add', `${INTERNET_ADDRESS}/${INTERNET_PREFIX}`, 'dev', bridge]);
    sh('ip', ['addr', 'add', `${TURN_ADDRESS}/${INTERNET_PREFIX}`, 'dev', bridge]);
    sh('ip', ['link', 'set', bridge, 'up']);

    homesSpec.forEach((home, h) => {
      const router = `${prefix}-r${h}`;
      const wanAddress = `198.18.1.${h + 1}`;
      const lanNet = `192.168.${h + 1}`;
      addNamespace(router);
      // The home's access link: `<bridge-side>` stays here on the internet bridge, `wan` goes into the router.
      const outside = `${linkTag}h${h}`;
      links.push(outside);
      sh('ip', ['link', 'add', outside, 'type', 'veth', 'peer', 'name', `${outside}w`]);
      sh('ip', ['link', 'set', `${outside}w`, 'netns', router]);
      sh('ip', ['link', 'set', outside, 'master', bridge]);
      sh('ip', ['link', 'set', outside, 'up']);
      inNs(router, 'ip', ['link', 'set', `${outside}w`, 'name', 'wan']);
      inNs(router, 'ip', ['addr', 'add', `${wanAddress}/${INTERNET_PREFIX}`, 'dev', 'wan']);
      inNs(router, 'ip', ['link', 'set', 'wan', 'up']);
      inNs(router, 'ip', ['route', 'add', 'default', 'via', INTERNET_ADDRESS]);
      inNs(router, 'ip', ['link', 'add', 'lan', 'type', 'bridge']);
      inNs(router, 'ip', ['addr', 'add', `${lanNet}.1/24`, 'dev', 'lan']);
      inNs(router, 'ip', ['link', 'set', 'lan', 'up']);
      inNs(router, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);

      // NAT: MASQUERADE keeps the source port when it can (endpoint-independent mapping, a
      // "cone" NAT for WebRTC's purposes); --random-fully picks a new port per destination, a
      // symmetric NAT where server-reflexive candidates are useless (TESTING.md, measured).
      inNs(router, 'iptables', ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan', '-j', 'MASQUERADE', ...(home.nat === 'symmetric' ? ['--random-fully'] : [])]);
      // Drop unsolicited inbound packets before conntrack confirms them, as home routers do:
      // without it a peer's early check takes the port MASQUERADE needs and hole punching fails
      // between two Linux NATs (TESTING.md).
      inNs(router, 'iptables', ['-t', 'mangle', '-A', 'PREROUTING', '-i', 'wan', '-m', 'conntrack', '--ctstate', 'NEW,INVALID', '-j', 'DROP']);
      if (home.udp === 'blocked') {
        inNs(router, 'iptables', ['-A', 'FORWARD', '-i', 'lan', '-p', 'udp', '-j', 'DROP']);
      } else if (home.udp === 'turn-only') {
        inNs(router, 'iptables', ['-A', 'FORWARD', '-i', 'lan', '-p', 'udp', '!', '-d', TURN_ADDRESS, '-j', 'DROP']);
      }
      // The line's loss rules live in a chain of their own, so shape() can replace them.
      inNs(router, 'iptables', ['-N', 'line-loss']);
      inNs(router, 'iptables', ['-A', 'FORWARD', '-j', 'line-loss']);

      const homeHandle = {
        index: h,
        router,
        wanAddress,
        lanPrefix: `${lanNet}.0/24`,
        nat: home.nat,
        udp: home.udp,
        uplinkKbit: 0,
        downlinkKbit: 0,
        lossPercent: 0,
        visitors: [],
        shape(line) {
          if (destroyed) throw new Error('topology: shape() after destroy()');
          const self = homeHandle;
          const merged = { uplinkKbit: self.uplinkKbit || undefined, downlinkKbit: self.downlinkKbit || undefined, lossPercent: self.lossPercent, ...line };
          // `null` lifts a cap: normalizeHomes reads a missing cap as none.
          for (const key of ['uplinkKbit', 'downlinkKbit']) if (merged[key] === null) delete merged[key];
          const next = normalizeHomes({ homes: [merged] })[0];
          for (const [key, device, inRouter] of [['uplinkKbit', 'wan', true], ['downlinkKbit', outside, false]]) {
            if (next[key] === self[key]) continue;
            const tc = (args) => (inRouter ? inNs(router, 'tc', args) : sh('tc', args));
            if (self[key]) tc(['qdisc', 'del', 'dev', device, 'root']);
            if (next[key]) tc(tbfArgs(device, next[key]));
            self[key] = next[key];
          }
          if (next.lossPercent !== self.lossPercent) {
            inNs(router, 'iptables', ['-F', 'line-loss']);
            if (next.lossPercent > 0) {
              const probability = String(next.lossPercent / 100);
              for (const direction of [['-i', 'lan'], ['-i', 'wan']]) {
                inNs(router, 'iptables', ['-A', 'line-loss', ...direction, '-m', 'statistic', '--mode', 'random', '--probability', probability, '-j', 'DROP']);
              }
            }
            self.lossPercent = next.lossPercent;
          }
        },
        lineBytes() {
          const read = (device, inRouter) => {
            const args = ['-s', '-j', 'link', 'show', 'dev', device];
            const [link] = JSON.parse(inRouter ? inNs(router, 'ip', args) : sh('ip', args));
            return link.stats64;
          };
          const wan = read('wan', true);
          return { up: wan.tx.bytes, down: wan.rx.bytes };
        },
      };
      homeHandle.shape({ uplinkKbit: home.uplinkKbit || undefined, downlinkKbit: home.downlinkKbit || undefined, lossPercent: home.lossPercent });
      for (let v = 0; v < home.visitors; v++) {
        const name = `${prefix}-h${h}v${v}`;
        const address = `${lanNet}.${v + 2}`;
        addNamespace(name);
        inNs(router, 'ip', ['link', 'add', `v${v}`, 'type', 'veth', 'peer', 'name', `v${v}in`]);
        inNs(router, 'ip', ['link', 'set', `v${v}in`, 'netns', name]);
        inNs(router, 'ip', ['link', 'set', `v${v}`, 'master', 'lan']);
        inNs(router, 'ip', ['link', 'set', `v${v}`, 'up']);
        inNs(name, 'ip', ['link', 'set', `v${v}in`, 'name', 'eth0']);
        inNs(name, 'ip', ['addr', 'add', `${address}/24`, 'dev', 'eth0']);
        inNs(name, 'ip', ['link', 'set', 'eth0', 'up']);
        inNs(name, 'ip', ['route', 'add', 'default', 'via', `${lanNet}.1`]);
        // `ip netns exec` keeps the process id (it execs), so Playwright's pipe and kill reach Chromium itself.
        const executablePath = join(launcherDir, `chromium-${name}`);
        writeFileSync(executablePath, `#!/bin/sh\nexec ${ipPath} netns exec ${name} ${process.env.PEERFETCH_CHROMIUM ?? '/usr/bin/chromium'} "$@"\n`);
        chmodSync(executablePath, 0o755);
        const visitor = {
          name,
          home: h,
          index: v,
          address,
          executablePath,
          command: (command, args = []) => ['ip', ['netns', 'exec', name, command, ...args]],
        };
        homeHandle.visitors.push(visitor);
        topology.visitors.push(visitor);
      }
      topology.homes.push(homeHandle);
    });
  } catch (error) {
    topology.destroy();
    throw error;
  }
  return topology;
}

let nextSerial = 0;

/**
 * Chromium flag that makes a page on plain http:// at `origin` a secure context, so it may
 * register a service worker (TESTING.md: pages at non-loopback http:// addresses are not).
 * @param {string[]} origins e.g. `http://198.18.0.1:8080`
 */
export function secureOriginArgs(origins) {
  return origins.length ? [`--unsafely-treat-insecure-origin-as-secure=${origins.join(',')}`] : [];
}
