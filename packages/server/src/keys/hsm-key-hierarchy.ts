import { createHmac } from 'node:crypto';
import type { Pool } from 'pg';
import {
  selectCurrentDataKey,
  selectDataKey,
  selectDigestKey,
  selectKeks,
  selectDataKeysOfKek,
  rewrapDataKey,
  retireKekIfUnused,
  type DataKeyRow,
} from '../db/sql/data-keys';
import { runWrite, type WritePathOptions } from '../db/write-path';
import { openWithKey, sealWithKey } from './aes-gcm-blob';
import { DataKeyCache } from './data-key-cache';
import { createDataKey, dataKeyAad } from './data-keys';
import type { FileMasterKey } from './file-master-key';
import type { KekBackend } from './kek-backend';
import { HsmUnavailableError, KeyUnavailableError, type KeyHierarchy } from './key-hierarchy';

export interface HsmKeyHierarchyOptions {
  kek: KekBackend;
  /** Reads data_keys (the request pool is enough: select only). */
  pool: Pool;
  /**
   * The confdir's master key, when still present: rows sealed before the switch to the HSM
   * (key id `file:…`) stay readable until `ktadmin keyhsm --migrate` has re-sealed them.
   */
  fileKey?: FileMasterKey;
  /** Most unwrapped data keys kept in memory (HSM_DATA_KEY_CACHE_SIZE). */
  cacheSize: number;
  /** A new deposit data key after this long (HSM_DATA_KEY_MAX_AGE_SECONDS), on the active. */
  maxDataKeyAgeMs: number;
  now?: () => number;
  /** Called after a batch of data keys was re-wrapped to the active KEK (metrics). */
  onRewrap?: (count: number) => void;
}

/** Data keys re-wrapped per write during a KEK rotation. */
export const REWRAP_BATCH = 100;

export interface HsmKeyHierarchy extends KeyHierarchy {
  readonly kek: KekBackend;
  readonly cache: DataKeyCache;
  /** Loads the digest key and the current data key (HSM calls): a startup error if that fails. */
  init(): Promise<void>;
  /** False until init succeeded (e.g. the database did not answer at start). */
  readonly initialised: boolean;
  /**
   * Periodic upkeep: re-reads which data key is current (the active may have made a new one or
   * rotated the KEK) and, on the active, makes a new data key when the current one is too old.
   */
  maintain(write: WritePathOptions | undefined): Promise<void>;
  /** Unwraps the current data key on the HSM itself (not from the cache): throws if the HSM does not answer. */
  probe(): Promise<void>;
  close(): void;
}

/** Reason of an HsmUnavailableError caused by the database, not the HSM. */
export const DATA_KEY_LOOKUP = 'DATA_KEY_LOOKUP';

function unavailable(e: unknown): never {
  if (e instanceof HsmUnavailableError || e instanceof KeyUnavailableError) throw e;
  // A database error while looking a data key up: the key cannot be had now.
  throw new HsmUnavailableError(DATA_KEY_LOOKUP, `looking up a data key failed: ${(e as Error).message}`, {
    cause: e,
  });
}

/**
 * Deposit values and org secrets sealed (AES-256-GCM, aes-gcm-blob.ts) with data keys; data keys
 * wrapped by the active KEK on the HSM and stored in data_keys, unwrapped on first use and cached
 * (bounded). The request-digest key is one more data key, held in memory from start.
 */
