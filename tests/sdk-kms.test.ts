/**
 * Issue 11: the SDK's KeyProvider (Hadoop KeyProvider + KeyProviderCryptoExtension semantics)
 * against a real two-node cluster: create/roll/generate/decrypt/reencrypt across a roll,
 * metadata, list, delete, the EDEK cache refill under load, decrypt while the active is down,
 * and `ktclient key … --json`. EEKs are checked with the real openssl binary.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  KeyProvider,
  TrusteeClient,
  TrusteeError,
  flipIv,
  isEnvelope,
  type EncryptedKeyVersion,
  type KeyVersion,
} from '@trustee/sdk';
import { BINS, runCli } from '../packages/server/test/support/cli';
import { startTestCluster, type TestCluster } from '../packages/server/test/support/cluster';
import { isWritable } from '../packages/server/test/support/deposit-requests';
import { waitFor } from '../packages/server/test/support/processes';
import { withSuperuser } from '../packages/server/test/support/psql';
import { registerSdkClient } from '../packages/server/test/support/sdk-client';
import { removeDir } from '../packages/server/test/support/temp-dir';

/** What a Hadoop KMS computes for an EEK: AES-CTR with the IV's bits flipped, by openssl. */
function opensslEek(versionKey: Buffer, iv: Buffer, dek: Buffer): Buffer {
  const r = spawnSync(
    'openssl',
    [
      'enc',
      `-aes-${versionKey.length * 8}-ctr`,
      '-K',
      versionKey.toString('hex'),
      '-iv',
      flipIv(iv).toString('hex'),
      '-nosalt',
      '-nopad',
    ],
    { input: dek, timeout: 30_000 },
  );
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr.toString()}`);
  return r.stdout;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { code: string }).code;
  }
  throw new Error('expected a failure');
}

describe('KeyProvider on a real two-node cluster (issue 11)', () => {
  let cluster: TestCluster;
  let dir: string;
  let configPath: string;
  let client: TrusteeClient;
  let provider: KeyProvider;

  beforeAll(async () => {
    cluster = await startTestCluster();
    const registered = await registerSdkClient(cluster, 'trustee-kms-');
    dir = registered.dir;
    configPath = registered.configPath;
    expect(registered.registration.state).toBe('active');
    client = registered.registration.client;
    provider = new KeyProvider(client, { edekCache: { size: 20, lowWatermark: 0.5 } });
  });
  afterAll(async () => {
    await provider?.close();
    client?.close();
    await cluster?.stop();
    if (dir) removeDir(dir);
  });

  it('creates a key with metadata, lists it, refuses a second create, stores only envelopes', async () => {
    const created = await provider.createKey('zone-a', {
      length: 256,
      description: 'HDFS encryption zone a',
      attributes: { owner: 'hdfs' },
    });
    expect(created.versionName).toMatch(/^zone-a@\d+$/);
    expect(created.material).toHaveLength(32);
    const current = await provider.getCurrentKey('zone-a');
    expect(current.versionName).toBe(created.versionName);
    expect(current.material).toEqual(created.material);
    const meta = await provider.getMetadata('zone-a');
    expect(meta).toMatchObject({
      cipher: 'AES/CTR/NoPadding',
      length: 256,
      description: 'HDFS encryption zone a',
      attributes: { owner: 'hdfs' },
      versions: 1,
    });
    expect(meta.created.getTime()).toBeGreaterThan(Date.UTC(2020, 0, 1));
    await provider.createKey('zone-b');
    expect((await provider.getMetadata('zone-b')).length).toBe(128);
    expect(await provider.getKeys()).toEqual(['zone-a', 'zone-b']);
    expect(await codeOf(provider.createKey('zone-a'))).toBe('VERSION_CONFLICT');
    expect(await codeOf(provider.createKey('bad name'))).toBe('INVALID_NAME');
    expect(await codeOf(provider.createKey('k', { length: 192 }))).toBe('INVALID_ARGUMENT');
    // What the server holds is an envelope, never the material.
    const raw = TrusteeClient.fromConfigFile(configPath, { encryption: 'none' });
    try {
      const stored = await raw.get('kms.key.zone-a');
      expect(isEnvelope(stored.value)).toBe(true);
      expect(stored.value.includes(created.material)).toBe(false);
    } finally {
      raw.close();
    }
  });

  it('generates EEKs a Hadoop KMS would make, decrypts and re-encrypts them across a roll', async () => {
    const eek = await provider.generateEncryptedKey('zone-a');
    const v1 = await provider.getKeyVersion(eek.encryptionKeyVersionName);
    expect(eek.encryptionKeyName).toBe('zone-a');
    expect(eek.encryptedKeyVersion.versionName).toBe('EEK');
    expect(eek.encryptedKeyIv).toHaveLength(16);
    const dek = await provider.decryptEncryptedKey(eek);
    expect(dek.versionName).toBe('EK');
    expect(dek.material).toHaveLength(32);
    expect(opensslEek(v1.material, eek.encryptedKeyIv, dek.material)).toEqual(
      eek.encryptedKeyVersion.material,
    );

    const rolled = await provider.rollNewVersion('zone-a');
    expect(rolled.versionName).not.toBe(v1.versionName);
    // The roll drained the EDEK cache: the next EEK is under the new version.
    expect(provider.edekCacheStats('zone-a').queued).toBe(0);
    const after = await provider.generateEncryptedKey('zone-a');
    expect(after.encryptionKeyVersionName).toBe(rolled.versionName);
    expect((await provider.getCurrentKey('zone-a')).versionName).toBe(rolled.versionName);
    expect((await provider.getMetadata('zone-a')).versions).toBe(2);
    const versions = await provider.getKeyVersions('zone-a');
    expect(versions.map((k: KeyVersion) => k.versionName)).toEqual([v1.versionName, rolled.versionName]);
    expect(versions[0].material).toEqual(v1.material);

    // The old EEK still decrypts; re-encrypted it is under the new version with the same IV and DEK.
    expect((await provider.decryptEncryptedKey(eek)).material).toEqual(dek.material);
    const re = await provider.reencryptEncryptedKey(eek);
    expect(re.encryptionKeyVersionName).toBe(rolled.versionName);
    expect(re.encryptedKeyIv).toEqual(eek.encryptedKeyIv);
    expect(re.encryptedKeyVersion.material).toEqual(
      opensslEek(rolled.material, eek.encryptedKeyIv, dek.material),
    );
    expect((await provider.decryptEncryptedKey(re)).material).toEqual(dek.material);
    // Already current: returned unchanged.
    expect(await provider.reencryptEncryptedKey(re)).toBe(re);

    // Batch variants.
    const batch = await provider.generateEncryptedKeys('zone-a', 5);
    expect(batch).toHaveLength(5);
    expect(new Set(batch.map((e) => e.encryptedKeyIv.toString('hex'))).size).toBe(5);
    const mixed: EncryptedKeyVersion[] = [eek, ...batch];
    const reBatch = await provider.reencryptEncryptedKeys(mixed);
    expect(reBatch.every((e) => e.encryptionKeyVersionName === rolled.versionName)).toBe(true);
    for (const [i, e] of reBatch.entries()) {
      expect((await provider.decryptEncryptedKey(e)).material).toEqual(
        (await provider.decryptEncryptedKey(mixed[i])).material,
      );
    }
    const other = await provider.generateEncryptedKey('zone-b');
    expect(await codeOf(provider.reencryptEncryptedKeys([eek, other]))).toBe('INVALID_ARGUMENT');

    // Typed errors for unknown versions, malformed names and forged EEKs.
    expect(await codeOf(provider.getKeyVersion('zone-a@999'))).toBe('NOT_FOUND');
    expect(await codeOf(provider.getKeyVersion('zone-a'))).toBe('INVALID_ARGUMENT');
    const forged = { ...eek, encryptedKeyVersion: { ...eek.encryptedKeyVersion, versionName: 'EK' } };
    expect(await codeOf(provider.decryptEncryptedKey(forged))).toBe('INVALID_ARGUMENT');
    const mislabelled = { ...eek, encryptionKeyName: 'zone-b' };
    expect(await codeOf(provider.decryptEncryptedKey(mislabelled))).toBe('INVALID_ARGUMENT');
  });

  it('EDEK cache: background refill below the low watermark keeps generate off the network under load', async () => {
    await provider.createKey('zone-load');
    await provider.warmUpEncryptedKeys('zone-load');
    expect(provider.edekCacheStats('zone-load')).toMatchObject({ queued: 20, misses: 0 });
    // 200 concurrent generates: the queue answers most, refills run in the background.
    const eeks = await Promise.all(
      Array.from({ length: 200 }, () => provider.generateEncryptedKey('zone-load')),
    );
    expect(new Set(eeks.map((e) => e.encryptedKeyIv.toString('hex'))).size).toBe(200);
    const stats = await waitFor('the EDEK queue refilled', () => {
      const s = provider.edekCacheStats('zone-load');
      return s.queued >= 10 ? s : undefined;
    });
    expect(stats.hits).toBeGreaterThanOrEqual(20);
    expect(stats.refills).toBeGreaterThanOrEqual(2);
    expect(stats.refillErrors).toBe(0);
    expect(stats.queued).toBeLessThanOrEqual(20);
    // Taking one value from a full queue does not wait for anything.
    const hitsBefore = provider.edekCacheStats('zone-load').hits;
    await provider.generateEncryptedKey('zone-load');
    expect(provider.edekCacheStats('zone-load').hits).toBe(hitsBefore + 1);
    for (const e of eeks.slice(0, 10)) {
      const dek = await provider.decryptEncryptedKey(e);
      const key = await provider.getKeyVersion(e.encryptionKeyVersionName);
      expect(opensslEek(key.material, e.encryptedKeyIv, dek.material)).toEqual(
        e.encryptedKeyVersion.material,
      );
    }
  });

  it('ktclient key create/roll/list/metadata/generate-eek/decrypt-eek with --json', async () => {
    const kt = (...args: string[]) => runCli(BINS.ktclient, ['--config', configPath, ...args]);
    const ok = async (...args: string[]): Promise<string> => {
      const r = await kt(...args);
      if (r.code !== 0) throw new Error(`ktclient ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
      return r.stdout;
    };
    const help = await kt('key', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('generate-eek');
    const created = JSON.parse(
      await ok(
        '--json',
        'key',
        'create',
        'cli-key',
        '--length',
        '256',
        '--description',
        'from the CLI',
        '--attr',
        'a=b',
      ),
    ) as { name: string; versionName: string };
    expect(created.name).toBe('cli-key');
    expect(created.versionName).toMatch(/^cli-key@\d+$/);
    expect(await ok('key', 'create', 'cli-key2')).toMatch(/^created cli-key2: version cli-key2@\d+\n$/);
    const rolled = JSON.parse(await ok('--json', 'key', 'roll', 'cli-key')) as { versionName: string };
    expect(rolled.versionName).not.toBe(created.versionName);
    const names = JSON.parse(await ok('--json', 'key', 'list')) as string[];
    expect(names).toEqual(expect.arrayContaining(['cli-key', 'cli-key2', 'zone-a']));
    const meta = JSON.parse(await ok('--json', 'key', 'metadata', 'cli-key')) as Record<string, unknown>;
    expect(meta).toMatchObject({
      name: 'cli-key',
      cipher: 'AES/CTR/NoPadding',
      length: 256,
      description: 'from the CLI',
      attributes: { a: 'b' },
      versions: 2,
    });
    const eekText = await ok('--json', 'key', 'generate-eek', 'cli-key');
    const eekJson = JSON.parse(eekText) as {
      encryptionKeyVersionName: string;
      encryptedKeyIv: string;
      encryptedKeyVersion: { versionName: string; material: string };
    };
    expect(eekJson.encryptionKeyVersionName).toBe(rolled.versionName);
    expect(eekJson.encryptedKeyVersion.versionName).toBe('EEK');
    const file = join(dir, 'eek.json');
    writeFileSync(file, eekText);
    const fromFile = JSON.parse(await ok('--json', 'key', 'decrypt-eek', '--eek', file)) as {
      versionName: string;
      material: string;
    };
    expect(fromFile.versionName).toBe('EK');
    const fromParts = (
      await ok(
        'key',
        'decrypt-eek',
        '--version-name',
        eekJson.encryptionKeyVersionName,
        '--iv',
        eekJson.encryptedKeyIv,
        '--material',
        eekJson.encryptedKeyVersion.material,
      )
    ).trim();
    expect(fromParts).toBe(fromFile.material);
    // The SDK agrees, and so does openssl with the key version's material.
    const key = await provider.getKeyVersion(eekJson.encryptionKeyVersionName);
    const iv = Buffer.from(eekJson.encryptedKeyIv, 'base64');
    expect(opensslEek(key.material, iv, Buffer.from(fromFile.material, 'base64')).toString('base64')).toBe(
      eekJson.encryptedKeyVersion.material,
    );
    const batch = JSON.parse(
      await ok('--json', 'key', 'generate-eek', 'cli-key', '--count', '3'),
    ) as unknown[];
    expect(batch).toHaveLength(3);
    // Usage errors exit 2, operation errors 1 with the stable code.
    expect((await kt('key', 'decrypt-eek', '--iv', 'AAAA')).code).toBe(2);
    expect((await kt('key', 'create', 'x', '--length', '100')).code).toBe(2);
    const missing = await kt('key', 'metadata', 'no-such-key');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('NOT_FOUND');
  });

  it('decrypts while the active node is down (reads fail over to the passive); writes say why they fail', async () => {
    const eek = await provider.generateEncryptedKey('zone-b');
    const expected = (await provider.decryptEncryptedKey(eek)).material;
    await cluster.killServer('a', 'SIGKILL');
    // A fresh provider (empty caches) over the same config.
    const survivor = KeyProvider.fromConfigFile(configPath, { deadlineMs: 20_000 }, { edekCache: false });
    try {
      expect((await survivor.decryptEncryptedKey(eek)).material).toEqual(expected);
      expect((await survivor.getMetadata('zone-b')).versions).toBe(1);
      const code = await codeOf(survivor.rollNewVersion('zone-b', undefined, { deadlineMs: 3_000 }));
      expect(['NOT_ACTIVE', 'UNAVAILABLE', 'DEADLINE_EXCEEDED', 'PASSIVE_UNAVAILABLE']).toContain(code);
    } finally {
      await survivor.close();
      await cluster.startServer('a');
    }
    await waitFor('node a writable again', () => isWritable(cluster.a.url), 60_000);
  });

  it('deletes a key: gone from the list, its EEKs no longer decrypt, the name can be created again', async () => {
    const eek = await provider.generateEncryptedKey('zone-b');
    await provider.deleteKey('zone-b');
    expect(await provider.getKeys()).not.toContain('zone-b');
    expect(await codeOf(provider.getCurrentKey('zone-b'))).toBe('NOT_FOUND');
    expect(await codeOf(provider.decryptEncryptedKey(eek))).toBe('NOT_FOUND');
    expect(await codeOf(provider.deleteKey('zone-b'))).toBe('NOT_FOUND');
    const again = await provider.createKey('zone-b');
    expect(again.versionName).not.toBe(eek.encryptionKeyVersionName);
    expect((await provider.getMetadata('zone-b')).versions).toBe(1);
    // A version of the deleted key is not a version of the new one.
    expect(await codeOf(provider.getKeyVersion(eek.encryptionKeyVersionName))).toBe('NOT_FOUND');
  });

  it('a tampered key version row is an integrity error, not a node failure: the breaker stays closed', async () => {
    const v1 = (await provider.getKeyVersions('zone-a'))[0].versionName;
    const version = Number(v1.split('@')[1]);
    // Flip the last byte of the sealed row on the active; replication carries it to the passive.
    const updated = await withSuperuser(cluster.node('a'), (c) =>
      c.query(
        `update deposits set sealed_value = set_byte(sealed_value, length(sealed_value) - 1,
           get_byte(sealed_value, length(sealed_value) - 1) # 1)
         where name = $1 and version = $2`,
        ['kms.key.zone-a', version],
      ),
    );
    expect(updated.rowCount).toBe(1);
    const breakerChanges: string[] = [];
    const fresh = KeyProvider.fromConfigFile(
      configPath,
      {
        breaker: { threshold: 2, halfOpenAfterMs: 60_000 },
        hooks: { onBreakerStateChange: (e) => breakerChanges.push(`${e.node} ${e.state}`) },
      },
      { edekCache: false },
    );
    try {
      for (let i = 0; i < 4; i++) {
        const e = await fresh.getKeyVersion(v1).catch((x: unknown) => x as TrusteeError);
        expect(e).toBeInstanceOf(TrusteeError);
        expect((e as TrusteeError).code).toBe('UNAVAILABLE');
        expect((e as TrusteeError).isIntegrityFailure).toBe(true);
      }
      expect(breakerChanges).toEqual([]);
      // The healthy rows of the same node keep being served.
      expect((await fresh.getCurrentKey('zone-a')).versionName).not.toBe(v1);
    } finally {
      await fresh.close();
    }
  });
});
