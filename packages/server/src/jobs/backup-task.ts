/**
 * The graphile-worker task of a scheduled backup: `createBackup` (the code behind `ktbackup`)
 * under an advisory lock, encrypted to BACKUP_GPG_RECIPIENT, rolled to BACKUP_KEEP, with the
 * backup metrics. A failure is logged with its reason and counted, then rethrown so that
 * graphile-worker retries it (BACKUP_MAX_ATTEMPTS).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Task } from 'graphile-worker';
import { ensurePgOsUser } from '@trustee/replicator';
import { createBackup } from '../backup/create-backup';
import { backupBaseName, hostTag, parseBackupName } from '../backup/backup-name';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import { BACKUP_LOCK, parseBackupPayload, type BackupSettings } from './backup-schedule';

export interface BackupTaskOptions {
  confdir: string;
  /** keytrustee.conf HOST: backup names carry it. */
  host: string;
  settings: BackupSettings;
  metrics: Metrics;
  log: Logger;
}

/** The lock was held by another session: not a failed backup, the job is retried later. */
export class BackupLockedError extends Error {
  override name = 'BackupLockedError';
}

export function createBackupTask(opts: BackupTaskOptions): Task {
  const { settings, metrics, log } = opts;
  return async (payload, helpers) => {
    const { trigger, keep = settings.keep } = parseBackupPayload(payload);
    const job = helpers.job;
    const fields = { jobId: job.id, trigger, attempt: job.attempts, maxAttempts: job.max_attempts };
    await helpers.withPgClient(async (client) => {
      const { rows } = await client.query<{ locked: boolean }>(
        'select pg_try_advisory_lock($1::int, $2::int) as locked',
        [BACKUP_LOCK.classId, BACKUP_LOCK.objId],
      );
      if (!rows[0].locked) {
        log.warn(fields, 'another backup holds the backup lock; this job is retried later');
        throw new BackupLockedError('another backup run holds the backup lock');
      }
      const t0 = Date.now();
      try {
        // Pick-up latency: from when the job was due until this worker started it.
        log.info(
          { ...fields, dir: settings.dir, pickupMs: t0 - new Date(job.run_at).getTime() },
          'backup started',
        );
        const r = await createBackup({
          confdir: opts.confdir,
          now: await unusedBackupTime(settings.dir, opts.host),
          output: settings.dir,
          gpgRecipient: settings.recipient,
          gnupgHome: settings.gnupgHome ?? serviceAccountKeyring(),
          roll: keep,
        });
        metrics.backupDuration.set(r.elapsedMs / 1000);
        metrics.backupLastSuccess.set(Date.now() / 1000);
        log.info(
          {
            ...fields,
            path: r.path,
            bytes: r.bytes,
            deposits: r.manifest.deposits,
            recipient: r.recipientFingerprint,
            rolled: r.rolled.length,
            elapsedMs: r.elapsedMs,
          },
          'backup written',
        );
      } catch (e) {
        metrics.backupDuration.set((Date.now() - t0) / 1000);
        metrics.backupFailures.inc();
        const err = e as Error & { code?: string };
        log.error(
          {
            ...fields,
            code: typeof err.code === 'string' ? err.code : undefined,
            reason: err.message,
            retry: job.attempts < job.max_attempts,
          },
          'backup failed',
        );
        throw e;
      } finally {
        // The lock ends with the session anyway; an unlock error must not hide the backup's outcome.
        await client
          .query('select pg_advisory_unlock($1::int, $2::int)', [BACKUP_LOCK.classId, BACKUP_LOCK.objId])
          .catch(() => undefined);
      }
    });
  };
}

/**
 * A time whose backup name is free in `dir`. Names have one-second resolution, and a second run
 * in the same second (backup-now right after a run) would replace the first file on rename.
 * Runs never overlap, so waiting for the next second is enough (~1 s; at most 4 s).
 */
async function unusedBackupTime(dir: string, host: string): Promise<Date> {
  for (let tries = 1; ; tries++) {
    const now = new Date();
    const base = join(dir, backupBaseName(host, now));
    // Bounded: only a clock set back onto older files could collide again.
    if (tries === 5 || (!existsSync(`${base}.tar.gpg`) && !existsSync(`${base}.tar`))) return now;
    await new Promise((r) => setTimeout(r, 1005 - now.getMilliseconds()));
  }
}

/**
 * When the newest backup of this host in `dir` was written (mtime, seconds since the epoch);
 * undefined when there is none. Seeds the last-success metric at start.
 */
export function newestBackupTime(dir: string, host: string): number | undefined {
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    return undefined;
  }
  let newest: number | undefined;
  for (const f of files) {
    if (parseBackupName(f)?.host !== hostTag(host)) continue;
    try {
      const t = statSync(join(dir, f)).mtimeMs / 1000;
      if (newest === undefined || t > newest) newest = t;
    } catch {
      // removed meanwhile (--roll)
    }
  }
  return newest;
}

/**
 * Where the seed imports the recipient's key (`sudo -u keytrustee gpg --import KEY`): the service
 * account's keyring, used when BACKUP_GNUPGHOME is unset (keytrusteed runs as root, whose own
 * keyring would not have the key).
 */
function serviceAccountKeyring(): string | undefined {
  const account = ensurePgOsUser();
  const dir = account ? join(account.home, '.gnupg') : undefined;
  return dir && existsSync(dir) ? dir : undefined;
}
