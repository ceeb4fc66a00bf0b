import {
  addPeerHbaRules,
  ReplicatorError,
  bootstrapActiveReplication,
  createPgInstance,
  DEFAULT_DB_PORT,
  enableSyncReplication,
  slotNameFor,
  takeBasebackup,
  isLoopbackAddress,
  connectLocal,
  ensureDatabase,
  initDataDir,
  runMigrations,
  readPostmasterPid,
  startPostgres,
  stopPostgres,
  upgradeStandbyTls,
  type PgInstance,
} from '@trustee/replicator';
import { existsSync, readdirSync, renameSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadKeytrusteeConf } from '../config';
import { confPaths } from '../confdir/paths';
import { createReplicationCa, hasReplicationCa } from '../confdir/replication-ca';
import { readSecretFile } from '../confdir/secret-files';
import { updateKeytrusteeConf } from '../confdir/update-conf';
import { keyFingerprint } from '../crypto/fingerprint';
import { MIGRATIONS_DIR } from '../package-info';
import { dbTlsSettings, prepareDbTls } from './db-tls';

export { prepareDbTls } from './db-tls';

export interface DbOptions {
  confdir: string;
  pgRootdir?: string;
  port?: number;
  listenAddresses?: string;
  onStep?: (message: string) => void;
}

/** Longest a replay conflict may hold up the passive's replay (max_standby_streaming_delay). */
export const STANDBY_CONFLICT_DELAY = '1s';

/**
 * The PostgreSQL instance of this node, from flags or keytrustee.conf. TLS is on whenever
 * `<datadir>.tls` holds a certificate (every start passes it); `prepareTls` first issues or
 * renews it from the confdir's replication CA (db-tls.ts), and fails when the confdir has none.
 */
export function nodeInstance(
  opts: DbOptions & {
    prepareTls?: boolean;
    /**
     * With `prepareTls`, on a node that is or becomes the active: make the replication CA when
     * the confdir has none (made before the CA existed). Never on a passive, which must hold the
     * active's CA.
     */
    defineReplicationCa?: boolean;
  },
): PgInstance {
  const conf = loadKeytrusteeConf(opts.confdir);
  const dir = opts.pgRootdir ?? conf.DB_ROOTDIR;
  if (!dir) throw new Error('no database directory: pass --pg-rootdir DIR (or bootstrap first)');
  const inst = createPgInstance({
    // Absolute: pg_ctl runs with another working directory, and keytrustee.conf records it.
    dataDir: resolve(dir),
    port: opts.port ?? conf.DB_PORT,
    listenAddresses: opts.listenAddresses ?? (conf.DB_LISTEN_ADDRESSES as string | undefined) ?? '127.0.0.1',
  });
  if (opts.prepareTls) {
    if (opts.defineReplicationCa && !hasReplicationCa(opts.confdir))
      createReplicationCa(opts.confdir, conf.HOST);
    prepareDbTls(opts.confdir, conf, inst);
  }
  inst.extraSettings = {
    ...inst.extraSettings,
    ...dbTlsSettings(inst),
    // A replay conflict on the passive (e.g. a lock needed while a backup's pg_dump holds one)
    // may stall replay, and every remote_apply commit with it, for at most this long; then the
    // conflicting query (the dump) is cancelled. Below COMMIT_WAIT_MS, so writes never end in doubt.
    max_standby_streaming_delay: STANDBY_CONFLICT_DELAY,
    // Per-node cap on WAL a slot may hold for an absent passive (PostgreSQL's default here: 4GB).
    ...(conf.MAX_SLOT_WAL_KEEP_SIZE ? { max_slot_wal_keep_size: conf.MAX_SLOT_WAL_KEEP_SIZE } : {}),
  };
  // A passive set up before the replication CA existed starts verifying its active now.
  if (opts.prepareTls) upgradeStandbyTls(inst);
  return inst;
}

/**
 * Bootstraps the active's database: initdb, start, create the database, migrate, record the
 * cluster identity, and remember the data dir and port in keytrustee.conf. Leaves it running.
 */
