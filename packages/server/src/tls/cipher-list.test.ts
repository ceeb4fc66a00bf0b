import { DEFAULT_CIPHERS, DEFAULT_TLS12_CIPHERS, parseCipherList, serverCipherList } from './cipher-list';

describe('TLS_CIPHERS', () => {
  it("takes the seed's list separated by colons, commas or spaces, in OpenSSL's colon form", () => {
    expect(parseCipherList('AES256:CAMELLIA256-SHA')).toBe('AES256:CAMELLIA256-SHA');
    expect(parseCipherList('AES256,CAMELLIA256-SHA')).toBe('AES256:CAMELLIA256-SHA');
    expect(parseCipherList('AES256 CAMELLIA256-SHA')).toBe('AES256:CAMELLIA256-SHA');
    expect(parseCipherList(' AES256 , CAMELLIA256-SHA :\tECDHE-RSA-AES128-GCM-SHA256 ')).toBe(
      'AES256:CAMELLIA256-SHA:ECDHE-RSA-AES128-GCM-SHA256',
    );
  });

  it('keeps the other notation of man ciphers', () => {
    expect(parseCipherList('HIGH:!aNULL:!MD5:+AES256:-CBC @STRENGTH,@SECLEVEL=0')).toBe(
      'HIGH:!aNULL:!MD5:+AES256:-CBC:@STRENGTH:@SECLEVEL=0',
    );
    expect(parseCipherList('TLS_AES_256_GCM_SHA384 ECDHE-RSA-AES256-GCM-SHA384')).toBe(
      'TLS_AES_256_GCM_SHA384:ECDHE-RSA-AES256-GCM-SHA384',
    );
  });

  it('treats an empty list as "use the default"', () => {
    expect(parseCipherList('')).toBeUndefined();
    expect(parseCipherList(' , : ')).toBeUndefined();
  });

  it('rejects text that cannot be cipher-list notation, naming it', () => {
    expect(() => parseCipherList('"AES256"')).toThrow(/^""AES256"" is not OpenSSL cipher-list notation/);
    expect(() => parseCipherList('AES256;RC4')).toThrow(/AES256;RC4/);
  });

  it('defaults to ECDHE with AEAD only: no CBC, no DHE, no static RSA key exchange', () => {
    for (const c of DEFAULT_TLS12_CIPHERS) {
      expect(c).toMatch(/^ECDHE-(RSA|ECDSA)-/);
      expect(c).toMatch(/-GCM-|CHACHA20-POLY1305/);
    }
    expect(DEFAULT_CIPHERS.split(':').filter((c) => c.startsWith('TLS_'))).toHaveLength(3);
    for (const c of DEFAULT_CIPHERS.split(':')) expect(c).not.toMatch(/CBC|-SHA$|^DHE-|^AES/);
  });

  it('served: the default when empty; an operator list never with anonymous or null suites', () => {
    expect(serverCipherList(undefined)).toBe(DEFAULT_CIPHERS);
    expect(serverCipherList('AES256:CAMELLIA256-SHA')).toBe('AES256:CAMELLIA256-SHA:!aNULL:!eNULL');
    expect(serverCipherList('TLS_AES_256_GCM_SHA384')).toBe('TLS_AES_256_GCM_SHA384');
  });
});
