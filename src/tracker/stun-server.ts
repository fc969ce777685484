import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { TokenBucket } from '../shared/token-bucket.js';
import { addressKey } from './client-address.js';
import { encodeBindingSuccess, parseBindingRequest, type StunIgnoredReason } from './stun-codec.js';

/**
 * Binding responses sent per second, at most. 20 000 × 44 bytes ≈ 0.9 MB/s: far above what the
 * pages of a tracker's swarms ask (a page sends a few Binding requests per offer it makes, a
 * handful of offers per announce), and a cap on what a flood of spoofed requests can make this
 * port send to a victim.
 */
const MAX_RESPONSES_PER_SECOND = 20_000;

/**
 * Binding responses sent to one address (an IPv4 address or an IPv6 /64) per second, and at once.
 * A UDP source address can be forged, so without this one forged victim could be sent the whole
 * MAX_RESPONSES_PER_SECOND, and one flooder could use it up for every honest page. A page gathering
 * ICE candidates sends a few requests per peer connection (each retransmitted a few times), and
 * several pages share a NAT's address: 400 at once and 200 a second leave room for a busy office.
 */
export const MAX_RESPONSES_PER_ADDRESS = 400;
const RESPONSES_PER_ADDRESS_PER_SECOND = 200;
/** How often buckets that are full again are forgotten, in ms (a missing one is a full one). */
const PRUNE_INTERVAL_MS = 1000;

/** Counters of the STUN service, shown in /metrics. */
export interface StunCounters {
  answered: number;
  ignored: Record<StunIgnoredReason | 'rate-limited', number>;
}

export interface RunningStunServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The tracker's STUN service: answers Binding requests on UDP `host`:`port` (0 = any free port) so
 * that pages learn their public address (server-reflexive ICE candidates) from the operator's own
 * tracker instead of a third-party STUN server; counts what it does in `counters`. Rejects if the
 * port cannot be bound. `now` is the clock of the response budgets, in ms.
 */
export function startStunServer(host: string, port: number, counters: StunCounters, now: () => number = Date.now): Promise<RunningStunServer> {
  const socket: Socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
  // A second's worth of answers may go out at once after a quiet spell, never more.
  const answers = new TokenBucket(MAX_RESPONSES_PER_SECOND, MAX_RESPONSES_PER_SECOND, now);
  // At most one bucket per address answered within the last few seconds: the global budget, checked
  // first, bounds how many there can be.
  const perAddress = new Map<string, TokenBucket>();
  let prunedAt = now();
  socket.on('message', (datagram, remote) => {
    const request = parseBindingRequest(datagram);
    if (!request.ok) {
      counters.ignored[request.reason]++;
      return;
    }
    const t = now();
    if (t - prunedAt >= PRUNE_INTERVAL_MS) {
      prunedAt = t;
      for (const [key, bucket] of perAddress) if (bucket.waitMs(bucket.capacity) === 0) perAddress.delete(key);
    }
    if (answers.waitMs(1) > 0) {
      counters.ignored['rate-limited']++;
      return;
    }
    const key = addressKey(remote.address);
    let bucket = perAddress.get(key);
    if (!bucket) perAddress.set(key, (bucket = new TokenBucket(RESPONSES_PER_ADDRESS_PER_SECOND, MAX_RESPONSES_PER_ADDRESS, now)));
    if (bucket.take(1) === 0) {
      counters.ignored['rate-limited']++;
      return;
    }
    answers.take(1);
    const response = encodeBindingSuccess(request.transactionId, remote.address, remote.port);
    if (!response) {
      counters.ignored.malformed++;
      return;
    }
    counters.answered++;
    // A send error (an unreachable client, a full socket buffer) concerns one datagram only.
    socket.send(response, remote.port, remote.address, () => {});
  });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => {
      socket.off('error', reject);
      // Errors after binding (ICMP port unreachable reported on some platforms) must not crash the tracker.
      socket.on('error', () => {});
      let closing: Promise<void> | undefined;
      resolve({
        port: socket.address().port,
        close: () => (closing ??= new Promise((done) => socket.close(() => done()))),
      });
    });
  });
}
