import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { ReplicatorError } from '../errors';
import { localConnection, type PgInstance } from './instance';
import { runPgTool } from './run';
import { nodeSettings } from './settings';

/** PID of the running postmaster from `postmaster.pid`, or undefined if none is alive. */
export function readPostmasterPid(dataDir: string): number | undefined {
  const file = join(dataDir, 'postmaster.pid');
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined; // stale file left by a crash
  }
}

/** Command-line settings: per-node values must not come from a postgresql.conf copied by basebackup/rewind. */
/** pg_ctl hands `-o` to a shell: quote every `-c name=value` as one word. */
export function startOptions(inst: PgInstance): string {
  const settings = {
    ...nodeSettings(inst.port, inst.listenAddresses, inst.dataDir),
    ...(inst.extraSettings ?? {}),
  };
  return Object.entries(settings)
    .map(([k, v]) => `-c '${`${k}=${String(v)}`.replace(/'/g, `'\\''`)}'`)
    .join(' ');
}

/** Starts PostgreSQL in the background (pg_ctl -w) and waits until it accepts connections. */
export async function startPostgres(inst: PgInstance, opts: { timeoutMs?: number } = {}): Promise<number> {
  const running = readPostmasterPid(inst.dataDir);
  if (running) return running;
  const timeoutSec = Math.ceil((opts.timeoutMs ?? 60_000) / 1000);
  try {
    await runPgTool(
      join(inst.binDir, 'pg_ctl'),
      [
        'start',
        '-D',
        inst.dataDir,
        '-w',
        '-t',
        String(timeoutSec),
        '-s',
        '-l',
        join(inst.dataDir, 'startup.log'),
        '-o',
        startOptions(inst),
      ],
      { runAs: inst.runAs, timeoutMs: (timeoutSec + 5) * 1000 },
    );
  } catch (e) {
    throw new ReplicatorError(
      'PG_START_FAILED',
      `PostgreSQL in ${inst.dataDir} did not start on port ${inst.port}: ${lastLogLines(inst.dataDir) || String(e)}`,
      { cause: e },
    );
  }
  await waitReady(inst, opts.timeoutMs ?? 60_000);
  const pid = readPostmasterPid(inst.dataDir);
  if (!pid)
    throw new ReplicatorError('PG_START_FAILED', `PostgreSQL in ${inst.dataDir} exited right after start`);
  return pid;
}

/** Stops PostgreSQL (fast mode: disconnects clients, clean shutdown). No-op when not running. */
export async function stopPostgres(
  inst: PgInstance,
  opts: { mode?: 'smart' | 'fast' | 'immediate' } = {},
): Promise<void> {
  if (!readPostmasterPid(inst.dataDir)) return;
  await runPgTool(
    join(inst.binDir, 'pg_ctl'),
    ['stop', '-D', inst.dataDir, '-w', '-s', '-m', opts.mode ?? 'fast'],
    {
      runAs: inst.runAs,
      timeoutMs: 120_000,
    },
  );
}

/** Asks the postmaster to re-read its configuration files. */
export async function reloadPostgres(inst: PgInstance): Promise<void> {
  await runPgTool(join(inst.binDir, 'pg_ctl'), ['reload', '-D', inst.dataDir, '-s'], { runAs: inst.runAs });
}

/** Polls until a connection succeeds (a standby in recovery accepts read-only connections with hot_standby). */
export async function waitReady(inst: PgInstance, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const client = new Client({ ...localConnection(inst, 'postgres'), connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      await client.query('select 1');
      return;
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  throw new ReplicatorError(
    'PG_NOT_READY',
    `PostgreSQL on port ${inst.port} not ready after ${timeoutMs} ms: ${String(last)}`,
    {
      cause: last,
    },
  );
}

/** Last lines of the newest server log, to put the real reason into start errors. */
export function lastLogLines(dataDir: string, count = 5): string {
  try {
    const dir = join(dataDir, 'log');
    const newest = readdirSync(dir)
      .map((f) => ({ f, t: statSync(join(dir, f)).mtimeMs }))
      .sort((a, b) => b.t - a.t)[0];
    if (!newest) return '';
    return readFileSync(join(dir, newest.f), 'utf8').trim().split('\n').slice(-count).join(' | ');
  } catch {
    return '';
  }
}
