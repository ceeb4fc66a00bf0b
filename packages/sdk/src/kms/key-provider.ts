import { randomBytes } from 'node:crypto';
import { TrusteeClient, type Deposit } from '../client';
import { TrusteeError, isTrusteeError } from '../errors';
import { MAX_NAME_LENGTH, isValidName } from '../names';
import type { CallOptions, TrusteeClientOptions } from '../types';
import { DEFAULT_EDEK_CACHE, EdekQueue, type EdekCacheOptions, type EdekQueueStats } from './edek-queue';
import {
  EEK_IV_LENGTH,
  EEK_VERSION_NAME,
  EK_VERSION_NAME,
  decryptKeyMaterial,
  encryptKeyMaterial,
  generateKeyMaterialEek,
} from './eek';

/**
 * Deposit naming scheme of the KeyProvider (both names follow the deposit name rules):
 *
 * * `kms.key.<name>`: the key material, one deposit version per key version; key version
 *   `<name>@<N>` is deposit version N. The value is the raw material in an SDK envelope bound to
 *   the deposit name and N, so a server answering another version's material for N is detected.
 * * `kms.meta.<name>`: the key's metadata as JSON in an envelope (cipher, length, description,
 *   attributes, created, firstVersion). Written once by createKey; a roll writes only the
 *   material, so a roll is one write. `firstVersion` is the material version createKey wrote:
 *   after a delete and a new createKey the versions of the old key stay out of the new one.
 *
 * A key name therefore has at most 255 - 9 characters from `[A-Za-z0-9._-]`, starting with a
 * letter or digit.
 */
export const KEY_MATERIAL_PREFIX = 'kms.key.';
export const KEY_METADATA_PREFIX = 'kms.meta.';
export const MAX_KEY_NAME_LENGTH = MAX_NAME_LENGTH - KEY_METADATA_PREFIX.length;
/** Hadoop's default cipher and the only one this provider implements. */
export const DEFAULT_CIPHER = 'AES/CTR/NoPadding';
const KEY_LENGTHS: readonly number[] = [128, 256];
const METADATA_FORMAT = 'trustee-kms-key/1';
/** Parallel reads of getKeyVersions. */
const VERSION_READ_CONCURRENCY = 8;
/** Largest batch of generateEncryptedKeys. */
export const MAX_EEK_BATCH = 10_000;

/** A key version (Hadoop `KeyProvider.KeyVersion`). `material` is secret. */
export interface KeyVersion {
  /** The key's name. */
  name: string;
  /** `name@N` for a stored version; 'EEK' for encrypted and 'EK' for decrypted keys. */
  versionName: string;
  material: Buffer;
}

/** Hadoop `KeyProvider.Metadata`. */
export interface KeyMetadata {
  cipher: string;
  /** Bits. */
  length: number;
  description: string | null;
  attributes: Record<string, string>;
  created: Date;
  /** Versions made so far (createKey's plus one per roll). */
  versions: number;
}

/** Hadoop `KeyProviderCryptoExtension.EncryptedKeyVersion`. */
export interface EncryptedKeyVersion {
  encryptionKeyName: string;
  /** `name@N` of the key version that encrypted the key. */
  encryptionKeyVersionName: string;
  /** The IV of the encrypted key (16 bytes); the key version encrypted with its bits flipped. */
  encryptedKeyIv: Buffer;
  /** versionName 'EEK', material = the encrypted key. */
  encryptedKeyVersion: KeyVersion;
}

export interface CreateKeyOptions {
  /** Default 'AES/CTR/NoPadding' (the only one supported). */
  cipher?: string;
  /** Bits: 128 (default) or 256. */
  length?: number;
  description?: string;
  attributes?: Record<string, string>;
  /** Material to import instead of random bytes (length/8 bytes). */
  material?: Uint8Array;
}

export interface KeyProviderOptions {
  /** EDEK cache per key; `false` turns it off. Default `{ size: 100, lowWatermark: 0.3, maxKeys: 100 }`. */
  edekCache?: Partial<EdekCacheOptions> | false;
  /** Told about a failed background refill (the next take tries again). */
  onRefillError?: (keyName: string, error: unknown) => void;
}

