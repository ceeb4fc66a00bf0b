/**
 * Opens a backup for restore: decrypts it (the real gpg with this account's keyring/agent, or an
 * armored private key file through openpgp.js), then reads and checks the tarball: exactly one
 * Trustee manifest, its dump, and confdir members that all lie inside the backed-up confdir —
 * nothing else, no links, no `..`.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  createReadStream,
  createWriteStream,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, normalize, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { tarStream } from './tar-stream';
import { BACKUP_FORMAT_VERSION, type BackupManifest } from './create-backup';
import { memberName } from './archive-entries';
import { openpgp } from './openpgp';
import { BackupError } from './recipient-key';

/** First bytes of an OpenPGP binary message (packet tag 1 or 3, old or new format) or ASCII armor. */
export function looksEncrypted(head: Buffer): boolean {
  if (head.subarray(0, 27).toString('latin1') === '-----BEGIN PGP MESSAGE-----') return true;
  const b = head[0];
  if (b === undefined || (b & 0x80) === 0) return false;
  const tag = b & 0x40 ? b & 0x3f : (b >> 2) & 0x0f;
  return tag === 1 || tag === 3;
}

export interface DecryptOptions {
  /** Armored private key file; default: the account's GnuPG keyring and agent. */
  keyFile?: string;
  /** File holding the private key's passphrase (first line). */
  passphraseFile?: string;
}

