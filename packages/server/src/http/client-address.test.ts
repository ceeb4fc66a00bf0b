import { keytrusteeConfSchema } from '../config';
import {
  clientAddress,
  clientAddressPolicy,
  normalizeAddress,
  parseTrustedProxies,
  TrustedProxyError,
} from './client-address';

describe('client address behind trusted proxies', () => {
  const policy = clientAddressPolicy({
    trustedProxies: ['127.0.0.1', '10.0.0.0/8', 'fd00::/8'],
    header: 'X-Forwarded-For',
  });

  it('uses the socket address when the peer is not a trusted proxy, whatever the header says', () => {
    expect(clientAddress(policy, '192.0.2.7', '198.51.100.1')).toBe('192.0.2.7');
    expect(clientAddress(policy, '::ffff:192.0.2.7', '198.51.100.1')).toBe('192.0.2.7');
  });

  it('takes the rightmost address that is not a trusted proxy', () => {
    expect(clientAddress(policy, '127.0.0.1', '198.51.100.1')).toBe('198.51.100.1');
    // The client wrote "1.1.1.1" itself; the proxies appended 203.0.113.9 then 10.1.2.3.
    expect(clientAddress(policy, '127.0.0.1', '1.1.1.1, 203.0.113.9, 10.1.2.3')).toBe('203.0.113.9');
    expect(clientAddress(policy, '::ffff:127.0.0.1', ['1.1.1.1', '203.0.113.9'])).toBe('203.0.113.9');
    expect(clientAddress(policy, '127.0.0.1', '[2001:db8::1]:4711, fd00::5')).toBe('2001:db8::1');
    expect(clientAddress(policy, '127.0.0.1', '198.51.100.1:5555')).toBe('198.51.100.1');
  });

  it('charges the last proxy that vouched when the header is absent, all trusted, or not an address', () => {
    expect(clientAddress(policy, '127.0.0.1', undefined)).toBe('127.0.0.1');
    expect(clientAddress(policy, '127.0.0.1', '10.0.0.9, 10.0.0.8')).toBe('10.0.0.9');
    expect(clientAddress(policy, '127.0.0.1', '198.51.100.1, garbage, 10.0.0.8')).toBe('10.0.0.8');
    expect(clientAddress(policy, '127.0.0.1', 'garbage')).toBe('127.0.0.1');
  });

  it('ignores the header entirely when no proxy is trusted', () => {
    const none = clientAddressPolicy({ trustedProxies: [], header: 'X-Real-IP' });
    expect(none.header).toBe('x-real-ip');
    expect(clientAddress(none, '127.0.0.1', '198.51.100.1')).toBe('127.0.0.1');
  });

  it('normalises IPv4-mapped IPv6 addresses', () => {
    expect(normalizeAddress('::FFFF:10.0.0.1')).toBe('10.0.0.1');
    expect(normalizeAddress('2001:DB8::1')).toBe('2001:db8::1');
  });

  it.each([
    ['not-an-address', /"not-an-address" is not an IP address or CIDR block/],
    ['10.0.0.0/33', /prefix of 0–32 bits/],
    ['fd00::/129', /prefix of 0–128 bits/],
    ['10.0.0.0/8/8', /not an IP address/],
    ['10.0.0.0/x', /prefix/],
  ])('refuses the TRUSTED_PROXIES entry %s with a clear message', (entry, message) => {
    expect(() => parseTrustedProxies([entry])).toThrow(TrustedProxyError);
    expect(() => parseTrustedProxies([entry])).toThrow(message);
  });

  it('refuses a bad TRUSTED_PROXIES or CLIENT_ADDRESS_HEADER in keytrustee.conf, naming the key', () => {
    const base = { HOST: 'kt01' };
    const bad = keytrusteeConfSchema.safeParse({ ...base, TRUSTED_PROXIES: ['10.0.0.0/8', 'lb.example'] });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0].path).toEqual(['TRUSTED_PROXIES']);
    expect(bad.error?.issues[0].message).toMatch(/"lb.example" is not an IP address/);
    const header = keytrusteeConfSchema.safeParse({ ...base, CLIENT_ADDRESS_HEADER: 'X Forwarded' });
    expect(header.success).toBe(false);
    expect(header.error?.issues[0].path).toEqual(['CLIENT_ADDRESS_HEADER']);
    const listed = keytrusteeConfSchema.parse({ ...base, TRUSTED_PROXIES: '10.0.0.0/8, ::1' });
    expect(listed.TRUSTED_PROXIES).toEqual(['10.0.0.0/8', '::1']);
    const ok = keytrusteeConfSchema.parse({ ...base });
    expect(ok.TRUSTED_PROXIES).toEqual([]);
    expect(ok.CLIENT_ADDRESS_HEADER).toBe('X-Forwarded-For');
    expect(ok.REGISTRATIONS_PER_15_MIN).toBe(300);
  });
});
