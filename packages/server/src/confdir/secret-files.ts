import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, basename, join } from 'node:path';

export class InsecureFileError extends Error {
  override name = 'InsecureFileError';
}

/** Throws when a secret file can be read or written by group/others; the message says how to fix it. */
export function assertSecretFileMode(file: string): void {
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077) {
    throw new InsecureFileError(
      `secret file ${file} has mode 0${mode.toString(8)}; it must not be accessible by group or others: run chmod 600 ${file}`,
    );
  }
}

/** Reads a secret file after checking its mode on the opened descriptor (no check/use race). */
export function readSecretFile(file: string): Buffer {
  const fd = openSync(file, 'r');
  try {
    const mode = fstatSync(fd).mode & 0o777;
    if (mode & 0o077) assertSecretFileMode(file);
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes `file` with `mode` from the start via a new temp file and a rename: never briefly
 * readable by others, and never written through a link planted in a directory the service
 * account owns. As root, the file gets the directory's owner (the confdir stays the account's).
 * Durable once it returns: the data is fsynced before the rename (a crash never leaves a
 * renamed but empty key file) and the directory after it (the new name survives a power cut).
 */
function replaceFile(file: string, data: string | Buffer, mode: number): void {
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${process.pid}.tmp`);
  // O_EXCL|O_NOFOLLOW: a leftover or planted name at tmp fails instead of being written through.
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mode,
  );
  try {
    try {
      writeFileSync(fd, data);
      fchmodSync(fd, mode);
      if (process.getuid?.() === 0) {
        const owner = statSync(dir);
        if (owner.uid !== 0) fchownSync(fd, owner.uid, owner.gid);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dir);
}

/** fsyncs a directory so the renames and new names in it survive a crash (open(2) O_RDONLY, fsync(2)). */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes a file created 0600 from the start (temp + rename), never briefly readable by others. */
export function writeSecretFile(file: string, data: string | Buffer): void {
  replaceFile(file, data, 0o600);
}

/** Writes a public file (certificates, conf) with mode 0644 (temp + rename). */
export function writePublicFile(file: string, data: string | Buffer): void {
  replaceFile(file, data, 0o644);
}
