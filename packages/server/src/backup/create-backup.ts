/**
 * `ktbackup`: the confdir and a `pg_dump` of the database in one tarball laid out as the seed's
 * (`tar xvf FILE -C /` restores in place), OpenPGP-encrypted to a recipient so that
 * `gpg -d -o backup.tar FILE` decrypts it. Written to a temporary name, fsynced and renamed:
 * a crash never leaves a partial backup under a backup's name.
 */
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  fsyncSync,
  writeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client } from 'pg';
import { tarStream as tarStreamModule } from './tar-stream';
import {
  DB_NAME,
  DB_SUPERUSER,
  findPgBinDir,
  socketDirFor,
  TIMELINE_SQL_EXPRESSION,
} from '@trustee/replicator';
import { loadKeytrusteeConf } from '../config';
import { recordJournalBackup } from '../journal/journal-gap';
import { VERSION } from '../package-info';
import { addConfdir, addFile } from './archive-entries';
import { backupBaseName, backupsToRoll } from './backup-name';
import { openpgp, type PublicKey } from './openpgp';
import { BackupError, resolveRecipientKey } from './recipient-key';

/** Format of the `.json` description stored next to the dump inside the tarball. */
export const BACKUP_FORMAT_VERSION = 1;

export interface BackupManifest {
  format: typeof BACKUP_FORMAT_VERSION;
  product: 'trustee';
  version: string;
  host: string;
  createdAt: string;
  /** Role of the node the dump was taken on. */
  role: 'active' | 'passive';
  timeline: number;
  /** WAL position before the dump started: journal records from here on complete the backup. */
  walLsn: string;
  confdir: string;
  sqlFile: string;
  deposits: number;
  clients: number;
  orgs: number;
}

export interface CreateBackupOptions {
  confdir: string;
  /** PostgreSQL port (`--database-port`); default keytrustee.conf DB_PORT. */
  databasePort?: number;
  /** Directory for the backup (`--output`); default the confdir's parent, as the seed. */
  output?: string;
  /** Recipient name, e-mail, fingerprint, or an armored public key file (`--gpg-recipient`). */
  gpgRecipient?: string;
  /** GnuPG home to look the recipient up in; default GNUPGHOME or ~/.gnupg. */
  gnupgHome?: string;
  /** Write an unencrypted tarball (`--cleartext`); never the default. */
  cleartext?: boolean;
  /** Keep only the newest N backups of this host in `output` afterwards (`--roll`). */
  roll?: number;
  now?: Date;
  /** Progress lines (steps, and dump size every second on large databases). */
  onProgress?: (message: string) => void;
}

export interface BackupResult {
  path: string;
  bytes: number;
  encrypted: boolean;
  /** Fingerprint of the recipient key (upper-case hex) when encrypted. */
  recipientFingerprint?: string;
  manifest: BackupManifest;
  rolled: string[];
  /** Things an operator should know although the backup succeeded. */
  warnings: string[];
  elapsedMs: number;
}

async function describeDatabase(socketDir: string, port: number) {
  const c = new Client({
    host: socketDir,
    port,
    user: DB_SUPERUSER,
    database: DB_NAME,
    connectionTimeoutMillis: 5000,
  });
  // PostgreSQL dying mid-query also emits 'error' on the client; unhandled, that killed
  // keytrusteed when a scheduled backup was running. The query in flight fails on its own.
  c.on('error', () => undefined);
  await c.connect();
  try {
    const { rows } = await c.query<{
      in_recovery: boolean;
      lsn: string;
      timeline: number;
      deposits: string;
      clients: string;
      orgs: string;
    }>(`select pg_is_in_recovery() as in_recovery,
              (case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end)::text as lsn,
              ${TIMELINE_SQL_EXPRESSION} as timeline,
              (select count(*) from deposits) as deposits,
              (select count(*) from clients) as clients,
              (select count(*) from orgs) as orgs`);
    return rows[0];
  } finally {
    await c.end();
  }
}

