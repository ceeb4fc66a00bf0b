import type { ClientBase, Pool } from 'pg';

/** A client or a pool: these reads need no transaction. */
type Queryable = ClientBase | Pool;

export interface DataKeyRow {
  id: string;
  purpose: 'deposit' | 'digest';
  kek_id: string;
  wrapped: Buffer;
  created_at: Date;
}

export interface KekRow {
  id: string;
  state: 'active' | 'retiring' | 'retired';
  created_at: Date;
}

const DK_COLUMNS = 'id, purpose, kek_id, wrapped, created_at';

export async function selectDataKey(c: Queryable, id: string): Promise<DataKeyRow | undefined> {
  const { rows } = await c.query<DataKeyRow>({
    name: 'kt-select-data-key',
    text: `select ${DK_COLUMNS} from data_keys where id = $1`,
    values: [id],
  });
  return rows[0];
}

export async function selectDigestKey(c: Queryable): Promise<DataKeyRow | undefined> {
  const { rows } = await c.query<DataKeyRow>(`select ${DK_COLUMNS} from data_keys where purpose = 'digest'`);
  return rows[0];
}

/** The newest deposit data key wrapped by the active KEK (new rows are sealed with it). */
export async function selectCurrentDataKey(c: Queryable): Promise<DataKeyRow | undefined> {
  const { rows } = await c.query<DataKeyRow>(
    `select ${DK_COLUMNS.split(', ')
      .map((x) => `d.${x}`)
      .join(', ')} from data_keys d join hsm_keks k on k.id = d.kek_id
     where d.purpose = 'deposit' and k.state = 'active' order by d.created_at desc, d.id limit 1`,
  );
  return rows[0];
}

export async function insertDataKey(
  c: ClientBase,
  row: { id: string; purpose: 'deposit' | 'digest'; kekId: string; wrapped: Buffer },
): Promise<void> {
  await c.query('insert into data_keys (id, purpose, kek_id, wrapped) values ($1, $2, $3, $4)', [
    row.id,
    row.purpose,
    row.kekId,
    row.wrapped,
  ]);
}

export async function selectKeks(c: Queryable): Promise<KekRow[]> {
  const { rows } = await c.query<KekRow>(
    'select id, state, created_at from hsm_keks order by created_at, id',
  );
  return rows;
}

export async function insertKek(c: Queryable, id: string, state: KekRow['state']): Promise<void> {
  await c.query('insert into hsm_keks (id, state) values ($1, $2)', [id, state]);
}

/** Whether the hsm tables exist yet (a node whose active has not run migration 0005). */
export async function hasHsmTables(c: Queryable): Promise<boolean> {
  const { rows } = await c.query<{ ok: boolean }>(`select to_regclass('public.data_keys') is not null as ok`);
  return rows[0]?.ok === true;
}

/** Up to `limit` data keys still wrapped by `kekId`. */
export async function selectDataKeysOfKek(c: Queryable, kekId: string, limit: number): Promise<DataKeyRow[]> {
  const { rows } = await c.query<DataKeyRow>(
    `select ${DK_COLUMNS} from data_keys where kek_id = $1 order by id limit $2`,
    [kekId, limit],
  );
  return rows;
}

/** Moves one data key to another KEK, only if it is still wrapped by `fromKekId` (else 0). */
export async function rewrapDataKey(
  c: ClientBase,
  row: { id: string; fromKekId: string; toKekId: string; wrapped: Buffer },
): Promise<number> {
  const r = await c.query('update data_keys set kek_id = $3, wrapped = $4 where id = $1 and kek_id = $2', [
    row.id,
    row.fromKekId,
    row.toKekId,
    row.wrapped,
  ]);
  return r.rowCount ?? 0;
}

/** Marks a retiring KEK retired once no data key uses it; returns whether it did. */
export async function retireKekIfUnused(c: ClientBase, kekId: string): Promise<boolean> {
  const r = await c.query(
    `update hsm_keks set state = 'retired', retired_at = now()
      where id = $1 and state = 'retiring' and not exists (select 1 from data_keys where kek_id = $1)`,
    [kekId],
  );
  return (r.rowCount ?? 0) > 0;
}

export async function setKekState(c: ClientBase, kekId: string, state: KekRow['state']): Promise<void> {
  await c.query('update hsm_keks set state = $2 where id = $1', [kekId, state]);
}
