import { generateKeyPairSync } from 'node:crypto';
import { generateDataKey, unwrapDataKey, wrapDataKey } from './data-key';
import {
  ENVELOPE_MAGIC,
  ENVELOPE_OVERHEAD,
  ENVELOPE_VERSION_NAME_ONLY,
  decryptValue,
  encryptValue,
  encryptValueNameOnly,
  isEnvelope,
  openEnvelope,
} from './envelope';
import { TrusteeError } from './errors';

const key = generateDataKey();
const secret = Buffer.from('the master key of the HDFS KMS');

function expectDecryptFailure(fn: () => unknown): TrusteeError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TrusteeError);
    expect((e as TrusteeError).code).toBe('DECRYPT_FAILED');
    expect((e as TrusteeError).message).not.toContain(secret.toString());
    return e as TrusteeError;
  }
  throw new Error('expected DECRYPT_FAILED');
}

describe('envelope encryption', () => {
  it('round-trips and hides the plaintext', () => {
    const envelope = encryptValue(key, 'hdfs-key', 1, secret);
    expect(isEnvelope(envelope)).toBe(true);
    expect(envelope.subarray(0, 4)).toEqual(ENVELOPE_MAGIC);
    expect(envelope[4]).toBe(2);
    expect(envelope.length).toBe(secret.length + ENVELOPE_OVERHEAD);
    expect(envelope.includes(secret)).toBe(false);
    expect(decryptValue(key, 'hdfs-key', 1, envelope)).toEqual(secret);
  });

  it('uses a fresh nonce for every encryption', () => {
    expect(encryptValue(key, 'a', 1, secret).equals(encryptValue(key, 'a', 1, secret))).toBe(false);
  });

  it('seals one put (same Idempotency-Key, name, version, value) to the same bytes, and nothing else alike', () => {
    const nonceOf = (e: Buffer) => e.subarray(5, 17).toString('hex');
    const first = encryptValue(key, 'a', 1, secret, 'key-1');
    expect(encryptValue(key, 'a', 1, secret, 'key-1').equals(first)).toBe(true);
    expect(decryptValue(key, 'a', 1, first)).toEqual(secret);
    const others = [
      encryptValue(key, 'a', 1, secret, 'key-2'),
      encryptValue(key, 'b', 1, secret, 'key-1'),
      encryptValue(key, 'a', 2, secret, 'key-1'),
      encryptValue(key, 'a', 1, Buffer.from('another value'), 'key-1'),
      encryptValue(generateDataKey(), 'a', 1, secret, 'key-1'),
      encryptValue(key, 'a', 1, secret),
    ];
    const nonces = new Set([first, ...others].map(nonceOf));
    expect(nonces.size).toBe(others.length + 1);
    // Length prefixes: moving bytes between the key and the name changes the nonce.
    expect(nonceOf(encryptValue(key, 'xa', 1, secret, 'k'))).not.toBe(
      nonceOf(encryptValue(key, 'a', 1, secret, 'kx')),
    );
  });

  it('detects a ciphertext moved to another name', () => {
    expectDecryptFailure(() => decryptValue(key, 'other-name', 1, encryptValue(key, 'hdfs-key', 1, secret)));
  });

  it('detects an old version served as another version (name and version are bound)', () => {
    const v3 = encryptValue(key, 'hdfs-key', 3, secret);
    expect(decryptValue(key, 'hdfs-key', 3, v3)).toEqual(secret);
    const e = expectDecryptFailure(() => decryptValue(key, 'hdfs-key', 5, v3));
    expect(e.message).toContain('version 5');
  });

  it('still reads format 1 envelopes (name only) written before version binding', () => {
    const old = encryptValueNameOnly(key, 'hdfs-key', secret);
    expect(old[4]).toBe(ENVELOPE_VERSION_NAME_ONLY);
    const opened = openEnvelope(key, 'hdfs-key', 7, old);
    expect(opened).toEqual({ plaintext: secret, format: 1 });
    expectDecryptFailure(() => decryptValue(key, 'other', 7, old));
  });

  it('detects a flipped ciphertext bit and a tampered format byte', () => {
    const envelope = encryptValue(key, 'n', 1, secret);
    const flipped = Buffer.from(envelope);
    flipped[20] ^= 1;
    expectDecryptFailure(() => decryptValue(key, 'n', 1, flipped));
    const downgraded = Buffer.from(envelope);
    downgraded[4] = 1;
    expectDecryptFailure(() => decryptValue(key, 'n', 1, downgraded));
    const unknown = Buffer.from(envelope);
    unknown[4] = 3;
    expect(expectDecryptFailure(() => decryptValue(key, 'n', 1, unknown)).message).toContain('version 3');
  });

  it('fails with the wrong data key and on raw or truncated values', () => {
    const envelope = encryptValue(key, 'n', 1, secret);
    expectDecryptFailure(() => decryptValue(generateDataKey(), 'n', 1, envelope));
    expectDecryptFailure(() => decryptValue(key, 'n', 1, secret));
    expectDecryptFailure(() => decryptValue(key, 'n', 1, envelope.subarray(0, 20)));
  });

  it('encrypts the empty value', () => {
    expect(decryptValue(key, 'n', 2, encryptValue(key, 'n', 2, Buffer.alloc(0)))).toEqual(Buffer.alloc(0));
  });

  it('refuses a version that is not a positive integer', () => {
    expect(() => encryptValue(key, 'n', 0, secret)).toThrow(/positive integer/);
  });
});

describe('data key wrapping', () => {
  it('unwraps only with the matching private key (RSA-OAEP-SHA256)', () => {
    const pair = () =>
      generateKeyPairSync('rsa', {
        modulusLength: 2048,
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      });
    const mine = pair();
    const wrapped = wrapDataKey(key, mine.publicKey);
    expect(wrapped.alg).toBe('RSA-OAEP-SHA256');
    expect(unwrapDataKey(wrapped, mine.privateKey)).toEqual(key);
    expect(() => unwrapDataKey(wrapped, pair().privateKey)).toThrow(TrusteeError);
  });
});
