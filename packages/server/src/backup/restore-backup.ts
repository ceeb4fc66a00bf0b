/**
 * `ktadmin restore --from FILE`: a node back from a ktbackup file. Decrypts and checks the
 * archive, refuses to overwrite a running or non-empty node unless forced (then the old confdir
 * and data directory are kept aside, never deleted), restores the confdir, creates a fresh
 * PostgreSQL cluster, loads the dump, brings the schema up to date, checks the row counts
 * against the manifest, and prepares replication for the passive named in the configuration.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  connectLocal,
  createPgInstance,
  ensureDatabase,
  ensureRole,
  initDataDir,
  readPostmasterPid,
  REPLICATION_ROLE,
  runMigrations,
  socketDirFor,
  startPostgres,
  stopPostgres,
  DB_NAME,
  DB_SUPERUSER,
  type PgInstance,
} from '@trustee/replicator';
import { CONF_FILE, confPaths } from '../confdir/paths';
import { deriveJournalKey } from '../journal/derive-journal-key';
import { replayJournal, type ReplayResult } from '../journal/replay-journal';
import { updateKeytrusteeConf } from '../confdir/update-conf';
import { giveConfdirToServiceAccount } from '../confdir/service-account';
import {
  addStandbyOnActive,
  isEmptyDir,
  moveAside,
  nodeInstance,
  replicationPassword,
} from '../node/bootstrap-db';
import { MIGRATIONS_DIR } from '../package-info';
import { ensureAppRole } from '../db/node-db';
import type { BackupManifest } from './create-backup';
import { decryptBackup, readBackupArchive, writeConfdir, type DecryptOptions } from './read-archive';
import { BackupError } from './recipient-key';

export interface RestoreOptions extends DecryptOptions {
  /** Target confdir (ktadmin --confdir). */
  confdir: string;
  /** The backup file (`.tar.gpg` or `.tar`). */
  from: string;
  /** Data directory to create; default the backup's DB_ROOTDIR. */
  pgRootdir?: string;
  /** PostgreSQL port; default the backup's DB_PORT. */
  port?: number;
  /** Keep a non-empty target aside and restore over it (stops its PostgreSQL first). */
  force?: boolean;
  /** Prepare replication for this passive (HOST[:PORT]); default REPLICATION_SLAVE of the backup's conf. */
  slave?: string;
  /** Change journal to replay after the dump: every write acknowledged after the backup comes back. */
  journal?: string;
  /** Replay across a recorded journal gap (the gap's writes are lost); default refuse (JOURNAL_GAP). */
  allowGap?: boolean;
  onStep?: (message: string) => void;
}

export interface RestoreResult {
  manifest: BackupManifest;
  inst: PgInstance;
  keptAside: string[];
  counts: { deposits: number; clients: number; orgs: number };
  /** What the journal replay applied, when --journal was given. */
  journal?: ReplayResult;
  elapsedMs: number;
}

/** Loads a plain pg_dump file with psql in one transaction, stopping at the first error. */
function loadDump(inst: PgInstance, sqlPath: string): void {
  const r = spawnSync(
    join(inst.binDir, 'psql'),
    [
      '-X',
      '-q',
      '-v',
      'ON_ERROR_STOP=1',
      '--single-transaction',
      '-h',
      socketDirFor(inst.dataDir),
      '-p',
      String(inst.port),
      '-U',
      DB_SUPERUSER,
      '-d',
      DB_NAME,
      '-f',
      sqlPath,
    ],
    {
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        LANG: 'C.UTF-8',
        PGOPTIONS: '-c synchronous_commit=local',
      },
      maxBuffer: 64 << 20,
    },
  );
  if (r.status !== 0) {
    throw new BackupError(
      'RESTORE_REFUSED',
      `loading the dump failed (nothing was committed): ${(r.stderr || r.error?.message || '').trim()}`,
    );
  }
}

