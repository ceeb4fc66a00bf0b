// KeyProvider example of @trustee/sdk (shown in README.md; type-checked by src/examples.test.ts).
import { KeyProvider, TrusteeError, type EncryptedKeyVersion } from '@trustee/sdk';

export async function kms(configPath: string): Promise<void> {
  // EDEK cache per key: 100 EEKs, refilled in the background below 30 % (Hadoop's ValueQueue).
  const provider = KeyProvider.fromConfigFile(
    configPath,
    {},
    { edekCache: { size: 100, lowWatermark: 0.3 } },
  );
  try {
    // Material is made here (crypto.randomBytes) and stored envelope-encrypted as deposit
    // kms.key.zone1 (one deposit version per key version); metadata as kms.meta.zone1.
    await provider.createKey('zone1', {
      length: 256,
      description: 'HDFS zone 1',
      attributes: { owner: 'hdfs' },
    });
    await provider.warmUpEncryptedKeys('zone1');

    // An EEK as Hadoop's KeyProviderCryptoExtension makes it: AES-CTR, IV bits flipped.
    const eek: EncryptedKeyVersion = await provider.generateEncryptedKey('zone1');
    console.log(eek.encryptionKeyVersionName, eek.encryptedKeyIv.toString('base64'));
    const dek = await provider.decryptEncryptedKey(eek); // versionName 'EK', material = the data key

    const rolled = await provider.rollNewVersion('zone1'); // drains the EDEK cache of zone1
    const moved = await provider.reencryptEncryptedKey(eek); // same IV and DEK, new version
    console.log(rolled.versionName === moved.encryptionKeyVersionName, dek.material.length);

    const meta = await provider.getMetadata('zone1');
    console.log(meta.cipher, meta.length, meta.versions, await provider.getKeys());
  } catch (e) {
    if (e instanceof TrusteeError && e.code === 'VERSION_CONFLICT') console.error('key zone1 already exists');
    else throw e;
  } finally {
    await provider.close();
  }
}
