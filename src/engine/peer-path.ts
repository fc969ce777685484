/** ICE candidate types as RTCIceCandidateStats reports them. */
export type CandidateType = 'host' | 'srflx' | 'prflx' | 'relay';

/** The network path to one peer: the selected candidate pair, as getStats() shows it per peer. */
export interface PeerPath {
  /** Our side of the selected pair; undefined while ICE has not selected one. */
  localCandidateType: CandidateType | undefined;
  /** The peer's side of the selected pair. */
  remoteCandidateType: CandidateType | undefined;
  /** Latest round-trip time of the selected pair (STUN consent checks), ms. */
  rttMs: number | undefined;
}

export const UNKNOWN_PATH: PeerPath = { localCandidateType: undefined, remoteCandidateType: undefined, rttMs: undefined };

const CANDIDATE_TYPES = new Set<string>(['host', 'srflx', 'prflx', 'relay']);
const candidateType = (value: unknown): CandidateType | undefined => (typeof value === 'string' && CANDIDATE_TYPES.has(value) ? (value as CandidateType) : undefined);

/** Whether the path goes through a TURN server (either side's candidate is a relay). */
export const isRelayed = (path: PeerPath): boolean => path.localCandidateType === 'relay' || path.remoteCandidateType === 'relay';

/**
 * Reads the selected candidate pair of `connection` from RTCPeerConnection.getStats(): the
 * transport's selectedCandidatePairId (Chromium, Safari), else the nominated succeeded pair
 * (Firefox reports `selected` on the pair instead). Never rejects.
 */
export async function readPeerPath(connection: RTCPeerConnection): Promise<PeerPath> {
  let report: RTCStatsReport;
  try {
    report = await connection.getStats();
  } catch {
    return UNKNOWN_PATH; // a closed connection
  }
  const byId = new Map<string, Record<string, unknown>>();
  report.forEach((stats: Record<string, unknown>) => byId.set(stats.id as string, stats));
  let pair: Record<string, unknown> | undefined;
  for (const stats of byId.values()) {
    if (stats.type === 'transport' && typeof stats.selectedCandidatePairId === 'string') pair = byId.get(stats.selectedCandidatePairId);
  }
  pair ??= [...byId.values()].find((stats) => stats.type === 'candidate-pair' && (stats.selected === true || (stats.nominated === true && stats.state === 'succeeded')));
  if (!pair) return UNKNOWN_PATH;
  const rtt = pair.currentRoundTripTime;
  return {
    localCandidateType: candidateType(byId.get(pair.localCandidateId as string)?.candidateType),
    remoteCandidateType: candidateType(byId.get(pair.remoteCandidateId as string)?.candidateType),
    rttMs: typeof rtt === 'number' && Number.isFinite(rtt) ? Math.round(rtt * 1000 * 10) / 10 : undefined,
  };
}