interface StoredMetadata {
  format: typeof METADATA_FORMAT;
  cipher: string;
  length: number;
  description: string | null;
  attributes: Record<string, string>;
  created: string;
  firstVersion: number;
}

/**
 * Hadoop `KeyProvider` + `KeyProviderCryptoExtension` semantics over the deposit API: key
 * material is made here, stored envelope-encrypted (one deposit version per key version), and
 * EEKs are made and opened here with Hadoop's arithmetic (see eek.ts). Reads go to either node,
 * so decrypting keeps working while the active is down; create/roll/delete need both nodes.
 */
export class KeyProvider {
  private readonly edeks: EdekQueue<EncryptedKeyVersion>;

  constructor(
    private readonly client: TrusteeClient,
    options: KeyProviderOptions = {},
    private readonly ownsClient = false,
  ) {
    if (!client.isEncrypting) {
      throw new TrusteeError(
        'CONFIG_INVALID',
        "the KeyProvider stores key material and needs a client with envelope encryption (encryption: 'envelope')",
      );
    }
    const cache =
      options.edekCache === false
        ? { ...DEFAULT_EDEK_CACHE, size: 0 }
        : { ...DEFAULT_EDEK_CACHE, ...options.edekCache };
    checkCacheOptions(cache);
    this.edeks = new EdekQueue((name, n) => this.makeEeks(name, n), cache, options.onRefillError);
  }

  /** A provider over a client made from a config file written by `ktclient register`. */
  static fromConfigFile(
    filePath?: string,
    overrides: Partial<TrusteeClientOptions> = {},
    options: KeyProviderOptions = {},
  ): KeyProvider {
    return new KeyProvider(TrusteeClient.fromConfigFile(filePath, overrides), options, true);
  }

  /** Creates key `name` with its first version. VERSION_CONFLICT when the key exists. */
  async createKey(name: string, options: CreateKeyOptions = {}, call: CallOptions = {}): Promise<KeyVersion> {
    assertKeyName(name);
    const cipher = options.cipher ?? DEFAULT_CIPHER;
    if (cipher !== DEFAULT_CIPHER) {
      throw new TrusteeError(
        'INVALID_ARGUMENT',
        `cipher ${cipher} is not supported (only ${DEFAULT_CIPHER})`,
      );
    }
    const length = options.length ?? 128;
    if (!KEY_LENGTHS.includes(length)) {
      throw new TrusteeError('INVALID_ARGUMENT', `key length must be 128 or 256 bits, got ${String(length)}`);
    }
    const attributes = checkAttributes(options.attributes ?? {});
    const material = materialFor(length, options.material);
    if ((await this.readMetadata(name, call, true)) !== undefined) {
      throw new TrusteeError('VERSION_CONFLICT', `key ${name} already exists`, { details: { name } });
    }
    // Material first: a crash before the metadata leaves an orphan version that the next
    // createKey simply writes over (firstVersion skips it), never a key without material.
    const put = await this.client.put(materialName(name), material, call);
    const stored: StoredMetadata = {
      format: METADATA_FORMAT,
      cipher,
      length,
      description: options.description ?? null,
      attributes,
      created: new Date().toISOString(),
      firstVersion: put.version,
    };
    await this.client.put(metadataName(name), JSON.stringify(stored), call);
    return { name, versionName: versionName(name, put.version), material: Buffer.from(material) };
  }

  /** A new version of `name` (random material unless given); drains the key's EDEK cache. */
  async rollNewVersion(name: string, material?: Uint8Array, call: CallOptions = {}): Promise<KeyVersion> {
    const meta = await this.requireMetadata(name, call);
    const bytes = materialFor(meta.length, material);
    try {
      const put = await this.client.put(materialName(name), bytes, call);
      return { name, versionName: versionName(name, put.version), material: Buffer.from(bytes) };
    } finally {
      // Even a failed roll may have landed (WRITE_IN_DOUBT): EDEKs of the old version must go.
      this.edeks.drain(name);
    }
  }

