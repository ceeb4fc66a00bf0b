import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { KeyUnavailableError } from './key-hierarchy';

const BLOB_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/**
 * AES-256-GCM with a fresh random nonce per value; blob = version(1) ‖ nonce(12) ‖ ciphertext ‖
 * tag(16). The one row format of every key hierarchy (master key file or HSM data key).
 */
export function sealWithKey(key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.from([BLOB_VERSION]), nonce, ct, cipher.getAuthTag()]);
}

/** Reverses sealWithKey; throws KeyUnavailableError on an unknown format, a wrong key or aad. */
export function openWithKey(key: Buffer, blob: Buffer, aad: Buffer): Buffer {
  if (blob.length < 1 + NONCE_BYTES + TAG_BYTES || blob[0] !== BLOB_VERSION) {
    throw new KeyUnavailableError('sealed value has an unknown format');
  }
  const nonce = blob.subarray(1, 1 + NONCE_BYTES);
  const tag = blob.subarray(blob.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([
      decipher.update(blob.subarray(1 + NONCE_BYTES, blob.length - TAG_BYTES)),
      decipher.final(),
    ]);
  } catch (e) {
    throw new KeyUnavailableError('sealed value failed its integrity check', { cause: e });
  }
}
