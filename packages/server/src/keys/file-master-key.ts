import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { readSecretFile, writeSecretFile } from '../confdir/secret-files';
import { KeyUnavailableError, type KeyHierarchy } from './key-hierarchy';

const BLOB_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** Creates a new random 256-bit master key file (0600). */
export function writeNewMasterKey(file: string): void {
  writeSecretFile(file, randomBytes(32).toString('base64') + '\n');
}

/** AES-256-GCM with a fresh random nonce per row; blob = version(1) ‖ nonce(12) ‖ ciphertext ‖ tag(16). */
export function createFileMasterKey(file: string): KeyHierarchy {
  const key = Buffer.from(readSecretFile(file).toString('utf8').trim(), 'base64');
  if (key.length !== 32)
    throw new KeyUnavailableError(`master key file ${file} does not hold 32 base64 bytes`);
  const keyId = `file:${createHash('sha256').update(key).digest('hex').slice(0, 16)}`;
  // A separate key for digests, derived so the master key itself is only ever used by AES-GCM.
  const digestKey = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'trustee request digest v1', 32));
  return {
    currentKeyId: keyId,
    async seal(plaintext, aad) {
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, nonce);
      cipher.setAAD(aad);
      const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return { keyId, blob: Buffer.concat([Buffer.from([BLOB_VERSION]), nonce, ct, cipher.getAuthTag()]) };
    },
    async digest(data) {
      return createHmac('sha256', digestKey).update(data).digest();
    },
    async open(rowKeyId, blob, aad) {
      if (rowKeyId !== keyId)
        throw new KeyUnavailableError(`row sealed with key ${rowKeyId}, this node holds ${keyId}`);
      if (blob.length < 1 + NONCE_BYTES + TAG_BYTES || blob[0] !== BLOB_VERSION) {
        throw new KeyUnavailableError('sealed value has an unknown format');
      }
      const nonce = blob.subarray(1, 1 + NONCE_BYTES);
      const tag = blob.subarray(blob.length - TAG_BYTES);
      const decipher = createDecipheriv('aes-256-gcm', key, nonce);
      decipher.setAAD(aad);
      decipher.setAuthTag(tag);
      return Buffer.concat([
        decipher.update(blob.subarray(1 + NONCE_BYTES, blob.length - TAG_BYTES)),
        decipher.final(),
      ]);
    },
  };
}
