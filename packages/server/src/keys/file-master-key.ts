import { createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { readSecretFile, writeSecretFile } from '../confdir/secret-files';
import { openWithKey, sealWithKey } from './aes-gcm-blob';
import { KeyUnavailableError, type KeyHierarchy } from './key-hierarchy';

/** Creates a new random 256-bit master key file (0600). */
export function writeNewMasterKey(file: string): void {
  writeSecretFile(file, randomBytes(32).toString('base64') + '\n');
}

/** The master key file's key and the ids derived from it. */
export interface FileMasterKey {
  key: Buffer;
  keyId: string;
  /** Key of the request digests (idempotency), derived so the master key is only ever used by AES-GCM. */
  digestKey: Buffer;
}

export function readFileMasterKey(file: string): FileMasterKey {
  const key = Buffer.from(readSecretFile(file).toString('utf8').trim(), 'base64');
  if (key.length !== 32)
    throw new KeyUnavailableError(`master key file ${file} does not hold 32 base64 bytes`);
  return {
    key,
    keyId: `file:${createHash('sha256').update(key).digest('hex').slice(0, 16)}`,
    digestKey: Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'trustee request digest v1', 32)),
  };
}

/** AES-256-GCM with a fresh random nonce per row (aes-gcm-blob.ts), under the confdir's master key. */
export function createFileMasterKey(file: string): KeyHierarchy {
  const { key, keyId, digestKey } = readFileMasterKey(file);
  return {
    currentKeyId: keyId,
    async seal(plaintext, aad) {
      return { keyId, blob: sealWithKey(key, plaintext, aad) };
    },
    async digest(data) {
      return createHmac('sha256', digestKey).update(data).digest();
    },
    async open(rowKeyId, blob, aad) {
      if (rowKeyId !== keyId)
        throw new KeyUnavailableError(`row sealed with key ${rowKeyId}, this node holds ${keyId}`);
      return openWithKey(key, blob, aad);
    },
  };
}