export function createHsmKeyHierarchy(opts: HsmKeyHierarchyOptions): HsmKeyHierarchy {
  const cache = new DataKeyCache(opts.cacheSize);
  const now = opts.now ?? Date.now;
  let digestKey: Buffer | undefined;
  let current: { id: string; createdAtMs: number } | undefined;
  let creating: Promise<void> | undefined;

  async function unwrapRow(row: DataKeyRow): Promise<Buffer> {
    const key = await opts.kek.unwrap(row.kek_id, row.wrapped, dataKeyAad(row.id, row.purpose));
    cache.set(row.id, key);
    return key;
  }

  async function dataKey(id: string): Promise<Buffer> {
    const cached = cache.get(id);
    if (cached) return cached;
    const row = await selectDataKey(opts.pool, id).catch(unavailable);
    if (!row) throw new KeyUnavailableError(`no data key ${id} in this database`);
    return unwrapRow(row);
  }

  async function loadCurrent(): Promise<void> {
    const row = await selectCurrentDataKey(opts.pool).catch(unavailable);
    if (!row) {
      current = undefined;
      return;
    }
    if (!cache.get(row.id)) await unwrapRow(row);
    current = { id: row.id, createdAtMs: row.created_at.getTime() };
  }

  /**
   * KEK rotation, on the active: data keys still wrapped by a retiring KEK are unwrapped with it
   * and wrapped with the active KEK, REWRAP_BATCH per write (the data keys themselves do not
   * change, so no deposit is touched and digests stay the same); a retiring KEK no data key
   * uses any more becomes retired.
   */
  async function rewrapRetiring(write: WritePathOptions): Promise<void> {
    const keks = await selectKeks(opts.pool);
    const active = keks.find((k) => k.state === 'active');
    if (!active) return;
    for (const old of keks.filter((k) => k.state === 'retiring')) {
      const rows = await selectDataKeysOfKek(opts.pool, old.id, REWRAP_BATCH);
      if (rows.length === 0) {
        await runWrite(write, (c) => retireKekIfUnused(c, old.id));
        continue;
      }
      const moved: { id: string; wrapped: Buffer }[] = [];
      for (const r of rows) {
        const key = await opts.kek.unwrap(old.id, r.wrapped, dataKeyAad(r.id, r.purpose));
        moved.push({ id: r.id, wrapped: await opts.kek.wrap(active.id, key, dataKeyAad(r.id, r.purpose)) });
        key.fill(0);
      }
      await runWrite(write, async (c) => {
        for (const m of moved)
          await rewrapDataKey(c, { id: m.id, fromKekId: old.id, toKekId: active.id, wrapped: m.wrapped });
      });
      opts.onRewrap?.(moved.length);
    }
  }

  const h: HsmKeyHierarchy = {
    kek: opts.kek,
    cache,
    get initialised() {
      return digestKey !== undefined;
    },
    get currentKeyId() {
      return current?.id ?? 'none';
    },
    async init() {
      const row = await selectDigestKey(opts.pool).catch(unavailable);
      if (!row)
        throw new KeyUnavailableError(
          'the database holds no HSM data keys yet: run `ktadmin keyhsm` on the active first',
        );
      digestKey = await opts.kek.unwrap(row.kek_id, row.wrapped, dataKeyAad(row.id, row.purpose));
      await loadCurrent();
    },
    async seal(plaintext, aad) {
      if (!current) await loadCurrent();
      if (!current)
        throw new HsmUnavailableError(
          'NO_DATA_KEY',
          'no current data key: run `ktadmin keyhsm` on the active',
        );
      const id = current.id;
      return { keyId: id, blob: sealWithKey(await dataKey(id), plaintext, aad) };
    },
    async open(keyId, blob, aad) {
      if (keyId.startsWith('file:')) {
        if (opts.fileKey?.keyId !== keyId)
          throw new KeyUnavailableError(`row sealed with key ${keyId}, this node does not hold it`);
        return openWithKey(opts.fileKey.key, blob, aad);
      }
      return openWithKey(await dataKey(keyId), blob, aad);
    },
    async digest(data) {
      if (!digestKey)
        throw new HsmUnavailableError('NOT_INITIALISED', 'the HSM key hierarchy is not initialised');
      return createHmac('sha256', digestKey).update(data).digest();
    },
    async maintain(write) {
      if (!digestKey) await h.init();
      await loadCurrent();
      if (!write) return;
      await rewrapRetiring(write);
      if (current && now() - current.createdAtMs < opts.maxDataKeyAgeMs) return;
      // One creation at a time; the others wait for it.
      creating ??= (async () => {
        try {
          const active = (await selectKeks(opts.pool)).find((k) => k.state === 'active');
          if (!active) return;
          const made = await createDataKey(opts.kek, write, { kekId: active.id, purpose: 'deposit' });
          cache.set(made.id, made.key);
          current = { id: made.id, createdAtMs: now() };
        } finally {
          creating = undefined;
        }
      })();
      await creating;
    },
    async probe() {
      const row = await selectCurrentDataKey(opts.pool).catch(unavailable);
      if (!row)
        throw new HsmUnavailableError(
          'NO_DATA_KEY',
          'no current data key: run `ktadmin keyhsm` on the active',
        );
      (await opts.kek.unwrap(row.kek_id, row.wrapped, dataKeyAad(row.id, row.purpose))).fill(0);
    },
    close() {
      digestKey?.fill(0);
      opts.kek.close();
    },
  };
  return h;
}
