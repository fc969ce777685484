// coturn (Debian's `turnserver`, 4.6.x) for tests and benchmarks: the command line of a STUN-only
// server or of a TURN server with short-lived credentials (coturn's shared-secret REST scheme,
// `use-auth-secret` + `static-auth-secret`), and the credentials such a server accepts. Start it
// with the caller's own process helper (test/harness/processes.ts, bench/lib/processes.mjs):
//
//   const [command, args] = coturnCommand({ address: TURN_ADDRESS, port: 3478, secret });
//   const turn = await startProcess(command, args, { readyPattern: COTURN_READY_PATTERN });
import { createHmac } from 'node:crypto';

/**
 * What coturn prints once its listeners and relay threads are up (its last startup line before the
 * database line, in STUN-only and in TURN mode; without --verbose it prints no per-listener line).
 */
export const COTURN_READY_PATTERN = /Total General servers: \d+/;

/** Lowest relay port, so that relays stay apart from the listening port and from ephemeral client ports. */
const RELAY_MIN_PORT = 49152;
/** Highest relay port: 1000 relays, far more than a test or benchmark allocates. */
const RELAY_MAX_PORT = 50151;

/**
 * `[command, args]` of a coturn server listening on `address:port` (UDP and TCP).
 * Without `secret` it is a STUN server only (`--stun-only`); with it, a TURN server that accepts
 * credentials made by {@link turnCredentials} with the same secret.
 * @param {{ address: string, port?: number, secret?: string, realm?: string }} options
 * @returns {[string, string[]]}
 */
export function coturnCommand({ address, port = 3478, secret, realm = 'peerfetch' }) {
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(address ?? '')) throw new Error(`coturn: address must be an IPv4 address, got ${JSON.stringify(address)}`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`coturn: port must be 1..65535, got ${port}`);
  const common = [
    '--listening-ip', address,
    '--listening-port', String(port),
    '--no-cli',
    '--no-tls',
    '--no-dtls',
    // No config file from /etc, no database: everything it does is on this command line.
    '-c', '/dev/null',
    '--log-file', 'stdout',
    '--simple-log',
    '--pidfile', '/dev/null',
    '--no-multicast-peers',
  ];
  if (secret === undefined) return ['turnserver', [...common, '--stun-only']];
  if (typeof secret !== 'string' || secret.length === 0) throw new Error('coturn: secret must be a non-empty string');
  return [
    'turnserver',
    [
      ...common,
      '--relay-ip', address,
      '--min-port', String(RELAY_MIN_PORT),
      '--max-port', String(RELAY_MAX_PORT),
      '--use-auth-secret',
      '--static-auth-secret', secret,
      '--realm', realm,
      // Private ranges are no peers on the internet: refuse them, as coturn's own security notes
      // advise operators to (a relay into the operator's LAN). Measured here: without it coturn
      // sends a peer's LAN host candidate out, gets ENETUNREACH in a namespace without a default
      // route and closes the whole allocation. 198.18.0.0/15, this harness's internet, stays allowed.
      ...['10.0.0.0-10.255.255.255', '172.16.0.0-172.31.255.255', '192.168.0.0-192.168.255.255'].flatMap((range) => ['--denied-peer-ip', range]),
    ],
  ];
}

/**
 * Credentials for coturn's REST scheme: username `<expiry unix time>:<user>`, password
 * base64(HMAC-SHA1(secret, username)).
 * @param {string} secret
 * @param {{ ttlSeconds?: number, user?: string, now?: number }} [options]
 */
export function turnCredentials(secret, { ttlSeconds = 3600, user = 'peerfetch', now = Date.now() } = {}) {
  const username = `${Math.floor(now / 1000) + ttlSeconds}:${user}`;
  const credential = createHmac('sha1', secret).update(username).digest('base64');
  return { username, credential };
}
