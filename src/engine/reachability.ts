import type { ConnectionAttempt } from './tracker-client.js';

/** Why no peer of a populated swarm could be reached, from what this page itself observed. */
export type UnreachableReason = 'no-server-reflexive' | 'gathering-timeout' | 'checks-failed';

export interface UnreachableDetail {
  reason: UnreachableReason;
  /** Peers in the swarm by the tracker's last count, this page included. */
  peersInSwarm: number;
  /** Connection attempts that failed since the last connection that succeeded. */
  attempts: number;
}

/**
 * Failed attempts, with no connection open, before the swarm counts as unreachable. One failure
 * can be the other peer's network; two (in a swarm of two: our offer and theirs, both failed)
 * already say that this page reaches nobody.
 */
const FAILED_ATTEMPTS_BEFORE_UNREACHABLE = 2;

/**
 * Watches connection attempts and tells once when the tracker reports other peers but none can
 * be reached, with the reason our side can see:
 * - `gathering-timeout`: an ICE server did not answer within the gathering bound (a STUN or TURN
 *   server blocked by a firewall, or UDP blocked entirely);
 * - `no-server-reflexive`: gathering finished without a server-reflexive or relay candidate (no
 *   STUN server configured or answering: peers behind NATs cannot reach this page);
 * - `checks-failed`: this page had a public candidate but ICE checks still failed (symmetric NATs,
 *   UDP filtered between the peers): only TURN helps.
 * After a connection succeeds, a new problem is told again.
 */
export class ReachabilityMonitor {
  readonly #onUnreachable: (detail: UnreachableDetail) => void;
  #failures = 0;
  #peersInSwarm = 0;
  #told = false;

  constructor(onUnreachable: (detail: UnreachableDetail) => void) {
    this.#onUnreachable = onUnreachable;
  }

  /** The tracker's count of peers in the swarm (us included). */
  onSwarmSize(peers: number): void {
    this.#peersInSwarm = peers;
  }

  /** A connection attempt ended; `connectedPeers` is how many peers are open now. */
  onAttempt(attempt: ConnectionAttempt, connectedPeers: number): void {
    if (attempt.ok) {
      this.#failures = 0;
      this.#told = false;
      return;
    }
    this.#failures++;
    if (this.#told || connectedPeers > 0 || this.#peersInSwarm < 2 || this.#failures < FAILED_ATTEMPTS_BEFORE_UNREACHABLE) return;
    this.#told = true;
    this.#onUnreachable({ reason: reasonOf(attempt.gathering), peersInSwarm: this.#peersInSwarm, attempts: this.#failures });
  }
}

function reasonOf(gathering: { timedOut: boolean; candidateTypes: string[] }): UnreachableReason {
  if (gathering.timedOut) return 'gathering-timeout';
  if (!gathering.candidateTypes.some((type) => type === 'srflx' || type === 'relay')) return 'no-server-reflexive';
  return 'checks-failed';
}
