/**
 * Bootstraps the passive: a streamed base backup of the active through its replication slot,
 * then the standby configuration.
 * @see https://www.postgresql.org/docs/current/app-pgbasebackup.html
 */
import { join } from 'node:path';
import { ReplicatorError } from '../errors';
import { prepareDataDir } from './initdb';
import type { PgInstance } from './instance';
import { writePassfile } from './passfile';
import { REPLICATION_ROLE, slotNameFor } from './replication-role';
import { runPgTool } from './run';
import {
  peerLinkTls,
  peerTlsHint,
  writeStandbyConfig,
  type StandbyConfigOptions,
  type StandbyConfigResult,
} from './standby-config';

const MINUTE_MS = 60_000;

export interface BasebackupOptions extends Omit<StandbyConfigOptions, 'passfile'> {
  /** Password of the replication role; goes only into the 0600 passfile. */
  password: string;
  /** Upper bound for pg_basebackup; default 30 minutes. */
  timeoutMs?: number;
  /**
   * Stream through this physical slot (default: the standby's slot, which must exist). `null`:
   * a temporary slot, e.g. for a copy taken from a passive, which has no slot for us.
   */
  backupSlot?: string | null;
  /** Write the standby configuration afterwards (default true). */
  configureStandby?: boolean;
  /**
   * Replace the slot on the active first: drop it (over the replication protocol, which the
   * replication role may use) and let pg_basebackup create it afresh (`-C`). For rebuilding a
   * passive whose old slot may be invalidated or hold WAL from long ago.
   */
  recreateSlot?: boolean;
}

export interface BasebackupResult extends Partial<StandbyConfigResult> {
  passfile: string;
  slotName: string;
}

/**
 * Copies the active into the (empty or absent) data directory of `inst` and configures it as a
 * standby; the caller then starts it. Refuses a non-empty data directory (DATA_DIR_EXISTS).
 * The slot must already exist on the active (`bootstrapActiveReplication`); `-S` makes the backup's
 * WAL stream use it, so nothing is recycled between the backup and the standby's first start.
 */
export async function takeBasebackup(inst: PgInstance, opts: BasebackupOptions): Promise<BasebackupResult> {
  const user = opts.user ?? REPLICATION_ROLE;
  const slotName = opts.slotName ?? slotNameFor(opts.standbyName);
  prepareDataDir(inst);
  const passfile = writePassfile(inst, [
    { host: opts.primaryHost, port: opts.primaryPort, database: '*', user, password: opts.password },
  ]);
  // Same TLS as the standby's primary_conninfo (peerLinkTls: verify-full with the cluster CA).
  const env: Record<string, string> = {
    PGPASSFILE: passfile,
    // The backup's walsender shows as `<name>_basebackup` in pg_stat_replication, never as the sync standby.
    PGAPPNAME: `${opts.standbyName}_basebackup`,
    PGCONNECT_TIMEOUT: '10',
  };
  const tls = peerLinkTls(inst, opts.primaryHost, opts);
  if (tls.sslMode) env.PGSSLMODE = tls.sslMode;
  if (tls.sslRootCert) env.PGSSLROOTCERT = tls.sslRootCert;
  if (tls.channelBinding) env.PGCHANNELBINDING = tls.channelBinding;
  if (opts.recreateSlot) await dropRemoteSlot(inst, { ...opts, user, slotName, env });
  try {
    await runPgTool(
      join(inst.binDir, 'pg_basebackup'),
      [
        '-h',
        opts.primaryHost,
        '-p',
        String(opts.primaryPort),
        '-U',
        user,
        '-D',
        inst.dataDir,
        '-X',
        'stream',
        ...(opts.backupSlot === null ? [] : ['-S', opts.backupSlot ?? slotName]),
        ...(opts.recreateSlot && opts.backupSlot !== null ? ['-C'] : []),
        '-c',
        'fast',
        ...(opts.configureStandby === false ? [] : ['-R']),
        '--no-password',
      ],
      { runAs: inst.runAs, env, timeoutMs: opts.timeoutMs ?? 30 * MINUTE_MS },
    );
  } catch (e) {
    const message = (e as Error).message;
    const check =
      peerTlsHint(message, opts.primaryHost) ??
      'Check that the active ran the bootstrap for this standby (role, pg_hba, slot) and that the password matches';
    throw new ReplicatorError(
      'REPLICATION_FAILED',
      `base backup from ${opts.primaryHost}:${opts.primaryPort} as ${user} (slot ${slotName}) failed: ${message}. ` +
        `${check}; then empty ${inst.dataDir} and retry.`,
      { cause: e, details: { host: opts.primaryHost, port: opts.primaryPort, slotName } },
    );
  }
  if (opts.configureStandby === false) return { passfile, slotName };
  const config = writeStandbyConfig(inst, { ...opts, user, slotName, passfile });
  return { ...config, passfile, slotName };
}

/**
 * Drops the physical slot on the primary through a replication connection (`pg_receivewal
 * --drop-slot`); a missing slot is fine. A slot still in use (the old passive is running) fails.
 */
async function dropRemoteSlot(
  inst: PgInstance,
  opts: {
    primaryHost: string;
    primaryPort: number;
    user: string;
    slotName: string;
    env: Record<string, string>;
  },
): Promise<void> {
  try {
    await runPgTool(
      join(inst.binDir, 'pg_receivewal'),
      [
        '-h',
        opts.primaryHost,
        '-p',
        String(opts.primaryPort),
        '-U',
        opts.user,
        '--no-password',
        '--drop-slot',
        '-S',
        opts.slotName,
      ],
      { runAs: inst.runAs, env: opts.env, timeoutMs: 60_000 },
    );
  } catch (e) {
    const message = (e as Error).message;
    if (/does not exist/.test(message)) return;
    throw new ReplicatorError(
      'REPLICATION_FAILED',
      `could not drop the old replication slot ${opts.slotName} on ${opts.primaryHost}:${opts.primaryPort}: ${message}. ` +
        `${peerTlsHint(message, opts.primaryHost) ?? 'If the old passive is still running, stop it first'}.`,
      { cause: e },
    );
  }
}
