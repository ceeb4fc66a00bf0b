import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EEK_IV_LENGTH, decryptKeyMaterial, encryptKeyMaterial, flipIv, generateKeyMaterialEek } from './eek';

/** AES-CTR by the real openssl binary, independent of Node's bindings to the same library. */
function opensslCtr(bits: number, key: Buffer, iv: Buffer, data: Buffer): Buffer {
  const r = spawnSync(
    'openssl',
    ['enc', `-aes-${bits}-ctr`, '-K', key.toString('hex'), '-iv', iv.toString('hex'), '-nosalt', '-nopad'],
    { input: data, timeout: 30_000 },
  );
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr.toString()}`);
  return r.stdout;
}

describe('EEK arithmetic (Hadoop KeyProviderCryptoExtension)', () => {
  it('flips every bit of the IV (deriveIV: iv[i] ^ 0xff)', () => {
    expect(flipIv(Buffer.from('00ff0f5aa5', 'hex')).toString('hex')).toBe('ff00f0a55a');
    const iv = randomBytes(EEK_IV_LENGTH);
    expect(flipIv(flipIv(iv))).toEqual(iv);
  });

  it('matches a fixed known-answer vector made with openssl enc -aes-128-ctr', () => {
    // openssl enc -aes-128-ctr -K 000102030405060708090a0b0c0d0e0f -iv fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0 -nosalt -nopad
    // over the 16 bytes 00 11 22 … ff; the EEK's IV is 000102…0f, flipped it is fffefd…f0.
    const key = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
    const iv = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
    const dek = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    const expected = opensslCtr(128, key, Buffer.from('fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0', 'hex'), dek);
    expect(encryptKeyMaterial(key, iv, dek)).toEqual(expected);
    expect(decryptKeyMaterial(key, iv, expected)).toEqual(dek);
    // And not the unflipped IV: the EEK must not reuse its own IV.
    expect(encryptKeyMaterial(key, iv, dek)).not.toEqual(opensslCtr(128, key, iv, dek));
  });

  for (const bits of [128, 256]) {
    it(`agrees with openssl enc -aes-${bits}-ctr on random keys, both ways`, () => {
      for (let i = 0; i < 5; i++) {
        const versionKey = randomBytes(bits / 8);
        const { iv, dek, eek } = generateKeyMaterialEek(versionKey);
        expect(iv.length).toBe(16);
        expect(dek.length).toBe(bits / 8);
        expect(eek.length).toBe(bits / 8);
        expect(eek).toEqual(opensslCtr(bits, versionKey, flipIv(iv), dek));
        // An EEK made by openssl (as a Hadoop KMS would make it) opens here.
        const otherDek = randomBytes(bits / 8);
        const theirs = opensslCtr(bits, versionKey, flipIv(iv), otherDek);
        expect(decryptKeyMaterial(versionKey, iv, theirs)).toEqual(otherDek);
      }
    });
  }

  it('refuses a wrong IV or key length with INVALID_ARGUMENT', () => {
    expect(() => encryptKeyMaterial(randomBytes(16), randomBytes(12), randomBytes(16))).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
    expect(() => encryptKeyMaterial(randomBytes(20), randomBytes(16), randomBytes(16))).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
  });
});
