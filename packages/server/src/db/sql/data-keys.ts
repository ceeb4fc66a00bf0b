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
