import { TokenBucket } from '../shared/token-bucket.js';

/**
 * What the tracker keeps per client address (an IPv4 address or an IPv6 /64, see addressKey): its
 * open connections and its message budget, a token bucket of maxMessagesPerWindowPerIp tokens
 * refilled over rateWindowMs. It outlives the address's connections until the bucket is full again,
 * so reconnecting does not reset the budget.
 *
 * With several instances behind a load balancer (Redis), the budget lives in Redis and every
 * instance spends the messages it accepted from it; each instance holds a replica that it spends
 * from on every message and sets to the shared level at each share (about once a second, see
 * TrackerServer.shareAddressBudgets), so no message waits for Redis. The connections the address
 * holds on the other instances count against maxConnectionsPerIp here. An address that spreads
 * over N instances gets one budget plus what N replicas let through between two shares, not N
 * budgets.
 *
 * A token bucket rather than a fixed window: a window lets a client send twice its budget in a
 * moment (the end of one window and the start of the next), a bucket never more than its capacity
 * plus the refill; and a bucket shared by instances needs no agreement on when windows start,
 * which instances started at different times cannot have.
 */
export class AddressBudget extends TokenBucket {
  /** Open connections from this address on this instance. */
  connections = 0;
  /** Messages this instance accepted from the address since it last told the others. */
  unshared = 0;
  /** Version of the shared level last applied (0: none): answers and notices may arrive out of order. */
  sharedVersion = 0;
  /** The address's open connections on the other instances, as last read, and when (ms; 0 = never). */
  remoteConnections = 0;
  remoteAt = 0;
  /**
   * Shares of this address with the other instances started so far (a share Redis did not answer
   * is taken back). A connection records it when it opens. A share that finds the address over its
   * limit over all instances closes only connections opened since the share before it began (also
   * those opened while it was on its way), so an instance never closes an older connection because
   * the address grew elsewhere (the instance where it grew closes the new ones). Marking the
   * connections, not counting opens, keeps one already gone (closed by its client, or by the share
   * before) from standing in for an older one.
   */
  shares = 0;

  constructor(
    readonly key: string,
    perSecond: number,
    capacity: number,
    now: () => number,
  ) {
    super(perSecond, capacity, now);
  }
}
