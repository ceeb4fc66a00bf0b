import { createHash, generateKeyPairSync } from 'node:crypto';
import { FINGERPRINT_RE, keyFingerprint } from './fingerprint';

describe('keyFingerprint', () => {
  // RSA 1024 only to keep the test fast; the format does not depend on the size.
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const sha1OfSpki = (k: typeof rsa.publicKey) =>
    createHash('sha1')
      .update(k.export({ type: 'spki', format: 'der' }))
      .digest('hex')
      .toUpperCase();

  it('is <bits>R/<SHA-1 of the DER SPKI, upper-case hex> for RSA', () => {
    const fp = keyFingerprint(rsa.publicKey);
    expect(fp).toBe(`1024R/${sha1OfSpki(rsa.publicKey)}`);
    expect(fp).toMatch(FINGERPRINT_RE);
  });

  it('is the same from the private key, the public key, a PEM string and a PEM buffer', () => {
    const fp = keyFingerprint(rsa.publicKey);
    const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const privPem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    expect(keyFingerprint(rsa.privateKey)).toBe(fp);
    expect(keyFingerprint(pem)).toBe(fp);
    expect(keyFingerprint(Buffer.from(pem))).toBe(fp);
    expect(keyFingerprint(privPem)).toBe(fp);
  });

  it.each([
    ['prime256v1', 256],
    ['secp384r1', 384],
    ['secp521r1', 521],
  ])('is <bits>E/… for an EC key on %s', (namedCurve, bits) => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve });
    const fp = keyFingerprint(publicKey);
    expect(fp).toBe(`${bits}E/${sha1OfSpki(publicKey)}`);
    expect(fp).toMatch(FINGERPRINT_RE);
  });

  it('gives keys of other kinds a fingerprint that FINGERPRINT_RE refuses', () => {
    const ed = generateKeyPairSync('ed25519');
    expect(keyFingerprint(ed.publicKey)).toMatch(/^0\?\/[0-9A-F]{40}$/);
    expect(keyFingerprint(ed.publicKey)).not.toMatch(FINGERPRINT_RE);
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
    expect(keyFingerprint(k1.publicKey)).not.toMatch(FINGERPRINT_RE);
  });

  it('tells different keys apart', () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const another = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    expect(keyFingerprint(other.publicKey)).not.toBe(keyFingerprint(another.publicKey));
  });

  it('refuses text that is not a key', () => {
    expect(() => keyFingerprint('not a key')).toThrow();
  });
});

describe('FINGERPRINT_RE', () => {
  it.each([`4096R/${'A'.repeat(40)}`, `256E/${'0123456789ABCDEF'.repeat(2)}01234567`])('accepts %s', (fp) => {
    expect(fp).toMatch(FINGERPRINT_RE);
  });

  it.each([
    `4096R/${'a'.repeat(40)}`,
    `4096R/${'A'.repeat(39)}`,
    `4096R/${'A'.repeat(41)}`,
    `4096X/${'A'.repeat(40)}`,
    `40R/${'A'.repeat(40)}`,
    `4096R${'A'.repeat(40)}`,
    ` 4096R/${'A'.repeat(40)}`,
    `4096R/${'A'.repeat(40)}\n`,
  ])('refuses %j', (fp) => {
    expect(fp).not.toMatch(FINGERPRINT_RE);
  });
});