  /** The latest version of `name`. NOT_FOUND when the key does not exist. */
  async getCurrentKey(name: string, call: CallOptions = {}): Promise<KeyVersion> {
    const [meta, deposit] = await Promise.all([
      this.requireMetadata(name, call),
      this.readMaterial(name, undefined, call),
    ]);
    return this.toKeyVersion(name, meta, deposit);
  }

  /** Version `name@N`. NOT_FOUND when the key or that version does not exist. */
  async getKeyVersion(keyVersionName: string, call: CallOptions = {}): Promise<KeyVersion> {
    const { name, version } = parseVersionName(keyVersionName);
    const [meta, deposit] = await Promise.all([
      this.requireMetadata(name, call),
      this.readMaterial(name, version, call),
    ]);
    if (version < meta.firstVersion) throw noSuchVersion(keyVersionName);
    return this.toKeyVersion(name, meta, deposit);
  }

  /** Every version of `name`, oldest first. */
  async getKeyVersions(name: string, call: CallOptions = {}): Promise<KeyVersion[]> {
    const current = await this.getCurrentKey(name, call);
    const { version: latest } = parseVersionName(current.versionName);
    const meta = await this.requireMetadata(name, call);
    const versions: number[] = [];
    for (let v = meta.firstVersion; v < latest; v += 1) versions.push(v);
    const older: KeyVersion[] = [];
    for (let i = 0; i < versions.length; i += VERSION_READ_CONCURRENCY) {
      const slice = versions.slice(i, i + VERSION_READ_CONCURRENCY);
      older.push(...(await Promise.all(slice.map((v) => this.getKeyVersion(versionName(name, v), call)))));
    }
    return [...older, current];
  }

  async getMetadata(name: string, call: CallOptions = {}): Promise<KeyMetadata> {
    const [meta, deposit] = await Promise.all([
      this.requireMetadata(name, call),
      this.readMaterial(name, undefined, call),
    ]);
    return {
      cipher: meta.cipher,
      length: meta.length,
      description: meta.description,
      attributes: { ...meta.attributes },
      created: new Date(meta.created),
      versions: deposit.version - meta.firstVersion + 1,
    };
  }

  /** Names of all keys of this client, sorted. */
  async getKeys(call: CallOptions = {}): Promise<string[]> {
    const names: string[] = [];
    for await (const item of this.client.list({ ...call, prefix: KEY_METADATA_PREFIX })) {
      names.push(item.name.slice(KEY_METADATA_PREFIX.length));
    }
    return names.sort();
  }

  /**
   * Deletes key `name`: its metadata and material get tombstones (the deposit lifecycle keeps old
   * versions for the owner, but this provider no longer serves them). NOT_FOUND when unknown.
   */
  async deleteKey(name: string, call: CallOptions = {}): Promise<void> {
    assertKeyName(name);
    this.edeks.drain(name);
    await this.client.delete(metadataName(name), call);
    await this.client.delete(materialName(name), call).catch((e: unknown) => {
      // Metadata without material (an interrupted createKey): nothing more to delete.
      if (!(isTrusteeError(e) && e.code === 'NOT_FOUND')) throw e;
    });
  }

  /** A new EEK under the current version of `name`, from the EDEK cache when it holds one. */
  async generateEncryptedKey(name: string, call: CallOptions = {}): Promise<EncryptedKeyVersion> {
    const [eek] = await this.generateEncryptedKeys(name, 1, call);
    return eek;
  }

  /**
   * `count` EEKs (Hadoop KMS `generateEncryptedKeys` / `ValueQueue.getAtMost`). A call with its own
   * `signal` or `deadlineMs` makes its EEKs itself (the shared background refill has neither).
   */
  async generateEncryptedKeys(
    name: string,
    count: number,
    call: CallOptions = {},
  ): Promise<EncryptedKeyVersion[]> {
    assertKeyName(name);
    if (!Number.isSafeInteger(count) || count < 1 || count > MAX_EEK_BATCH) {
      throw new TrusteeError('INVALID_ARGUMENT', `count must be 1-${MAX_EEK_BATCH}, got ${String(count)}`);
    }
    if (call.signal !== undefined || call.deadlineMs !== undefined) return this.makeEeks(name, count, call);
    return this.edeks.take(name, count);
  }

