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
}

const COLUMNS =
  'name, version, deleted, sealed_value, key_id, metadata, idempotency_key, request_hash, created_at';

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
  },
): Promise<{ created_at: Date; standby_streaming: boolean }> {
  // RETURNING also reads the walsender states: the write path's check just before COMMIT, in
  // this round trip instead of one of its own (WriteTx.standbyStreaming).
  const { rows } = await c.query<{ created_at: Date; standby_streaming: boolean }>({
    name: 'kt-insert-deposit',
    text: `insert into deposits (owner_fp, name, version, deleted, sealed_value, key_id, metadata, idempotency_key, request_hash)
     values ($1, $2, $3::int, $4, $5, $6, $7::jsonb, $8, $9) returning created_at, ${SYNC_STANDBY_STREAMING_SQL} as standby_streaming`,
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
    ],
  });
  return rows[0];
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
