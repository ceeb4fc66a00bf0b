import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { TrusteeError } from './errors';

/**
 * Envelope formats (all that the server ever stores when encryption is on):
 *
 *   magic 0x89 'T' 'K' 'E' (4 bytes) | format byte | nonce (12) | AES-256-GCM ciphertext | tag (16)
 *
 * The leading 0x89 is not valid ASCII/UTF-8 start text (PNG uses the same trick), so a raw deposit
 * is very unlikely to be mistaken for an envelope. The GCM additional data is the header plus:
 *
 * * format 2 (written now): the deposit name and the deposit version the value is stored as
 *   (8-byte big-endian). A server that answers an old version's ciphertext labelled as another
 *   version, or another name's, fails authentication.
 * * format 1 (written by SDKs before version binding, still read): the name only. Such deposits
 *   exist on running clusters and cannot be re-bound without rewriting them, so they stay
 *   readable; `decryptValue` reports which format it read (`Deposit.envelopeFormat`).
 */
export const ENVELOPE_MAGIC = Buffer.from([0x89, 0x54, 0x4b, 0x45]);
/** The format written now (name and version bound). */
export const ENVELOPE_VERSION = 2;
/** The first format (name bound only); read, never written. */
export const ENVELOPE_VERSION_NAME_ONLY = 1;
const HEADER_LENGTH = ENVELOPE_MAGIC.length + 1;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
export const DATA_KEY_LENGTH = 32;
/** Bytes an envelope adds to the plaintext. */
export const ENVELOPE_OVERHEAD = HEADER_LENGTH + NONCE_LENGTH + TAG_LENGTH;

function header(format: number): Buffer {
  return Buffer.concat([ENVELOPE_MAGIC, Buffer.from([format])]);
}

function additionalData(name: string, head: Buffer, version: number | undefined): Buffer {
  const parts = [head, Buffer.from(name, 'utf8')];
  if (version !== undefined) {
    const v = Buffer.alloc(8);
    v.writeBigUInt64BE(BigInt(version));
    parts.push(v);
  }
  return Buffer.concat(parts);
}

function assertVersion(version: number): void {
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new TrusteeError('INVALID_ARGUMENT', `deposit version must be a positive integer, got ${version}`);
  }
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

/**
 * The nonce of a put with an Idempotency-Key: HMAC-SHA-256, under a key derived from the data key,
 * of the key, the name, the version and the plaintext (each length-prefixed), cut to 12 bytes.
 * A retry of the same put (same key, same value) therefore sends the same envelope, and the server
 * recognises it as the same request: a write that ended WRITE_IN_DOUBT and landed resolves to its
 * version instead of "already used for a different request". A nonce repeats only for the same
 * plaintext under the same name, version and key (then the envelope repeats too, which tells
 * nothing new); any other input gives an unrelated nonce, as a random one would.
 */
function syntheticNonce(
  dataKey: Uint8Array,
  idempotencyKey: string,
  name: string,
  version: number,
  plaintext: Uint8Array,
): Buffer {
  const nonceKey = Buffer.from(
    hkdfSync('sha256', dataKey, Buffer.alloc(0), 'trustee envelope nonce v1', DATA_KEY_LENGTH),
  );
  const mac = createHmac('sha256', nonceKey);
  for (const part of [
    Buffer.from(idempotencyKey, 'utf8'),
    Buffer.from(name, 'utf8'),
    Buffer.from(plaintext),
  ]) {
    const len = Buffer.alloc(8);
    len.writeBigUInt64BE(BigInt(part.length));
    mac.update(len).update(part);
  }
  const v = Buffer.alloc(8);
  v.writeBigUInt64BE(BigInt(version));
  mac.update(v);
  return mac.digest().subarray(0, NONCE_LENGTH);
}

