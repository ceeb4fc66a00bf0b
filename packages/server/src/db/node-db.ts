import { DB_NAME, DB_SUPERUSER, socketDirFor } from '@trustee/replicator';
import type { KeytrusteeConf } from '../config';
import { createDb, type Db } from './pool';

export class StartupError extends Error {
  override name = 'StartupError';
}

/** Connects to the local PostgreSQL of this node (unix socket beside its data dir). */
export function connectNodeDb(conf: KeytrusteeConf, confdir: string, opts: { max?: number } = {}): Db {
  if (!conf.DB_ROOTDIR) {
    throw new StartupError(
      `keytrustee.conf in ${confdir} names no database; run \`ktadmin --confdir ${confdir} db --bootstrap --pg-rootdir DIR\` first`,
    );
  }
  return createDb(
    { host: socketDirFor(conf.DB_ROOTDIR), port: conf.DB_PORT, user: DB_SUPERUSER, database: DB_NAME },
    opts,
  );
}
