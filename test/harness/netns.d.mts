// Types of netns.mjs (plain JavaScript so that the benchmarks can import it without a build).

/** The addresses inside the namespace start with this. */
export const PRIVATE_PREFIX: string;
export function canUnshare(): boolean;
export function runForwardingSignals(command: string, args: string[], options?: { env?: NodeJS.ProcessEnv; cwd?: string }): Promise<number>;
export function reexecInPrivateNetwork(script: string, args: string[]): Promise<number>;
export function isFreshNamespace(): boolean;
export function enterPrivateNetwork(): string;
export function runInPrivateNetwork(script: string, main: () => Promise<void>): Promise<void>;

/** What the harness knows about the network this process sees. */
export interface PrivateNetworkStatus {
  /** True inside the namespace made by `npm test` (env PEERFETCH_NETNS=1 and only lo + the veth pair). */
  insideNamespace: boolean;
  /** True when a developer allowed WebRTC over the host network (PEERFETCH_ALLOW_HOST_WEBRTC=1). */
  hostAllowed: boolean;
  /** Every non-internal IPv4/IPv6 address this process can see, for error messages. */
  addresses: string[];
}
export function privateNetworkStatus(): PrivateNetworkStatus;
