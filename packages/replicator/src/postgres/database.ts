import { Client, escapeIdentifier, escapeLiteral } from 'pg';
import { DB_NAME, localConnection, type PgInstance } from './instance';

/**
 * Opens a connection to the local instance as the superuser (over the unix socket). Caller ends it.
 * Administrative statements commit locally: a role, slot or grant must never block on a
 * synchronous standby that is gone (exactly when an operator repairs the pair).
 */
export async function connectLocal(inst: PgInstance, database: string = DB_NAME): Promise<Client> {
  const client = new Client({
    ...localConnection(inst, database),
    connectionTimeoutMillis: 5000,
    options: '-c synchronous_commit=local',
  });
  await client.connect();
  return client;
}

/** Creates the product database if it does not exist. */
export async function ensureDatabase(inst: PgInstance, database: string = DB_NAME): Promise<void> {
  const client = await connectLocal(inst, 'postgres');
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (!rowCount) await client.query(`create database ${escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
}

/**
 * Creates or updates a login role. Identifiers and the password cannot be bind parameters in
 * DDL, so they are quoted with pg's escape functions.
 */
export async function ensureRole(
  client: Client,
  role: string,
  opts: { password?: string; replication?: boolean } = {},
): Promise<void> {
  const { rowCount } = await client.query('select 1 from pg_roles where rolname = $1', [role]);
  const attrs = ['LOGIN', opts.replication ? 'REPLICATION' : 'NOREPLICATION'];
  if (opts.password !== undefined) attrs.push(`PASSWORD ${escapeLiteral(opts.password)}`);
  const verb = rowCount ? 'ALTER' : 'CREATE';
  await client.query(`${verb} ROLE ${escapeIdentifier(role)} WITH ${attrs.join(' ')}`);
}
