import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { TrusteeError } from './errors';

/**
 * Envelope format v1 (all that the server ever stores when encryption is on):
 *
 *   magic 0x89 'T' 'K' 'E' (4 bytes) | version 0x01 | nonce (12) | AES-256-GCM ciphertext | tag (16)
 *
 * The leading 0x89 is not valid ASCII/UTF-8 start text (PNG uses the same trick), so a raw deposit
 * is very unlikely to be mistaken for an envelope. The header and the deposit name are the GCM
 * additional data: swapping the ciphertext of one name under another, or editing the version
 * byte, fails authentication.
 */
export const ENVELOPE_MAGIC = Buffer.from([0x89, 0x54, 0x4b, 0x45]);
export const ENVELOPE_VERSION = 1;
const HEADER_LENGTH = ENVELOPE_MAGIC.length + 1;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
export const DATA_KEY_LENGTH = 32;
/** Bytes an envelope adds to the plaintext. */
export const ENVELOPE_OVERHEAD = HEADER_LENGTH + NONCE_LENGTH + TAG_LENGTH;

function header(): Buffer {
  return Buffer.concat([ENVELOPE_MAGIC, Buffer.from([ENVELOPE_VERSION])]);
}

function additionalData(name: string, head: Buffer): Buffer {
  return Buffer.concat([head, Buffer.from(name, 'utf8')]);
}

function assertDataKey(dataKey: Uint8Array): void {
  if (dataKey.length !== DATA_KEY_LENGTH) {
    throw new TrusteeError(
      'CONFIG_INVALID',
      `data key must be ${DATA_KEY_LENGTH} bytes, got ${dataKey.length}`,
    );
  }
}

/** True when `stored` starts with the envelope magic (any version). */
export function isEnvelope(stored: Uint8Array): boolean {
  return stored.length >= HEADER_LENGTH && ENVELOPE_MAGIC.equals(Buffer.from(stored.subarray(0, 4)));
}

export function encryptValue(dataKey: Uint8Array, name: string, plaintext: Uint8Array): Buffer {
  assertDataKey(dataKey);
  const head = header();
  const nonce = randomBytes(NONCE_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', dataKey, nonce, { authTagLength: TAG_LENGTH });
  cipher.setAAD(additionalData(name, head));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([head, nonce, body, cipher.getAuthTag()]);
}

function decryptFailed(name: string, why: string, cause?: unknown): TrusteeError {
  // Never include the plaintext or key material: only the name and the reason.
  return new TrusteeError('DECRYPT_FAILED', `cannot decrypt deposit ${name}: ${why}`, {
    cause,
    details: { name },
  });
}

/** @throws TrusteeError DECRYPT_FAILED when the envelope is malformed, from another name/key, or tampered. */
export function decryptValue(dataKey: Uint8Array, name: string, envelope: Uint8Array): Buffer {
  assertDataKey(dataKey);
  const data = Buffer.from(envelope);
  if (!isEnvelope(data)) throw decryptFailed(name, 'value is not an SDK envelope (stored raw?)');
  const version = data[ENVELOPE_MAGIC.length];
  if (version !== ENVELOPE_VERSION) {
    throw decryptFailed(
      name,
      `envelope version ${version} is not supported by this SDK (knows ${ENVELOPE_VERSION})`,
    );
  }
  if (data.length < ENVELOPE_OVERHEAD) throw decryptFailed(name, 'envelope is truncated');
  const head = data.subarray(0, HEADER_LENGTH);
  const nonce = data.subarray(HEADER_LENGTH, HEADER_LENGTH + NONCE_LENGTH);
  const body = data.subarray(HEADER_LENGTH + NONCE_LENGTH, data.length - TAG_LENGTH);
  const tag = data.subarray(data.length - TAG_LENGTH);
  try {
    const decipher = createDecipheriv('aes-256-gcm', dataKey, nonce, { authTagLength: TAG_LENGTH });
    decipher.setAAD(additionalData(name, head));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch (e) {
    throw decryptFailed(name, 'authentication failed (wrong data key, wrong name, or tampered value)', e);
  }
}