export async function bootstrapActiveDb(opts: DbOptions & { pgRootdir: string }): Promise<PgInstance> {
  const step = opts.onStep ?? (() => undefined);
  // A confdir made before the replication CA existed gets it here: the active defines the
  // cluster; the passive gets the CA with the confdir copy that follows.
  if (!hasReplicationCa(opts.confdir)) step('creating the replication CA (the confdir predates it)…');
  const inst = nodeInstance({ ...opts, prepareTls: true, defineReplicationCa: true });
  step(`initializing PostgreSQL data directory ${inst.dataDir} (port ${inst.port})…`);
  await initDataDir(inst);
  step('starting PostgreSQL…');
  if (inst.sharedSocketNote) step(inst.sharedSocketNote);
  await startPostgres(inst);
  try {
    await ensureDatabase(inst);
    const client = await connectLocal(inst);
    try {
      const applied = await runMigrations(client, MIGRATIONS_DIR);
      step(`schema ready (${applied.length} migration(s) applied)`);
      const fp = keyFingerprint(readSecretFile(confPaths(opts.confdir).identityKey).toString('utf8'));
      await client.query(
        'insert into cluster_identity (id, fingerprint) values (1, $1) on conflict (id) do nothing',
        [fp],
      );
    } finally {
      await client.end();
    }
  } catch (e) {
    await stopPostgres(inst).catch(() => undefined);
    throw e;
  }
  updateKeytrusteeConf(opts.confdir, {
    DB_ROOTDIR: inst.dataDir,
    DB_PORT: inst.port,
    DB_LISTEN_ADDRESSES: inst.listenAddresses,
  });
  return inst;
}

/** Listen on loopback only when the peer is on this machine (the local two-node cluster). */
export function listenFor(peerHost: string | undefined): string {
  return !peerHost || isLoopbackAddress(peerHost === 'localhost' ? '127.0.0.1' : peerHost)
    ? '127.0.0.1'
    : '*';
}

/** Parses `HOST[:PORT]` (IPv6 in brackets), default port 11381. */
export function parseHostPort(spec: string, defaultPort = DEFAULT_DB_PORT): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d{1,5}))?$/.exec(spec.trim());
  if (!m) throw new Error(`"${spec}" is not HOST[:PORT]`);
  const port = m[3] ? Number(m[3]) : defaultPort;
  if (port < 1 || port > 65535) throw new Error(`port ${port} out of range in "${spec}"`);
  return { host: m[1] ?? m[2], port };
}

/**
 * The passive's replication name, the same on both sides: the active derives it from
 * `--slave HOST[:PORT]`, the passive from its own HOST and DB_PORT (port omitted when default).
 */
export function standbyNameFor(host: string, dbPort: number): string {
  return slotNameFor(dbPort === DEFAULT_DB_PORT ? host : `${host}_${dbPort}`);
}

/** The replication role's password, shared by both nodes (confdir secret file). */
export function replicationPassword(confdir: string): string {
  return readSecretFile(confPaths(confdir).replicationSecret).toString('utf8').trim();
}

/** On the running active: replication role, pg_hba rule and slot for the passive named by `--slave`. */
export async function addStandbyOnActive(opts: {
  confdir: string;
  slave: string;
  onStep?: (m: string) => void;
}) {
  const step = opts.onStep ?? (() => undefined);
  const { host, port } = parseHostPort(opts.slave);
  const inst = nodeInstance({ confdir: opts.confdir });
  const standbyName = standbyNameFor(host, port);
  const r = await bootstrapActiveReplication(inst, {
    standbyName,
    peerAddress: host === 'localhost' ? '127.0.0.1' : host,
    password: replicationPassword(opts.confdir),
  });
  updateKeytrusteeConf(opts.confdir, {
    REPLICATION_STANDBY: standbyName,
    REPLICATION_SLAVE: `${host}:${port}`,
  });
  step(`replication prepared for passive ${standbyName} (role ${r.role}, slot ${r.slotName})`);
  return { ...r, standbyName };
}

