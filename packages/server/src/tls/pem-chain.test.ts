import { isEncryptedKeyPem, pemCertificates, servedChain } from './pem-chain';

const pem = (body: string) => `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
const leaf = pem('TEVBRg==');
const intermediate = pem('SU5URVJNRURJQVRF');
const root = pem('Uk9PVA==');

describe('the served certificate chain', () => {
  it('is the certificate file, then the CA file', () => {
    expect(servedChain(leaf, intermediate + root)).toEqual([leaf, intermediate, root]);
    expect(servedChain(leaf)).toEqual([leaf]);
  });

  it('sends each certificate once when the certificate file already holds the chain', () => {
    expect(servedChain(leaf + intermediate, intermediate + root)).toEqual([leaf, intermediate, root]);
  });

  it('ignores text and keys around the certificates and normalises line breaks', () => {
    const messy = `subject=CN = kt01\r\n-----BEGIN CERTIFICATE-----\r\nTEVB\r\nRg==\r\n-----END CERTIFICATE-----\r\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n`;
    expect(pemCertificates(messy)).toEqual([leaf]);
    expect(pemCertificates('no certificate here')).toEqual([]);
  });

  it('wraps long bodies at 64 columns', () => {
    const body = 'A'.repeat(100);
    expect(pemCertificates(pem(body))[0]).toBe(pem(`${'A'.repeat(64)}\n${'A'.repeat(36)}`));
  });
});

describe('encrypted private keys', () => {
  it('are recognised in PKCS#8 and the traditional OpenSSL format', () => {
    expect(
      isEncryptedKeyPem('-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA\n-----END ENCRYPTED PRIVATE KEY-----'),
    ).toBe(true);
    expect(
      isEncryptedKeyPem(
        '-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAA\n',
      ),
    ).toBe(true);
    expect(isEncryptedKeyPem('-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----')).toBe(false);
  });
});
