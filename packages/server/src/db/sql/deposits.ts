import type { ClientBase } from 'pg';
import { SYNC_STANDBY_STREAMING_SQL } from '../write-path';

export interface DepositRow {
  name: string;
  version: number;
  deleted: boolean;
  sealed_value: Buffer | null;
  key_id: string | null;
  metadata: Record<string, unknown> | null;
  idempotency_key: string | null;
  request_hash: Buffer | null;
  created_at: Date;
  /** Set when the version's value was destroyed (DELETE ?destroy=true, or pruned by the version quota). */
  destroyed_at: Date | null;
}

const COLUMNS =
  'name, version, deleted, sealed_value, key_id, metadata, idempotency_key, request_hash, created_at, destroyed_at';

/** Serialises writers of one (owner, name) for the rest of the transaction. */
export async function lockDepositName(c: ClientBase, owner: string, name: string): Promise<void> {
  await c.query({
    name: 'kt-lock-deposit-name',
    text: 'select pg_advisory_xact_lock(hashtextextended($1::text, 0))',
    values: [`${owner}/${name}`],
  });
}

export async function selectLatestDeposit(
  c: ClientBase,
  owner: string,
  name: string,
): Promise<DepositRow | undefined> {
  const { rows } = await c.query<DepositRow>({
    name: 'kt-select-latest-deposit',
    text: `select ${COLUMNS} from deposits where owner_fp = $1 and name = $2 order by version desc limit 1`,
    values: [owner, name],
  });
  return rows[0];
}

export async function selectDepositVersion(
  c: ClientBase,
  owner: string,
  name: string,
  version: number,
): Promise<DepositRow | undefined> {
  const { rows } = await c.query<DepositRow>({
    name: 'kt-select-deposit-version',
    text: `select ${COLUMNS} from deposits where owner_fp = $1 and name = $2 and version = $3::int`,
    values: [owner, name, version],
  });
  return rows[0];
}

export async function selectDepositByIdempotencyKey(
  c: ClientBase,
  owner: string,
  key: string,
): Promise<DepositRow | undefined> {
  const { rows } = await c.query<DepositRow>({
    name: 'kt-select-deposit-by-idempotency-key',
    text: `select ${COLUMNS} from deposits where owner_fp = $1 and idempotency_key = $2`,
    values: [owner, key],
  });
  return rows[0];
}

/**
 * One round trip under the name lock: the row an Idempotency-Key already produced (when `key` is
 * given) and the latest version of `name`. Same answers as selectDepositByIdempotencyKey and
 * selectLatestDeposit, which it replaces on the write path.
 */
export async function selectPriorAndLatest(
  c: ClientBase,
  owner: string,
  name: string,
  key: string | null,
): Promise<{ prior: DepositRow | undefined; latest: DepositRow | undefined }> {
  const { rows } = await c.query<DepositRow & { which: 'prior' | 'latest' }>({
    name: 'kt-select-prior-and-latest',
    text: `select 'prior' as which, ${COLUMNS} from deposits where owner_fp = $1 and idempotency_key = $3
           union all
           (select 'latest' as which, ${COLUMNS} from deposits where owner_fp = $1 and name = $2 order by version desc limit 1)`,
    values: [owner, name, key],
  });
  const pick = (which: string): DepositRow | undefined => {
    const r = rows.find((x) => x.which === which);
    if (!r) return undefined;
    return {
      name: r.name,
      version: r.version,
      deleted: r.deleted,
      sealed_value: r.sealed_value,
      key_id: r.key_id,
      metadata: r.metadata,
      idempotency_key: r.idempotency_key,
      request_hash: r.request_hash,
      created_at: r.created_at,
      destroyed_at: r.destroyed_at,
    };
  };
  return { prior: pick('prior'), latest: pick('latest') };
}

