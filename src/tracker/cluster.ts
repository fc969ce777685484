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
   * Records the peer, and returns swarm-wide counts and up to `wanted` random peers of other
   * instances; or `refused` when a live instance holds the peer id for another address.
   */
  announce(request: ClusterAnnounce): Promise<{ refused?: boolean; complete: number; incomplete: number; candidates: ClusterPeer[] }>;
  /** Removes a local peer from the shared state; `local` is this instance's remaining totals. */
  leave(infoHash: string, peerId: string, local: SwarmTotals): void;
  /** The instance a peer is connected to, if it is alive. */
  locate(infoHash: string, peerId: string): Promise<string | undefined>;
  /** Hands a frame to the instance holding `toPeerId`. */
  relay(instanceId: string, infoHash: string, toPeerId: string, frame: string): void;
  /** Swarm-wide counts of several swarms (live instances only). */
  totals(infoHashes: string[]): Promise<SwarmTotals[]>;
  /** Removes this instance's peers from the shared state and disconnects. */
  close(): Promise<void>;
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
}
