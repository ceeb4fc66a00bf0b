import { Pool } from 'pg';
import { DB_NAME, DB_SUPERUSER, socketDirFor } from '@trustee/replicator';
import type { KeytrusteeConf } from '../config';
import { ConfigError } from '../config';

/**
 * The job runner's own pool on this node's PostgreSQL (unix socket beside the data dir).
 * Job bookkeeping commits with `synchronous_commit = local`: it replicates like any WAL but
 * never waits for the passive, so jobs keep running on an active whose passive is gone (a
 * backup is what an operator wants most then). Deposits never go through this pool.
 */
export function createJobsPool(
  conf: KeytrusteeConf,
  confdir: string,
  opts: { max?: number; applicationName?: string } = {},
): Pool {
  if (!conf.DB_ROOTDIR) {
    throw new ConfigError(`keytrustee.conf in ${confdir} names no database (DB_ROOTDIR); bootstrap it first`);
  }
  const pool = new Pool({
    host: socketDirFor(conf.DB_ROOTDIR),
    port: conf.DB_PORT,
    user: DB_SUPERUSER,
    database: DB_NAME,
    options: '-c synchronous_commit=local',
    application_name: opts.applicationName ?? 'keytrusteed-jobs',
    max: opts.max ?? 5,
    connectionTimeoutMillis: 3000,
    idleTimeoutMillis: 30_000,
  });
  // Errors of idle and checked-out clients (PostgreSQL restarting) must not crash the server;
  // the query in flight fails on its own. graphile-worker also warns when these are missing.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => void client.on('error', () => undefined));
  return pool;
}
