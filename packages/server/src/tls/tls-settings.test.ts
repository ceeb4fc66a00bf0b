import { keytrusteeConfSchema } from '../config';

const parse = (extra: Record<string, unknown>) => keytrusteeConfSchema.safeParse({ HOST: 'kt01', ...extra });

describe('TLS keys of keytrustee.conf', () => {
  it('default to TLS 1.2, the default cipher list and /metrics open', () => {
    const r = parse({});
    expect(r.success && r.data.TLS_MIN_VERSION).toBe('TLSv1.2');
    expect(r.success && r.data.TLS_CIPHERS).toBeUndefined();
    expect(r.success && r.data.METRICS_REQUIRE_CLIENT_CERT).toBe(false);
    expect(r.success && r.data.METRICS_LISTEN).toBeUndefined();
  });

  it("parse the seed's spellings", () => {
    const r = parse({ TLS_MIN_VERSION: 'tlsv1.1', TLS_CIPHERS: 'AES256, CAMELLIA256-SHA' });
    expect(r.success && r.data.TLS_MIN_VERSION).toBe('TLSv1.1');
    expect(r.success && r.data.TLS_CIPHERS).toBe('AES256:CAMELLIA256-SHA');
    const empty = parse({ TLS_CIPHERS: '' });
    expect(empty.success && empty.data.TLS_CIPHERS).toBeUndefined();
  });

  it('name the key and the accepted values when wrong', () => {
    const r = parse({ TLS_MIN_VERSION: 'sslv3' });
    expect(r.success).toBe(false);
    expect(!r.success && r.error.issues[0].path).toEqual(['TLS_MIN_VERSION']);
    expect(!r.success && r.error.issues[0].message).toMatch(/tlsv1, tlsv1.1, tlsv1.2, tlsv1.3/);
    const l = parse({ METRICS_LISTEN: 'everywhere' });
    expect(!l.success && l.error.issues[0].path).toEqual(['METRICS_LISTEN']);
    const c = parse({ TLS_CIPHERS: 'AES256;RC4' });
    expect(!c.success && c.error.issues[0].path).toEqual(['TLS_CIPHERS']);
  });
});
