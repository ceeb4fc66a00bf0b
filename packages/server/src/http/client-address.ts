import { BlockList, isIP, isIPv4 } from 'node:net';

/**
 * Which address a request is charged to (registration limits and lockout): the socket's peer,
 * unless that peer is a trusted proxy (TRUSTED_PROXIES); then the client address the proxies
 * reported in CLIENT_ADDRESS_HEADER (default X-Forwarded-For), read from the right: the first
 * address that is not itself a trusted proxy. Entries further left were written by whoever sent
 * the request and prove nothing.
 */
export interface ClientAddressPolicy {
  /** Lower-case header name, e.g. `x-forwarded-for`. */
  header: string;
  isTrusted(address: string): boolean;
}

export class TrustedProxyError extends Error {
  override name = 'TrustedProxyError';
}

/** `::ffff:10.0.0.1` (an IPv4 client on a dual-stack socket) → `10.0.0.1`; other forms unchanged. */
export function normalizeAddress(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1] : address.toLowerCase();
}

/**
 * Parses TRUSTED_PROXIES entries: addresses (`10.0.0.5`, `::1`) or CIDR blocks (`10.0.0.0/8`,
 * `fd00::/8`). Throws TrustedProxyError naming the first bad entry.
 */
export function parseTrustedProxies(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const raw of entries) {
    const entry = raw.trim();
    const [addr, bits, extra] = entry.split('/');
    const family = isIP(addr);
    const bad = (why: string) =>
      new TrustedProxyError(
        `"${raw}" is not ${why} (an address such as 10.0.0.5 or a CIDR block such as 10.0.0.0/8)`,
      );
    if (extra !== undefined || family === 0) throw bad('an IP address or CIDR block');
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) {
      list.addAddress(addr, type);
      continue;
    }
    const max = family === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > max)
      throw bad(`a CIDR block with a prefix of 0–${max} bits`);
    list.addSubnet(addr, Number(bits), type);
  }
  return list;
}

/** Builds the policy; throws TrustedProxyError on a bad list or header name. */
export function clientAddressPolicy(conf: {
  trustedProxies: readonly string[];
  header: string;
}): ClientAddressPolicy {
  // RFC 9110 token characters only.
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(conf.header)) {
    throw new TrustedProxyError(`"${conf.header}" is not an HTTP header name`);
  }
  const list = parseTrustedProxies(conf.trustedProxies);
  const empty = conf.trustedProxies.length === 0;
  return {
    header: conf.header.toLowerCase(),
    isTrusted(address: string): boolean {
      if (empty) return false;
      const a = normalizeAddress(address);
      const family = isIP(a);
      if (family === 0) return false;
      return list.check(a, isIPv4(a) ? 'ipv4' : 'ipv6');
    },
  };
}

/**
 * One entry of the header as an address, or undefined: `1.2.3.4`, `1.2.3.4:5678`, `::1`,
 * `[::1]:5678`, `"[::1]"` (RFC 7239-style quoting tolerated).
 */
function entryAddress(entry: string): string | undefined {
  let e = entry.trim().replace(/^"(.*)"$/, '$1');
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(e);
  if (bracketed) e = bracketed[1];
  else if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(e)) e = e.slice(0, e.lastIndexOf(':'));
  return isIP(e) ? normalizeAddress(e) : undefined;
}

/**
 * The address to charge: `peer` unless it is a trusted proxy, else the rightmost untrusted entry
 * of the header (all header lines joined, as HTTP lists are). An entry that is not an address
 * stops the walk: the request is charged to the last proxy that vouched for it.
 */
export function clientAddress(
  policy: ClientAddressPolicy,
  peer: string | undefined,
  headerValue: string | string[] | undefined,
): string {
  let current = normalizeAddress(peer ?? '?');
  if (!policy.isTrusted(current) || headerValue === undefined) return current;
  const entries = (Array.isArray(headerValue) ? headerValue.join(',') : headerValue).split(',');
  for (let i = entries.length - 1; i >= 0; i--) {
    if (entries[i].trim() === '') continue;
    const next = entryAddress(entries[i]);
    if (next === undefined) return current;
    current = next;
    if (!policy.isTrusted(current)) return current;
  }
  return current;
}