export async function insertDeposit(
  c: ClientBase,
  row: {
    owner: string;
    name: string;
    version: number;
    deleted: boolean;
    sealedValue: Buffer | null;
    keyId: string | null;
    metadata: Record<string, unknown> | null;
    idempotencyKey: string | null;
    requestHash: Buffer;
    /** Bytes of the value as sent (the byte quota); null for a tombstone. */
    valueBytes: number | null;
    /** A destroy's tombstone: stamped destroyed_at like the versions it erased. */
    destroyed: boolean;
  },
): Promise<{ created_at: Date; standby_streaming: boolean }> {
  // RETURNING also reads the walsender states: the write path's check just before COMMIT, in
  // this round trip instead of one of its own (WriteTx.standbyStreaming).
  const { rows } = await c.query<{ created_at: Date; standby_streaming: boolean }>({
    name: 'kt-insert-deposit',
    text: `insert into deposits (owner_fp, name, version, deleted, sealed_value, key_id, metadata, idempotency_key, request_hash, value_bytes, destroyed_at)
     values ($1, $2, $3::int, $4, $5, $6, $7::jsonb, $8, $9, $10::int, case when $11::boolean then now() end) returning created_at, ${SYNC_STANDBY_STREAMING_SQL} as standby_streaming`,
    values: [
      row.owner,
      row.name,
      row.version,
      row.deleted,
      row.sealedValue,
      row.keyId,
      row.metadata === null ? null : JSON.stringify(row.metadata),
      row.idempotencyKey,
      row.requestHash,
      row.valueBytes,
      row.destroyed,
    ],
  });
  return rows[0];
}

/** Versions of `name` that still hold a value (the version quota counts these). */
export async function countValueVersions(c: ClientBase, owner: string, name: string): Promise<number> {
  const { rows } = await c.query<{ n: number }>({
    name: 'kt-count-value-versions',
    text: 'select count(*)::int as n from deposits where owner_fp = $1 and name = $2 and sealed_value is not null',
    values: [owner, name],
  });
  return rows[0].n;
}

/**
 * Erases the values of the oldest `limit` versions of `name` that still hold one (every such
 * version when `limit` is null): value, data key id, metadata and request digest set to NULL,
 * destroyed_at stamped. Returns how many versions and how many value bytes were erased.
 */
export async function destroyValues(
  c: ClientBase,
  owner: string,
  name: string,
  limit: number | null,
): Promise<{ versions: number; bytes: number }> {
  // LIMIT NULL is no limit. FOR UPDATE: a concurrent HSM migration batch re-checks
  // `sealed_value is not null` after this commits and skips the rows.
  const { rows } = await c.query<{ versions: number; bytes: string }>({
    name: 'kt-destroy-values',
    text: `with doomed as (
             select id, coalesce(value_bytes, octet_length(sealed_value)) as bytes from deposits
              where owner_fp = $1 and name = $2 and sealed_value is not null
              order by version limit $3::int for update
           ), erased as (
             update deposits d set sealed_value = null, key_id = null, metadata = null, request_hash = null,
                    destroyed_at = now()
               from doomed where d.id = doomed.id returning doomed.bytes
           )
           select count(*)::int as versions, coalesce(sum(bytes), 0)::text as bytes from erased`,
    values: [owner, name, limit],
  });
  return { versions: rows[0].versions, bytes: Number(rows[0].bytes) };
}

export interface DepositListRow {
  name: string;
  version: number;
  created_at: Date;
}

/** Live (not deleted) names of one owner after `after`, starting with `prefix`, by name. */
export async function selectDepositPage(
  c: ClientBase,
  owner: string,
  prefix: string,
  after: string,
  limit: number,
): Promise<DepositListRow[]> {
  const { rows } = await c.query<DepositListRow>(
    `select name, version, created_at from (
       select distinct on (name) name, version, deleted, created_at from deposits
        where owner_fp = $1 and starts_with(name, $2) and name > $3
        order by name, version desc
     ) latest where not deleted order by name limit $4::int`,
    [owner, prefix, after, limit],
  );
  return rows;
}
