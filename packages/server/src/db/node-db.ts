import { DB_NAME, DB_SUPERUSER, socketDirFor } from '@trustee/replicator';
import { Client } from 'pg';
import type { KeytrusteeConf } from '../config';
import { createDb, type Db, type DbTarget } from './pool';

export class StartupError extends Error {
  override name = 'StartupError';
}

/**
 * The login role keytrusteed answers requests as (migration 0004): rows of the product's tables,
 * no DDL, no superuser functions, no replication. Everything else (migrations, admin commands,
 * jobs, journal, backups, the control pool) uses the owner, DB_SUPERUSER.
 */
export const DB_APP_ROLE = 'keytrustee_app';

/** This node's PostgreSQL as the owner role (unix socket beside its data dir). */
export function nodeDbTarget(conf: KeytrusteeConf, confdir: string): DbTarget {
  if (!conf.DB_ROOTDIR) {
    throw new StartupError(
      `keytrustee.conf in ${confdir} names no database; run \`ktadmin --confdir ${confdir} db --bootstrap --pg-rootdir DIR\` first`,
    );
  }
  return { host: socketDirFor(conf.DB_ROOTDIR), port: conf.DB_PORT, user: DB_SUPERUSER, database: DB_NAME };
}

/**
 * Connects to the local PostgreSQL of this node. `requestUser` sets the request pool's login role
 * (keytrusteed passes DB_APP_ROLE); the control pool always logs in as the owner.
 */
export function connectNodeDb(
  conf: KeytrusteeConf,
  confdir: string,
  opts: { max?: number; requestUser?: string } = {},
): Db {
  return createDb(nodeDbTarget(conf, confdir), opts);
}

/** A single owner-role connection (migrations at start: DDL, no query timeout). */
export async function connectNodeOwner(conf: KeytrusteeConf, confdir: string): Promise<Client> {
  const client = new Client({ ...nodeDbTarget(conf, confdir), application_name: 'keytrusteed-migrate' });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/**
 * The app role's cluster-level part (the role, its pg_monitor membership, execute on
 * pg_control_checkpoint()): what a pg_dump does not carry. Migration 0004 does the same on a
 * live cluster; a restore runs this before loading a dump whose table grants name the role.
 */
export async function ensureAppRole(owner: Pick<Client, 'query'>): Promise<void> {
  const { rowCount } = await owner.query('select 1 from pg_roles where rolname = $1', [DB_APP_ROLE]);
  if (!rowCount) {
    await owner.query(
      `create role ${DB_APP_ROLE} login nosuperuser nocreatedb nocreaterole noreplication nobypassrls connection limit 64`,
    );
  }
  await owner.query(`grant pg_monitor to ${DB_APP_ROLE}`);
  await owner.query(`grant execute on function pg_control_checkpoint() to ${DB_APP_ROLE}`);
}
