import { spawn } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..', '..', '..');

/** The built CLIs (`npm test` builds before jest runs). */
export const BINS = {
  ktadmin: join(ROOT, 'packages/server/bin/ktadmin.js'),
  ktbackup: join(ROOT, 'packages/server/bin/ktbackup.js'),
  orgtool: join(ROOT, 'packages/server/bin/keytrustee-orgtool.js'),
  keytrusteed: join(ROOT, 'packages/server/bin/keytrusteed.js'),
  keytrusteedDist: join(ROOT, 'packages/server/dist/cli/keytrusteed.js'),
  ktclient: join(ROOT, 'packages/sdk/bin/ktclient.js'),
} as const;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a CLI to completion (bounded by timeoutMs, then SIGKILL). */
export function runCli(
  bin: string,
  args: string[],
  opts: {
    env?: NodeJS.ProcessEnv;
    timeoutMs?: number;
    input?: string;
    /** Command to run the CLI under, e.g. `ip netns exec NS` (netns.ts); default none. */
    prefix?: string[];
  } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const [file, ...argv] = [...(opts.prefix ?? []), process.execPath, bin, ...args];
    const child = spawn(file, argv, {
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}