export async function restoreBackup(opts: RestoreOptions): Promise<RestoreResult> {
  const t0 = Date.now();
  const step = opts.onStep ?? (() => undefined);
  const work = mkdtempSync(join(tmpdir(), 'ktrestore-'));
  const keptAside: string[] = [];
  try {
    step(`decrypting ${opts.from}…`);
    const tar = join(work, 'backup.tar');
    const encrypted = await decryptBackup(opts.from, tar, opts);
    const contents = await readBackupArchive(tar, work);
    const { manifest } = contents;
    step(
      `${encrypted ? 'decrypted' : 'cleartext'} backup of ${manifest.host} taken ${manifest.createdAt} on the ${manifest.role}: ` +
        `${manifest.deposits} deposit versions, ${manifest.clients} clients, ${manifest.orgs} orgs`,
    );
    const backupConf = JSON.parse(contents.files.get(CONF_FILE)!.data.toString('utf8')) as Record<
      string,
      unknown
    >;
    const dataDir = resolve(opts.pgRootdir ?? String(backupConf.DB_ROOTDIR ?? ''));
    if (!opts.pgRootdir && !backupConf.DB_ROOTDIR)
      throw new BackupError('RESTORE_REFUSED', 'the backup names no data directory: pass --pg-rootdir DIR');
    const port = opts.port ?? Number(backupConf.DB_PORT ?? 11381);

    // Refuse to overwrite a node unless forced; forced, keep everything aside.
    const running = readPostmasterPid(dataDir);
    const occupied = [
      existsSync(join(opts.confdir, CONF_FILE)) ? `${opts.confdir} holds a configuration` : '',
      !isEmptyDir(dataDir) ? `${dataDir} is not empty` : '',
      running ? `PostgreSQL runs in ${dataDir} (pid ${running})` : '',
    ].filter(Boolean);
    if (occupied.length && !opts.force) {
      throw new BackupError(
        'RESTORE_REFUSED',
        `refusing to overwrite this node: ${occupied.join('; ')}. Use --force to keep them aside and restore over them`,
      );
    }
    if (running) {
      step(`stopping PostgreSQL in ${dataDir}…`);
      const old = createPgInstance({ dataDir, port });
      await stopPostgres(old).catch(() => stopPostgres(old, { mode: 'immediate' }));
    }
    if (!isEmptyDir(dataDir)) keptAside.push(moveAside(dataDir));
    if (existsSync(opts.confdir)) keptAside.push(moveAside(opts.confdir));
    for (const k of keptAside) step(`kept aside: ${k}`);

    step(`restoring ${contents.files.size} configuration files into ${opts.confdir}…`);
    writeConfdir(opts.confdir, contents);
    updateKeytrusteeConf(opts.confdir, { DB_ROOTDIR: dataDir, DB_PORT: port, REPLICATION_MASTER: undefined });
    giveConfdirToServiceAccount(opts.confdir);
    const inst = nodeInstance({ confdir: opts.confdir, prepareTls: true });
    step(`creating PostgreSQL in ${dataDir} (port ${port})…`);
    await initDataDir(inst);
    await startPostgres(inst);
    try {
      await ensureDatabase(inst);
      // The dump grants the replication role what pg_rewind needs: it must exist first.
      const admin = await connectLocal(inst, 'postgres');
      try {
        await ensureRole(admin, REPLICATION_ROLE, {
          password: replicationPassword(opts.confdir),
          replication: true,
        });
        // …and so must the least-privilege request role its table grants name (issue 10, finding 8).
        await ensureAppRole(admin);
      } finally {
        await admin.end();
      }
      step('loading the dump…');
      loadDump(inst, contents.sqlPath);
      const c = await connectLocal(inst);
      let counts: RestoreResult['counts'];
      try {
        await c.query('set synchronous_commit = local');
        await runMigrations(c, MIGRATIONS_DIR);
        // Function privileges are per database: the grant made above was in `postgres`.
        await ensureAppRole(c);
        const { rows } = await c.query<{ deposits: string; clients: string; orgs: string }>(
          'select (select count(*) from deposits) as deposits, (select count(*) from clients) as clients, (select count(*) from orgs) as orgs',
        );
        counts = {
          deposits: Number(rows[0].deposits),
          clients: Number(rows[0].clients),
          orgs: Number(rows[0].orgs),
        };
      } finally {
        await c.end();
      }
      if (
        counts.deposits !== manifest.deposits ||
        counts.clients !== manifest.clients ||
        counts.orgs !== manifest.orgs
      ) {
        throw new BackupError(
          'ARCHIVE_INVALID',
          `restored rows differ from the manifest: deposits ${counts.deposits}/${manifest.deposits}, clients ${counts.clients}/${manifest.clients}, orgs ${counts.orgs}/${manifest.orgs}`,
        );
      }
      let journal: ReplayResult | undefined;
      if (opts.journal) {
        step(
          `replaying the change journal ${opts.journal} from ${manifest.walLsn} (timeline ${manifest.timeline})…`,
        );
        const jc = await connectLocal(inst);
        try {
          journal = await replayJournal(
            jc,
            opts.journal,
            deriveJournalKey(confPaths(opts.confdir).masterKey),
            {
              fromLsn: manifest.walLsn,
              fromTimeline: manifest.timeline,
              allowGap: opts.allowGap,
            },
          );
        } finally {
          await jc.end();
        }
        step(
          `journal: ${journal.applied} transactions (${journal.changes} row changes) applied, ${journal.skipped} already in the backup, ${journal.duplicates} duplicates` +
            (journal.gapsCrossed.length
              ? `; CROSSED ${journal.gapsCrossed.length} gap(s): their writes are missing`
              : '') +
            (journal.truncatedTails.length ? `; ${journal.truncatedTails.length} torn tail(s) ignored` : ''),
        );
      }
      // The journal directory belongs to the lost cluster (it records that cluster's identity):
      // this node starts a new one once an operator names it.
      if (backupConf.JOURNAL_DIR) {
        updateKeytrusteeConf(opts.confdir, { JOURNAL_DIR: undefined });
        step(
          `JOURNAL_DIR removed from keytrustee.conf: point it at a new, empty directory for this restored cluster`,
        );
      }
      const slave = opts.slave ?? (backupConf.REPLICATION_SLAVE as string | undefined);
      if (slave) await addStandbyOnActive({ confdir: opts.confdir, slave, onStep: step });
      return { manifest, inst, keptAside, counts, journal, elapsedMs: Date.now() - t0 };
    } catch (e) {
      await stopPostgres(inst).catch(() => undefined);
      throw e;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