  /** The DEK of an EEK (versionName 'EK'). */
  async decryptEncryptedKey(eek: EncryptedKeyVersion, call: CallOptions = {}): Promise<KeyVersion> {
    const key = await this.encryptionKeyOf(eek, call);
    return {
      name: key.name,
      versionName: EK_VERSION_NAME,
      material: decryptKeyMaterial(key.material, eek.encryptedKeyIv, eek.encryptedKeyVersion.material),
    };
  }

  /** The EEK re-encrypted under the current version with the same IV (the same EEK when current). */
  async reencryptEncryptedKey(
    eek: EncryptedKeyVersion,
    call: CallOptions = {},
  ): Promise<EncryptedKeyVersion> {
    const [result] = await this.reencryptEncryptedKeys([eek], call);
    return result;
  }

  /** Batch re-encryption; every EEK must belong to the same key (as Hadoop requires). */
  async reencryptEncryptedKeys(
    eeks: EncryptedKeyVersion[],
    call: CallOptions = {},
  ): Promise<EncryptedKeyVersion[]> {
    if (!Array.isArray(eeks) || eeks.length === 0) return [];
    const name = eeks[0].encryptionKeyName;
    for (const eek of eeks) {
      checkEek(eek);
      if (eek.encryptionKeyName !== name) {
        throw new TrusteeError(
          'INVALID_ARGUMENT',
          `all keys must have the same key name: expected ${name}, found ${eek.encryptionKeyName}`,
        );
      }
    }
    const current = await this.getCurrentKey(name, call);
    const out: EncryptedKeyVersion[] = [];
    for (const eek of eeks) {
      if (eek.encryptionKeyVersionName === current.versionName) {
        out.push(eek);
        continue;
      }
      const dek = await this.decryptEncryptedKey(eek, call);
      out.push(
        toEek(
          current,
          eek.encryptedKeyIv,
          encryptKeyMaterial(current.material, eek.encryptedKeyIv, dek.material),
        ),
      );
    }
    return out;
  }

  /** Fills the EDEK cache of these keys now (Hadoop `warmUpEncryptedKeys`). */
  async warmUpEncryptedKeys(...names: string[]): Promise<void> {
    names.forEach(assertKeyName);
    await this.edeks.warmUp(names);
  }

  /** Empties the EDEK cache of `name` (Hadoop `drain`). */
  drain(name: string): void {
    this.edeks.drain(name);
  }

  /** Counters of the EDEK cache of `name`. */
  edekCacheStats(name: string): EdekQueueStats {
    return this.edeks.stats(name);
  }

  /** Waits for background refills, then closes the client when this provider made it. */
  async close(): Promise<void> {
    await this.edeks.idle();
    if (this.ownsClient) this.client.close();
  }

  // ---- internals ------------------------------------------------------------------------------

  private async makeEeks(
    name: string,
    count: number,
    call: CallOptions = {},
  ): Promise<EncryptedKeyVersion[]> {
    const key = await this.getCurrentKey(name, call);
    const out: EncryptedKeyVersion[] = [];
    for (let i = 0; i < count; i += 1) {
      const { iv, eek } = generateKeyMaterialEek(key.material);
      out.push(toEek(key, iv, eek));
    }
    return out;
  }

  private async encryptionKeyOf(eek: EncryptedKeyVersion, call: CallOptions): Promise<KeyVersion> {
    checkEek(eek);
    const key = await this.getKeyVersion(eek.encryptionKeyVersionName, call);
    if (key.name !== eek.encryptionKeyName) {
      throw new TrusteeError(
        'INVALID_ARGUMENT',
        `encryption key version ${eek.encryptionKeyVersionName} does not belong to key ${eek.encryptionKeyName}`,
      );
    }
    if (eek.encryptedKeyVersion.material.length !== key.material.length) {
      throw new TrusteeError(
        'INVALID_ARGUMENT',
        `encrypted key has ${eek.encryptedKeyVersion.material.length} bytes, key ${key.name} makes ${key.material.length}`,
      );
    }
    return key;
  }

