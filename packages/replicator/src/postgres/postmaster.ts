import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { ReplicatorError } from '../errors';
import { localConnection, type PgInstance } from './instance';
import { runPgTool } from './run';
import { nodeSettings } from './settings';

/** The fields of `/proc/PID/stat` we use. */
export interface ProcStat {
  pid: number;
  /** Executable name; may itself contain spaces and parentheses. */
  comm: string;
  /** One letter: R, S, D, T, t, … `Z` = zombie (exited, not yet reaped), `X`/`x` = dead. */
  state: string;
  ppid: number;
}

/** Parses the text of `/proc/PID/stat`; undefined when it is not in that format. */
export function parseProcStat(text: string): ProcStat | undefined {
  // "PID (COMM) STATE PPID …": COMM may contain ") ", so split at the last ')'.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open <= 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const [state, ppid] = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  if (!Number.isInteger(pid) || pid <= 0 || !state || !/^[A-Za-z]$/.test(state)) return undefined;
  return { pid, comm: text.slice(open + 1, close), state, ppid: Number(ppid) };
}

/** True when a `/proc/PID/stat` text describes a process that has exited (zombie or dead). */
export function isZombieStat(text: string): boolean {
  const stat = parseProcStat(text);
  return stat !== undefined && ['Z', 'X', 'x'].includes(stat.state);
}

/**
 * `running`, `zombie` (exited but not yet reaped by its parent: `kill(pid, 0)` still succeeds,
 * and a new postmaster refuses to start while it does) or `gone`.
 */
export type ProcessState = 'running' | 'zombie' | 'gone';

const HAVE_PROC = existsSync('/proc/self/stat');

export function processState(pid: number): ProcessState {
  if (!Number.isInteger(pid) || pid <= 0) return 'gone';
  if (HAVE_PROC) {
    try {
      return isZombieStat(readFileSync(`/proc/${pid}/stat`, 'utf8')) ? 'zombie' : 'running';
    } catch {
      return 'gone';
    }
  }
  try {
    process.kill(pid, 0); // without /proc a zombie cannot be told apart
    return 'running';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? 'running' : 'gone';
  }
}

/** What `postmaster.pid` says (the file stays behind when a postmaster is killed). */
export interface PostmasterPidFile {
  pid: number;
  dataDir?: string;
  port?: number;
  /** `starting`, `ready`, `standby` or `stopping` (PostgreSQL ≥ 10). */
  status?: string;
}

/** Parses `postmaster.pid`: PID, data dir, start time, port, socket dir, listen addresses, shmem key, status. */
export function parsePostmasterPidFile(text: string): PostmasterPidFile | undefined {
  const lines = text.split('\n');
  const pid = Number(lines[0]?.trim());
  if (!/^\d+$/.test(lines[0]?.trim() ?? '') || pid <= 0) return undefined;
  const port = Number(lines[3]?.trim());
  return {
    pid,
    dataDir: lines[1]?.trim() || undefined,
    port: Number.isInteger(port) && port > 0 ? port : undefined,
    status: lines[7]?.trim() || undefined,
  };
}

