import { statSync } from 'node:fs';
import { readSecretFile } from '../confdir/secret-files';

export class PinFileError extends Error {
  override name = 'PinFileError';
}

/**
 * The token's user PIN from a file (never the command line, where `ps` shows it): the file must
 * be mode 0600 (or stricter) and hold the PIN on its first line.
 */
export function readPinFile(file: string): string {
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch (e) {
    throw new PinFileError(
      `cannot read the PIN file ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  if (mode & 0o177) {
    throw new PinFileError(
      `the PIN file ${file} has mode 0${mode.toString(8)}; it must be 0600: run chmod 600 ${file}`,
    );
  }
  const pin = readSecretFile(file).toString('utf8').split(/\r?\n/)[0];
  if (!pin) throw new PinFileError(`the PIN file ${file} is empty`);
  return pin;
}