  private async readMetadata(
    name: string,
    call: CallOptions,
    noCache = false,
  ): Promise<StoredMetadata | undefined> {
    assertKeyName(name);
    let deposit: Deposit;
    try {
      deposit = await this.client.get(metadataName(name), { ...call, noCache });
    } catch (e) {
      if (isTrusteeError(e) && e.code === 'NOT_FOUND') return undefined;
      throw e;
    }
    requireEncrypted(deposit);
    return parseMetadata(deposit);
  }

  private async requireMetadata(name: string, call: CallOptions): Promise<StoredMetadata> {
    const meta = await this.readMetadata(name, call);
    if (meta === undefined) {
      throw new TrusteeError('NOT_FOUND', `no key named ${name}`, { details: { name } });
    }
    return meta;
  }

  private async readMaterial(name: string, version: number | undefined, call: CallOptions): Promise<Deposit> {
    try {
      const deposit = await this.client.get(materialName(name), { ...call, version });
      requireEncrypted(deposit);
      return deposit;
    } catch (e) {
      if (isTrusteeError(e) && e.code === 'NOT_FOUND') {
        throw version === undefined
          ? new TrusteeError('NOT_FOUND', `key ${name} has no material`, { details: { name }, cause: e })
          : noSuchVersion(versionName(name, version));
      }
      throw e;
    }
  }

  private toKeyVersion(name: string, meta: StoredMetadata, deposit: Deposit): KeyVersion {
    if (deposit.version < meta.firstVersion) {
      throw new TrusteeError('NOT_FOUND', `key ${name} has no version since it was created`, {
        details: { name },
      });
    }
    if (deposit.value.length * 8 !== meta.length) {
      throw new TrusteeError(
        'DECRYPT_FAILED',
        `key ${name} version ${deposit.version} holds ${deposit.value.length * 8} bits, its metadata says ${meta.length}`,
        { details: { name } },
      );
    }
    return { name, versionName: versionName(name, deposit.version), material: deposit.value };
  }
}

function materialName(name: string): string {
  return KEY_MATERIAL_PREFIX + name;
}

function metadataName(name: string): string {
  return KEY_METADATA_PREFIX + name;
}

function versionName(name: string, version: number): string {
  return `${name}@${version}`;
}

/** `name@N` → its parts. INVALID_ARGUMENT when malformed. */
export function parseVersionName(value: string): { name: string; version: number } {
  const at = typeof value === 'string' ? value.lastIndexOf('@') : -1;
  const name = at > 0 ? value.slice(0, at) : '';
  const digits = at > 0 ? value.slice(at + 1) : '';
  if (!/^[1-9][0-9]{0,15}$/.test(digits) || !isKeyName(name)) {
    throw new TrusteeError(
      'INVALID_ARGUMENT',
      `key version name must be NAME@N (N a positive integer), got ${JSON.stringify(String(value).slice(0, 60))}`,
    );
  }
  return { name, version: Number(digits) };
}

function isKeyName(name: string): boolean {
  return typeof name === 'string' && name.length <= MAX_KEY_NAME_LENGTH && isValidName(name);
}

function assertKeyName(name: string): void {
  if (isKeyName(name)) return;
  const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 40)) : typeof name;
  throw new TrusteeError(
    'INVALID_NAME',
    `invalid key name ${shown}: use 1-${MAX_KEY_NAME_LENGTH} ASCII characters from [A-Za-z0-9._-], starting with a letter or digit`,
  );
}

function noSuchVersion(name: string): TrusteeError {
  return new TrusteeError('NOT_FOUND', `no key version ${name}`, { details: { versionName: name } });
}

