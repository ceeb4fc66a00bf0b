/**
 * Standby configuration for the PostgreSQL major in use.
 *  - >= 12: `standby.signal` plus `primary_conninfo` / `primary_slot_name` in postgresql.auto.conf
 *    (`recovery_target_timeline` already defaults to `latest`).
 *  - <= 11: `recovery.conf` with `standby_mode = 'on'`.
 * `pg_basebackup -R` / `pg_rewind -R` write a primary_conninfo *without* application_name (NOTES.md),
 * so the standby would show up as `walreceiver` and never become `sync`; we always rewrite it.
 * @see https://www.postgresql.org/docs/current/runtime-config-replication.html#RUNTIME-CONFIG-REPLICATION-STANDBY
 */
import { chownSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ReplicatorError } from '../errors';
import type { PgInstance } from './instance';
import { passfilePath } from './passfile';
import { isLoopbackAddress, REPLICATION_ROLE, slotNameFor } from './replication-role';
import { quoteConfValue, WAL_RECEIVER_TIMEOUT_MS } from './settings';

/** First major where recovery.conf was replaced by standby.signal + ordinary settings. */
const STANDBY_SIGNAL_MIN_MAJOR = 12;

export type StandbyConfigKind = 'standby.signal' | 'recovery.conf';

export interface StandbyConfigOptions {
  /** Host of the active as reachable from this passive. */
  primaryHost: string;
  /** PostgreSQL port of the active. */
  primaryPort: number;
  /** This passive's name: its application_name, listed in the active's synchronous_standby_names. */
  standbyName: string;
  /** Physical slot on the active; default `slotNameFor(standbyName)`. */
  slotName?: string;
  /** Replication role; default `replicator`. */
  user?: string;
  /** libpq password file; default `passfilePath(inst)` when writing for an instance. */
  passfile?: string;
  /** libpq sslmode; default from `peerLinkTls` (verify-full when the instance has a replication CA). */
  sslMode?: SslMode;
  /** CA file for `verify-ca` / `verify-full`. */
  sslRootCert?: string;
  /** libpq channel_binding; `require` with verify-full (SCRAM bound to the server's certificate). */
  channelBinding?: 'disable' | 'prefer' | 'require';
}

export type SslMode = 'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

/** TLS parameters of one connection to the peer's PostgreSQL. */
export type PeerLinkTls = Pick<StandbyConfigOptions, 'sslMode' | 'sslRootCert' | 'channelBinding'>;

/**
 * How this node connects to its peer. With a replication CA (`inst.replicationCa`):
 * `verify-full` (the peer's certificate must be issued by the cluster CA for the host name or
 * address dialled) and `channel_binding=require` (SCRAM-SHA-256-PLUS: the password exchange is
 * bound to that TLS session, so a relay cannot forward it into a session of its own). Without
 * one (a node set up before the CA existed): `require` off-host, libpq's default on loopback.
 * Explicit `given` settings win.
 */
export function peerLinkTls(
  inst: Pick<PgInstance, 'replicationCa'> | undefined,
  peerHost: string,
  given: PeerLinkTls = {},
): PeerLinkTls {
  if (given.sslMode) return given;
  if (inst?.replicationCa) {
    return { sslMode: 'verify-full', sslRootCert: inst.replicationCa, channelBinding: 'require' };
  }
  return { sslMode: isLoopbackAddress(peerHost) ? undefined : 'require' };
}

/**
 * Quotes one conninfo value: bare when it has no space, quote or backslash, else in single quotes
 * with `'` and `\` backslash-escaped (libpq's rules).
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING-KEYWORD-VALUE
 */
