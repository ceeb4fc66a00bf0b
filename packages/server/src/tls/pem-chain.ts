const CERT_BLOCK = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g;

/** The PEM certificates in a file, in order, re-wrapped at 64 columns (other blocks and text ignored). */
export function pemCertificates(text: string): string[] {
  return [...text.matchAll(CERT_BLOCK)].map((m) => {
    const body = m[1].replace(/\s+/g, '');
    return `-----BEGIN CERTIFICATE-----\n${body.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
  });
}

/**
 * The chain served to clients: the certificate file (leaf first, maybe followed by intermediates)
 * then the CA file (`.ssl/ssl-cert-keytrustee-ca.pem`, the seed's root or intermediate), each
 * certificate once.
 */
export function servedChain(certFileText: string, caFileText?: string): string[] {
  const seen = new Set<string>();
  const chain: string[] = [];
  for (const pem of [...pemCertificates(certFileText), ...pemCertificates(caFileText ?? '')]) {
    if (seen.has(pem)) continue;
    seen.add(pem);
    chain.push(pem);
  }
  return chain;
}

/** True for a PEM private key protected by a passphrase (PKCS#8 or OpenSSL's traditional format). */
export function isEncryptedKeyPem(pem: string): boolean {
  return pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /Proc-Type:\s*4,ENCRYPTED/.test(pem);
}
