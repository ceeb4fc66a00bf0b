import {
  constants,
  createPrivateKey,
  createPublicKey,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
} from 'node:crypto';
import { DATA_KEY_LENGTH } from './envelope';
import { TrusteeError } from './errors';

/** The only wrapping algorithm so far; stored in the config so a later one can be told apart. */
export const DATA_KEY_WRAP_ALG = 'RSA-OAEP-SHA256';

export interface WrappedDataKey {
  alg: typeof DATA_KEY_WRAP_ALG;
  /** Base64 of the RSA-OAEP ciphertext of the 32-byte AES key. */
  wrapped: string;
}

export function generateDataKey(): Buffer {
  return randomBytes(DATA_KEY_LENGTH);
}

/** Wraps with the client's own public key, so only its private key (in the 0600 config) unwraps. */
export function wrapDataKey(dataKey: Uint8Array, publicKeyPem: string): WrappedDataKey {
  const wrapped = publicEncrypt(
    { key: createPublicKey(publicKeyPem), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
    dataKey,
  );
  return { alg: DATA_KEY_WRAP_ALG, wrapped: wrapped.toString('base64') };
}

export function unwrapDataKey(wrapped: WrappedDataKey, privateKeyPem: string): Buffer {
  if (wrapped.alg !== DATA_KEY_WRAP_ALG) {
    throw new TrusteeError('CONFIG_INVALID', `unsupported data key wrapping ${String(wrapped.alg)}`);
  }
  let key: Buffer;
  try {
    key = privateDecrypt(
      { key: createPrivateKey(privateKeyPem), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
      Buffer.from(wrapped.wrapped, 'base64'),
    );
  } catch (e) {
    throw new TrusteeError('CONFIG_INVALID', 'cannot unwrap the data key with this private key', {
      cause: e,
    });
  }
  if (key.length !== DATA_KEY_LENGTH) {
    throw new TrusteeError(
      'CONFIG_INVALID',
      `unwrapped data key has ${key.length} bytes, expected ${DATA_KEY_LENGTH}`,
    );
  }
  return key;
}
