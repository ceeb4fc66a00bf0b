import { createHmac, timingSafeEqual } from 'node:crypto';
import { deriveMasterSubkey } from '../journal/derive-journal-key';

/**
 * Tamper evidence of the audit trail (migration 0008): every row carries an HMAC of its own
 * fields (`row_mac`), written by the transaction that made the change, and the active's chainer
 * later links committed rows into one sequence (`chain_mac`). Both MACs use one key derived from
 * the confdir's master key, which a database-only attacker does not have. Pure functions only.
 */

/** HKDF info: the audit key is never the journal key or the at-rest key. */
const AUDIT_KEY_INFO = 'trustee audit trail v1';
const ROW_DOMAIN = 'trustee-audit-row-v1';
const CHAIN_DOMAIN = Buffer.from('trustee-audit-chain-v1\u0000', 'utf8');

/** The key of row and chain MACs: HKDF-SHA256 of the master key (file path or its 32 bytes). */
export function deriveAuditKey(material: string | Buffer): Buffer {
  return deriveMasterSubkey(material, AUDIT_KEY_INFO, (m) => new Error(m));
}

export type AuditActorKind = 'client' | 'admin' | 'system';
export type AuditWriteMode = 'sync' | 'single-node' | 'standalone';

/** The fields a row MAC covers: every column but id (assigned later by PostgreSQL) and the chain. */
export interface AuditFields {
  /** 16 random bytes: a copied row cannot pass as a second event. */
  uid: Buffer;
  at: Date;
  actorKind: AuditActorKind;
  actor: string;
  osUser: string | null;
  action: string;
  org: string | null;
  subject: string | null;
  subjectVersion: number | null;
  source: string | null;
  result: string;
  count: number;
  writeMode: AuditWriteMode | null;
  detail: string | null;
}

/**
 * The canonical bytes of a row: a JSON array in a fixed order (JSON escaping makes it
 * unambiguous; no key order to agree on), times as ISO-8601 with milliseconds, which a
 * timestamptz column gives back exactly.
 */
export function canonicalAuditRow(f: AuditFields): Buffer {
  const [uid, at, ...rest] = auditFieldValues(f);
  return Buffer.from(
    JSON.stringify([ROW_DOMAIN, (uid as Buffer).toString('hex'), (at as Date).toISOString(), ...rest]),
    'utf8',
  );
}

/** The fields in their one order: the canonical form's and the audit_log columns' (db/sql/audit.ts). */
export function auditFieldValues(f: AuditFields): unknown[] {
  return [
    f.uid,
    f.at,
    f.actorKind,
    f.actor,
    f.osUser,
    f.action,
    f.org,
    f.subject,
    f.subjectVersion,
    f.source,
    f.result,
    f.count,
    f.writeMode,
    f.detail,
  ];
}

export function auditRowMac(key: Buffer, f: AuditFields): Buffer {
  return createHmac('sha256', key).update(canonicalAuditRow(f)).digest();
}

/** The seq-th link: HMAC(previous link (32 zero bytes before the first) || seq (8 bytes BE) || row MAC). */
export function auditChainMac(key: Buffer, prev: Buffer | null, seq: number, rowMac: Buffer): Buffer {
  const seqBytes = Buffer.alloc(8);
  seqBytes.writeBigUInt64BE(BigInt(seq));
  return createHmac('sha256', key)
    .update(CHAIN_DOMAIN)
    .update(prev ?? Buffer.alloc(32))
    .update(seqBytes)
    .update(rowMac)
    .digest();
}

/** Equal MACs (constant time; a length mismatch is simply unequal). */
export function macsEqual(a: Buffer | null, b: Buffer | null): boolean {
  if (!a || !b || a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}
