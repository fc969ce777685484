import { networkInterfaces } from 'node:os';

/** Subnet of the veth pair that test/harness/run.mjs creates inside the private network namespace. */
export const PRIVATE_SUBNET_PREFIX = '10.77.0.';
/**
 * The "internet" of test/harness/topology.mjs (198.18.0.0/15, RFC 2544's benchmark range, never
 * routed on the real internet): its bridge adds such addresses to the namespace while a topology exists.
 */
const TOPOLOGY_INTERNET = /^198\.1[89]\./;

/** What the harness knows about the network this test process sees. */
export interface PrivateNetworkStatus {
  /** True inside the namespace made by `npm test` (env PEERFETCH_NETNS=1 and only lo + the veth pair). */
  insideNamespace: boolean;
  /** True when a developer allowed WebRTC over the host network (PEERFETCH_ALLOW_HOST_WEBRTC=1). */
  hostAllowed: boolean;
  /** Every non-internal IPv4/IPv6 address this process can see, for error messages. */
  addresses: string[];
}

/** Reports whether this process runs inside the private WebRTC network namespace. */
export function privateNetworkStatus(): PrivateNetworkStatus {
  const addresses: string[] = [];
  for (const entries of Object.values(networkInterfaces())) {
    for (const entry of entries ?? []) {
      if (!entry.internal) addresses.push(entry.address);
    }
  }
  // Trust the env flag only when the interfaces agree: a namespace with a real outward
  // address would let Chromium's ICE leave the machine.
  const onlyPrivate = addresses.length > 0 && addresses.every((a) => a.startsWith(PRIVATE_SUBNET_PREFIX) || TOPOLOGY_INTERNET.test(a) || a.startsWith('fe80:'));
  return {
    insideNamespace: process.env.PEERFETCH_NETNS === '1' && onlyPrivate,
    hostAllowed: process.env.PEERFETCH_ALLOW_HOST_WEBRTC === '1',
    addresses,
  };
}

/**
 * Throws unless WebRTC traffic of this test stays inside the private network namespace,
 * so that no test sends WebRTC over a real interface by accident. Call it first in a
 * `beforeAll` of every test file that opens a peer connection (`useChromium({ webrtc: true })`
 * does it for you). On a developer laptop set PEERFETCH_ALLOW_HOST_WEBRTC=1 to run anyway.
 *
 * @example
 * beforeAll(() => requirePrivateNetwork());
 */
export function requirePrivateNetwork(): void {
  const status = privateNetworkStatus();
  if (status.insideNamespace || status.hostAllowed) return;
  throw new Error(
    'This test opens WebRTC connections and must run inside the private network namespace ' +
      `(expected only ${PRIVATE_SUBNET_PREFIX}x addresses, PEERFETCH_NETNS=${process.env.PEERFETCH_NETNS ?? 'unset'}, ` +
      `visible addresses: ${status.addresses.join(', ') || 'none'}). ` +
      'Run it through `npm test` as root on Linux (it creates the namespace with unshare), ' +
      'or set PEERFETCH_ALLOW_HOST_WEBRTC=1 on a developer machine to use the host network.',
  );
}
