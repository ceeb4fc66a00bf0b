/**
 * Issue #8, part 9. `npm start` (scripts/start-cluster.js, on the dist build): when node-a's
 * keytrusteed is SIGKILLed, node-b keeps serving, the output says what happened and how to
 * recover, and Ctrl-C then stops everything still running, leaving no process. `ktadmin db
 * --start` right after a SIGKILL of the postmaster (a zombie not yet reaped) really starts
 * PostgreSQL, and a relative `--pg-rootdir` reaches pg_ctl resolved.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { readPostmasterPid, waitReady } from '@trustee/replicator';
import { nodeInstance } from '@trustee/server';
import { processState } from '../packages/replicator/src/postgres/postmaster';
import { absolutePath } from '../packages/server/src/cli/common';
import { BINS, runCli } from '../packages/server/test/support/cli';
import { httpsRequest } from '../packages/server/test/support/https-request';
import { freePort } from '../packages/server/test/support/ports';
import { childPids, trackPid, untrackPid, waitFor } from '../packages/server/test/support/processes';
import { startSingleNode, type SingleNode } from '../packages/server/test/support/single-node';
import { makeTempDir, removeDir } from '../packages/server/test/support/temp-dir';

const ROOT = join(__dirname, '..');
const START_SCRIPT = join(ROOT, 'scripts', 'start-cluster.js');

/** PID in the first line of a pid file (keytrusteed.pid, postmaster.pid), if any. */
function pidFrom(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function killPid(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Live (non-zombie) processes whose command line mentions `dir`. */
function processesMentioning(dir: string): { pid: number; cmd: string }[] {
  const found: { pid: number; cmd: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(dir) && processState(Number(entry)) === 'running')
        found.push({ pid: Number(entry), cmd });
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  for (let i = 0; i < 50 && ports.size < count; i++) ports.add(await freePort());
  if (ports.size < count) throw new Error('could not find free ports');
  return [...ports];
}

/** Resolves with the exit of `child` or undefined after `ms` (no hang on an already-exited child). */
function exitOf(
  child: ChildProcess,
  ms: number,
): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolveExit) => {
    const timer = setTimeout(() => resolveExit(undefined), ms);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolveExit({ code, signal });
    });
  });
}

