import type { PeerReport } from './tracker-messages.js';

/** A peer known to the shared state, possibly connected to another instance. */
export interface ClusterPeer {
  peerId: string;
  instanceId: string;
  prefix: string;
}

/** What the server tells the shared state about one local peer on each announce. */
export interface ClusterAnnounce {
  infoHash: string;
  peerId: string;
  prefix: string;
  /** The peer's address key (see addressKey): a peer id held elsewhere is only handed to the same address. */
  address: string;
  complete: boolean;
  report: PeerReport | undefined;
  /** Random peers wanted for this announce's offers (0 for none). */
  wanted: number;
  /** This instance's peers from `address` in the swarm after the announce: the per-address cap holds over all instances. */
  addressPeers: number;
  /** This instance's counts for the swarm after the announce. */
  local: SwarmTotals;
}

export interface SwarmTotals {
  complete: number;
  incomplete: number;
  bytesFromPeers: number;
  bytesFromOrigin: number;
  bytesUploaded: number;
  peers: number;
}

/**
 * Shared swarm state between tracker instances (implemented on Redis in redis-cluster.ts).
 * The server stays the owner of its own connections; the cluster stores membership for the others
 * to see and carries frames to peers connected elsewhere.
 */
export interface Cluster {
  readonly instanceId: string;
  /**
   * Records the peer, and returns swarm-wide counts, up to `wanted` random peers of other
   * instances and the peers its address holds in the swarm on the other instances; or `refused`
   * when a live instance holds the peer id for another address.
   */
  announce(request: ClusterAnnounce): Promise<ClusterAnnounceReply>;
  /**
   * Removes a local peer from the shared state; `local` is this instance's remaining totals and
   * `addressPeers` its remaining peers from the peer's address in the swarm.
   */
  leave(infoHash: string, peerId: string, local: SwarmTotals, address: string, addressPeers: number): void;
  /** The instance a peer is connected to, if it is alive. */
  locate(infoHash: string, peerId: string): Promise<string | undefined>;
  /** Hands a frame to the instance holding `toPeerId`. */
  relay(instanceId: string, infoHash: string, toPeerId: string, frame: string): void;
  /** Swarm-wide counts of several swarms (live instances only). */
  totals(infoHashes: string[]): Promise<SwarmTotals[]>;
  /**
   * Tells the other instances what this one counted per client address since the last call, and
   * learns what they counted: one pipelined round trip for the whole batch, made in the background
   * (never on a message's path). The answers come in the order of `usage`.
   */
  shareAddresses(usage: AddressUsage[]): Promise<SharedAddressUse[]>;
  /** Removes this instance's peers from the shared state and disconnects. */
  close(): Promise<void>;
}

export interface ClusterAnnounceReply {
  refused?: boolean;
  complete: number;
  incomplete: number;
  candidates: ClusterPeer[];
  /** Peers of the announcing peer's address in the swarm on the other live instances. */
  addressPeersElsewhere: number;
}

/** One address's use on this instance, as shared with the other instances. */
export interface AddressUsage {
  /** The address key (see addressKey). */
  address: string;
  /** Its open connections on this instance now. */
  connections: number;
  /** Messages accepted from it on this instance since the last share. */
  spent: number;
}

/** One address's use summed over the instances. */
export interface SharedAddressUse {
  /** Its open connections on the other live instances. */
  otherConnections: number;
  /**
   * What is left of its message budget shared by all instances, after this share (below 0: a
   * debt): a token bucket of maxMessagesPerWindowPerIp tokens refilled over rateWindowMs.
   */
  tokens: number;
  /** Orders the levels of one address: a level older than one already applied is ignored. */
  version: number;
}

/** One local peer as the shared state records it. */
export interface LocalPeer {
  infoHash: string;
  peerId: string;
  prefix: string;
  address: string;
}

/** What the cluster needs from the server it serves. */
export interface ClusterHost {
  /** Another instance relayed a frame to a local peer. */
  deliver(infoHash: string, toPeerId: string, frame: string): void;
  /** Every local peer, to write this instance's share of the shared state again after Redis lost it. */
  localPeers(): Iterable<LocalPeer>;
  /** This instance's totals of one swarm. */
  localTotals(infoHash: string): SwarmTotals;
  /**
   * An instance spent from an address's shared message budget and left it at `tokens` (below half
   * full, see redis-cluster.ts); `version` orders the levels of one address (newer is greater).
   */
  addressLevel(address: string, tokens: number, version: number): void;
  /** Every address with open connections here, and how many: written again after Redis lost them. */
  localAddresses(): Iterable<{ address: string; connections: number }>;
}
