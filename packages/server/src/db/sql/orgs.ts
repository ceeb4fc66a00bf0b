import type { ClientBase } from 'pg';

export interface OrgRow {
  id: string;
  uuid: string;
  name: string;
  auth_secret_sealed: Buffer;
  auth_secret_key_id: string;
  contacts: string[];
  state: number;
  creation: Date;
  expiration: Date;
  key_info: unknown;
}

const COLUMNS =
  'id, uuid, name, auth_secret_sealed, auth_secret_key_id, contacts, state, creation, expiration, key_info';

export async function selectOrg(
  c: ClientBase,
  name: string,
  opts: { forUpdate?: boolean } = {},
): Promise<OrgRow | undefined> {
  const { rows } = await c.query<OrgRow>(
    `select ${COLUMNS} from orgs where name = $1${opts.forUpdate ? ' for update' : ''}`,
    [name],
  );
  return rows[0];
}

export async function selectOrgs(c: ClientBase): Promise<OrgRow[]> {
  const { rows } = await c.query<OrgRow>(`select ${COLUMNS} from orgs order by name`);
  return rows;
}

export async function insertOrg(
  c: ClientBase,
  row: { uuid: string; name: string; sealedSecret: Buffer; keyId: string; contacts: string[] },
): Promise<void> {
  await c.query(
    `insert into orgs (uuid, name, auth_secret_sealed, auth_secret_key_id, contacts) values ($1, $2, $3, $4, $5::text[])`,
    [row.uuid, row.name, row.sealedSecret, row.keyId, row.contacts],
  );
}

export async function updateOrgContacts(c: ClientBase, name: string, contacts: string[]): Promise<void> {
  await c.query(`update orgs set contacts = $2::text[] where name = $1`, [name, contacts]);
}

export async function updateOrgSecret(
  c: ClientBase,
  name: string,
  sealedSecret: Buffer,
  keyId: string,
): Promise<number> {
  const { rowCount } = await c.query(
    `update orgs set auth_secret_sealed = $2, auth_secret_key_id = $3 where name = $1`,
    [name, sealedSecret, keyId],
  );
  return rowCount ?? 0;
}