/** Runs pg_dump into `file`, reporting its size every second. */
function dumpDatabase(
  socketDir: string,
  port: number,
  file: string,
  progress?: (m: string) => void,
): Promise<void> {
  const bin = join(findPgBinDir(), 'pg_dump');
  return new Promise((resolve, reject) => {
    const child = spawn(
      bin,
      // Job bookkeeping (graphile_worker) is not customer data and is recreated on first run.
      [
        '-h',
        socketDir,
        '-p',
        String(port),
        '-U',
        DB_SUPERUSER,
        '--no-password',
        '--exclude-schema=graphile_worker',
        '-f',
        file,
        DB_NAME,
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8' },
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t0 = Date.now();
    const timer = progress
      ? setInterval(() => {
          let size = 0;
          try {
            size = statSync(file).size;
          } catch {
            // not created yet
          }
          progress(
            `dumping the database: ${(size / 1048576).toFixed(1)} MiB in ${((Date.now() - t0) / 1000).toFixed(0)} s`,
          );
        }, 1000)
      : undefined;
    child.on('error', (e) =>
      reject(new BackupError('DUMP_FAILED', `cannot run ${bin}: ${e.message}`, { cause: e })),
    );
    child.on('close', (code) => {
      if (timer) clearInterval(timer);
      if (code === 0) resolve();
      else
        reject(
          new BackupError('DUMP_FAILED', `pg_dump of port ${port} failed (exit ${code}): ${stderr.trim()}`),
        );
    });
  });
}

/** A writable that fsyncs before it reports finished. */
function durableFile(path: string): { stream: Writable; fd: number } {
  const fd = openSync(path, 'wx', 0o600);
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      try {
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
    final(cb) {
      try {
        fsyncSync(fd);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
  });
  return { stream, fd };
}

export async function createBackup(opts: CreateBackupOptions): Promise<BackupResult> {
  const t0 = Date.now();
  const say = opts.onProgress ?? (() => undefined);
  if (!opts.gpgRecipient && !opts.cleartext) {
    throw new BackupError(
      'RECIPIENT_NOT_FOUND',
      'a backup is encrypted to a --gpg-recipient; --cleartext writes it unencrypted (not for production)',
    );
  }
  const key: PublicKey | undefined = opts.gpgRecipient
    ? await resolveRecipientKey(opts.gpgRecipient, { gnupgHome: opts.gnupgHome })
    : undefined;
  const conf = loadKeytrusteeConf(opts.confdir);
  if (!conf.DB_ROOTDIR)
    throw new BackupError(
      'DUMP_FAILED',
      `${opts.confdir} names no database (DB_ROOTDIR); bootstrap it first`,
    );
  const port = opts.databasePort ?? conf.DB_PORT;
  const socketDir = socketDirFor(conf.DB_ROOTDIR);
  const output = opts.output ?? dirname(opts.confdir);
  mkdirSync(output, { recursive: true, mode: 0o700 });
  const now = opts.now ?? new Date();
  const base = backupBaseName(conf.HOST, now);
  const finalName = `${base}.tar${key ? '.gpg' : ''}`;
  const finalPath = join(output, finalName);
  const work = mkdtempSync(join(output, '.ktbackup-'));
  const tmpPath = join(output, `.${finalName}.${process.pid}.tmp`);
  try {
    const db = await describeDatabase(socketDir, port);
    say(
      `node is ${db.in_recovery ? 'passive' : 'active'} (timeline ${db.timeline}, WAL ${db.lsn}); dumping the database…`,
    );
    if (conf.JOURNAL_DIR && !db.in_recovery) {
      // A commit below this WAL position may still wait for the passive, invisible to the dump's
      // snapshot, and the journal replay starts at this position: wait out the commit bound so
      // every such commit is visible (committed or cancelled into doubt) before the dump begins.
      await new Promise((r) => setTimeout(r, conf.COMMIT_WAIT_MS + 200));
    }
    const sqlTmp = join(work, `${base}.sql`);
    await dumpDatabase(socketDir, port, sqlTmp, say);
    const sqlAs = join(dirname(opts.confdir), `${base}.sql`);
    const manifest: BackupManifest = {
      format: BACKUP_FORMAT_VERSION,
      product: 'trustee',
      version: VERSION,
      host: conf.HOST,
      createdAt: now.toISOString(),
      role: db.in_recovery ? 'passive' : 'active',
      timeline: db.timeline,
      walLsn: db.lsn,
      confdir: opts.confdir,
      sqlFile: sqlAs,
      deposits: Number(db.deposits),
      clients: Number(db.clients),
      orgs: Number(db.orgs),
    };
    const manifestTmp = join(work, `${base}.json`);
    writeFileSync(manifestTmp, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
    say(
      `archiving ${opts.confdir} and the dump (${(statSync(sqlTmp).size / 1048576).toFixed(1)} MiB)${key ? ', encrypting to ' + key.getFingerprint().toUpperCase() : ' (cleartext)'}…`,
    );

    const tar = tarStreamModule.pack();
    const { stream: out, fd } = durableFile(tmpPath);
    // tar-stream is a streamx stream: Readable.from() adapts it for node:stream and web streams.
    const tarStream = Readable.from(tar as AsyncIterable<Buffer>);
    const source: Readable = key
      ? Readable.fromWeb(
          (await openpgp.encrypt({
            message: await openpgp.createMessage({
              binary: Readable.toWeb(tarStream) as unknown as ReadableStream<Uint8Array>,
              filename: `${base}.tar`,
            }),
            encryptionKeys: key,
            format: 'binary',
          })) as unknown as import('node:stream/web').ReadableStream<Uint8Array>,
        )
      : tarStream;
    const written = pipeline(source, out);
    try {
      await addConfdir(tar, opts.confdir);
      await addFile(tar, sqlTmp, sqlAs);
      await addFile(tar, manifestTmp, join(dirname(opts.confdir), `${base}.json`));
      tar.finalize();
      await written;
    } catch (e) {
      tar.destroy(e as Error);
      await written.catch(() => undefined);
      throw e;
    } finally {
      closeSync(fd);
    }
    renameSync(tmpPath, finalPath);
    const dirFd = openSync(output, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
    // The change journal now has a backup covering everything before walLsn (clears its gap flag).
    const warnings: string[] = [];
    if (conf.JOURNAL_DIR && existsSync(conf.JOURNAL_DIR)) {
      try {
        recordJournalBackup(conf.JOURNAL_DIR, {
          lsn: manifest.walLsn,
          timeline: manifest.timeline,
          file: finalPath,
        });
      } catch (e) {
        // The backup itself is complete; only the journal's gap flag stays up until one is recorded.
        warnings.push(
          `backup written, but ${conf.JOURNAL_DIR} could not record it (${(e as Error).message}); run ktbackup as root or the journal's owner to clear trustee_journal_gap`,
        );
      }
    }
    const rolled = opts.roll ? backupsToRoll(readdirSync(output), conf.HOST, opts.roll) : [];
    for (const f of rolled) {
      rmSync(join(output, f));
      say(`--roll=${opts.roll}: removed ${f}`);
    }
    return {
      path: finalPath,
      bytes: statSync(finalPath).size,
      encrypted: !!key,
      recipientFingerprint: key?.getFingerprint().toUpperCase(),
      manifest,
      rolled,
      warnings,
      elapsedMs: Date.now() - t0,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(tmpPath, { force: true });
  }
}
