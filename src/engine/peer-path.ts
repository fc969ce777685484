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

/** The stats of `connection` by id and its selected candidate pair, or undefined (closed, or no pair yet). */
async function selectedPair(connection: RTCPeerConnection): Promise<{ byId: Map<string, Record<string, unknown>>; pair: Record<string, unknown> } | undefined> {
  let report: RTCStatsReport;
  try {
    report = await connection.getStats();
  } catch {
    return undefined; // a closed connection
  }
  const byId = new Map<string, Record<string, unknown>>();
  report.forEach((stats: Record<string, unknown>) => byId.set(stats.id as string, stats));
  let pair: Record<string, unknown> | undefined;
  for (const stats of byId.values()) {
    if (stats.type === 'transport' && typeof stats.selectedCandidatePairId === 'string') pair = byId.get(stats.selectedCandidatePairId);
  }
  pair ??= [...byId.values()].find((stats) => stats.type === 'candidate-pair' && (stats.selected === true || (stats.nominated === true && stats.state === 'succeeded')));
  return pair && { byId, pair };
}

/**
 * Reads the selected candidate pair of `connection` from RTCPeerConnection.getStats(): the
 * transport's selectedCandidatePairId (Chromium, Safari), else the nominated succeeded pair
 * (Firefox reports `selected` on the pair instead). Never rejects.
 */
export async function readPeerPath(connection: RTCPeerConnection): Promise<PeerPath> {
  const selected = await selectedPair(connection);
  if (!selected) return UNKNOWN_PATH;
  const { byId, pair } = selected;
  const rtt = pair.currentRoundTripTime;
  return {
    localCandidateType: candidateType(byId.get(pair.localCandidateId as string)?.candidateType),
    remoteCandidateType: candidateType(byId.get(pair.remoteCandidateId as string)?.candidateType),
    rttMs: typeof rtt === 'number' && Number.isFinite(rtt) ? Math.round(rtt * 1000 * 10) / 10 : undefined,
  };
}

/**
 * Where a peer's packets come from, as far as this page can know it: the address of the remote
 * candidate of the selected pair, an IPv4 address or an IPv6 /64 (a host picks any address of its
 * /64 at will, as the tracker's per-address limits assume too). Undefined when it is not knowable:
 * no pair yet; a relay candidate (its address is the TURN server's, shared by every relayed peer);
 * an mDNS name (`….local`, a per-session alias of a host address) or an address the browser hides
 * (the spec leaves a remote peer-reflexive candidate's address out until it was signalled).
 *
 * A peer id is the peer's own choice, so a peer banned for bad bytes, or remembered as slow, could
 * come back under a fresh id at no cost; its address it cannot change as freely. The price: peers
 * behind one NAT share their public address, so a visitor behind the same NAT as a banned peer is
 * refused too (it still plays from the origin and its other peers).
 */
export async function readPathKey(connection: RTCPeerConnection): Promise<string | undefined> {
  const selected = await selectedPair(connection);
  if (!selected) return undefined;
  const remote = selected.byId.get(selected.pair.remoteCandidateId as string);
  if (!remote || candidateType(remote.candidateType) === 'relay') return undefined;
  const address = typeof remote.address === 'string' ? remote.address : typeof remote.ip === 'string' ? remote.ip : undefined;
  return address === undefined ? undefined : addressKey(address);
}

/** An IPv4 address as it is, an IPv6 address as its /64 (`2001:db8:0:1::/64`); undefined for a name or nothing. */
export function addressKey(address: string): string | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) return address;
  if (!address.includes(':') || address.endsWith('.local')) return undefined;
  const halves = address.replace(/^\[|\]$/g, '').split('%')[0]!.toLowerCase().split('::');
  if (halves.length > 2) return undefined;
  const [head = '', tail] = halves;
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  if (tail === undefined && left.length !== 8) return undefined;
  const groups = [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  if (groups.length !== 8 || !groups.every((group) => /^[0-9a-f]{1,4}$/.test(group))) return undefined;
  return `${groups.slice(0, 4).map((group) => group.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
