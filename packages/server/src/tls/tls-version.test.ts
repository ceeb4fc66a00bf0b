import { DEFAULT_TLS_MIN_VERSION, isOlderTlsVersion, parseTlsMinVersion } from './tls-version';

describe('TLS_MIN_VERSION', () => {
  it("accepts the seed's spellings and tlsv1.3, in any case, as Node's names", () => {
    expect(parseTlsMinVersion('tlsv1')).toBe('TLSv1');
    expect(parseTlsMinVersion('tlsv1.1')).toBe('TLSv1.1');
    expect(parseTlsMinVersion('tlsv1.2')).toBe('TLSv1.2');
    expect(parseTlsMinVersion('tlsv1.3')).toBe('TLSv1.3');
    expect(parseTlsMinVersion('TLSV1.2')).toBe('TLSv1.2');
    expect(parseTlsMinVersion(' TlsV1.1 ')).toBe('TLSv1.1');
    expect(parseTlsMinVersion('tlsv1.0')).toBe('TLSv1');
  });

  it("keeps today's TLSv1.2 and TLSv1.3 spellings", () => {
    expect(parseTlsMinVersion('TLSv1.2')).toBe('TLSv1.2');
    expect(parseTlsMinVersion('TLSv1.3')).toBe('TLSv1.3');
  });

  it('rejects what names no TLS version', () => {
    for (const v of ['', 'sslv3', 'tls1.2', 'tlsv1.4', 'TLSv12', '1.2'])
      expect(parseTlsMinVersion(v)).toBeUndefined();
  });

  it('defaults to TLS 1.2, stricter than the original tlsv1', () => {
    expect(DEFAULT_TLS_MIN_VERSION).toBe('TLSv1.2');
  });

  it('orders versions', () => {
    expect(isOlderTlsVersion('TLSv1', 'TLSv1.2')).toBe(true);
    expect(isOlderTlsVersion('TLSv1.2', 'TLSv1.2')).toBe(false);
    expect(isOlderTlsVersion('TLSv1.3', 'TLSv1.1')).toBe(false);
  });
});
