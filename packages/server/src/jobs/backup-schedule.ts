/**
 * Scheduled backups (issue 9 part 3): what keytrustee.conf asks for, and the crontab line
 * graphile-worker schedules the backup task from. Pure (no I/O), so the crontab is unit-tested
 * against graphile-worker's own parser.
 */
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ConfigError, type KeytrusteeConf } from '../config';

/** graphile-worker task identifier of a backup run. */
export const BACKUP_TASK = 'trustee_backup';
/**
 * One job key for the schedule and `ktadmin backup-now`: a backup still waiting is replaced (not
 * queued twice); a request made while one runs adds a new job, which waits for that run.
 */
export const BACKUP_JOB_KEY = 'trustee-backup';
/** A named queue runs its jobs one at a time (graphile-worker): two runs never overlap. */
export const BACKUP_QUEUE = 'trustee-backup';
/**
 * Attempts per backup job. graphile-worker retries after exp(attempt) seconds (~3 s, ~7 s);
 * after that the next scheduled run is the retry, and the failure metric has alerted.
 */
export const BACKUP_MAX_ATTEMPTS = 3;
/**
 * `pg_try_advisory_lock(class, id)` held for a whole run (session lock on the worker's own
 * connection): even two workers on one database never dump at the same time. Class "TRST".
 */
export const BACKUP_LOCK = { classId: 0x54525354, objId: 1 } as const;

export interface BackupSettings {
  /** Scheduled backups run only with a recipient: never in cleartext. */
  enabled: boolean;
  /** Crontab time spec, UTC. */
  schedule: string;
  /** Backups of this host kept after each run (`--roll`). */
  keep: number;
  /** Absolute directory the backups are written to. */
  dir: string;
  recipient?: string;
  gnupgHome?: string;
}

/** The backup keys of keytrustee.conf with their defaults; BACKUP_DIR inside the confdir is refused. */
export function backupSettings(confdir: string, conf: KeytrusteeConf): BackupSettings {
  const root = resolve(confdir);
  const dir = conf.BACKUP_DIR ?? join(dirname(root), 'backups');
  const rel = relative(root, dir);
  const outside = rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel);
  if (!outside) {
    // Every backup archives the confdir: backups kept inside it would nest ever larger copies.
    throw new ConfigError(`BACKUP_DIR ${dir} is inside the confdir ${root}; choose a directory outside it`);
  }
  return {
    enabled: !!conf.BACKUP_GPG_RECIPIENT,
    schedule: conf.BACKUP_SCHEDULE.trim().replace(/\s+/g, ' '),
    keep: conf.BACKUP_KEEP,
    dir,
    recipient: conf.BACKUP_GPG_RECIPIENT,
    gnupgHome: conf.BACKUP_GNUPGHOME,
  };
}

/**
 * The crontab graphile-worker runs (one line): the schedule, the task, its job key, queue and
 * attempts, and `{keep: N}` as payload (graphile-worker adds `_cron.ts`). No backfill: a run
 * missed while no node was active is not made up for at start.
 */
export function buildBackupCrontab(s: Pick<BackupSettings, 'schedule' | 'keep'>): string {
  const opts = `jobKey=${BACKUP_JOB_KEY}&jobKeyMode=replace&queue=${BACKUP_QUEUE}&max=${BACKUP_MAX_ATTEMPTS}`;
  return `${s.schedule} ${BACKUP_TASK} ?${opts} ${JSON.stringify({ keep: s.keep })}\n`;
}

/** The job spec `ktadmin backup-now` adds: the same key, queue and attempts as the schedule. */
export function backupJobSpec(): {
  jobKey: string;
  jobKeyMode: 'replace';
  queueName: string;
  maxAttempts: number;
} {
  return {
    jobKey: BACKUP_JOB_KEY,
    jobKeyMode: 'replace',
    queueName: BACKUP_QUEUE,
    maxAttempts: BACKUP_MAX_ATTEMPTS,
  };
}

export type BackupTrigger = 'schedule' | 'backup-now';

export interface BackupPayload {
  trigger: BackupTrigger;
  /** `--roll`; the runner's BACKUP_KEEP when absent or malformed. */
  keep?: number;
}

/** Reads a job payload (from the database, so checked): cron jobs carry `_cron`. */
export function parseBackupPayload(payload: unknown): BackupPayload {
  const p = (typeof payload === 'object' && payload !== null ? payload : {}) as Record<string, unknown>;
  const keep =
    typeof p.keep === 'number' && Number.isInteger(p.keep) && p.keep >= 1 && p.keep <= 9999
      ? p.keep
      : undefined;
  return { trigger: '_cron' in p ? 'schedule' : 'backup-now', keep };
}