/** Decrypts `file` into `out` (0600). Plain tarballs are copied as they are. */
export async function decryptBackup(file: string, out: string, opts: DecryptOptions = {}): Promise<boolean> {
  const head = Buffer.alloc(32);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, 32, 0);
  } finally {
    closeSync(fd);
  }
  if (!looksEncrypted(head)) {
    await pipeline(createReadStream(file), createWriteStream(out, { mode: 0o600 }));
    return false;
  }
  const passphrase = opts.passphraseFile
    ? readFileSync(opts.passphraseFile, 'utf8').split('\n')[0]
    : undefined;
  if (opts.keyFile) {
    let key = await openpgp.readPrivateKey({ armoredKey: readFileSync(opts.keyFile, 'utf8') });
    if (!key.isDecrypted()) {
      if (passphrase === undefined) {
        throw new BackupError(
          'DECRYPT_FAILED',
          `${opts.keyFile} is passphrase-protected; give --passphrase-file`,
        );
      }
      key = await openpgp.decryptKey({ privateKey: key, passphrase });
    }
    const message = await openpgp.readMessage({
      binaryMessage: Readable.toWeb(createReadStream(file)) as unknown as ReadableStream<Uint8Array>,
    });
    try {
      const { data } = await openpgp.decrypt({ message, decryptionKeys: key, format: 'binary' });
      await pipeline(
        Readable.fromWeb(data as unknown as import('node:stream/web').ReadableStream<Uint8Array>),
        createWriteStream(out, { mode: 0o600 }),
      );
    } catch (e) {
      throw new BackupError(
        'DECRYPT_FAILED',
        `cannot decrypt ${file} with ${opts.keyFile}: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    return true;
  }
  const args = ['--batch', '--yes', '--quiet', '-o', out];
  if (passphrase !== undefined) args.push('--pinentry-mode', 'loopback', '--passphrase-fd', '0');
  const r = spawnSync('gpg', [...args, '-d', file], {
    input: passphrase ?? '',
    encoding: 'utf8',
    timeout: 600_000,
  });
  if (r.status !== 0) {
    throw new BackupError(
      'DECRYPT_FAILED',
      `gpg could not decrypt ${file}: ${(r.stderr || r.error?.message || '').trim()}. The recipient's private key must be in this account's keyring (GNUPGHOME), or pass --key FILE`,
    );
  }
  return true;
}

export interface ArchiveContents {
  manifest: BackupManifest;
  /** confdir files: path relative to the confdir → {mode, data}; directories with their modes. */
  files: Map<string, { mode: number; data: Buffer }>;
  dirs: Map<string, number>;
  /** Path of the extracted SQL dump. */
  sqlPath: string;
}

/** Reads the (decrypted) tarball, writing the dump into `workDir`; throws ARCHIVE_INVALID on anything unexpected. */
export async function readBackupArchive(tarFile: string, workDir: string): Promise<ArchiveContents> {
  const entries: Array<{ name: string; type: string; mode: number; data?: Buffer; path?: string }> = [];
  const ex = tarStream.extract();
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (header, stream, next) => {
      const name = header.name;
      const bare = name.replace(/\/$/, '');
      if (name.includes('\0') || normalize(`/${bare}`) !== `/${bare}` || bare.split('/').includes('..')) {
        stream.resume();
        return next(
          new BackupError('ARCHIVE_INVALID', `unsafe member name in the archive: ${JSON.stringify(name)}`),
        );
      }
      const type = header.type ?? 'file';
      if (type === 'directory') {
        entries.push({ name: name.replace(/\/$/, ''), type, mode: header.mode ?? 0o700 });
        stream.resume();
        return next();
      }
      if (type !== 'file') {
        stream.resume();
        return next(new BackupError('ARCHIVE_INVALID', `unexpected ${type} member in the archive: ${name}`));
      }
      if (name.endsWith('.sql')) {
        const path = join(workDir, 'dump.sql');
        const ws = createWriteStream(path, { mode: 0o600 });
        stream.pipe(ws);
        ws.on('finish', () => {
          entries.push({ name, type, mode: header.mode ?? 0o600, path });
          next();
        });
        ws.on('error', next);
        return;
      }
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        entries.push({ name, type, mode: header.mode ?? 0o600, data: Buffer.concat(chunks) });
        next();
      });
      stream.on('error', next);
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
  });
  await pipeline(createReadStream(tarFile), ex).catch((e: Error) => {
    throw e instanceof BackupError
      ? e
      : new BackupError('ARCHIVE_INVALID', `${tarFile} is not a readable tarball: ${e.message}`, {
          cause: e,
        });
  });
  await done;
  const manifests = entries.filter((e) => e.name.endsWith('.json') && e.data && isManifest(e.data));
  if (manifests.length !== 1) {
    throw new BackupError(
      'ARCHIVE_INVALID',
      `expected one Trustee backup manifest in the archive, found ${manifests.length}; is this a ktbackup file?`,
    );
  }
  const manifest = JSON.parse(manifests[0].data!.toString('utf8')) as BackupManifest;
  if (manifest.format !== BACKUP_FORMAT_VERSION) {
    throw new BackupError(
      'ARCHIVE_INVALID',
      `backup format ${String(manifest.format)} is not supported (expected ${BACKUP_FORMAT_VERSION})`,
    );
  }
  const sql = entries.find((e) => e.name === memberName(manifest.sqlFile));
  if (!sql?.path)
    throw new BackupError(
      'ARCHIVE_INVALID',
      `the archive lacks the dump ${manifest.sqlFile} its manifest names`,
    );
  const confRoot = memberName(manifest.confdir);
  const files = new Map<string, { mode: number; data: Buffer }>();
  const dirs = new Map<string, number>();
  for (const e of entries) {
    if (e === sql || e === manifests[0]) continue;
    if (e.name !== confRoot && !e.name.startsWith(`${confRoot}/`)) {
      throw new BackupError(
        'ARCHIVE_INVALID',
        `member ${e.name} lies outside the backed-up confdir ${manifest.confdir}`,
      );
    }
    const rel = posix.relative(confRoot, e.name);
    if (e.type === 'directory') dirs.set(rel, e.mode);
    else files.set(rel, { mode: e.mode, data: e.data! });
  }
  if (!files.has('keytrustee.conf'))
    throw new BackupError('ARCHIVE_INVALID', 'the archive holds no keytrustee.conf');
  return { manifest, files, dirs, sqlPath: sql.path };
}

function isManifest(data: Buffer): boolean {
  try {
    return (JSON.parse(data.toString('utf8')) as { product?: string }).product === 'trustee';
  } catch {
    return false;
  }
}

/** Writes the confdir files (modes as archived; secrets stay 0600). */
export function writeConfdir(target: string, contents: ArchiveContents): void {
  mkdirSync(target, { recursive: true, mode: 0o700 });
  for (const [rel, mode] of [...contents.dirs].sort()) {
    if (rel === '') continue;
    mkdirSync(join(target, rel), { recursive: true, mode: mode & 0o777 });
  }
  for (const [rel, f] of contents.files) {
    mkdirSync(dirname(join(target, rel)), { recursive: true, mode: 0o700 });
    writeFileSync(join(target, rel), f.data, { mode: f.mode & 0o777 });
    chmodSync(join(target, rel), f.mode & 0o777);
  }
}
