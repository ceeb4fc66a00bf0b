import {
  createPgInstance,
  connectLocal,
  ensureDatabase,
  initDataDir,
  runMigrations,
  startPostgres,
  stopPostgres,
  type PgInstance,
} from '@trustee/replicator';
import { loadKeytrusteeConf } from '../config';
import { confPaths } from '../confdir/paths';
import { readSecretFile } from '../confdir/secret-files';
import { updateKeytrusteeConf } from '../confdir/update-conf';
import { keyFingerprint } from '../crypto/fingerprint';
import { MIGRATIONS_DIR } from '../server';

export interface DbOptions {
  confdir: string;
  pgRootdir?: string;
  port?: number;
  listenAddresses?: string;
  onStep?: (message: string) => void;
}

/** The PostgreSQL instance of this node, from flags or keytrustee.conf. */
export function nodeInstance(opts: DbOptions): PgInstance {
  const conf = loadKeytrusteeConf(opts.confdir);
  const dataDir = opts.pgRootdir ?? conf.DB_ROOTDIR;
  if (!dataDir) throw new Error('no database directory: pass --pg-rootdir DIR (or bootstrap first)');
  return createPgInstance({
    dataDir,
    port: opts.port ?? conf.DB_PORT,
    listenAddresses: opts.listenAddresses ?? (conf.PEERS.length ? '*' : '127.0.0.1'),
  });
}

/**
 * Bootstraps the active's database: initdb, start, create the database, migrate, record the
 * cluster identity, and remember the data dir and port in keytrustee.conf. Leaves it running.
 */
export async function bootstrapActiveDb(opts: DbOptions & { pgRootdir: string }): Promise<PgInstance> {
  const step = opts.onStep ?? (() => undefined);
  const inst = nodeInstance(opts);
  step(`initializing PostgreSQL data directory ${inst.dataDir} (port ${inst.port})…`);
  await initDataDir(inst);
  step('starting PostgreSQL…');
  await startPostgres(inst);
  try {
    await ensureDatabase(inst);
    const client = await connectLocal(inst);
    try {
      const applied = await runMigrations(client, MIGRATIONS_DIR);
      step(`schema ready (${applied.length} migration(s) applied)`);
      const fp = keyFingerprint(readSecretFile(confPaths(opts.confdir).identityKey).toString('utf8'));
      await client.query('insert into cluster_identity (id, fingerprint) values (1, $1) on conflict (id) do nothing', [fp]);
    } finally {
      await client.end();
    }
  } catch (e) {
    await stopPostgres(inst).catch(() => undefined);
    throw e;
  }
  updateKeytrusteeConf(opts.confdir, { DB_ROOTDIR: inst.dataDir, DB_PORT: inst.port });
  return inst;
}
