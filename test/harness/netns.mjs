// The private network of docs/contributing.md ("WebRTC needs a private network namespace"), one
// implementation for the test runner (test/harness/run.mjs), the test files (./network.ts) and the
// benchmarks (bench/run.mjs, bench/ice-gathering.mjs): the caller re-executes itself under
// `unshare --net` (root on Linux) and then sets up the new namespace with lo up and a veth pair
// 10.77.0.1/24 - 10.77.0.2/24 with a default route via 10.77.0.2, so WebRTC finds a non-loopback
// host candidate and nothing can leave the machine. Names are local to the namespace, so fixed
// ones cannot clash. NAT topologies (homes behind routers, shaped lines) are built inside this
// namespace by ./topology.mjs.
import { spawn, spawnSync } from 'node:child_process';
import { constants, networkInterfaces } from 'node:os';

const VETH_A = 'pf0';
const VETH_B = 'pf1';
const ADDR_A = '10.77.0.1/24';
const ADDR_B = '10.77.0.2/24';
const GATEWAY = '10.77.0.2';

/** The addresses inside the namespace start with this. */
export const PRIVATE_PREFIX = '10.77.0.';
/**
 * The "internet" of ./topology.mjs (198.18.0.0/15, RFC 2544's benchmark range, never routed on
 * the real internet): its bridge adds such addresses to the namespace while a topology exists.
 */
const TOPOLOGY_INTERNET = /^198\.1[89]\./;
/** Set for the re-executed process until it has set its namespace up (see enterPrivateNetwork). */
const SETUP_VARIABLE = 'PEERFETCH_NETNS_SETUP';

/** True when this process may create a network namespace: root on Linux, with `unshare`. */
export function canUnshare() {
  if (process.platform !== 'linux' || typeof process.getuid !== 'function' || process.getuid() !== 0) return false;
  return spawnSync('unshare', ['--net', 'true'], { stdio: 'ignore' }).status === 0;
}

/**
 * Runs `command` with inherited stdio, passes SIGINT and SIGTERM on to it, and resolves with its
 * exit code: 128 + the signal number when a signal ended it, 127 when it could not start.
 */
export function runForwardingSignals(command, args, { env = process.env, cwd } = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'inherit', env, cwd });
    const forward = (signal) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.once('error', (error) => {
      process.stderr.write(`could not start ${command}: ${error.message}\n`);
      resolve(127);
    });
    child.once('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve(code ?? 128 + (constants.signals[signal] ?? 1));
    });
  });
}

/**
 * Runs the script `script` again with `args` in a new network namespace and resolves with its exit
 * code. `unshare --net` without --fork: the namespace needs no new process, so signals reach the
 * script directly. The script calls enterPrivateNetwork() first thing when isFreshNamespace().
 */
export function reexecInPrivateNetwork(script, args) {
  return runForwardingSignals('unshare', ['--net', '--', process.execPath, script, ...args], { env: { ...process.env, [SETUP_VARIABLE]: '1' } });
}

/** True in the process reexecInPrivateNetwork started, until enterPrivateNetwork ran. */
export function isFreshNamespace() {
  return process.env[SETUP_VARIABLE] === '1';
}

/**
 * Runs `main` inside a private network namespace, for scripts that run there or not at all: in
 * the fresh namespace (this process started again by reexecInPrivateNetwork) it sets the network
 * up and calls `main`; otherwise it starts `script` again in a new namespace with this process's
 * arguments and exits with its code. Throws when this user cannot create a namespace.
 */
export async function runInPrivateNetwork(script, main) {
  if (isFreshNamespace()) {
    enterPrivateNetwork();
    await main();
    return;
  }
  if (!canUnshare()) throw new Error('needs root on Linux (unshare --net) to build a private network');
  process.exit(await reexecInPrivateNetwork(script, process.argv.slice(2)));
}

/**
 * Sets up the fresh namespace this process runs in and marks it, and every process it starts, as
 * inside it (PEERFETCH_NETNS=1, which privateNetworkStatus checks against the interfaces). Returns
 * a line describing the network; throws an Error naming the command that failed.
 */
export function enterPrivateNetwork() {
  // `ip` lives in /usr/sbin, which a non-login shell may not have on its PATH.
  process.env.PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
  const ip = (...args) => {
    const result = spawnSync('ip', args, { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`network namespace setup failed: ip ${args.join(' ')}: ${result.error?.message ?? result.stderr.trim()}`);
  };
  ip('link', 'set', 'lo', 'up');
  ip('link', 'add', VETH_A, 'type', 'veth', 'peer', 'name', VETH_B);
  ip('addr', 'add', ADDR_A, 'dev', VETH_A);
  ip('addr', 'add', ADDR_B, 'dev', VETH_B);
  ip('link', 'set', VETH_A, 'up');
  ip('link', 'set', VETH_B, 'up');
  ip('route', 'add', 'default', 'via', GATEWAY);
  delete process.env[SETUP_VARIABLE];
  process.env.PEERFETCH_NETNS = '1';
  return `${ADDR_A}, ${ADDR_B}, default via ${GATEWAY}`;
}

/**
 * Whether this process runs inside the private network: `insideNamespace` (PEERFETCH_NETNS=1 and
 * only private addresses visible), `hostAllowed` (a developer set PEERFETCH_ALLOW_HOST_WEBRTC=1 to
 * use the host network), and every non-internal address it sees, for error messages.
 */
export function privateNetworkStatus() {
  const addresses = Object.values(networkInterfaces())
    .flat()
    .filter((entry) => entry && !entry.internal)
    .map((entry) => entry.address);
  // Trust the env flag only when the interfaces agree: a namespace with a real outward
  // address would let Chromium's ICE leave the machine.
  const onlyPrivate = addresses.length > 0 && addresses.every((a) => a.startsWith(PRIVATE_PREFIX) || TOPOLOGY_INTERNET.test(a) || a.startsWith('fe80:'));
  return {
    insideNamespace: process.env.PEERFETCH_NETNS === '1' && onlyPrivate,
    hostAllowed: process.env.PEERFETCH_ALLOW_HOST_WEBRTC === '1',
    addresses,
  };
}
