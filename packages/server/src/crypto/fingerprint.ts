import { createHash, createPublicKey, type KeyObject } from 'node:crypto';

/**
 * Key fingerprint as the original product prints it: `<bits>R/<SHA-1 of DER SPKI, upper hex>`
 * for RSA, `<bits>E/…` for EC.
 */
export function keyFingerprint(key: KeyObject | string | Buffer): string {
  const pub =
    typeof key === 'string' || Buffer.isBuffer(key)
      ? createPublicKey(key)
      : key.type === 'private'
        ? createPublicKey(key)
        : key;
  const der = pub.export({ type: 'spki', format: 'der' });
  const sha1 = createHash('sha1').update(der).digest('hex').toUpperCase();
  const details = pub.asymmetricKeyDetails;
  if (pub.asymmetricKeyType === 'rsa') return `${details?.modulusLength ?? 0}R/${sha1}`;
  if (pub.asymmetricKeyType === 'ec') return `${curveBits(details?.namedCurve)}E/${sha1}`;
  return `0?/${sha1}`;
}

function curveBits(curve: string | undefined): number {
  switch (curve) {
    case 'prime256v1':
      return 256;
    case 'secp384r1':
      return 384;
    case 'secp521r1':
      return 521;
    default:
      return 0;
  }
}

/** Fingerprints look like `4096R/` + 40 upper-case hex digits. */
export const FINGERPRINT_RE = /^\d{3,5}[RE]\/[0-9A-F]{40}$/;
