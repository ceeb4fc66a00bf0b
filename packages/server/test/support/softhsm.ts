import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { trackPid } from './processes';
import { makeTempDir, removeDir } from './temp-dir';

/** Debian's SoftHSM2 PKCS#11 library (package softhsm2). */
export const SOFTHSM_MODULE =
  ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so'].find((p) =>
    existsSync(p),
  ) ?? '/usr/lib/softhsm/libsofthsm2.so';

/** What `--pkcs11-module`, `--token-label` and `--pin-file` name: a token (or a variant of one). */
export type TokenFlags = Pick<SoftHsmToken, 'module' | 'label' | 'pinFile'>;

/** `--pkcs11-module <module> --token-label <label> --pin-file <pinFile>` (ktadmin keyhsm, keyhsm setup). */
export function tokenArgs(token: TokenFlags): string[] {
  return ['--pkcs11-module', token.module, '--token-label', token.label, '--pin-file', token.pinFile];
}

/**
 * The arguments of `ktadmin --confdir <confdir> keyhsm` with the token's flags, then `extra`
 * (without the ktadmin script itself: runCli(BINS.ktadmin, keyhsmArgs(…))).
 */
export function keyhsmArgs(confdir: string, token: TokenFlags, extra: string[] = []): string[] {
  return ['--confdir', confdir, 'keyhsm', ...tokenArgs(token), ...extra];
}

export interface SoftHsmToken {
  dir: string;
  /** The SOFTHSM2_CONF file (token directory inside `dir`). */
  conf: string;
  module: string;
  label: string;
  /** A 0600 file holding the user PIN. */
  pinFile: string;
  /** Moves the token's files away (the token is gone for every process), and back. */
  remove(): void;
  restore(): void;
  /** Deletes the temp dir. */
  destroy(): void;
}

/**
 * A fresh SoftHSM2 token in a temp dir with its own SOFTHSM2_CONF, initialised with
 * softhsm2-util (user PIN in a 0600 file). Set process.env.SOFTHSM2_CONF = token.conf before
 * anything in this process or its children loads the module.
 */
export function createSoftHsmToken(label = 'trustee-test'): SoftHsmToken {
  const dir = makeTempDir('trustee-softhsm-');
  const tokens = join(dir, 'tokens');
  const parked = join(dir, 'parked');
  mkdirSync(tokens, { mode: 0o700 });
  mkdirSync(parked, { mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(
    conf,
    `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`,
  );
  const pin = '4321-test';
  execFileSync(
    'softhsm2-util',
    ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', '8765-test'],
    {
      env: { ...process.env, SOFTHSM2_CONF: conf },
      stdio: 'ignore',
    },
  );
  const pinFile = join(dir, 'token.pin');
  writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 });
  return {
    dir,
    conf,
    module: SOFTHSM_MODULE,
    label,
    pinFile,
    remove() {
      for (const d of readdirSync(tokens)) renameSync(join(tokens, d), join(parked, d));
    },
    restore() {
      for (const d of readdirSync(parked)) renameSync(join(parked, d), join(tokens, d));
    },
    destroy() {
      removeDir(dir);
    },
  };
}

/**
 * `node <args>` with the token's SOFTHSM2_CONF (jest's process.env is a copy that a child gets only
 * when passed explicitly) and `env`, its stdout and stderr collected together. Tracked by PID: the
 * caller stops it and untracks it.
 */
export function spawnWithToken(
  token: Pick<SoftHsmToken, 'conf'>,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, SOFTHSM2_CONF: token.conf, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid) trackPid(child.pid);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}
