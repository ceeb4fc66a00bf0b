import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ReplicatorError } from '../errors';
import type { RunAs } from './os-user';

export interface RunResult {
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  runAs?: RunAs;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** Environment for PostgreSQL tools: minimal, C.UTF-8, never the caller's secrets. */
export function pgEnv(runAs: RunAs | undefined, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: runAs?.home ?? process.env.HOME ?? '/tmp',
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    ...extra,
  };
}

let setprivPath: string | null | undefined;

/** util-linux `setpriv`, when installed (Debian: always). */
export function findSetpriv(): string | undefined {
  if (setprivPath === undefined)
    setprivPath = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) ?? null;
  return setprivPath ?? undefined;
}

/**
 * Command and spawn options that run `bin` as `runAs`. Node's `uid`/`gid` options drop every
 * supplementary group (libuv calls setgroups(0)), so an account with more groups — the service
 * account in group `postgres`, whose postmaster keeps a socket in /var/run/postgresql — is
 * switched to with `setpriv --init-groups` instead.
 */
export function asAccount(
  bin: string,
  args: string[],
  runAs: RunAs | undefined,
): { file: string; args: string[]; uid?: number; gid?: number } {
  const setpriv = runAs && runAs.groups.length > 1 ? findSetpriv() : undefined;
  if (!runAs || !setpriv) return { file: bin, args, uid: runAs?.uid, gid: runAs?.gid };
  return {
    file: setpriv,
    args: [`--reuid=${runAs.uid}`, `--regid=${runAs.gid}`, '--init-groups', '--', bin, ...args],
  };
}

/** Runs a PostgreSQL tool (as the unprivileged user when root) and resolves with its output, or rejects with stderr. */
export function runPgTool(bin: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const cmd = asAccount(bin, args, opts.runAs);
    const child = spawn(cmd.file, cmd.args, {
      uid: cmd.uid,
      gid: cmd.gid,
      env: pgEnv(opts.runAs, opts.env),
      cwd: '/tmp',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = opts.timeoutMs
      ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs).unref()
      : undefined;
    child.on('error', (e) =>
      reject(new ReplicatorError('PG_COMMAND_FAILED', `could not run ${bin}: ${e.message}`, { cause: e })),
    );
    // Wait for 'exit', not 'close': `pg_ctl start` leaves the postmaster holding our pipes open.
    child.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      const finish = () => {
        if (code === 0) return resolve({ stdout, stderr });
        const why = signal ? `killed by ${signal}` : `exit code ${code}`;
        reject(
          new ReplicatorError(
            'PG_COMMAND_FAILED',
            `${bin} ${args[0] ?? ''} failed (${why}): ${stderr.trim() || stdout.trim()}`,
            { details: { bin, code, signal } },
          ),
        );
      };
      // Give buffered output a moment to arrive, then stop listening to inherited pipes.
      const grace = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish();
      }, 100);
      child.once('close', () => {
        clearTimeout(grace);
        finish();
      });
    });
  });
}