function readPidFile(dataDir: string): PostmasterPidFile | undefined {
  try {
    return parsePostmasterPidFile(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * PID of the running postmaster from `postmaster.pid`, or undefined if none is alive. A file
 * left by a crash, or naming a zombie (a killed postmaster not yet reaped), counts as not running.
 */
export function readPostmasterPid(dataDir: string): number | undefined {
  const file = readPidFile(dataDir);
  return file && processState(file.pid) === 'running' ? file.pid : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits (bounded) until a dead postmaster's pid is reaped; true when it is gone. */
async function waitReaped(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (processState(pid) === 'zombie' && Date.now() < deadline) await sleep(50);
  return processState(pid) === 'gone';
}

async function answers(inst: PgInstance, timeoutMs: number): Promise<boolean> {
  return waitReady(inst, timeoutMs).then(
    () => true,
    () => false,
  );
}

/**
 * Command-line settings: per-node values (port, addresses, sockets, TLS files) must not come from
 * a postgresql.conf copied by basebackup/rewind. pg_ctl hands `-o` to a shell: quote every
 * `-c name=value` as one word.
 */
export function startOptions(inst: PgInstance): string {
  const settings = {
    ...nodeSettings(inst.port, inst.listenAddresses, inst.dataDir, inst.sockets),
    ...(inst.extraSettings ?? {}),
  };
  return Object.entries(settings)
    .map(([k, v]) => `-c '${`${k}=${String(v)}`.replace(/'/g, `'\\''`)}'`)
    .join(' ');
}

/**
 * Starts PostgreSQL in the background (pg_ctl -w) and waits until it accepts connections.
 * A postmaster already running is returned only once it answers; a dead one (crashed, killed,
 * or a zombie not yet reaped) is started again.
 */
export async function startPostgres(inst: PgInstance, opts: { timeoutMs?: number } = {}): Promise<number> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  const found = readPidFile(inst.dataDir);
  let zombie: number | undefined;
  if (found) {
    if (processState(found.pid) === 'running') {
      if (found.port !== undefined && found.port !== inst.port) {
        throw new ReplicatorError(
          'PG_START_FAILED',
          `PostgreSQL in ${inst.dataDir} is already running (pid ${found.pid}) on port ${found.port}, not ${inst.port}; stop it first`,
        );
      }
      // A live pid is not enough: confirm that it answers (it may be starting or recovering).
      while (processState(found.pid) === 'running' && Date.now() < deadline) {
        if (await answers(inst, Math.min(3000, Math.max(100, deadline - Date.now())))) return found.pid;
      }
      if (processState(found.pid) === 'running') {
        throw new ReplicatorError(
          'PG_NOT_READY',
          `PostgreSQL in ${inst.dataDir} is running (pid ${found.pid}) but did not accept connections on port ${inst.port} within ${timeoutMs} ms`,
        );
      }
    }
    // Dead. PostgreSQL refuses to start while kill(old pid, 0) succeeds: wait for the reaping.
    if (!(await waitReaped(found.pid, Math.min(15_000, Math.max(0, deadline - Date.now())))))
      zombie = found.pid;
  }
  const timeoutSec = Math.max(1, Math.ceil((deadline - Date.now()) / 1000));
  const startupLog = join(inst.dataDir, 'startup.log');
  const startupLogSize = sizeOf(startupLog);
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
        startupLog,
        '-o',
        startOptions(inst),
      ],
      { runAs: inst.runAs, timeoutMs: (timeoutSec + 5) * 1000 },
    );
  } catch (e) {
    // Early failures (e.g. the lock file) are written to startup.log, not to the server log.
    const why = appendedLines(startupLog, startupLogSize) || lastLogLines(inst.dataDir) || String(e);
    const hint = zombie
      ? ` (the previous postmaster, pid ${zombie}, exited but its parent has not reaped it yet; retry in a few seconds)`
      : '';
    throw new ReplicatorError(
      'PG_START_FAILED',
      `PostgreSQL in ${inst.dataDir} did not start on port ${inst.port}: ${why}${hint}`,
      { cause: e },
    );
  }
  await waitReady(inst, Math.max(1000, deadline - Date.now()));
  const pid = readPostmasterPid(inst.dataDir);
  if (!pid)
    throw new ReplicatorError('PG_START_FAILED', `PostgreSQL in ${inst.dataDir} exited right after start`);
  return pid;
}

/**
 * Stops PostgreSQL (fast mode: disconnects clients, clean shutdown). No-op when not running,
 * including a killed postmaster whose pid is a zombie or whose postmaster.pid was left behind.
 */
export async function stopPostgres(
  inst: PgInstance,
  opts: { mode?: 'smart' | 'fast' | 'immediate' } = {},
): Promise<void> {
  if (!readPostmasterPid(inst.dataDir)) return;
  try {
    await runPgTool(
      join(inst.binDir, 'pg_ctl'),
      ['stop', '-D', inst.dataDir, '-w', '-s', '-m', opts.mode ?? 'fast'],
      {
        runAs: inst.runAs,
        timeoutMs: 120_000,
      },
    );
  } catch (e) {
    if (!readPostmasterPid(inst.dataDir)) return; // it died while we were stopping it
    throw e;
  }
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

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** The last lines written to `file` after it had `offset` bytes. */
function appendedLines(file: string, offset: number, count = 3): string {
  try {
    const text = readFileSync(file).subarray(offset).toString('utf8');
    return text.trim().split('\n').filter(Boolean).slice(-count).join(' | ');
  } catch {
    return '';
  }
}
