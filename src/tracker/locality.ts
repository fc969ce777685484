import { isIPv4, isIPv6 } from 'node:net';
import { ipv6Groups } from './client-address.js';

/** Leading bits of an address that make two peers "near": /24 for IPv4, /48 for IPv6 (issue 3 item 4). */
const IPV4_PREFIX_OCTETS = 3;
const IPV6_PREFIX_GROUPS = 3;

/**
 * The locality key of an IP address: `4:a.b.c` for IPv4 (also IPv4-mapped IPv6), `6:x:y:z` for the
 * first 48 bits of IPv6, `?` for anything else. Peers with the same key are preferred as offer
 * recipients: they are likely on one network (office, campus, ISP aggregation), so their WebRTC path
 * is short and does not cross a transit link.
 *
 * @example
 * localityPrefix('192.0.2.17') // '4:192.0.2'
 * localityPrefix('2001:db8:1:2::5') // '6:2001:db8:1'
 */
export function localityPrefix(ip: string): string {
  let address = ip;
  if (address.startsWith('::ffff:') && isIPv4(address.slice(7))) address = address.slice(7);
  if (isIPv4(address)) return `4:${address.split('.').slice(0, IPV4_PREFIX_OCTETS).join('.')}`;
  if (isIPv6(address)) {
    const groups = ipv6Groups(address);
    if (!groups) return '?';
    return `6:${groups.slice(0, IPV6_PREFIX_GROUPS).join(':')}`;
  }
  return '?';
}
