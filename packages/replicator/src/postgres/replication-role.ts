/**
 * Active-side replication access: the replication role, pg_hba entries for the passive and one
 * physical replication slot per standby.
 * @see https://www.postgresql.org/docs/current/warm-standby.html#STREAMING-REPLICATION-SLOTS
 */
import { chownSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { DatabaseError, escapeIdentifier, type Client } from 'pg';
import { ReplicatorError } from '../errors';
import { connectLocal, ensureRole } from './database';
import type { PgInstance } from './instance';
import { renderHbaLine, type HbaRule } from './settings';

/** Role the passive's pg_basebackup and walreceiver log in as (as in the original product). */
export const REPLICATION_ROLE = 'replicator';

/** Database pg_rewind connects to on the source (any database works; this one always exists). */
export const REWIND_DATABASE = 'postgres';

/** PostgreSQL limit on slot names (NAMEDATALEN - 1). */
const MAX_SLOT_NAME_LENGTH = 63;

/** SQLSTATE 42710 duplicate_object: a concurrent caller created the slot first. */
const DUPLICATE_OBJECT = '42710';

/**
 * Slot name for a standby: PostgreSQL allows only `[a-z0-9_]`, so the name is lower-cased and
 * every other character becomes `_` (`node-b` → `node_b`, matching its application_name).
 */
export function slotNameFor(standbyName: string): string {
  const slot = standbyName
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, MAX_SLOT_NAME_LENGTH);
  if (!/[a-z0-9]/.test(slot)) {
    throw new ReplicatorError(
      'INVALID_ARGUMENT',
      `standby name "${standbyName}" has no letters or digits to name a slot after`,
    );
  }
  return slot;
}

/** True for 127.0.0.0/8, ::1 and `localhost`: peers on this machine (the local two-node cluster). */
export function isLoopbackAddress(address: string): boolean {
  const a = address.trim().toLowerCase();
  if (a === 'localhost' || a === '::1' || a === '0:0:0:0:0:0:0:1') return true;
  return isIP(a) === 4 && a.startsWith('127.');
}

export interface ReplicationHbaOptions {
  /** Replication role; default `replicator`. */
  role?: string;
  /**
   * Accept replication from a non-loopback peer without TLS (`host` instead of `hostssl`).
   * Default false: WAL carries every row, so off-host it must travel encrypted; this requires
   * `ssl = on` with a certificate on the active.
   */
  insecurePlaintextReplication?: boolean;
}

/**
 * pg_hba rules letting the passive at `peerAddress` stream WAL with SCRAM. A loopback peer gets
 * `host` entries for both 127.0.0.1 and ::1; another peer gets one `hostssl` entry for its
 * address (/32 or /128; a host name is written as is, which PostgreSQL resolves both ways).
 */
export function replicationHbaRules(peerAddress: string, opts: ReplicationHbaOptions = {}): HbaRule[] {
  const role = opts.role ?? REPLICATION_ROLE;
  const rule = (type: HbaRule['type'], address: string): HbaRule => ({
    type,
    database: 'replication',
    user: role,
    address,
    method: 'scram-sha-256',
  });
  if (isLoopbackAddress(peerAddress)) return [rule('host', '127.0.0.1/32'), rule('host', '::1/128')];
  const addr = peerAddress.trim();
  const cidr = isIP(addr) === 4 ? `${addr}/32` : isIP(addr) === 6 ? `${addr}/128` : addr;
  return [rule(opts.insecurePlaintextReplication ? 'host' : 'hostssl', cidr)];
}

/**
 * The same peer may also run `pg_rewind` against this node (after a promotion the roles swap):
 * pg_rewind logs in to an ordinary database, so it needs its own lines.
 */
export function rewindHbaRules(peerAddress: string, opts: ReplicationHbaOptions = {}): HbaRule[] {
  return replicationHbaRules(peerAddress, opts).map((r) => ({ ...r, database: REWIND_DATABASE }));
}

/**
 * Lets `role` run pg_rewind against this primary without being a superuser (the documented
 * minimal grants). Idempotent; replicates to the standby like any catalog change.
 * @see https://www.postgresql.org/docs/current/app-pgrewind.html
 */
export async function grantRewindAccess(client: Client, role: string = REPLICATION_ROLE): Promise<void> {
  const r = escapeIdentifier(role);
  for (const fn of [
    'pg_catalog.pg_ls_dir(text, boolean, boolean)',
    'pg_catalog.pg_stat_file(text, boolean)',
    'pg_catalog.pg_read_binary_file(text)',
    'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)',
  ]) {
    await client.query(`grant execute on function ${fn} to ${r}`);
  }
}

/** Appends the rules missing from an existing pg_hba.conf text (whitespace-insensitive); keeps everything else. */
export function mergeHbaRules(existing: string, rules: HbaRule[]): string {
  const normalize = (line: string) => line.trim().split(/\s+/).join(' ');
  const present = new Set(existing.split('\n').map(normalize));
  const missing = rules.map(renderHbaLine).filter((line) => !present.has(normalize(line)));
  if (missing.length === 0) return existing;
  const base = existing.endsWith('\n') || existing === '' ? existing : `${existing}\n`;
  return `${base}# replication access (written by Trustee)\n${missing.join('\n')}\n`;
}

