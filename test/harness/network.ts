import { PRIVATE_PREFIX, privateNetworkStatus } from './netns.mjs';

export { privateNetworkStatus, type PrivateNetworkStatus } from './netns.mjs';

/** Subnet of the veth pair that test/harness/run.mjs creates inside the private network namespace. */
export const PRIVATE_SUBNET_PREFIX = PRIVATE_PREFIX;

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
