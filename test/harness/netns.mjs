// The private network of docs/contributing.md ("WebRTC needs a private network namespace"), shared by the test runner (test/harness/run.mjs) and the
// delivery benchmark (bench/run.mjs): the caller re-executes itself under `unshare --net` (root on
// Linux) and then sets up the new namespace with lo up and a veth pair 10.77.0.1/24 - 10.77.0.2/24
// with a default route via 10.77.0.2, so WebRTC finds a non-loopback host candidate and nothing can
// leave the machine. Names are local to the namespace, so fixed ones cannot clash. NAT topologies
// (homes behind routers, shaped lines) are built inside this namespace by ./topology.mjs.
import { spawnSync } from 'node:child_process';

const VETH_A = 'pf0';
const VETH_B = 'pf1';
const ADDR_A = '10.77.0.1/24';
const ADDR_B = '10.77.0.2/24';
const GATEWAY = '10.77.0.2';

/** The addresses inside the namespace start with this. */
export const PRIVATE_PREFIX = '10.77.0.';

/** True when this process may create a network namespace: root on Linux, with `unshare`. */
export function canUnshare() {
  if (process.platform !== 'linux' || typeof process.getuid !== 'function' || process.getuid() !== 0) return false;
  return spawnSync('unshare', ['--net', 'true'], { stdio: 'ignore' }).status === 0;
}

/**
 * Sets up the fresh namespace this process runs in; returns a line describing it. Throws an Error
 * naming the command that failed.
 */
export function setUpPrivateNetwork() {
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
  return `${ADDR_A}, ${ADDR_B}, default via ${GATEWAY}`;
}
