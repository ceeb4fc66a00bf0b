import { generateKeyPair, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { InitKeys } from '@trustee/server';

/** Env var naming the per-run key pool directory, set by packages/server/test/support/global-setup.ts. */
export const KEY_POOL_ENV = 'TRUSTEE_TEST_KEY_POOL';

/** Slots per test file: a file asking for more gets fresh keys from initConfdir itself. */
const POOL_SIZE = 4;

const generateKeyPairAsync = promisify(generateKeyPair);

/** Slots handed out in this test file (jest gives every file its own module registry). */
let nextSlot = 0;

async function pooledKey(dir: string, name: string, bits: number): Promise<string> {
  const file = join(dir, name);
  if (existsSync(file)) return readFileSync(file, 'utf8');
  const { privateKey } = await generateKeyPairAsync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  // Write then rename: a file running in the other worker never reads half a key. When both
  // made the same slot, the last rename wins and each uses the key it made (both valid).
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, privateKey, { mode: 0o600 });
  renameSync(tmp, file);
  return privateKey;
}

/**
 * Identity (RSA 4096) and replication CA (RSA 3072) keys for one new test cluster, from a pool
 * shared by the whole jest run, so a run generates each slot once instead of once per node.
 * Within one test file a slot is never handed out twice, so two clusters of a file always have
 * distinct identities and CAs; different files may share a slot (their clusters never meet).
 * Without the pool (jest started without the global setup) or past POOL_SIZE, returns
 * undefined and initConfdir generates the keys as in production.
 */
export async function takeTestKeys(): Promise<InitKeys | undefined> {
  const dir = process.env[KEY_POOL_ENV];
  if (!dir || !existsSync(dir) || nextSlot >= POOL_SIZE) return undefined;
  const slot = nextSlot++;
  return {
    identityKeyPem: await pooledKey(dir, `identity-${slot}.pem`, 4096),
    replicationCaKeyPem: await pooledKey(dir, `replication-ca-${slot}.pem`, 3072),
  };
}

/** Client key slots per run; a file asking for more gets fresh keys. */
const CLIENT_POOL_SIZE = 64;
/** Client key slots handed out in this test file (each file has its own module registry). */
let nextClientSlot = 0;

/**
 * An RSA 2048 client key pair (PEM): within one test file always a new one; across files the
 * same pooled keys come back (a client key registered in one file's cluster means nothing to
 * another's), so a run generates each of its ≈ 300 client keys' worth once per slot instead of
 * once per registration (≈ 0.14 s of CPU each). Fresh keys past the pool or without it.
 */
export function takeClientKeyPair(): { privateKey: string; publicKey: string } {
  const fresh = () =>
    generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
  const dir = process.env[KEY_POOL_ENV];
  if (!dir || !existsSync(dir) || nextClientSlot >= CLIENT_POOL_SIZE) return fresh();
  const file = join(dir, `client-${nextClientSlot++}.json`);
  if (existsSync(file))
    return JSON.parse(readFileSync(file, 'utf8')) as { privateKey: string; publicKey: string };
  const pair = fresh();
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(pair), { mode: 0o600 });
  renameSync(tmp, file);
  return pair;
}