/**
 * Bootstraps the passive: pg_basebackup from the active named by `--master`, standby
 * configuration with this node's application_name, start, and wait until it streams.
 */
export async function bootstrapPassiveDb(
  opts: DbOptions & { pgRootdir: string; master: string; replace?: boolean },
): Promise<PgInstance> {
  const step = opts.onStep ?? (() => undefined);
  const { host, port } = parseHostPort(opts.master);
  const conf = loadKeytrusteeConf(opts.confdir);
  const inst = nodeInstance({
    ...opts,
    listenAddresses: opts.listenAddresses ?? listenFor(host),
    prepareTls: true,
  });
  const standbyName = standbyNameFor(conf.HOST, inst.port);
  if (existsSync(inst.dataDir) && readdirSync(inst.dataDir).length > 0) {
    if (!opts.replace) {
      throw new ReplicatorError(
        'DATA_DIR_EXISTS',
        `${inst.dataDir} is not empty (an old passive?); add --replace to keep it aside and rebuild this passive from ${host}:${port}`,
      );
    }
    await clearStalePassive(inst, step);
  }
  step(`taking a base backup of ${host}:${port} into ${inst.dataDir} as standby ${standbyName}…`);
  const t0 = Date.now();
  const primaryHost = host === 'localhost' ? '127.0.0.1' : host;
  await takeBasebackup(inst, {
    primaryHost,
    primaryPort: port,
    standbyName,
    password: replicationPassword(opts.confdir),
    // A rebuilt passive gets a fresh slot: the old one may be invalidated or hold stale WAL.
    recreateSlot: !!opts.replace,
  });
  addPeerHbaRules(inst, primaryHost);
  step(`base backup done in ${((Date.now() - t0) / 1000).toFixed(1)} s; starting the passive…`);
  if (inst.sharedSocketNote) step(inst.sharedSocketNote);
  await startPostgres(inst);
  updateKeytrusteeConf(opts.confdir, {
    DB_ROOTDIR: inst.dataDir,
    DB_PORT: inst.port,
    DB_LISTEN_ADDRESSES: inst.listenAddresses,
    REPLICATION_MASTER: `${host}:${port}`,
  });
  return inst;
}

/** On the active: makes the recorded passive synchronous and waits until it is. */
export async function enableSynchronousReplication(opts: {
  confdir: string;
  timeoutMs?: number;
  standby?: string;
}) {
  const conf = loadKeytrusteeConf(opts.confdir);
  const standbyName = opts.standby ?? (conf.REPLICATION_STANDBY as string | undefined);
  if (!standbyName) {
    throw new Error(
      'no passive recorded on this node: run `ktadmin db --bootstrap ... --slave HOST[:PORT]` on the active first',
    );
  }
  await enableSyncReplication(nodeInstance({ confdir: opts.confdir }), standbyName, {
    timeoutMs: opts.timeoutMs ?? 30_000,
  });
  return standbyName;
}

/** Moves a data directory aside (never deleted: it may hold the only copy of something). */
export function moveAside(dir: string): string {
  const to = `${dir}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  renameSync(dir, to);
  return to;
}

/** True when the directory is missing or empty. */
export function isEmptyDir(dir: string): boolean {
  return !existsSync(dir) || readdirSync(dir).length === 0;
}

/** `db --bootstrap --master H --replace`: stop and keep aside a stale passive before the base backup. */
export async function clearStalePassive(
  inst: PgInstance,
  step: (m: string) => void,
): Promise<string | undefined> {
  if (isEmptyDir(inst.dataDir)) return undefined;
  if (readPostmasterPid(inst.dataDir)) {
    step(`stopping the old passive's PostgreSQL in ${inst.dataDir}…`);
    await stopPostgres(inst).catch(() => stopPostgres(inst, { mode: 'immediate' }));
  }
  const to = moveAside(inst.dataDir);
  step(`old passive data kept as ${to} (remove it once the pair is healthy)`);
  return to;
}
