import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { CommandLineError, splitCommandLine } from './command-line';
import { TlsConfigError } from './tls-config-error';

/** Longest the password script may run. */
export const PASSWORD_SCRIPT_TIMEOUT_MS = 10_000;

/** More output than any passphrase: bounds memory if the command misbehaves. */
const MAX_OUTPUT_BYTES = 64 * 1024;

/**
 * argv of SSL_PRIVATE_KEY_PASSWORD_SCRIPT: a command with arguments (the seed's
 * `/bin/echo -n password`). A program path with a slash is taken relative to the confdir; a bare
 * name (`echo -n password`) is looked up in PATH.
 */
export function passwordScriptArgv(command: string, confdir: string): string[] {
  let argv: string[];
  try {
    argv = splitCommandLine(command);
  } catch (e) {
    throw new TlsConfigError(
      `SSL_PRIVATE_KEY_PASSWORD_SCRIPT cannot be parsed: ${(e as CommandLineError).message}`,
    );
  }
  const [program, ...args] = argv;
  return [program.includes('/') ? resolve(confdir, program) : program, ...args];
}

/**
 * Runs the password script without a shell and returns its standard output, one trailing newline
 * removed, as the TLS key's passphrase. Errors name the program only: the arguments may be the
 * password itself (the seed's example), and the output always is.
 */
export function readKeyPassphrase(command: string, confdir: string): Promise<string> {
  const [program, ...args] = passwordScriptArgv(command, confdir);
  const what = `SSL_PRIVATE_KEY_PASSWORD_SCRIPT (${program})`;
  return new Promise((resolvePass, reject) => {
    const child = execFile(
      program,
      args,
      {
        cwd: confdir,
        encoding: 'utf8',
        timeout: PASSWORD_SCRIPT_TIMEOUT_MS,
        maxBuffer: MAX_OUTPUT_BYTES,
        windowsHide: true,
      },
      (err, stdout) => {
        if (err) {
          const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: unknown };
          const why =
            e.killed || e.code === 'ETIMEDOUT'
              ? `did not finish within ${PASSWORD_SCRIPT_TIMEOUT_MS / 1000} s`
              : typeof e.code === 'number'
                ? `exited with code ${e.code}`
                : e.code === 'ENOENT'
                  ? 'was not found'
                  : e.code === 'EACCES'
                    ? 'is not executable'
                    : `could not run (${String(e.code ?? 'error')})`;
          reject(new TlsConfigError(`${what} ${why}`));
          return;
        }
        const passphrase = stdout.replace(/\r?\n$/, '');
        if (passphrase === '') {
          reject(new TlsConfigError(`${what} printed no passphrase`));
          return;
        }
        resolvePass(passphrase);
      },
    );
    // Nothing to read: a script waiting for input ends at EOF instead of at the timeout.
    child.stdin?.end();
  });
}
