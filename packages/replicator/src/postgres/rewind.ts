/**
 * `pg_rewind`: turns a former primary that diverged (it kept writing, or only crashed, after the
 * other node was promoted) into a copy of the new primary's timeline, so it can follow it as a
 * standby without a full base backup. Needs `wal_log_hints` or checksums (both set at initdb) and
 * a source login with the four file-access functions (granted by `grantRewindAccess`).
 * @see https://www.postgresql.org/docs/current/app-pgrewind.html
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ReplicatorError } from '../errors';
import type { PgInstance } from './instance';
import { writePassfile } from './passfile';
import { readPostmasterPid } from './postmaster';
import { REPLICATION_ROLE, REWIND_DATABASE } from './replication-role';
import { runPgTool } from './run';
import { peerLinkTls, peerTlsHint, renderConninfo } from './standby-config';

export interface RewindOptions {
  /** The new primary, as reachable from this node. */
  sourceHost: string;
  sourcePort: number;
  /** Password of the replication role (goes only into the 0600 passfile). */
  password: string;
  user?: string;
  /** Upper bound; default 30 minutes. */
  timeoutMs?: number;
}

/** The rewind could not run because the histories cannot be joined: a base backup is needed instead. */
export function isRewindImpossible(message: string): boolean {
  return /could not find common ancestor|no common ancestor|source and target clusters are from different systems|target server needs to use either data checksums or "wal_log_hints = on"|could not find previous WAL record/i.test(
    message,
  );
}

/**
 * Rewinds the stopped instance `inst` to the source's timeline. The caller writes the standby
 * configuration afterwards (pg_rewind copies the source's postgresql.auto.conf). An unclean
 * target is first brought to a consistent state by pg_rewind itself (single-user crash recovery).
 */
export async function rewindFrom(
  inst: PgInstance,
  opts: RewindOptions,
): Promise<{ elapsedMs: number; output: string }> {
  const t0 = Date.now();
  const user = opts.user ?? REPLICATION_ROLE;
  const passfile = writePassfile(inst, [
    { host: opts.sourceHost, port: opts.sourcePort, database: '*', user, password: opts.password },
  ]);
  const tls = peerLinkTls(inst, opts.sourceHost);
  const source = renderConninfo({
    host: opts.sourceHost,
    port: opts.sourcePort,
    user,
    dbname: REWIND_DATABASE,
    passfile,
    sslmode: tls.sslMode,
    sslrootcert: tls.sslRootCert,
    channel_binding: tls.channelBinding,
    connect_timeout: 10,
    application_name: 'trustee_rewind',
  });
  // A leftover pid file from a crash makes pg_rewind refuse ("target server must be shut down").
  const running = readPostmasterPid(inst.dataDir);
  if (running) {
    throw new ReplicatorError(
      'INVALID_ARGUMENT',
      `PostgreSQL in ${inst.dataDir} is running (pid ${running}); stop it before pg_rewind`,
    );
  }
  const pidFile = join(inst.dataDir, 'postmaster.pid');
  if (existsSync(pidFile)) rmSync(pidFile);
  try {
    const r = await runPgTool(
      join(inst.binDir, 'pg_rewind'),
      ['--target-pgdata', inst.dataDir, '--source-server', source, '--progress'],
      { runAs: inst.runAs, timeoutMs: opts.timeoutMs ?? 30 * 60_000 },
    );
    return { elapsedMs: Date.now() - t0, output: `${r.stdout}${r.stderr}` };
  } catch (e) {
    const message = (e as Error).message;
    const hint = peerTlsHint(message, opts.sourceHost);
    throw new ReplicatorError(
      isRewindImpossible(message) ? 'REWIND_IMPOSSIBLE' : 'REWIND_FAILED',
      `pg_rewind of ${inst.dataDir} from ${opts.sourceHost}:${opts.sourcePort} failed: ${message}${hint ? `. ${hint}` : ''}`,
      { cause: e },
    );
  }
}
