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
  /** Records the peer, and returns swarm-wide counts and up to `wanted` random peers of other instances. */
  announce(request: ClusterAnnounce): Promise<{ complete: number; incomplete: number; candidates: ClusterPeer[] }>;
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

/** Called by the cluster when another instance relays a frame to a local peer. */
export type ClusterDeliver = (infoHash: string, toPeerId: string, frame: string) => void;
