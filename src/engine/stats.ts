import type { PeerPath } from './peer-path.js';

/** What `getStats()` returns; see docs/architecture.md "Public surface" and the README. */
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
  /** Of those, bytes of live pieces sent while they were still arriving here from the origin (passed on as they came). */
  bytesForwarded: number;
  /** bytesFromPeers / (bytesFromPeers + bytesFromOrigin), 0 when both are 0. */
  offloadRatio: number;
  /** Connected peers. */
  peers: number;
  /**
   * Per connected peer: bytes each way, the measured download rate (bytes/s), and the network path
   * (selected ICE candidate types, round-trip time), refreshed every stats tick.
   */
  peerList: PeerStats[];
  /** Per manifest asset: how many of its pieces this page holds, and where each came from. */
  assets: AssetStats[];
}

export interface PeerStats extends PeerPath {
  id: string;
  bytesDownloaded: number;
  bytesUploaded: number;
  throughput: number;
  /** Whether the peer delivered a piece that passed its hash: until then the player does not ask it for pieces (see Peer.trusted). */
  trusted: boolean;
}

/** Where a piece came from, one letter per piece: `.` not held, `o` origin, `p` peers, `s` held before (local store). */
export type PieceSourceCode = '.' | 'o' | 'p' | 's';

export interface AssetStats {
  url: string;
  pieces: number;
  held: number;
  /** One {@link PieceSourceCode} per piece, e.g. `ooppp..` */
  sources: string;
}

export type ByteCounter = 'bytesFromPeers' | 'bytesFromOrigin' | 'bytesFromStore' | 'bytesServed' | 'bytesUploaded' | 'bytesForwarded';

/** The counters behind getStats(), derived fields computed on read. */
export class StatsCounters {
  readonly #bytes: Record<ByteCounter, number> = {
    bytesFromPeers: 0,
    bytesFromOrigin: 0,
    bytesFromStore: 0,
    bytesServed: 0,
    bytesUploaded: 0,
    bytesForwarded: 0,
  };

  add(counter: ByteCounter, bytes: number): void {
    this.#bytes[counter] += bytes;
  }

  snapshot(peerList: PeerStats[] = [], assets: AssetStats[] = []): PeerfetchStats {
    const { bytesFromPeers, bytesFromOrigin } = this.#bytes;
    const received = bytesFromPeers + bytesFromOrigin;
    return {
      ...this.#bytes,
      offloadRatio: received === 0 ? 0 : bytesFromPeers / received,
      peers: peerList.length,
      peerList,
      assets,
    };
  }
}

/** Per asset, where each piece this page holds came from (for progress bars and piece maps). */
export class PieceSources {
  readonly #codes = new Map<string, { url: string; codes: PieceSourceCode[] }>();

  track(assetId: string, url: string, pieces: number, held: Iterable<number>): void {
    const codes = Array.from({ length: pieces }, (): PieceSourceCode => '.');
    for (const piece of held) if (piece < pieces) codes[piece] = 's';
    this.#codes.set(assetId, { url, codes });
  }

  /** The asset left the manifest (a live stream moved on): it leaves the figures too. */
  untrack(assetId: string): void {
    this.#codes.delete(assetId);
  }

  /** Records a piece's source; the first source of a piece wins (later store reads change nothing). */
  mark(assetId: string, piece: number, code: Exclude<PieceSourceCode, '.'>): void {
    const entry = this.#codes.get(assetId);
    if (entry && entry.codes[piece] === '.') entry.codes[piece] = code;
  }

  /** The piece is no longer held (evicted or deleted). */
  unmark(assetId: string, piece: number): void {
    const entry = this.#codes.get(assetId);
    if (entry && piece < entry.codes.length) entry.codes[piece] = '.';
  }

  snapshot(): AssetStats[] {
    return [...this.#codes.values()].map(({ url, codes }) => ({
      url,
      pieces: codes.length,
      held: codes.filter((code) => code !== '.').length,
      sources: codes.join(''),
    }));
  }
}
