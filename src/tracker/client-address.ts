import { BlockList, isIP, isIPv4 } from 'node:net';

/**
 * Which proxies may name the client's address in `X-Forwarded-For`. `'any'` trusts the immediate
 * peer whatever its address (one proxy in front, the `--trust-proxy` flag alone); a BlockList trusts
 * the addresses and subnets on it, and only those.
 */
export type TrustedProxies = 'any' | BlockList | undefined;

/**
 * Leading groups of an IPv6 address that name one subscriber: ISPs hand each customer a /64 (or
 * more), and a host picks any of its 2^64 addresses at will (RFC 4941 privacy addresses), so per
 * address limits on a full IPv6 address would cost an attacker nothing.
 */
const IPV6_SUBSCRIBER_GROUPS = 4;

function stripMapped(ip: string): string {
  return ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}

/** The 8 groups of an IPv6 address (zone dropped), lower case, without leading zeros; undefined when it is not one. */
export function ipv6Groups(ip: string): string[] | undefined {
  const zone = ip.indexOf('%');
  const address = (zone === -1 ? ip : ip.slice(0, zone)).toLowerCase();
  const halves = address.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 && missing !== 0) return undefined;
  return [...head, ...Array<string>(Math.max(missing, 0)).fill('0'), ...tail].map((g) => g.replace(/^0+(?=.)/, ''));
}

/**
 * The key per-address limits count under: an IPv4 address as is, an IPv6 address by its /64
 * (`2001:db8:1:2::/64`), anything else as given.
 *
 * @example
 * addressKey('2001:db8:1:2:aaaa::1') === addressKey('2001:db8:1:2:bbbb::2') // true
 */
export function addressKey(ip: string): string {
  const address = stripMapped(ip);
  if (isIP(address) !== 6) return address;
  const groups = ipv6Groups(address);
  return groups ? `${groups.slice(0, IPV6_SUBSCRIBER_GROUPS).join(':')}::/64` : address;
}

/**
 * Builds the trusted-proxy list from addresses and CIDR subnets (`10.0.0.0/8`, `fd00::/8`,
 * `192.0.2.1`); throws RangeError naming the first entry that is neither.
 */
export function trustedProxyList(entries: string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = '', bits, extra] = entry.trim().split('/');
    const family = isIP(address);
    const prefix = bits === undefined ? undefined : Number(bits);
    const maxBits = family === 4 ? 32 : 128;
    if (family === 0 || extra !== undefined || (prefix !== undefined && (!Number.isInteger(prefix) || prefix < 0 || prefix > maxBits || bits === ''))) {
      throw new RangeError(`trusted proxy must be an IP address or a CIDR subnet, got ${entry}`);
    }
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, prefix, type);
  }
  return list;
}

function isTrusted(ip: string, trusted: BlockList): boolean {
  const address = stripMapped(ip);
  const family = isIP(address);
  return family !== 0 && trusted.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * The client's address. Without trusted proxies it is the TCP peer. Behind them it is the right-most
 * `X-Forwarded-For` entry that no trusted proxy wrote: each proxy appends the address it received the
 * request from, so everything left of that entry came from the client and can say anything. A
 * request whose TCP peer is not a trusted proxy keeps its own address (its header is the client's
 * own words); an entry that is not an IP address ends the walk at the TCP peer.
 */
export function clientAddress(remoteAddress: string, forwardedFor: string | undefined, trusted: TrustedProxies): string {
  if (trusted === undefined || !forwardedFor) return remoteAddress;
  if (trusted !== 'any' && !isTrusted(remoteAddress, trusted)) return remoteAddress;
  const hops = forwardedFor.split(',').map((hop) => hop.trim()).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = stripMapped(hops[i]!);
    if (isIP(hop) === 0) return remoteAddress;
    // 'any' trusts the TCP peer alone: the entry it appended is the client.
    if (trusted === 'any' || !isTrusted(hop, trusted) || i === 0) return hop;
  }
  return remoteAddress;
}
