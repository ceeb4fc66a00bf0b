import { chmodSync, chownSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { findPgBinDir } from './binaries';
import { socketDirFor } from './settings';
import { ensurePgOsUser, type RunAs } from './os-user';

/** Name of the PostgreSQL superuser and database Trustee creates (as in the original product). */
export const DB_SUPERUSER = 'keytrustee';
export const DB_NAME = 'keytrustee';
export const DEFAULT_DB_PORT = 11381;

/** Everything needed to act on one local PostgreSQL instance. */
export interface PgInstance {
  /** Directory of initdb, pg_ctl, postgres, pg_basebackup, pg_rewind, pg_dump. */
  binDir: string;
  /** The PostgreSQL data directory (the original's `--pg-rootdir`); also holds the unix socket. */
  dataDir: string;
  /** TCP port, default 11381. Passed on every start so a copied postgresql.conf never decides it. */
  port: number;
  /** Addresses to listen on (postgresql.conf `listen_addresses`); default 127.0.0.1. */
  listenAddresses: string;
  /**
   * More per-node settings passed on the command line at every start (e.g. this node's TLS
   * files): they must not live in postgresql.conf, which base backups and pg_rewind copy.
   */
  extraSettings?: Record<string, string | number>;
  /** The unprivileged OS account PostgreSQL runs as when we are root. */
  runAs?: RunAs;
}

export interface PgInstanceOptions {
  dataDir: string;
  port?: number;
  listenAddresses?: string;
  extraSettings?: Record<string, string | number>;
  binDir?: string;
  osUser?: string;
}

/** Creates the socket directory (beside the data dir) owned by the PostgreSQL user, 0700. */
export function ensureSocketDir(inst: Pick<PgInstance, 'dataDir' | 'runAs'>): void {
  if (!existsSync(dirname(inst.dataDir))) return;
  const dir = socketDirFor(inst.dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (inst.runAs) chownSync(dir, inst.runAs.uid, inst.runAs.gid);
  chmodSync(dir, 0o700);
}

/** Resolves binaries and the OS user once; the result is passed to every lifecycle call. */
export function createPgInstance(opts: PgInstanceOptions): PgInstance {
  const inst = createPgInstanceOnly(opts);
  ensureSocketDir(inst);
  return inst;
}

function createPgInstanceOnly(opts: PgInstanceOptions): PgInstance {
  return {
    binDir: opts.binDir ?? findPgBinDir(),
    dataDir: opts.dataDir,
    port: opts.port ?? DEFAULT_DB_PORT,
    listenAddresses: opts.listenAddresses ?? '127.0.0.1',
    extraSettings: opts.extraSettings,
    runAs: ensurePgOsUser(opts.osUser),
  };
}

/** node-postgres connection settings for the local superuser over the unix socket in the data dir. */
export function localConnection(inst: PgInstance, database: string = DB_NAME) {
  return { host: socketDirFor(inst.dataDir), port: inst.port, user: DB_SUPERUSER, database };
}
