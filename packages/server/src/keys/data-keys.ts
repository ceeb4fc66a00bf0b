import { randomBytes, randomUUID } from 'node:crypto';
import { insertDataKey } from '../db/sql/data-keys';
import { runWrite, type WritePathOptions } from '../db/write-path';
import type { KekBackend } from './kek-backend';

export const DATA_KEY_BYTES = 32;

/** Binds a wrapped data key to its id and purpose: a wrapped key copied to another row fails. */
export function dataKeyAad(id: string, purpose: 'deposit' | 'digest'): Buffer {
  return Buffer.from(`trustee-data-key-v1\u0000${id}\u0000${purpose}`, 'utf8');
}

export function newDataKeyId(): string {
  return `dk:${randomUUID()}`;
}

/**
 * A fresh data key (or `value`, e.g. the digest key carried over), wrapped by the KEK and
 * stored through the write path: it exists on both nodes before any row is sealed with it.
 */
export async function createDataKey(
  kek: KekBackend,
  write: WritePathOptions,
  args: { kekId: string; purpose: 'deposit' | 'digest'; value?: Buffer },
): Promise<{ id: string; key: Buffer }> {
  const id = newDataKeyId();
  const key = args.value ?? randomBytes(DATA_KEY_BYTES);
  const wrapped = await kek.wrap(args.kekId, key, dataKeyAad(id, args.purpose));
  await runWrite(write, (c) => insertDataKey(c, { id, purpose: args.purpose, kekId: args.kekId, wrapped }));
  return { id, key };
}
