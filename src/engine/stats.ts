/** What `getStats()` returns; see DESIGN.md "Public surface". */
export interface PeerfetchStats {
  /** Verified bytes received from peers. */
  bytesFromPeers: number;
  /** Bytes received from the origin (fetched by the SW for this page). */
  bytesFromOrigin: number;
  /** Bytes answered from the local piece store. */
  bytesFromStore: number;
  /** Bytes handed to this page's requests. */
  bytesServed: number;
  /** Bytes sent to peers. */
  bytesUploaded: number;
  /** bytesFromPeers / (bytesFromPeers + bytesFromOrigin), 0 when both are 0. */
  offloadRatio: number;
  /** Connected peers. */
  peers: number;
}

export type ByteCounter = 'bytesFromPeers' | 'bytesFromOrigin' | 'bytesFromStore' | 'bytesServed' | 'bytesUploaded';

/** The counters behind getStats(), derived fields computed on read. */
export class StatsCounters {
  readonly #bytes: Record<ByteCounter, number> = {
    bytesFromPeers: 0,
    bytesFromOrigin: 0,
    bytesFromStore: 0,
    bytesServed: 0,
    bytesUploaded: 0,
  };

  add(counter: ByteCounter, bytes: number): void {
    this.#bytes[counter] += bytes;
  }

  snapshot(peers: number): PeerfetchStats {
    const { bytesFromPeers, bytesFromOrigin } = this.#bytes;
    const received = bytesFromPeers + bytesFromOrigin;
    return { ...this.#bytes, offloadRatio: received === 0 ? 0 : bytesFromPeers / received, peers };
  }
}
