import { generateKeyPairSync } from 'node:crypto';
import { openpgp } from '../backup/openpgp';
import { serverMailKey } from './server-mail-key';

describe('server mail key', () => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  // The same key in another PEM encoding: derived afresh (not from the cache), as on the other node.
  const pkcs1 = privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;

  it('is derived from the identity key alone: both nodes export the same bytes', async () => {
    const a = await serverMailKey(pkcs8);
    const b = await serverMailKey(pkcs1);
    expect(a.fingerprint).toMatch(/^[0-9A-F]{40}$/);
    expect(b.fingerprint).toBe(a.fingerprint);
    expect(b.armoredPublicKey).toBe(a.armoredPublicKey);
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const c = await serverMailKey(other.export({ type: 'pkcs8', format: 'pem' }) as string);
    expect(c.fingerprint).not.toBe(a.fingerprint);
  });

  it('signs what its exported public key verifies', async () => {
    const key = await serverMailKey(pkcs8);
    const signed = await openpgp.sign({
      message: await openpgp.createCleartextMessage({ text: 'hello' }),
      signingKeys: key.privateKey,
    });
    const { signatures } = await openpgp.verify({
      message: await openpgp.readCleartextMessage({ cleartextMessage: signed }),
      verificationKeys: await openpgp.readKey({ armoredKey: key.armoredPublicKey }),
    });
    await expect(signatures[0].verified).resolves.toBe(true);
  });
});