describe('npm start: one node dies, the other keeps serving; Ctrl-C leaves no process', () => {
  let home: string;
  let child: ChildProcess | undefined;
  let out = '';
  const known = new Set<number>(); // every PID this test saw, killed in afterAll

  afterAll(async () => {
    // Whatever happened above: kill by PID everything started under this TRUSTEE_HOME.
    if (child?.pid) for (const p of childPids(child.pid)) known.add(p);
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (home) {
      for (const node of ['node-a', 'node-b']) {
        known.add(pidFrom(join(home, node, 'keytrusteed.pid')) ?? 0);
        const pm = pidFrom(join(home, node, 'db', 'postmaster.pid'));
        if (pm) for (const p of [pm, ...childPids(pm)]) known.add(p);
      }
      for (const p of processesMentioning(home)) known.add(p.pid);
    }
    for (const pid of known) {
      killPid(pid);
      untrackPid(pid);
    }
    if (home) removeDir(home);
  });

  it('survives a SIGKILL of node-a’s keytrusteed, names it with recovery commands, and Ctrl-C stops the rest', async () => {
    home = makeTempDir('trustee-npm-start-');
    const [apiA, apiB, dbA, dbB] = await distinctFreePorts(4);
    child = spawn(process.execPath, [START_SCRIPT], {
      env: {
        ...process.env,
        TRUSTEE_HOME: home,
        TRUSTEE_API_PORTS: `${apiA},${apiB}`,
        TRUSTEE_DB_PORTS: `${dbA},${dbB}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const npmStart = child;
    trackPid(npmStart.pid!);
    known.add(npmStart.pid!);
    npmStart.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    npmStart.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const stillRunning = () => npmStart.exitCode === null && npmStart.signalCode === null;
    const until = (what: string, cond: () => boolean, timeoutMs: number) =>
      waitFor(
        what,
        () => {
          if (cond()) return true;
          if (!stillRunning()) throw new Error(`npm start exited early:\n${out}`);
          return false;
        },
        timeoutMs,
      ).catch((e: Error) => {
        throw new Error(`${e.message}\n--- output ---\n${out}`);
      });

    await until('Trustee is up', () => out.includes('Trustee is up'), 150_000);
    expect(out).toContain(`https://localhost:${apiA}`);
    expect(out).toContain(`PostgreSQL port ${dbB}`);

    const dirA = join(home, 'node-a');
    const dirB = join(home, 'node-b');
    const pidA = await waitFor(
      'node-a/keytrusteed.pid',
      () => pidFrom(join(dirA, 'keytrusteed.pid')),
      10_000,
    );
    const pidB = await waitFor(
      'node-b/keytrusteed.pid',
      () => pidFrom(join(dirB, 'keytrusteed.pid')),
      10_000,
    );
    const pmA = readPostmasterPid(join(dirA, 'db'));
    const pmB = readPostmasterPid(join(dirB, 'db'));
    expect(pmA).toBeDefined();
    expect(pmB).toBeDefined();
    for (const pid of [pidA, pidB, pmA!, pmB!]) {
      trackPid(pid);
      known.add(pid);
    }
    expect((await httpsRequest(`https://localhost:${apiB}`, { path: '/v1/health' })).status).toBe(200);

    process.kill(pidA, 'SIGKILL');
    await until(
      'the report of node-a’s death with its recovery commands',
      () => out.includes('was killed by SIGKILL') && out.includes('rejoin --master'),
      15_000,
    );
    expect(out).toContain(`node-a (active): keytrusteed (pid ${pidA}) was killed by SIGKILL`);
    expect(out).toContain(join(dirA, 'keytrusteed.log'));
    expect(out).toContain(`node-b keeps running at https://localhost:${apiB}`);
    expect(out).toContain('then run `npm start` again');
    expect(out).toContain(`npx ktadmin --confdir ${join(dirB, 'confdir')} promote`);
    expect(out).toContain(`npx ktadmin --confdir ${join(dirA, 'confdir')} rejoin --master localhost:${dbB}`);

    // The survivor still serves, and npm start is still running (it did not stop node-b).
    const health = await httpsRequest(`https://localhost:${apiB}`, { path: '/v1/health' });
    expect(health.status).toBe(200);
    expect(health.json.role).toBe('passive');
    expect(stillRunning()).toBe(true);
    expect(processState(pidB)).toBe('running');
    expect(readPostmasterPid(join(dirA, 'db'))).toBe(pmA);
    expect(readPostmasterPid(join(dirB, 'db'))).toBe(pmB);

    // Ctrl-C: the dead child must not make the stop hang; everything still running stops.
    const t0 = Date.now();
    npmStart.kill('SIGINT');
    const exit = await exitOf(npmStart, 90_000);
    const stopMs = Date.now() - t0;
    if (!exit) throw new Error(`npm start did not exit after SIGINT:\n${out}`);
    console.log(`npm start: Ctrl-C to exit with everything stopped took ${stopMs} ms`);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(out).toContain('stopping keytrusteed (node-b)');
    expect(out).toContain('stopping PostgreSQL of node-b');
    expect(out).toContain('stopping PostgreSQL of node-a');
    for (const pid of [pidB, pmA!, pmB!]) expect(['gone', 'zombie']).toContain(processState(pid));
    expect(readPostmasterPid(join(dirA, 'db'))).toBeUndefined();
    expect(readPostmasterPid(join(dirB, 'db'))).toBeUndefined();
    expect(processesMentioning(home)).toEqual([]);
    // A clean stop removes the pid files: the next npm start finds nothing running.
    expect(existsSync(join(dirB, 'keytrusteed.pid'))).toBe(false);
    expect(existsSync(join(dirB, 'db', 'postmaster.pid'))).toBe(false);
  }, 240_000);
});

describe('ktadmin db --start right after a SIGKILL of the postmaster; relative --pg-rootdir', () => {
  let node: SingleNode | undefined;
  const started = new Set<number>();

  beforeAll(async () => {
    node = await startSingleNode();
  }, 120_000);

  afterAll(async () => {
    await node?.stop();
    for (const pid of started) {
      for (const p of [pid, ...childPids(pid)]) killPid(p);
      untrackPid(pid);
    }
  });

  it('starts PostgreSQL again although the killed pid still looks alive (zombie)', async () => {
    const n = node!;
    const oldPid = readPostmasterPid(n.dbDir)!;
    expect(oldPid).toBeDefined();
    process.kill(oldPid, 'SIGKILL');
    // Until its parent reaps it, the killed postmaster is a zombie that kill(pid, 0) still finds.
    // (A SIGKILL is delivered asynchronously: wait until the process has died.)
    await waitFor('the killed postmaster to die', () => processState(oldPid) !== 'running', 5000, 10);
    const stateAtStart = processState(oldPid);
    expect(readPostmasterPid(n.dbDir)).toBeUndefined();
    const r = await runCli(BINS.ktadmin, ['--confdir', n.confdir, 'db', '--start', '--background'], {
      timeoutMs: 60_000,
    });
    const newPid = readPostmasterPid(n.dbDir);
    if (newPid) {
      started.add(newPid);
      trackPid(newPid);
    }
    console.log(`postmaster ${oldPid} was '${stateAtStart}' when db --start ran; new pid ${newPid}`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(newPid).toBeDefined();
    expect(newPid).not.toBe(oldPid);
    expect(r.stdout).toContain(`running (pid ${newPid}`);
    await waitReady(nodeInstance({ confdir: n.confdir }), 5000);
  });

  it('resolves a relative --pg-rootdir before pg_ctl sees it (stop, then start again)', async () => {
    const n = node!;
    const rel = relative(process.cwd(), n.dbDir);
    expect(rel.startsWith('/')).toBe(false);
    expect(nodeInstance({ confdir: n.confdir, pgRootdir: rel }).dataDir).toBe(n.dbDir);
    expect(absolutePath(rel)).toBe(resolve(rel));

    const stop = await runCli(BINS.ktadmin, ['--confdir', n.confdir, 'db', '--stop', '--pg-rootdir', rel]);
    expect(stop.stderr).toBe('');
    expect(stop.code).toBe(0);
    expect(stop.stdout).toContain(`database in ${n.dbDir} stopped`);
    expect(readPostmasterPid(n.dbDir)).toBeUndefined();

    const start = await runCli(BINS.ktadmin, [
      '--confdir',
      n.confdir,
      'db',
      '--start',
      '--background',
      '--pg-rootdir',
      rel,
    ]);
    const pid = readPostmasterPid(n.dbDir);
    if (pid) {
      started.add(pid);
      trackPid(pid);
    }
    expect(start.stderr).toBe('');
    expect(start.code).toBe(0);
    expect(pid).toBeDefined();
    await waitReady(nodeInstance({ confdir: n.confdir }), 5000);
  });
});