/**
 * Creates the physical slot unless it exists. `immediately_reserve` so WAL is kept from now on,
 * before the standby first connects. Returns true when it was created.
 */
export async function ensureReplicationSlot(client: Client, slotName: string): Promise<boolean> {
  try {
    const { rowCount } = await client.query(
      `select pg_create_physical_replication_slot($1::name, true)
        where not exists (select 1 from pg_replication_slots where slot_name = $1::name)`,
      [slotName],
    );
    return rowCount === 1;
  } catch (e) {
    if (e instanceof DatabaseError && e.code === DUPLICATE_OBJECT) return false;
    throw e;
  }
}

/** Drops the slot if it exists and is not in use (an abandoned slot keeps WAL forever). Returns true when dropped. */
export async function dropReplicationSlot(client: Client, slotName: string): Promise<boolean> {
  const { rowCount } = await client.query(
    `select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1::name and not active`,
    [slotName],
  );
  return rowCount === 1;
}

export interface ActiveReplicationOptions extends ReplicationHbaOptions {
  /** Name of the passive; becomes its application_name and (sanitised) its slot name. */
  standbyName: string;
  /** Address the passive connects from (IP or host name). */
  peerAddress: string;
  /** Password of the replication role (SCRAM-hashed by PostgreSQL; never logged). */
  password: string;
}

export interface ActiveReplicationResult {
  role: string;
  slotName: string;
  slotCreated: boolean;
  hbaRules: HbaRule[];
}

/**
 * On the running active: creates/updates the replication role, adds the pg_hba rules for the
 * passive, reloads and checks PostgreSQL accepted the file, and creates the standby's slot.
 * Idempotent: running it again changes nothing but the password.
 */
export async function bootstrapActiveReplication(
  inst: PgInstance,
  opts: ActiveReplicationOptions,
): Promise<ActiveReplicationResult> {
  const role = opts.role ?? REPLICATION_ROLE;
  const slotName = slotNameFor(opts.standbyName);
  const hbaRules = [
    ...replicationHbaRules(opts.peerAddress, opts),
    ...rewindHbaRules(opts.peerAddress, opts),
  ];
  const client = await connectLocal(inst, 'postgres');
  try {
    await assertTlsAvailable(client, hbaRules, opts.peerAddress);
    await ensureRole(client, role, { password: opts.password, replication: true });
    await grantRewindAccess(client, role);
    addHbaRules(inst, hbaRules);
    await client.query('select pg_reload_conf()');
    await assertHbaValid(client);
    const slotCreated = await ensureReplicationSlot(client, slotName);
    return { role, slotName, slotCreated, hbaRules };
  } finally {
    await client.end();
  }
}

/**
 * Lets the peer stream from (and pg_rewind against) this node once it is promoted: a passive
 * carries the rules for its active from the start, so a promotion needs no pg_hba edit. File
 * only; takes effect at the next start or reload.
 */
export function addPeerHbaRules(
  inst: PgInstance,
  peerAddress: string,
  opts: ReplicationHbaOptions = {},
): void {
  addHbaRules(inst, [...replicationHbaRules(peerAddress, opts), ...rewindHbaRules(peerAddress, opts)]);
}

function addHbaRules(inst: PgInstance, rules: HbaRule[]): void {
  const file = join(inst.dataDir, 'pg_hba.conf');
  const before = readFileSync(file, 'utf8');
  const after = mergeHbaRules(before, rules);
  if (after === before) return;
  writeFileSync(file, after, { mode: 0o600 });
  if (inst.runAs) chownSync(file, inst.runAs.uid, inst.runAs.gid);
}

/**
 * PostgreSQL keeps a `hostssl` line it can never match when `ssl` is off (only a log line says so);
 * refuse before touching pg_hba.conf so the operator learns why replication would fail.
 */
async function assertTlsAvailable(client: Client, rules: HbaRule[], peerAddress: string): Promise<void> {
  if (!rules.some((r) => r.type === 'hostssl')) return;
  const { rows } = await client.query<{ ssl: string }>("select current_setting('ssl') as ssl");
  if (rows[0].ssl !== 'on') {
    throw new ReplicatorError(
      'REPLICATION_FAILED',
      `replication from ${peerAddress} must use TLS, but ssl is off on this PostgreSQL; ` +
        'configure ssl = on with ssl_cert_file/ssl_key_file, or accept plaintext with insecurePlaintextReplication',
    );
  }
}

/** A bad pg_hba.conf is only logged on reload (and the old rules stay in force); surface it instead. */
async function assertHbaValid(client: Client): Promise<void> {
  const { rows } = await client.query<{ line_number: number; error: string }>(
    'select line_number, error from pg_hba_file_rules where error is not null',
  );
  if (rows.length > 0) {
    const where = rows.map((r) => `line ${r.line_number}: ${r.error}`).join('; ');
    throw new ReplicatorError(
      'REPLICATION_FAILED',
      `pg_hba.conf has errors after adding replication rules (${where}); fix the file and reload`,
    );
  }
}
