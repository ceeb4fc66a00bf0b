/**
 * `ktadmin backup-now`: adds the backup job to graphile-worker's queue on the active, with the
 * schedule's job key and queue, so the active's job runner runs it next (after a run in
 * progress, never beside it). The CLI does not take the backup itself: the file appears where
 * scheduled backups do, written by the same code, the same way.
 */
import type * as GraphileWorker from 'graphile-worker';
import { lazyModule } from '../lazy-module';
import { loadKeytrusteeConf } from '../config';
import { hostTag } from '../backup/backup-name';
import { readNodeStatus } from '../node/node-status';
import { BACKUP_TASK, backupJobSpec, backupSettings, type BackupPayload } from './backup-schedule';
import { createJobsPool } from './jobs-pool';

/** Loaded by `ktadmin backup-now` only, not by every ktadmin start (≈ 110 ms). */
const graphileWorker = lazyModule(() => require('graphile-worker') as typeof GraphileWorker);

export class BackupNowError extends Error {
  override name = 'BackupNowError';
  constructor(
    readonly code: 'BACKUPS_OFF' | 'NOT_ACTIVE',
    message: string,
  ) {
    super(message);
  }
}

export interface BackupNowResult {
  jobId: string;
  /** Where the backup will appear, and the shape of its name (ktbackup's, for this host). */
  dir: string;
  filePattern: string;
  keep: number;
  recipient: string;
  /** A job runner is connected to this node's database (keytrusteed runs and is active). */
  runnerConnected: boolean;
}

export async function enqueueBackupNow(confdir: string): Promise<BackupNowResult> {
  const conf = loadKeytrusteeConf(confdir);
  const settings = backupSettings(confdir, conf);
  if (!settings.enabled || !settings.recipient) {
    throw new BackupNowError(
      'BACKUPS_OFF',
      `scheduled backups are off on this node: set BACKUP_GPG_RECIPIENT in ${confdir}/keytrustee.conf and restart keytrusteed (or take one by hand: ktbackup --gpg-recipient NAME)`,
    );
  }
  // The same decision as the server's: only the active runs jobs (a fenced old active does not).
  const status = await readNodeStatus(confdir);
  if (status.role !== 'active') {
    const peer = status.peers[0];
    throw new BackupNowError(
      'NOT_ACTIVE',
      `this node is ${status.role} (${status.reason}); scheduled backups run on the active${peer ? `: run backup-now there (${peer})` : ''}`,
    );
  }
  const pool = createJobsPool(conf, confdir, { max: 2, applicationName: 'ktadmin-backup-now' });
  try {
    // graphile-worker's own lines stay quiet here except errors (the CLI prints the outcome).
    const logger = new graphileWorker.Logger(() => (level, message) => {
      if (level === 'error') process.stderr.write(`graphile-worker: ${message}\n`);
    });
    const utils = await graphileWorker.makeWorkerUtils({ pgPool: pool, logger });
    try {
      const payload: BackupPayload = { trigger: 'backup-now', keep: settings.keep };
      const job = await utils.addJob(BACKUP_TASK, payload, backupJobSpec());
      const { rows } = await pool.query<{ n: number }>(
        "select count(*)::int as n from pg_stat_activity where application_name = 'keytrusteed-jobs' and datname = current_database()",
      );
      return {
        jobId: job.id,
        dir: settings.dir,
        filePattern: `kts_bak_${hostTag(conf.HOST)}_<YYYY-MM-DD_HH-MM-SS>.tar.gpg`,
        keep: settings.keep,
        recipient: settings.recipient,
        runnerConnected: rows[0].n > 0,
      };
    } finally {
      await utils.release();
    }
  } finally {
    await pool.end().catch(() => undefined);
  }
}