function materialFor(lengthBits: number, given: Uint8Array | undefined): Buffer {
  if (given === undefined) return randomBytes(lengthBits / 8);
  if (!(given instanceof Uint8Array) || given.length * 8 !== lengthBits) {
    throw new TrusteeError(
      'INVALID_ARGUMENT',
      `key material must be ${lengthBits / 8} bytes for a ${lengthBits}-bit key`,
    );
  }
  return Buffer.from(given);
}

function checkAttributes(attributes: Record<string, string>): Record<string, string> {
  if (typeof attributes !== 'object' || attributes === null || Array.isArray(attributes)) {
    throw new TrusteeError('INVALID_ARGUMENT', 'attributes must be an object of strings');
  }
  for (const [k, v] of Object.entries(attributes)) {
    if (typeof v !== 'string') throw new TrusteeError('INVALID_ARGUMENT', `attribute ${k} must be a string`);
  }
  return { ...attributes };
}

function checkCacheOptions(o: EdekCacheOptions): void {
  if (!Number.isSafeInteger(o.size) || o.size < 0 || o.size > MAX_EEK_BATCH) {
    throw new TrusteeError('CONFIG_INVALID', `edekCache.size must be 0-${MAX_EEK_BATCH}`);
  }
  if (!(o.lowWatermark >= 0 && o.lowWatermark <= 1)) {
    throw new TrusteeError('CONFIG_INVALID', 'edekCache.lowWatermark must be between 0 and 1');
  }
  if (!Number.isSafeInteger(o.maxKeys) || o.maxKeys < 1) {
    throw new TrusteeError('CONFIG_INVALID', 'edekCache.maxKeys must be a positive integer');
  }
}

function checkEek(eek: EncryptedKeyVersion): void {
  const v = eek?.encryptedKeyVersion;
  if (v?.versionName !== EEK_VERSION_NAME) {
    throw new TrusteeError(
      'INVALID_ARGUMENT',
      `encryptedKey version name must be '${EEK_VERSION_NAME}', but found '${String(v?.versionName)}'`,
    );
  }
  if (!(eek.encryptedKeyIv instanceof Uint8Array) || eek.encryptedKeyIv.length !== EEK_IV_LENGTH) {
    throw new TrusteeError('INVALID_ARGUMENT', `encryptedKeyIv must be ${EEK_IV_LENGTH} bytes`);
  }
  if (!(v.material instanceof Uint8Array)) {
    throw new TrusteeError('INVALID_ARGUMENT', 'encrypted key material must be bytes');
  }
}

function toEek(key: KeyVersion, iv: Buffer, encrypted: Buffer): EncryptedKeyVersion {
  return {
    encryptionKeyName: key.name,
    encryptionKeyVersionName: key.versionName,
    encryptedKeyIv: iv,
    encryptedKeyVersion: { name: key.name, versionName: EEK_VERSION_NAME, material: encrypted },
  };
}

function requireEncrypted(deposit: Deposit): void {
  // Key material or metadata stored raw could have been put there by whoever runs the server.
  if (!deposit.encrypted) {
    throw new TrusteeError('DECRYPT_FAILED', `deposit ${deposit.name} is not an SDK envelope`, {
      details: { name: deposit.name },
    });
  }
}

function parseMetadata(deposit: Deposit): StoredMetadata {
  let o: Partial<StoredMetadata>;
  try {
    o = JSON.parse(deposit.text()) as Partial<StoredMetadata>;
  } catch (e) {
    throw new TrusteeError('PROTOCOL_ERROR', `key metadata ${deposit.name} is not JSON`, { cause: e });
  }
  if (
    o?.format !== METADATA_FORMAT ||
    typeof o.cipher !== 'string' ||
    !KEY_LENGTHS.includes(o.length as number) ||
    typeof o.created !== 'string' ||
    !Number.isSafeInteger(o.firstVersion) ||
    typeof o.attributes !== 'object' ||
    o.attributes === null
  ) {
    throw new TrusteeError(
      'PROTOCOL_ERROR',
      `key metadata ${deposit.name} is not in format ${METADATA_FORMAT}`,
    );
  }
  return o as StoredMetadata;
}