/**
 * Seals `plaintext` for deposit `name` at `version` (the version the server will store it as:
 * the put's If-Match + 1). With `idempotencyKey` the nonce is derived from the request
 * (syntheticNonce), so the same put sealed twice is byte-identical; without it, random.
 */
export function encryptValue(
  dataKey: Uint8Array,
  name: string,
  version: number,
  plaintext: Uint8Array,
  idempotencyKey?: string,
): Buffer {
  assertDataKey(dataKey);
  assertVersion(version);
  const head = header(ENVELOPE_VERSION);
  const nonce =
    idempotencyKey === undefined
      ? randomBytes(NONCE_LENGTH)
      : syntheticNonce(dataKey, idempotencyKey, name, version, plaintext);
  const cipher = createCipheriv('aes-256-gcm', dataKey, nonce, { authTagLength: TAG_LENGTH });
  cipher.setAAD(additionalData(name, head, version));
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

/** What `openEnvelope` found: the plaintext and the envelope format it was sealed in. */
export interface OpenedEnvelope {
  plaintext: Buffer;
  /** 2 = name and version bound; 1 = name only (written by an older SDK). */
  format: number;
}

/**
 * Opens the envelope of deposit `name` as served at `version`.
 * @throws TrusteeError DECRYPT_FAILED when the envelope is malformed, from another name, version
 * or key, or tampered.
 */
export function openEnvelope(
  dataKey: Uint8Array,
  name: string,
  version: number,
  envelope: Uint8Array,
): OpenedEnvelope {
  assertDataKey(dataKey);
  const data = Buffer.from(envelope);
  if (!isEnvelope(data)) throw decryptFailed(name, 'value is not an SDK envelope (stored raw?)');
  const format = data[ENVELOPE_MAGIC.length];
  if (format !== ENVELOPE_VERSION && format !== ENVELOPE_VERSION_NAME_ONLY) {
    throw decryptFailed(
      name,
      `envelope version ${format} is not supported by this SDK (knows ${ENVELOPE_VERSION_NAME_ONLY} and ${ENVELOPE_VERSION})`,
    );
  }
  if (data.length < ENVELOPE_OVERHEAD) throw decryptFailed(name, 'envelope is truncated');
  const head = data.subarray(0, HEADER_LENGTH);
  const nonce = data.subarray(HEADER_LENGTH, HEADER_LENGTH + NONCE_LENGTH);
  const body = data.subarray(HEADER_LENGTH + NONCE_LENGTH, data.length - TAG_LENGTH);
  const tag = data.subarray(data.length - TAG_LENGTH);
  try {
    const decipher = createDecipheriv('aes-256-gcm', dataKey, nonce, { authTagLength: TAG_LENGTH });
    decipher.setAAD(additionalData(name, head, format === ENVELOPE_VERSION ? version : undefined));
    decipher.setAuthTag(tag);
    return { plaintext: Buffer.concat([decipher.update(body), decipher.final()]), format };
  } catch (e) {
    throw decryptFailed(
      name,
      `authentication failed for version ${version} (wrong data key, wrong name or version, or tampered value)`,
      e,
    );
  }
}

/** Like `openEnvelope`, returning the plaintext only. */
export function decryptValue(
  dataKey: Uint8Array,
  name: string,
  version: number,
  envelope: Uint8Array,
): Buffer {
  return openEnvelope(dataKey, name, version, envelope).plaintext;
}

/**
 * Seals in the old name-only format 1. Only for tests that prove old deposits stay readable.
 * @internal
 */
export function encryptValueNameOnly(dataKey: Uint8Array, name: string, plaintext: Uint8Array): Buffer {
  assertDataKey(dataKey);
  const head = header(ENVELOPE_VERSION_NAME_ONLY);
  const nonce = randomBytes(NONCE_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', dataKey, nonce, { authTagLength: TAG_LENGTH });
  cipher.setAAD(additionalData(name, head, undefined));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([head, nonce, body, cipher.getAuthTag()]);
}
