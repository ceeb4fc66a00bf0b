import { generateKeyPairSync } from 'node:crypto';
import { generateDataKey, unwrapDataKey, wrapDataKey } from './data-key';
import { ENVELOPE_MAGIC, ENVELOPE_OVERHEAD, decryptValue, encryptValue, isEnvelope } from './envelope';
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
    const envelope = encryptValue(key, 'hdfs-key', secret);
    expect(isEnvelope(envelope)).toBe(true);
    expect(envelope.subarray(0, 4)).toEqual(ENVELOPE_MAGIC);
    expect(envelope[4]).toBe(1);
    expect(envelope.length).toBe(secret.length + ENVELOPE_OVERHEAD);
    expect(envelope.includes(secret)).toBe(false);
    expect(decryptValue(key, 'hdfs-key', envelope)).toEqual(secret);
  });

  it('uses a fresh nonce for every encryption', () => {
    expect(encryptValue(key, 'a', secret).equals(encryptValue(key, 'a', secret))).toBe(false);
  });

  it('detects a ciphertext moved to another name', () => {
    expectDecryptFailure(() => decryptValue(key, 'other-name', encryptValue(key, 'hdfs-key', secret)));
  });

  it('detects a flipped ciphertext bit and a tampered version byte', () => {
    const envelope = encryptValue(key, 'n', secret);
    const flipped = Buffer.from(envelope);
    flipped[20] ^= 1;
    expectDecryptFailure(() => decryptValue(key, 'n', flipped));
    const downgraded = Buffer.from(envelope);
    downgraded[4] = 2;
    expect(expectDecryptFailure(() => decryptValue(key, 'n', downgraded)).message).toContain('version 2');
  });

  it('fails with the wrong data key and on raw or truncated values', () => {
    const envelope = encryptValue(key, 'n', secret);
    expectDecryptFailure(() => decryptValue(generateDataKey(), 'n', envelope));
    expectDecryptFailure(() => decryptValue(key, 'n', secret));
    expectDecryptFailure(() => decryptValue(key, 'n', envelope.subarray(0, 20)));
  });

  it('encrypts the empty value', () => {
    expect(decryptValue(key, 'n', encryptValue(key, 'n', Buffer.alloc(0)))).toEqual(Buffer.alloc(0));
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
