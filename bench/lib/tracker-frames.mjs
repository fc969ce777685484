// What the tracker benchmark's simulated peers put in their frames, shared by the load generator
// and the floor server (bench/tracker-server.mjs), so the floor moves frames of the real sizes.
import { randomBytes } from 'node:crypto';

/** A WebTorrent id (info_hash, peer_id, offer_id): 20 random bytes as a binary string. */
export const binaryId = () => randomBytes(20).toString('latin1');

/** A trickle-less browser offer of `bytes` bytes: host candidates, CRLF line ends (escaped in JSON). */
export const sampleSdp = (bytes) =>
  `v=0\r\n${'a=candidate:1 1 udp 2122260223 10.77.0.1 50000 typ host\r\n'.repeat(Math.ceil(bytes / 60))}`.slice(0, bytes);
