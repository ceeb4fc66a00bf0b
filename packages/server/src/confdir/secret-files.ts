import {
  closeSync,
  fstatSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
  chmodSync,
  chownSync,
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
 */
function replaceFile(file: string, data: string | Buffer, mode: number): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  writeFileSync(tmp, data, { mode, flag: 'wx' });
  chmodSync(tmp, mode);
  if (process.getuid?.() === 0) {
    const dir = statSync(dirname(file));
    if (dir.uid !== 0) chownSync(tmp, dir.uid, dir.gid);
  }
  renameSync(tmp, file);
}

/** Writes a file created 0600 from the start (temp + rename), never briefly readable by others. */
export function writeSecretFile(file: string, data: string | Buffer): void {
  replaceFile(file, data, 0o600);
}

/** Writes a public file (certificates, conf) with mode 0644 (temp + rename). */
export function writePublicFile(file: string, data: string | Buffer): void {
  replaceFile(file, data, 0o644);
}