export function quoteConninfoValue(value: string | number): string {
  const v = String(value);
  if (v !== '' && !/[\s'\\]/.test(v)) return v;
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** `key=value` pairs joined by spaces; undefined values are left out. */
export function renderConninfo(params: Record<string, string | number | undefined>): string {
  return Object.entries(params)
    .filter((kv): kv is [string, string | number] => kv[1] !== undefined)
    .map(([k, v]) => `${k}=${quoteConninfoValue(v)}`)
    .join(' ');
}

/**
 * When a libpq error says the peer failed TLS verification or channel binding, what the operator
 * should check (else undefined). libpq's own words stay in the message; this names our files.
 */
export function peerTlsHint(message: string, host: string): string | undefined {
  if (
    !/certificate verify failed|does not match host name|channel binding|server does not support SSL|SSL error/i.test(
      message,
    )
  ) {
    return undefined;
  }
  return (
    `the PostgreSQL at ${host} did not prove it is this cluster's peer: its certificate is not issued by this cluster's ` +
    `replication CA (trustee-replication-ca.crt, copied with the confdir) for the name or address dialled (${host}). ` +
    `Check that ${host} is the right node and that both confdirs hold the same replication CA`
  );
}

/**
 * libpq's `tcp_user_timeout` (ms) on the walreceiver's connection to the active: how long sent
 * data — a SYN included (Linux) — may stay unacknowledged before the kernel drops the
 * connection. After a silent partition (packets dropped, no RST) longer than
 * wal_receiver_timeout, the walreceiver reconnects, and its connect waited out TCP's SYN backoff
 * (1, 3, 7, 15, 31 s… after the first SYN) because the walreceiver ignores `connect_timeout` (it
 * polls the connect without a deadline): a 25-s cut kept writes refused 15.6 s after the heal.
 * Now an attempt ends after 5 s (SYNs at 0, 1 and 3 s) and a fresh one follows at once
 * (wal_retrieve_retry_interval 1 s, settings.ts), so a packet leaves at most ≈ 2 s after any heal
 * (tests/partition.test.ts: 0.3 s after an 18-s cut). The value is wal_receiver_timeout's: on an
 * established link it ends nothing that timeout would not end (2 s cost short cuts writes:
 * a 1.5-s cut then dropped the link instead of only delaying the commits).
 */
export const PRIMARY_TCP_USER_TIMEOUT_MS = WAL_RECEIVER_TIMEOUT_MS;

/** The standby's primary_conninfo: no password, `passfile=` instead. */
export function renderPrimaryConninfo(opts: StandbyConfigOptions): string {
  const tls = peerLinkTls(undefined, opts.primaryHost, opts);
  return renderConninfo({
    host: opts.primaryHost,
    port: opts.primaryPort,
    user: opts.user ?? REPLICATION_ROLE,
    application_name: opts.standbyName,
    passfile: opts.passfile,
    tcp_user_timeout: PRIMARY_TCP_USER_TIMEOUT_MS,
    sslmode: tls.sslMode,
    sslrootcert: tls.sslRootCert,
    channel_binding: tls.channelBinding,
  });
}

/** primary_conninfo and primary_slot_name as settings (>= 12). */
export function standbySettings(opts: StandbyConfigOptions): Record<string, string> {
  return {
    primary_conninfo: renderPrimaryConninfo(opts),
    primary_slot_name: opts.slotName ?? slotNameFor(opts.standbyName),
  };
}

/**
 * postgresql.auto.conf with `settings` replacing any earlier lines for the same keys (the last
 * setting would win anyway; removing them keeps the file readable and stops repeated calls growing it).
 */
export function renderAutoConf(existing: string, settings: Record<string, string | number>): string {
  const keys = new Set(Object.keys(settings));
  const kept = existing.split('\n').filter((line) => {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?/.exec(line);
    return !(m && keys.has(m[1].toLowerCase()));
  });
  while (kept.length > 0 && kept[kept.length - 1].trim() === '') kept.pop();
  const added = Object.entries(settings).map(([k, v]) => `${k} = ${quoteConfValue(v)}`);
  return `${[...kept, ...added].join('\n')}\n`;
}

/** recovery.conf for PostgreSQL <= 11. */
export function renderRecoveryConf(opts: StandbyConfigOptions): string {
  const s = standbySettings(opts);
  const lines = [
    '# recovery.conf written by Trustee (PostgreSQL <= 11 standby)',
    `standby_mode = ${quoteConfValue('on')}`,
    `primary_conninfo = ${quoteConfValue(s.primary_conninfo)}`,
    `primary_slot_name = ${quoteConfValue(s.primary_slot_name)}`,
    `recovery_target_timeline = ${quoteConfValue('latest')}`,
  ];
  return `${lines.join('\n')}\n`;
}

/** Which mechanism a PostgreSQL major uses. */
export function standbyConfigKind(major: number): StandbyConfigKind {
  return major >= STANDBY_SIGNAL_MIN_MAJOR ? 'standby.signal' : 'recovery.conf';
}

/** Major version of the cluster in `dataDir`, from its PG_VERSION file (`15`, or `9.6` → 9). */
export function readPgMajor(dataDir: string): number {
  const file = join(dataDir, 'PG_VERSION');
  if (!existsSync(file)) {
    throw new ReplicatorError(
      'DATA_DIR_INACCESSIBLE',
      `${dataDir} holds no PostgreSQL cluster (PG_VERSION missing)`,
    );
  }
  const major = Number(readFileSync(file, 'utf8').trim().split('.')[0]);
  if (!Number.isInteger(major) || major <= 0) {
    throw new ReplicatorError('PG_VERSION_UNSUPPORTED', `cannot read the PostgreSQL version from ${file}`);
  }
  return major;
}

export interface StandbyConfigResult {
  kind: StandbyConfigKind;
  /** Files written or updated. */
  files: string[];
}

/**
 * Makes the (stopped) instance a standby of the primary: writes the configuration for its major
 * version, owned by the PostgreSQL OS user. Safe to repeat, e.g. after `pg_basebackup -R` or
 * `pg_rewind -R`.
 */
export function writeStandbyConfig(inst: PgInstance, opts: StandbyConfigOptions): StandbyConfigResult {
  const full: StandbyConfigOptions = {
    ...opts,
    ...peerLinkTls(inst, opts.primaryHost, opts),
    passfile: opts.passfile ?? passfilePath(inst),
  };
  const kind = standbyConfigKind(readPgMajor(inst.dataDir));
  if (kind === 'recovery.conf') {
    const file = join(inst.dataDir, 'recovery.conf');
    writeOwned(inst, file, renderRecoveryConf(full));
    return { kind, files: [file] };
  }
  const autoConf = join(inst.dataDir, 'postgresql.auto.conf');
  const existing = existsSync(autoConf) ? readFileSync(autoConf, 'utf8') : '';
  writeOwned(inst, autoConf, renderAutoConf(existing, standbySettings(full)));
  const signal = join(inst.dataDir, 'standby.signal');
  writeOwned(inst, signal, '');
  return { kind, files: [autoConf, signal] };
}

function writeOwned(inst: PgInstance, file: string, text: string): void {
  const tmp = `${file}.trustee-tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  if (inst.runAs) chownSync(tmp, inst.runAs.uid, inst.runAs.gid);
  renameSync(tmp, file);
}

/**
 * Removes what makes the stopped instance start as a standby (standby.signal, recovery.signal,
 * recovery.conf, primary_conninfo / primary_slot_name). Returns the files it changed.
 */
export function clearStandbyConfig(inst: PgInstance): string[] {
  const changed: string[] = [];
  for (const f of ['standby.signal', 'recovery.signal', 'recovery.conf']) {
    const file = join(inst.dataDir, f);
    if (existsSync(file)) {
      rmSync(file);
      changed.push(file);
    }
  }
  const autoConf = join(inst.dataDir, 'postgresql.auto.conf');
  if (existsSync(autoConf)) {
    const before = readFileSync(autoConf, 'utf8');
    const after = before
      .split('\n')
      .filter((line) => !/^\s*(primary_conninfo|primary_slot_name)\s*=?/i.test(line))
      .join('\n');
    if (after !== before) {
      writeOwned(inst, autoConf, after);
      changed.push(autoConf);
    }
  }
  return changed;
}

/** True when the data directory is configured to start as a standby. */
export function hasStandbyConfig(dataDir: string): boolean {
  return ['standby.signal', 'recovery.conf'].some((f) => existsSync(join(dataDir, f)));
}

/** Reads one value of postgresql.conf syntax: a quoted string (`''` and backslash escapes) or a bare word. */
export function parseConfValue(text: string): string {
  const t = text.trim();
  if (!t.startsWith("'")) return t.split(/\s|#/)[0];
  let out = '';
  for (let i = 1; i < t.length; i++) {
    const ch = t[i];
    if (ch === "'" && t[i + 1] === "'") {
      out += "'";
      i++;
    } else if (ch === "'") {
      return out;
    } else if (ch === '\\' && i + 1 < t.length) {
      out += t[++i];
    } else {
      out += ch;
    }
  }
  throw new ReplicatorError('INVALID_ARGUMENT', 'unterminated quoted value in postgresql.auto.conf');
}

/**
 * Splits a keyword/value conninfo (libpq's syntax: `key=value`, values bare or single-quoted
 * with backslash escapes) into pairs, in order.
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING-KEYWORD-VALUE
 */
export function parseConninfo(conninfo: string): [string, string][] {
  const pairs: [string, string][] = [];
  const re = /\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*/y;
  let i = 0;
  while (i < conninfo.length) {
    if (/^\s*$/.test(conninfo.slice(i))) break;
    re.lastIndex = i;
    const m = re.exec(conninfo);
    if (!m)
      throw new ReplicatorError(
        'INVALID_ARGUMENT',
        `cannot parse primary_conninfo near "${conninfo.slice(i, i + 20)}"`,
      );
    i = re.lastIndex;
    let value = '';
    if (conninfo[i] === "'") {
      i++;
      while (i < conninfo.length && conninfo[i] !== "'") {
        if (conninfo[i] === '\\' && i + 1 < conninfo.length) i++;
        value += conninfo[i++];
      }
      if (conninfo[i] !== "'")
        throw new ReplicatorError('INVALID_ARGUMENT', 'unterminated quoted value in primary_conninfo');
      i++;
    } else {
      while (i < conninfo.length && !/\s/.test(conninfo[i])) value += conninfo[i++];
    }
    pairs.push([m[1], value]);
  }
  return pairs;
}

/**
 * A standby set up before the replication CA existed connects with `sslmode=require` (or
 * libpq's default on loopback), which does not authenticate the active. When the stopped
 * instance has a replication CA, rewrites its primary_conninfo with `peerLinkTls` (everything
 * else kept). Returns true when it changed the file. PostgreSQL >= 12 (postgresql.auto.conf) only.
 */
export function upgradeStandbyTls(inst: PgInstance): boolean {
  if (!inst.replicationCa || !existsSync(join(inst.dataDir, 'standby.signal'))) return false;
  const autoConf = join(inst.dataDir, 'postgresql.auto.conf');
  if (!existsSync(autoConf)) return false;
  const text = readFileSync(autoConf, 'utf8');
  let current: string | undefined;
  for (const line of text.split('\n')) {
    const m = /^\s*primary_conninfo\s*=?\s*(.*)$/i.exec(line);
    if (m) current = parseConfValue(m[1]);
  }
  if (current === undefined) return false;
  const pairs = parseConninfo(current);
  const tls = peerLinkTls(inst, pairs.find(([k]) => k === 'host')?.[1] ?? '');
  const wanted: Record<string, string | undefined> = {
    sslmode: tls.sslMode,
    sslrootcert: tls.sslRootCert,
    channel_binding: tls.channelBinding,
  };
  const params: Record<string, string | undefined> = {};
  for (const [k, v] of pairs) params[k] = v;
  if (Object.entries(wanted).every(([k, v]) => params[k] === v)) return false;
  const next = renderConninfo({ ...params, ...wanted });
  writeOwned(inst, autoConf, renderAutoConf(text, { primary_conninfo: next }));
  return true;
}
