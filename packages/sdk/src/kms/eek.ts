import { createCipheriv, randomBytes } from 'node:crypto';
import { TrusteeError } from '../errors';

/**
 * Encrypted-key arithmetic of Hadoop's `KeyProviderCryptoExtension.DefaultCryptoExtension`
 * (hadoop-common, org.apache.hadoop.crypto.key), so an EEK made here decrypts there and back:
 *
 * * generate: a random DEK as long as the key version's material, a random 16-byte IV (the AES
 *   block size); EEK = AES-CTR(key = version material, iv = deriveIV(IV)) over the DEK;
 * * `EncryptedKeyVersion.deriveIV` flips every bit of the IV (`iv[i] ^ 0xff`) so the EEK's own IV
 *   is never the one the key version encrypts with;
 * * the EEK's version name is "EEK", a decrypted one's "EK";
 * * re-encryption decrypts with the old version and encrypts with the current one, keeping the IV.
 */

/** Version name of an encrypted encryption key (Hadoop `KeyProviderCryptoExtension.EEK`). */
export const EEK_VERSION_NAME = 'EEK';
/** Version name of a decrypted encryption key (Hadoop `KeyProviderCryptoExtension.EK`). */
export const EK_VERSION_NAME = 'EK';
/** AES block size: the IV length Hadoop's CryptoCodec uses for AES/CTR/NoPadding. */
export const EEK_IV_LENGTH = 16;

/** Hadoop's `EncryptedKeyVersion.deriveIV`: every bit of the IV flipped. */
export function flipIv(iv: Uint8Array): Buffer {
  return Buffer.from(Uint8Array.from(iv, (b) => b ^ 0xff));
}

function aesCtr(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Buffer {
  if (key.length !== 16 && key.length !== 24 && key.length !== 32) {
    throw new TrusteeError(
      'INVALID_ARGUMENT',
      `AES key material must be 16, 24 or 32 bytes, got ${key.length}`,
    );
  }
  if (iv.length !== EEK_IV_LENGTH) {
    throw new TrusteeError(
      'INVALID_ARGUMENT',
      `encrypted key IV must be ${EEK_IV_LENGTH} bytes, got ${iv.length}`,
    );
  }
  const cipher = createCipheriv(`aes-${key.length * 8}-ctr`, key, iv);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

/** The EEK of `dek` under key version material `versionKey` with the EEK's IV `iv`. */
export function encryptKeyMaterial(versionKey: Uint8Array, iv: Uint8Array, dek: Uint8Array): Buffer {
  return aesCtr(versionKey, flipIv(iv), dek);
}

/** The DEK of an EEK (CTR is its own inverse). */
export function decryptKeyMaterial(versionKey: Uint8Array, iv: Uint8Array, eek: Uint8Array): Buffer {
  return aesCtr(versionKey, flipIv(iv), eek);
}

/** A fresh DEK (same length as the key version's material) and IV, and the DEK's EEK. */
export function generateKeyMaterialEek(versionKey: Uint8Array): { iv: Buffer; dek: Buffer; eek: Buffer } {
  const dek = randomBytes(versionKey.length);
  const iv = randomBytes(EEK_IV_LENGTH);
  return { iv, dek, eek: encryptKeyMaterial(versionKey, iv, dek) };
}
