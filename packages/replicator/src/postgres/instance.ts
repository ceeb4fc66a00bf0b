import { chmodSync, chownSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { findPgBinDir } from './binaries';
import { LIBPQ_DEFAULT_SOCKET_DIR, socketDirFor, socketPermissionsFor, type SocketAccess } from './settings';
import {
  currentAccount,
  dataDirOwner,
  ensurePgOsUser,
  ensureSharedSocketAccess,
  type RunAs,
} from './os-user';
import { findSetpriv } from './run';

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
  /**
   * CA certificate (readable by the PostgreSQL OS user) that issued the peer's PostgreSQL
   * certificate. When set, every connection this node opens to its peer — the walreceiver's
   * primary_conninfo, pg_basebackup, pg_rewind — uses `sslmode=verify-full` with this root and
   * `channel_binding=require` (see `peerLinkTls`).
   */
  replicationCa?: string;
  /**
   * Second socket directory (libpq's default, so `psql -p PORT` needs no -h), socket group and
   * mode, passed at every start. Without it: only the private socket, mode 0700.
   */
  sockets?: SocketAccess;
  /** Why there is no socket in libpq's default directory (one line for the operator), if there is none. */
  sharedSocketNote?: string;
}

export interface PgInstanceOptions {
  dataDir: string;
  port?: number;
  listenAddresses?: string;
  extraSettings?: Record<string, string | number>;
  binDir?: string;
  /** OS account for PostgreSQL when root; default the owner of an existing data dir, else `keytrustee`. */
  osUser?: string;
  /** Directory for a second socket; default /var/run/postgresql, `null` for none. */
  sharedSocketDir?: string | null;
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
  const runAs = ensurePgOsUser(opts.osUser ?? dataDirOwner(opts.dataDir));
  const inst: PgInstance = {
    binDir: opts.binDir ?? findPgBinDir(),
    dataDir: opts.dataDir,
    port: opts.port ?? DEFAULT_DB_PORT,
    listenAddresses: opts.listenAddresses ?? '127.0.0.1',
    extraSettings: opts.extraSettings,
    runAs,
  };
  const account = runAs ?? currentAccount();
  if (!account) return inst;
  inst.sockets = { group: account.group, permissions: socketPermissionsFor(account) };
  const sharedDir = opts.sharedSocketDir === undefined ? LIBPQ_DEFAULT_SOCKET_DIR : opts.sharedSocketDir;
  if (sharedDir === null) return inst;
  const shared = ensureSharedSocketAccess(account, sharedDir, {
    asRoot: runAs !== undefined,
    // Without root nothing switches accounts, so the process keeps its groups.
    canKeepGroups: runAs === undefined || findSetpriv() !== undefined,
  });
  if (runAs) inst.runAs = shared.account;
  if (shared.dir) inst.sockets.sharedDir = shared.dir;
  else
    inst.sharedSocketNote = `no database socket in ${sharedDir} (use psql -h ${socketDirFor(inst.dataDir)}): ${shared.note}`;
  return inst;
}

/** node-postgres connection settings for the local superuser over the unix socket in the data dir. */
export function localConnection(inst: PgInstance, database: string = DB_NAME) {
  return { host: socketDirFor(inst.dataDir), port: inst.port, user: DB_SUPERUSER, database };
}
