import { resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { DEFAULT_CONFDIR } from '../config';

/** `--confdir` default: $TRUSTEE_CONFDIR or the original product's path (absolute). */
export function defaultConfdir(): string {
  return absolutePath(process.env.TRUSTEE_CONFDIR ?? DEFAULT_CONFDIR);
}

/**
 * Option parser for directories and files: resolved against the working directory, so a
 * relative path means the same thing to pg_ctl (run in another directory) and in
 * keytrustee.conf as it did on the command line.
 */
export function absolutePath(value: string): string {
  if (value.trim() === '') throw new InvalidArgumentError('expected a path');
  return resolve(value);
}

/** A wrong combination of flags: exit code 2, like commander's own usage errors. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Prints `error: CODE: message` and exits 1 (commander usage errors exit 2). */
export function fail(e: unknown): never {
  if (e instanceof UsageError) {
    process.stderr.write(`error: ${e.message} (see --help)\n`);
    process.exit(2);
  }
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  const code = (e as { code?: unknown }).code;
  const prefix = typeof code === 'string' && /^[A-Z_]+$/.test(code) ? `${code}: ` : '';
  process.stderr.write(`error: ${prefix}${(e as Error).message ?? String(e)}\n`);
  process.exit(1);
}

/** Option parser for TCP ports: an integer 1-65535 (0 = any free port where allowed). */
export function parsePort(value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) {
    throw new InvalidArgumentError('expected a port number between 0 and 65535');
  }
  return Number(value);
}

/** Option parser for a positive number of seconds. */
export function parseSeconds(value: string): number {
  if (!/^\d+(\.\d+)?$/.test(value) || Number(value) <= 0)
    throw new InvalidArgumentError('expected a positive number of seconds');
  return Number(value);
}

/** Runs a commander program, mapping failures to exit codes. */
export async function runProgram(program: Command, argv: string[] = process.argv): Promise<void> {
  // Subcommands created before this call do not inherit these settings: apply them to each.
  const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
  for (const c of all(program)) {
    c.exitOverride();
    c.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  }
  try {
    await program.parseAsync(argv);
  } catch (e) {
    fail(e);
  }
}
