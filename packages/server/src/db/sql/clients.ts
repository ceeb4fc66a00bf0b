import type { ClientBase } from 'pg';

export type ClientState = 'active' | 'pending' | 'disabled';

export interface ClientRow {
  fingerprint: string;
  org_id: string;
  org_name: string;
  name: string | null;
  state: ClientState;
  certificate: string;
}

export async function selectClient(c: ClientBase, fingerprint: string): Promise<ClientRow | undefined> {
  // Named (prepared once per connection): every authenticated request runs it.
  const { rows } = await c.query<ClientRow>({
    name: 'kt-select-client',
    text: `select c.fingerprint, c.org_id, o.name as org_name, c.name, c.state, c.certificate
       from clients c join orgs o on o.id = c.org_id where c.fingerprint = $1`,
    values: [fingerprint],
  });
  return rows[0];
}

export async function insertClient(
  c: ClientBase,
  row: { fingerprint: string; orgId: string; name: string | null; state: ClientState; certificate: string },
): Promise<void> {
  await c.query(
    `insert into clients (fingerprint, org_id, name, state, certificate) values ($1, $2::bigint, $3, $4, $5)`,
    [row.fingerprint, row.orgId, row.name, row.state, row.certificate],
  );
}

/** Returns the number of rows changed (0 when the fingerprint is unknown). */
export async function updateClientState(
  c: ClientBase,
  fingerprint: string,
  state: ClientState,
): Promise<number> {
  const { rowCount } = await c.query(
    `update clients set state = $2, updated_at = now() where fingerprint = $1`,
    [fingerprint, state],
  );
  return rowCount ?? 0;
}

/** Those of `fingerprints` whose client is disabled (read on either node: the replicated state). */
export async function selectDisabledFingerprints(c: ClientBase, fingerprints: string[]): Promise<string[]> {
  const { rows } = await c.query<{ fingerprint: string }>(
    `select fingerprint from clients where fingerprint = any($1::text[]) and state = 'disabled'`,
    [fingerprints],
  );
  return rows.map((r) => r.fingerprint);
}

export async function selectClientsOfOrg(c: ClientBase, orgId: string): Promise<ClientRow[]> {
  const { rows } = await c.query<ClientRow>(
    `select c.fingerprint, c.org_id, o.name as org_name, c.name, c.state, c.certificate
       from clients c join orgs o on o.id = c.org_id where c.org_id = $1::bigint order by c.created_at`,
    [orgId],
  );
  return rows;
}

/** Clients of an org still awaiting approval (the registration cap). */
export async function countPendingClients(c: ClientBase, orgId: string): Promise<number> {
  const { rows } = await c.query<{ n: number }>(
    "select count(*)::int as n from clients where org_id = $1::bigint and state = 'pending'",
    [orgId],
  );
  return rows[0].n;
}

/** Clients of an org in any state (the auto-approved org cap). */
export async function countClientsOfOrg(c: ClientBase, orgId: string): Promise<number> {
  const { rows } = await c.query<{ n: number }>(
    'select count(*)::int as n from clients where org_id = $1::bigint',
    [orgId],
  );
  return rows[0].n;
}
