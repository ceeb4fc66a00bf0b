/**
 * postgresql.conf / pg_hba.conf rendering. Pure functions so the exact text is unit-tested.
 */

/** Default cap on WAL a replication slot may hold for an absent passive (keytrustee.conf MAX_SLOT_WAL_KEEP_SIZE). */
export const DEFAULT_MAX_SLOT_WAL_KEEP_SIZE = '4GB';

/**
 * The passive's walreceiver ends a link silent this long (`wal_receiver_timeout`); the same value
 * bounds each of its connection attempts (`tcp_user_timeout` of primary_conninfo, standby-config.ts).
 */
export const WAL_RECEIVER_TIMEOUT_MS = 5000;

/** Settings every Trustee node needs (both roles; a base backup copies them to the passive). */
export function productSettings(): Record<string, string | number> {
  return {
    // Logical decoding feeds the change journal; it implies everything `replica` gives.
    wal_level: 'logical',
    // pg_rewind needs hint bits WAL-logged (or data checksums, which initdb also enables).
    wal_log_hints: 'on',
    max_wal_senders: 10,
    max_replication_slots: 10,
    wal_keep_size: '256MB',
    // A slot never holds WAL without bound for an absent passive: past this it is invalidated
    // (wal_status = lost) and the passive must be rebuilt (`db --bootstrap --master H --replace`).
    max_slot_wal_keep_size: DEFAULT_MAX_SLOT_WAL_KEEP_SIZE,
    hot_standby: 'on',
    hot_standby_feedback: 'on',
    // A hung (not dead) passive must stop counting as streaming quickly, so the write gate
    // refuses fast instead of every commit waiting out its bound (default would be 60 s).
    wal_sender_timeout: '3s',
    wal_receiver_status_interval: '1s',
    wal_receiver_timeout: `${WAL_RECEIVER_TIMEOUT_MS}ms`,
    // After the walreceiver gave up (a cut longer than wal_receiver_timeout), the next attempt
    // to reach the active comes this soon (default 5 s): with primary_conninfo's
    // tcp_user_timeout, writes resume within ≈ 2 s of a heal. Each failed attempt logs one line
    // on the passive.
    wal_retrieve_retry_interval: '1s',
    password_encryption: 'scram-sha-256',
    logging_collector: 'on',
    log_directory: 'log',
    log_filename: 'postgresql-%a.log',
    log_truncate_on_rotation: 'on',
    log_rotation_age: '1d',
    log_line_prefix: '%m [%p] %q%u@%d ',
    // A blocked synchronous commit must be cancellable by the server; see DESIGN.md "Write path".
    synchronous_commit: 'on',
  };
}

/**
 * Where the instance's unix socket lives: beside the data directory, never inside it — pg_rewind
 * copies every file of the source's data directory and fails on a socket ("No such device or
 * address"). Mode 0700, owned by the PostgreSQL user (local connections are trusted).
 */
export function socketDirFor(dataDir: string): string {
  return `${dataDir.replace(/\/+$/, '')}.sock`;
}

/** libpq's default socket directory on Debian/Ubuntu: `psql -p 11381` without -h looks there. */
export const LIBPQ_DEFAULT_SOCKET_DIR = '/var/run/postgresql';

/**
 * Who may reach the database sockets. pg_hba trusts local connections, so whoever can connect
 * to a socket is the superuser: the sockets belong to the service account's group and have no
 * permissions for others.
 */
export interface SocketAccess {
  /** A second directory for a socket (libpq's default), when PostgreSQL can create files there. */
  sharedDir?: string;
  /** `unix_socket_group`: the service account's primary group. */
  group?: string;
  /** `unix_socket_permissions`; default 0700 (owner only). */
  permissions?: number;
}

/**
 * Socket mode for the service account: 0770 when its primary group is its own (named as the
 * account, as `useradd --user-group` makes it), so root can grant an operator access by adding
 * them to that group; 0700 when the group is shared (e.g. `users`), which would otherwise let
 * every member in as the superuser.
 */
export function socketPermissionsFor(account: { user: string; group: string }): number {
  return account.group === account.user ? 0o770 : 0o700;
}

/** `unix_socket_directories`: comma-separated; a name with a comma, blank or quote is double-quoted. */
export function renderSocketDirectories(dirs: string[]): string {
  return dirs.map((d) => (/[,\s"]/.test(d) ? `"${d.replace(/"/g, '""')}"` : d)).join(',');
}

/** The socket settings of a node: its own directory first (pg_ctl -w checks the first one). */
export function socketSettings(dataDir: string, access: SocketAccess = {}): Record<string, string> {
  const dirs = [socketDirFor(dataDir), ...(access.sharedDir ? [access.sharedDir] : [])];
  return {
    unix_socket_directories: renderSocketDirectories(dirs),
    ...(access.group ? { unix_socket_group: access.group } : {}),
    unix_socket_permissions: `0${(access.permissions ?? 0o700).toString(8)}`,
  };
}

/** Per-node settings; also passed on the command line at start because pg_rewind/basebackup copy postgresql.conf. */
export function nodeSettings(
  port: number,
  listenAddresses: string,
  dataDir: string,
  sockets?: SocketAccess,
): Record<string, string | number> {
  return { port, listen_addresses: listenAddresses, ...socketSettings(dataDir, sockets) };
}

/**
 * Quotes a postgresql.conf value. The config lexer treats backslash as an escape inside quoted
 * strings, so backslashes are doubled as well as quotes (as ALTER SYSTEM does).
 */
export function quoteConfValue(v: string | number): string {
  if (typeof v === 'number') return String(v);
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** Renders settings as postgresql.conf lines under a marker comment. */
export function renderConf(settings: Record<string, string | number>, title: string): string {
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${quoteConfValue(v)}`);
  return `\n# --- ${title} (written by Trustee) ---\n${lines.join('\n')}\n`;
}

export interface HbaRule {
  type: 'local' | 'host' | 'hostssl';
  database: string;
  user: string;
  address?: string;
  method: string;
}

/**
 * Base pg_hba rules: the unix sockets are reachable only by root and the service account's group
 * (private 0700 directory; in /var/run/postgresql a socket of mode 0770 or 0700 owned by that
 * group, see socketSettings) — trust there is equivalent to peer; TCP needs a password.
 */
export function baseHbaRules(): HbaRule[] {
  return [
    { type: 'local', database: 'all', user: 'all', method: 'trust' },
    { type: 'host', database: 'all', user: 'all', address: '127.0.0.1/32', method: 'scram-sha-256' },
    { type: 'host', database: 'all', user: 'all', address: '::1/128', method: 'scram-sha-256' },
  ];
}

/** One pg_hba.conf line, fields tab-separated. */
export function renderHbaLine(r: HbaRule): string {
  return [r.type, r.database, r.user, r.type === 'local' ? '' : (r.address ?? ''), r.method]
    .filter(Boolean)
    .join('\t');
}

export function renderHba(rules: HbaRule[]): string {
  return `# pg_hba.conf written by Trustee; first match wins.\n${rules.map(renderHbaLine).join('\n')}\n`;
}
