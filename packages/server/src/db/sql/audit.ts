import type { ClientBase } from 'pg';
import {
  auditFieldValues,
  type AuditActorKind,
  type AuditFields,
  type AuditWriteMode,
} from '../../audit/audit-mac';
import type { StoredAuditRow } from '../../audit/audit-chain-check';

/** Table: migrations/0008-audit.sql. */
const COLUMNS =
  'id, uid, at, actor_kind, actor, os_user, action, org, subject, subject_version, source, result, count, write_mode, detail, row_mac, seq, chain_mac';

/** A row of audit_log as node-postgres returns it. */
export interface AuditDbRow {
  id: string;
  uid: Buffer;
  at: Date;
  actor_kind: AuditActorKind;
  actor: string;
  os_user: string | null;
  action: string;
  org: string | null;
  subject: string | null;
  subject_version: number | null;
  source: string | null;
  result: string;
  count: number;
  write_mode: AuditWriteMode | null;
  detail: string | null;
  row_mac: Buffer;
  seq: string | null;
  chain_mac: Buffer | null;
}

function toStored(r: AuditDbRow): StoredAuditRow {
  return {
    id: r.id,
    uid: r.uid,
    at: r.at,
    actorKind: r.actor_kind,
    actor: r.actor,
    osUser: r.os_user,
    action: r.action,
    org: r.org,
    subject: r.subject,
    subjectVersion: r.subject_version,
    source: r.source,
    result: r.result,
    count: r.count,
    writeMode: r.write_mode,
    detail: r.detail,
    rowMac: r.row_mac,
    seq: r.seq === null ? null : Number(r.seq),
    chainMac: r.chain_mac,
  };
}

export async function insertAuditRow(c: ClientBase, f: AuditFields, rowMac: Buffer): Promise<void> {
  // Named: every write runs it (prepared once per connection).
  await c.query({
    name: 'kt-insert-audit',
    text: `insert into audit_log (uid, at, actor_kind, actor, os_user, action, org, subject, subject_version,
             source, result, count, write_mode, detail, row_mac)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9::int, $10, $11, $12::int, $13, $14, $15)`,
    values: [...auditFieldValues(f), rowMac],
  });
}

/** The last chain link and how many rows wait for the chainer. */
export async function selectChainHead(
  c: ClientBase,
): Promise<{ seq: number; chainMac: Buffer | null; unchained: number }> {
  const { rows } = await c.query<{ seq: string | null; chain_mac: Buffer | null; unchained: number }>(
    `select h.seq, h.chain_mac, (select count(*)::int from audit_log where seq is null) as unchained
       from (select 1) one
       left join lateral (select seq, chain_mac from audit_log where seq is not null order by seq desc limit 1) h on true`,
  );
  return { seq: Number(rows[0].seq ?? 0), chainMac: rows[0].chain_mac, unchained: rows[0].unchained };
}

/** Unchained rows in id order, except `skip` (rows the chainer found invalid). */
export async function selectUnchained(
  c: ClientBase,
  args: { afterId: string; limit: number; skip?: string[] },
): Promise<StoredAuditRow[]> {
  const { rows } = await c.query<AuditDbRow>(
    `select ${COLUMNS} from audit_log
      where seq is null and id > $1::bigint and not (id = any($3::bigint[]))
      order by id limit $2::int`,
    [args.afterId, args.limit, args.skip ?? []],
  );
  return rows.map(toStored);
}

/** Links the rows `ids` (in this order) at positions firstSeq… (audit_chain() checks the head). */
export async function chainAuditRows(
  c: ClientBase,
  args: { ids: string[]; firstSeq: number; prevMac: Buffer | null; chainMacs: Buffer[] },
): Promise<number> {
  const { rows } = await c.query<{ n: number }>(
    'select audit_chain($1::bigint[], $2::bigint, $3::bytea, $4::bytea[]) as n',
    [args.ids, args.firstSeq, args.prevMac, args.chainMacs],
  );
  return rows[0].n;
}

/** Chained rows after position `afterSeq`, in seq order. */
export async function selectChained(
  c: ClientBase,
  args: { afterSeq: number; limit: number },
): Promise<StoredAuditRow[]> {
  const { rows } = await c.query<AuditDbRow>(
    `select ${COLUMNS} from audit_log where seq > $1::bigint order by seq limit $2::int`,
    [args.afterSeq, args.limit],
  );
  return rows.map(toStored);
}

/** Rows at or after `since` with an id above `afterId`, in id (insertion) order. */
export async function selectAuditPage(
  c: ClientBase,
  args: { since: Date; afterId: string; limit: number },
): Promise<StoredAuditRow[]> {
  const { rows } = await c.query<AuditDbRow>(
    `select ${COLUMNS} from audit_log where id > $2::bigint and at >= $1 order by id limit $3::int`,
    [args.since, args.afterId, args.limit],
  );
  return rows.map(toStored);
}

/** Row ids sharing a uid with an earlier row (a copy; the unique index was dropped to make it). */
export async function selectDuplicateUids(c: ClientBase): Promise<StoredAuditRow[]> {
  const { rows } = await c.query<AuditDbRow>(
    `select ${COLUMNS} from (
       select *, row_number() over (partition by uid order by id) as n from audit_log) d
      where n > 1 order by id limit 100`,
  );
  return rows.map(toStored);
}
