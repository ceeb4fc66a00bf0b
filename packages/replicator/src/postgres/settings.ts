/**
 * postgresql.conf / pg_hba.conf rendering. Pure functions so the exact text is unit-tested.
 */

/** Default cap on WAL a replication slot may hold for an absent passive (keytrustee.conf MAX_SLOT_WAL_KEEP_SIZE). */
export const DEFAULT_MAX_SLOT_WAL_KEEP_SIZE = '4GB';

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
    wal_receiver_timeout: '5s',
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

/** Per-node settings; also passed on the command line at start because pg_rewind/basebackup copy postgresql.conf. */
export function nodeSettings(
  port: number,
  listenAddresses: string,
  dataDir: string,
): Record<string, string | number> {
  return { port, listen_addresses: listenAddresses, unix_socket_directories: socketDirFor(dataDir) };
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
 * Base pg_hba rules: the unix socket lives in the 0700 data directory, so only the PostgreSQL
 * OS user (and root) can reach it — trust there is equivalent to peer; TCP needs a password.
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
