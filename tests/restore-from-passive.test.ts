/**
 * Issue #8, the data-moving recoveries, as an operator runs them: the seed's manual "restore the
 * active from the passive" (copied data directory and confdir, `--confdir` given as the
 * `.keytrustee` directory's parent, the bootstrap run twice as the seed does), the same as one
 * command (`restore --from-passive`), a lost passive rebuilt over stale data (`--replace`, also
 * after its slot was invalidated by max_slot_wal_keep_size), and HA added to a running
 * standalone node with its existing deposits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Client as PgClient } from 'pg';
import { readPostmasterPid, socketDirFor } from '@trustee/replicator';
import { waitForHealth } from '@trustee/server';
import { BINS, runCli, type CliResult } from '../packages/server/test/support/cli';
import { registerTestClient, type TestClient } from '../packages/server/test/support/clients';
import { startTestCluster, type NodeName, type TestCluster } from '../packages/server/test/support/cluster';
import {
  getDepositRaw,
  health,
  isWritable,
  putDepositRaw,
  valueOf,
} from '../packages/server/test/support/deposit-requests';
import { freePort } from '../packages/server/test/support/ports';
import { trackPid, untrackPid, waitFor, waitForExit } from '../packages/server/test/support/processes';
import { makeTempDir, removeDir } from '../packages/server/test/support/temp-dir';

const ktadminAt = (confdir: string, args: string[]): Promise<CliResult> =>
  runCli(BINS.ktadmin, ['--confdir', confdir, ...args], { timeoutMs: 120_000 });

function expectOk(r: CliResult): void {
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
}

async function superuserQuery<T extends Record<string, unknown>>(
  dbDir: string,
  port: number,
  sql: string,
): Promise<T[]> {
  const c = new PgClient({ host: socketDirFor(dbDir), port, user: 'keytrustee', database: 'postgres' });
  await c.connect();
  try {
    await c.query('set synchronous_commit = local');
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}

describe('restoring the active from the passive, rebuilding a passive (issue #8)', () => {
  let cluster: TestCluster;
  let client: TestClient;
  const acknowledged = new Map<string, string>();

  const ktadmin = (n: NodeName, args: string[]) => ktadminAt(cluster.node(n).confdir, args);

  async function put(url: string, name: string, value: string): Promise<void> {
    const r = await putDepositRaw(url, client, name, value);
    expect(r.status).toBe(201);
    acknowledged.set(name, value);
  }

  async function expectAllOnBothNodes(): Promise<void> {
    for (const n of ['a', 'b'] as const) {
      await waitFor(
        `${n} serves reads`,
        async () => (await health(cluster.node(n).url)).status === 200,
        15_000,
      );
      for (const [name, value] of acknowledged) {
        const r = await getDepositRaw(cluster.node(n).url, client, name);
        expect({ n, name, status: r.status }).toEqual({ n, name, status: 200 });
        expect(valueOf(r)).toBe(value);
      }
    }
  }

  beforeAll(async () => {
    cluster = await startTestCluster();
    client = await registerTestClient(cluster.a.url, cluster.org, cluster.authCode);
    for (let i = 0; i < 5; i++) await put(cluster.a.url, `first-${i}`, `v-first-${i}`);
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it("the seed's manual steps: copy the passive's data and confdir to the replaced active, bootstrap --slave twice, enable sync", async () => {
    const { a, b } = cluster;
    await cluster.killServer('a', 'SIGKILL');
    await cluster.killPostgres('a');
    // The replacement host: a fresh install (its own .ssl/), no data.
    rmSync(a.dbDir, { recursive: true, force: true });
    for (const f of readdirSync(a.confdir)) if (f !== '.ssl') rmSync(join(a.confdir, f), { recursive: true });
    // rsync --exclude recovery.conf -a /var/lib/keytrustee/db  (PostgreSQL 15 has standby.signal instead: it comes along)
    cpSync(b.dbDir, a.dbDir, {
      recursive: true,
      preserveTimestamps: true,
      filter: (src) => !src.endsWith('recovery.conf'),
    });
    // rsync --exclude .ssl --exclude '*.pid' -a /var/lib/keytrustee/.keytrustee
    cpSync(b.confdir, a.confdir, {
      recursive: true,
      filter: (src) => !src.includes(`${b.confdir}/.ssl`) && !src.endsWith('.pid'),
    });
    // The seed passes --confdir /var/lib/keytrustee: the parent of .keytrustee.
    const parent = makeTempDir('trustee-kt-parent-');
    symlinkSync(a.confdir, join(parent, '.keytrustee'));
    try {
      const args = [
        'db',
        '--port',
        String(a.dbPort),
        '--pg-rootdir',
        a.dbDir,
        '--bootstrap',
        '--slave',
        `localhost:${b.dbPort}`,
      ];
      const first = await ktadminAt(parent, args);
      expectOk(first);
      expect(first.stdout).toMatch(/copy of a passive/);
      expect(first.stdout).toMatch(/copied from the passive/);
      const pid = readPostmasterPid(a.dbDir);
      if (pid) trackPid(pid);
      // The seed runs the same command again ("Start the database"): it keeps the data.
      const second = await ktadminAt(parent, args);
      expectOk(second);
      expect(second.stdout).toMatch(/holds a running active; keeping its data/);
      expectOk(await ktadminAt(parent, ['enable-synchronous-replication']));
    } finally {
      removeDir(parent);
    }
    await cluster.startServer('a');
    await waitFor('a writable', () => isWritable(a.url), 30_000);
    expect((await health(b.url)).json).toMatchObject({ role: 'passive' });
    await put(a.url, 'after-manual-restore', 'v-manual');
    await expectAllOnBothNodes();
  });

  it('restore --from-passive does the same as one command, and refuses a non-empty directory without --force', async () => {
    const { a, b } = cluster;
    await cluster.killServer('a', 'SIGKILL');
    await cluster.killPostgres('a');
    const refused = await ktadmin('a', [
      'restore',
      '--from-passive',
      `localhost:${b.dbPort}`,
      '--pg-rootdir',
      a.dbDir,
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/not empty; use --force/);
    const t0 = Date.now();
    const r = await ktadmin('a', [
      'restore',
      '--from-passive',
      `localhost:${b.dbPort}`,
      '--pg-rootdir',
      a.dbDir,
      '--force',
    ]);
    expectOk(r);
    expect(r.stdout).toMatch(/old data directory kept as/);
    const pid = readPostmasterPid(a.dbDir);
    if (pid) trackPid(pid);
    await cluster.startServer('a');
    await waitFor('a writable', () => isWritable(a.url), 30_000);
    console.log(`restore --from-passive: writable ${Date.now() - t0} ms after the command started`);
    await put(a.url, 'after-restore-command', 'v-restore');
    await expectAllOnBothNodes();
  });

  it('a lost passive whose slot was invalidated is reported, then rebuilt over its stale data with --replace', async () => {
    const { a, b } = cluster;
    expect(
      (
        await superuserQuery<{ v: string }>(
          a.dbDir,
          a.dbPort,
          "select current_setting('max_slot_wal_keep_size') as v",
        )
      )[0].v,
    ).toBe('4GB');
    await cluster.killServer('b', 'SIGKILL');
    await cluster.killPostgres('b');
    // Make the cap tiny (and wal_keep_size, which also holds WAL, zero) and produce more WAL than
    // it allows: the next checkpoint invalidates the slot.
    await superuserQuery(a.dbDir, a.dbPort, "alter system set max_slot_wal_keep_size = '1MB'");
    await superuserQuery(a.dbDir, a.dbPort, 'alter system set wal_keep_size = 0');
    await superuserQuery(a.dbDir, a.dbPort, 'select pg_reload_conf()');
    await superuserQuery(
      a.dbDir,
      a.dbPort,
      "create table wal_filler as select g, repeat('x', 200) as pad from generate_series(1, 60000) g",
    );
    for (let i = 0; i < 2; i++) {
      await superuserQuery(a.dbDir, a.dbPort, 'select pg_switch_wal()');
      await superuserQuery(a.dbDir, a.dbPort, 'checkpoint');
    }
    await waitFor(
      'health reports the lost slot',
      async () => {
        const h = await health(a.url);
        return h.json.replication.lostSlots.length === 1 && /invalidated/.test(h.json.reason) ? h : undefined;
      },
      10_000,
    );
    await superuserQuery(a.dbDir, a.dbPort, 'alter system reset max_slot_wal_keep_size');
    await superuserQuery(a.dbDir, a.dbPort, 'alter system reset wal_keep_size');
    await superuserQuery(a.dbDir, a.dbPort, 'select pg_reload_conf()');
    await superuserQuery(a.dbDir, a.dbPort, 'drop table wal_filler');

    const args = [
      'db',
      '--bootstrap',
      '--master',
      `localhost:${a.dbPort}`,
      '--pg-rootdir',
      b.dbDir,
      '--port',
      String(b.dbPort),
    ];
    const noReplace = await ktadmin('b', args);
    expect(noReplace.code).toBe(1);
    expect(noReplace.stderr).toMatch(/--replace/);
    const rebuilt = await ktadmin('b', [...args, '--replace']);
    expectOk(rebuilt);
    expect(rebuilt.stdout).toMatch(/old passive data kept as/);
    const pid = readPostmasterPid(b.dbDir);
    if (pid) trackPid(pid);
    await cluster.startServer('b');
    await waitFor('a writable again', () => isWritable(a.url), 30_000);
    // Exactly one slot, in use, not lost: the old one was dropped, never left holding WAL.
    const slots = await superuserQuery<{ slot_name: string; active: boolean; wal_status: string }>(
      a.dbDir,
      a.dbPort,
      "select slot_name, active, wal_status from pg_replication_slots where slot_type = 'physical'",
    );
    expect(slots).toHaveLength(1);
    expect(slots[0]).toMatchObject({ active: true });
    expect(slots[0].wal_status).not.toBe('lost');
    expect((await health(a.url)).json.replication.lostSlots).toEqual([]);
    await put(a.url, 'after-replace', 'v-replace');
    await expectAllOnBothNodes();
  });
});

describe('HA added to a running standalone node (admin guide, HA step 1b) (issue #8)', () => {
  const home = makeTempDir('trustee-standalone-');
  const servers: ChildProcess[] = [];
  const dbDirs: Array<[string, string]> = [];
  afterAll(async () => {
    for (const s of servers) {
      if (s.pid && s.exitCode === null && s.signalCode === null) {
        s.kill('SIGKILL');
        await waitForExit(s.pid, 10_000);
      }
      if (s.pid) untrackPid(s.pid);
    }
    for (const [confdir] of dbDirs) await ktadminAt(confdir, ['db', '--stop']).catch(() => undefined);
    for (const [, dbDir] of dbDirs) {
      const pid = readPostmasterPid(dbDir);
      if (pid) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // stopped
        }
        untrackPid(pid);
      }
    }
    removeDir(home);
  });

  function startServer(dir: string, confdir: string): ChildProcess {
    const child = spawn(process.execPath, [BINS.keytrusteedDist, '--confdir', confdir], {
      stdio: 'ignore',
      env: { ...process.env, TRUSTEE_LOG_LEVEL: 'warn' },
    });
    if (child.pid) trackPid(child.pid);
    servers.push(child);
    void dir;
    return child;
  }

  it('keeps the standalone data, and the new passive serves it', async () => {
    const [aApi, bApi, aDb, bDb] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const A = {
      dir: join(home, 'a'),
      confdir: join(home, 'a', 'confdir'),
      db: join(home, 'a', 'db'),
      url: `https://localhost:${aApi}`,
    };
    const B = {
      dir: join(home, 'b'),
      confdir: join(home, 'b', 'confdir'),
      db: join(home, 'b', 'db'),
      url: `https://localhost:${bApi}`,
    };
    for (const d of [A.dir, B.dir]) mkdirSync(d, { recursive: true, mode: 0o755 });
    dbDirs.push([A.confdir, A.db], [B.confdir, B.db]);
    // A standalone node with an organization, a client and deposits.
    expectOk(await ktadminAt(A.confdir, ['init', '--host', 'localhost', '--port', String(aApi)]));
    expectOk(await ktadminAt(A.confdir, ['db', '--bootstrap', '--port', String(aDb), '--pg-rootdir', A.db]));
    const org = await runCli(BINS.orgtool, [
      '--confdir',
      A.confdir,
      'add',
      '-n',
      'solo',
      '-c',
      'ops@solo.example',
    ]);
    expect(org.code).toBe(0);
    const auth = JSON.parse((await runCli(BINS.orgtool, ['--confdir', A.confdir, 'list'])).stdout).solo
      .auth_secret as string;
    let a = startServer(A.dir, A.confdir);
    await waitForHealth(A.url);
    const client = await registerTestClient(A.url, 'solo', auth);
    for (let i = 0; i < 3; i++)
      expect((await putDepositRaw(A.url, client, `solo-${i}`, `v-solo-${i}`)).status).toBe(201);

    // Add HA: on the active, over its running data; then copy the confdir, init and bootstrap the passive.
    const add = await ktadminAt(A.confdir, [
      'db',
      '--bootstrap',
      '--port',
      String(aDb),
      '--pg-rootdir',
      A.db,
      '--slave',
      `localhost:${bDb}`,
      '--peer',
      B.url,
    ]);
    expectOk(add);
    expect(add.stdout).toMatch(/holds a running active; keeping its data/);
    mkdirSync(B.confdir, { recursive: true, mode: 0o700 });
    cpSync(A.confdir, B.confdir, { recursive: true, filter: (src) => !src.includes(`${A.confdir}/.ssl`) });
    expectOk(
      await ktadminAt(B.confdir, ['init', '--host', 'localhost', '--port', String(bApi), '--peer', A.url]),
    );
    expectOk(
      await ktadminAt(B.confdir, [
        'db',
        '--bootstrap',
        '--port',
        String(bDb),
        '--pg-rootdir',
        B.db,
        '--master',
        `localhost:${aDb}`,
      ]),
    );
    expectOk(await ktadminAt(A.confdir, ['enable-synchronous-replication']));
    for (const d of [A.db, B.db]) {
      const pid = readPostmasterPid(d);
      if (pid) trackPid(pid);
    }
    // Restart the active's server (now two-node), start the passive's.
    a.kill('SIGTERM');
    await waitForExit(a.pid!, 10_000);
    a = startServer(A.dir, A.confdir);
    startServer(B.dir, B.confdir);
    await waitForHealth(A.url);
    await waitForHealth(B.url);
    await waitFor('two-node active writable', () => isWritable(A.url), 30_000);
    expect((await health(B.url)).json).toMatchObject({ role: 'passive' });
    expect((await health(A.url)).json).toMatchObject({ role: 'active', writeMode: 'sync' });
    expect((await putDepositRaw(A.url, client, 'after-ha', 'v-ha')).status).toBe(201);
    for (const url of [A.url, B.url]) {
      for (const [name, value] of [
        ['solo-0', 'v-solo-0'],
        ['solo-2', 'v-solo-2'],
        ['after-ha', 'v-ha'],
      ]) {
        const r = await getDepositRaw(url, client, name);
        expect({ url, name, status: r.status }).toEqual({ url, name, status: 200 });
        expect(valueOf(r)).toBe(value);
      }
    }
    expect(existsSync(join(B.confdir, '.ssl'))).toBe(true);
  });
});
