/**
 * Issue #9 part 3 on a real pair: scheduled backups run by graphile-worker on the active only.
 * `ktadmin backup-now` queues the scheduled job (no waiting for a cron minute); the passive
 * never runs a job runner; runs never overlap; a failed run is logged and counted; after the
 * active is lost and the passive promoted, the new active reruns the interrupted backup and
 * takes backup-now. A backup is held mid-run, deterministically, by a test session owning an
 * ACCESS EXCLUSIVE lock on `deposits` (the dump waits for it).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { socketDirFor } from '@trustee/replicator';
import { updateKeytrusteeConf } from '@trustee/server';
import { BINS, runCli, type CliResult } from '../packages/server/test/support/cli';
import { registerTestClient } from '../packages/server/test/support/clients';
import { startTestCluster, type NodeName, type TestCluster } from '../packages/server/test/support/cluster';
import { health, putDepositRaw } from '../packages/server/test/support/deposit-requests';
import { httpsRequest } from '../packages/server/test/support/https-request';
import { waitFor } from '../packages/server/test/support/processes';
import { withSuperuser } from '../packages/server/test/support/psql';
import { makeTempDir, removeDir } from '../packages/server/test/support/temp-dir';

interface LogLine {
  time: number;
  msg: string;
  [k: string]: unknown;
}

describe('scheduled backups on the active only (issue #9)', () => {
  let cluster: TestCluster;
  let gnupg: string;
  let work: string;
  const RECIPIENT = 'backup-operator@example.com';

  const gpg = (args: string[]) =>
    spawnSync('gpg', ['--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], {
      env: { ...process.env, GNUPGHOME: gnupg },
      encoding: 'utf8',
    });
  const ktadmin = (n: NodeName, args: string[]): Promise<CliResult> =>
    runCli(BINS.ktadmin, ['--confdir', cluster.node(n).confdir, ...args], { timeoutMs: 60_000 });
  const backupDir = (n: NodeName) => join(cluster.node(n).dir, 'backups');
  const backups = (n: NodeName): string[] =>
    existsSync(backupDir(n))
      ? readdirSync(backupDir(n))
          .filter((f) => /^kts_bak_.*\.tar\.gpg$/.test(f))
          .sort()
      : [];
  /** The server's JSON log lines with this message (pino, one object a line). */
  const logEvents = (n: NodeName, msg: string): LogLine[] =>
    readFileSync(join(cluster.node(n).dir, 'keytrusteed.log'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogLine)
      .filter((l) => l.msg === msg);
  async function metric(n: NodeName, name: string): Promise<number | undefined> {
    const m = await httpsRequest(cluster.node(n).url, { path: '/metrics' });
    const line = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(m.text);
    return line ? Number(line[1]) : undefined;
  }
  /** A session on node n's PostgreSQL holding ACCESS EXCLUSIVE on deposits: a dump waits for it. */
  async function holdDepositsLock(n: NodeName): Promise<Client> {
    const node = cluster.node(n);
    const c = new Client({
      host: socketDirFor(node.dbDir),
      port: node.dbPort,
      user: 'keytrustee',
      database: 'keytrustee',
    });
    c.on('error', () => undefined); // the node may be killed while we hold it
    await c.connect();
    await c.query('begin');
    await c.query('lock table deposits in access exclusive mode');
    return c;
  }
  const query = <T>(n: NodeName, sql: string): Promise<T[]> =>
    withSuperuser(cluster.node(n), async (c) => (await c.query(sql)).rows as T[]);
  /** Decrypts a backup with the test keyring and lists its members. */
  function decryptAndList(file: string): string {
    const tar = join(work, 'check.tar');
    rmSync(tar, { force: true });
    const dec = gpg(['-d', '-o', tar, file]);
    expect(dec.status).toBe(0);
    const list = spawnSync('tar', ['tf', tar], { encoding: 'utf8' });
    expect(list.status).toBe(0);
    return list.stdout;
  }

  beforeAll(async () => {
    gnupg = makeTempDir('trustee-gnupg-');
    work = makeTempDir('trustee-sched-');
    expect(
      gpg(['--quick-gen-key', `Backup Operator <${RECIPIENT}>`, 'default', 'default', 'never']).status,
    ).toBe(0);
    cluster = await startTestCluster();
    const client = await registerTestClient(cluster.a.url, cluster.org, cluster.authCode);
    for (let i = 0; i < 3; i++)
      expect((await putDepositRaw(cluster.a.url, client, `sched-${i}`, `v-${i}`)).status).toBe(201);
    for (const n of ['a', 'b'] as const) {
      updateKeytrusteeConf(cluster.node(n).confdir, {
        BACKUP_GPG_RECIPIENT: RECIPIENT,
        BACKUP_GNUPGHOME: gnupg,
        BACKUP_KEEP: 10,
        // February 31st: the cron never fires during the test; backup-now drives every run.
        BACKUP_SCHEDULE: '0 0 31 2 *',
      });
    }
    for (const n of ['a', 'b'] as const) {
      await cluster.killServer(n, 'SIGTERM');
      await cluster.startServer(n);
    }
    await waitFor(
      'job runner on the active',
      async () => (await metric('a', 'trustee_job_runner_active')) === 1,
    );
  });
  afterAll(async () => {
    await cluster?.stop();
    if (gnupg) {
      spawnSync('gpgconf', ['--kill', 'all'], { env: { ...process.env, GNUPGHOME: gnupg } });
      removeDir(gnupg);
    }
    if (work) removeDir(work);
  });

  it('the passive never starts a job runner, and backup-now there is refused naming the active', async () => {
    expect((await health(cluster.b.url)).json?.role).toBe('passive');
    expect(await metric('b', 'trustee_job_runner_active')).toBe(0);
    expect(await metric('a', 'trustee_job_runner_active')).toBe(1);
    expect(
      logEvents('b', 'scheduled backups on: run by the active node only (schedule in UTC)'),
    ).toHaveLength(1);
    expect(logEvents('b', 'job runner started (this node is the active)')).toHaveLength(0);
    expect(logEvents('a', 'job runner started (this node is the active)').length).toBeGreaterThanOrEqual(1);
    // graphile-worker's connections exist on the active only (the passive's database is read-only).
    const runners = (n: NodeName) =>
      query<{ n: number }>(
        n,
        "select count(*)::int as n from pg_stat_activity where application_name = 'keytrusteed-jobs'",
      );
    expect((await runners('b'))[0].n).toBe(0);
    expect((await runners('a'))[0].n).toBeGreaterThan(0);

    const r = await ktadmin('b', ['backup-now']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /NOT_ACTIVE: this node is passive .*run backup-now there \(https:\/\/localhost:\d+\)/,
    );
  });

  it('ktadmin backup-now on the active: a backup gpg decrypts appears in BACKUP_DIR and the metrics show it', async () => {
    const before = backups('a').length;
    const writtenBefore = logEvents('a', 'backup written').length;
    expect(await metric('a', 'trustee_backup_failures_total')).toBe(0);
    const r = await ktadmin('a', ['backup-now']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/backup queued \(job \d+\)/);
    expect(r.stdout).toContain(`${backupDir('a')}/kts_bak_localhost_<YYYY-MM-DD_HH-MM-SS>.tar.gpg`);
    // The log line follows the file's rename: wait for it, then count files.
    await waitFor('backup written on a', () => logEvents('a', 'backup written').length === writtenBefore + 1);
    expect(backups('a')).toHaveLength(before + 1);
    await waitFor(
      'last success metric',
      async () => ((await metric('a', 'trustee_backup_last_success_timestamp_seconds')) ?? 0) > 0,
    );
    expect(await metric('a', 'trustee_backup_duration_seconds')).toBeGreaterThan(0);
    expect(await metric('a', 'trustee_backup_failures_total')).toBe(0);
    const file = join(backupDir('a'), backups('a').at(-1)!);
    const members = decryptAndList(file);
    expect(members).toMatch(/keytrustee\.conf$/m);
    expect(members).toMatch(/kts_bak_localhost_[0-9_-]+\.sql$/m);
    const [started] = logEvents('a', 'backup started').slice(-1);
    const [written] = logEvents('a', 'backup written').slice(-1);
    expect(started).toMatchObject({ trigger: 'backup-now', attempt: 1 });
    expect(written).toMatchObject({ trigger: 'backup-now', path: file });
    console.log(
      `backup-now -> written: job pickup ${String(started.pickupMs)} ms after it was queued, backup ${String(written.elapsedMs)} ms, ${String(written.bytes)} bytes`,
    );
    // Nothing ran on the passive.
    expect(logEvents('b', 'backup started')).toHaveLength(0);
    expect(backups('b')).toEqual([]);
  });

  it('backup-now while a backup runs queues one more run, which starts only after the first is written', async () => {
    const startedBefore = logEvents('a', 'backup started').length;
    const filesBefore = backups('a').length;
    const writtenBefore = logEvents('a', 'backup written').length;
    const lock = await holdDepositsLock('a');
    let released = false;
    try {
      expect((await ktadmin('a', ['backup-now'])).code).toBe(0);
      await waitFor(
        'first run started (and held by the lock)',
        () => logEvents('a', 'backup started').length === startedBefore + 1,
      );
      // Two more requests at once while it runs: they share the job key, so they make one more run.
      const more = await Promise.all([ktadmin('a', ['backup-now']), ktadmin('a', ['backup-now'])]);
      expect(more.map((m) => m.code)).toEqual([0, 0]);
      // The queue holds the next run back while the first is still running.
      await new Promise((r) => setTimeout(r, 1500));
      expect(logEvents('a', 'backup started')).toHaveLength(startedBefore + 1);
      await lock.query('rollback');
      released = true;
    } finally {
      if (!released) await lock.query('rollback').catch(() => undefined);
      await lock.end();
    }
    await waitFor(
      'second run written',
      () => logEvents('a', 'backup written').length === writtenBefore + 2,
      30_000,
    );
    expect(backups('a')).toHaveLength(filesBefore + 2);
    const started = logEvents('a', 'backup started').slice(startedBefore);
    const written = logEvents('a', 'backup written').slice(-2);
    expect(started).toHaveLength(2);
    // Never overlapping: the second starts after the first is written, by the server's own clock.
    expect(started[0].time).toBeLessThanOrEqual(written[0].time);
    expect(written[0].time).toBeLessThanOrEqual(started[1].time);
    expect(started[1].time).toBeLessThanOrEqual(written[1].time);
    expect(started[0].jobId).not.toBe(started[1].jobId);
    expect(logEvents('a', 'another backup holds the backup lock; this job is retried later')).toHaveLength(0);
    // No third run follows.
    await new Promise((r) => setTimeout(r, 1500));
    expect(logEvents('a', 'backup started')).toHaveLength(startedBefore + 2);
  });

  it('a failed run is logged with its reason and counted, and its retry succeeds once the cause is gone', async () => {
    const dir = backupDir('a');
    const failuresBefore = (await metric('a', 'trustee_backup_failures_total')) ?? 0;
    const writtenBefore = logEvents('a', 'backup written').length;
    // BACKUP_DIR replaced by a plain file: the run cannot create its output.
    renameSync(dir, `${dir}.aside`);
    writeFileSync(dir, 'not a directory');
    let restored = false;
    try {
      expect((await ktadmin('a', ['backup-now'])).code).toBe(0);
      await waitFor(
        'failure counted',
        async () => (await metric('a', 'trustee_backup_failures_total')) === failuresBefore + 1,
      );
      const [failed] = logEvents('a', 'backup failed').slice(-1);
      expect(failed).toMatchObject({ level: 50, trigger: 'backup-now', attempt: 1, retry: true });
      expect(String(failed.reason)).toMatch(/EEXIST|ENOTDIR/);
      rmSync(dir);
      renameSync(`${dir}.aside`, dir);
      restored = true;
    } finally {
      if (!restored) {
        rmSync(dir, { force: true });
        renameSync(`${dir}.aside`, dir);
      }
    }
    // graphile-worker retries after ~3 s (exp(1)); the directory is back by then.
    await waitFor(
      'retry written',
      () => logEvents('a', 'backup written').length === writtenBefore + 1,
      30_000,
    );
    expect(logEvents('a', 'backup written').at(-1)).toMatchObject({ attempt: 2 });
    expect(await metric('a', 'trustee_backup_failures_total')).toBe(failuresBefore + 1);
  });

  it('a restarted server stops its runner cleanly and reports the newest backup in BACKUP_DIR as the last success', async () => {
    const newest = join(backupDir('a'), backups('a').at(-1)!);
    await cluster.killServer('a', 'SIGTERM');
    expect(logEvents('a', 'job runner stopped').at(-1)).toMatchObject({ reason: 'server stopping' });
    await cluster.startServer('a');
    expect(await metric('a', 'trustee_backup_last_success_timestamp_seconds')).toBe(
      statSync(newest).mtimeMs / 1000,
    );
    await waitFor(
      'job runner on a again',
      async () => (await metric('a', 'trustee_job_runner_active')) === 1,
    );
  });

  it('after the active is lost mid-backup it stops its runner; the promoted passive reruns that backup and takes backup-now', async () => {
    // A run on a, held mid-way; its job lock reaches b by replication.
    const startedBefore = logEvents('a', 'backup started').length;
    const lock = await holdDepositsLock('a');
    try {
      expect((await ktadmin('a', ['backup-now'])).code).toBe(0);
      await waitFor('run started on a', () => logEvents('a', 'backup started').length === startedBefore + 1);
      await waitFor(
        'the locked job replicated to b',
        async () =>
          (
            await query<{ n: number }>(
              'b',
              'select count(*)::int as n from graphile_worker.jobs where locked_by is not null',
            )
          )[0].n === 1,
      );
      // PostgreSQL dies first: a's server, still up, stops its runner (no longer active).
      await cluster.killPostgres('a');
      await waitFor(
        'runner stopped on a',
        async () => (await metric('a', 'trustee_job_runner_active')) === 0,
      );
      expect((await health(cluster.a.url)).json?.role).not.toBe('active');
      await cluster.killServer('a', 'SIGKILL');
    } finally {
      // The session died with a's PostgreSQL; end() must not wait for it.
      await Promise.race([lock.end().catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);
    }
    expect(backups('b')).toEqual([]);
    const promoted = await ktadmin('b', ['promote']);
    expect(promoted.code).toBe(0);
    await waitFor('b active', async () => (await health(cluster.b.url)).json?.role === 'active');
    await waitFor('job runner on b', async () => (await metric('b', 'trustee_job_runner_active')) === 1);
    // The interrupted job is released and rerun here (its second attempt), without an operator.
    await waitFor(
      'interrupted backup rerun on b',
      () => logEvents('b', 'backup written').length === 1,
      30_000,
    );
    expect(backups('b')).toHaveLength(1);
    expect(
      logEvents(
        'b',
        'released jobs locked by workers that are gone (killed server or lost active); they run again here',
      ),
    ).toHaveLength(1);
    expect(logEvents('b', 'backup written').at(-1)).toMatchObject({ trigger: 'backup-now', attempt: 2 });
    const decided = logEvents('b', 'node decision changed').find((l) => l.role === 'active')!;
    const runnerUp = logEvents('b', 'job runner started (this node is the active)')[0];
    const rerun = logEvents('b', 'backup started')[0];
    console.log(
      `b decided active -> job runner started ${runnerUp.time - decided.time} ms -> interrupted backup rerun started ${rerun.time - decided.time} ms (server log clock)`,
    );
    // Job bookkeeping commits locally: no passive is needed for backups on the new active.
    expect((await health(cluster.b.url)).json?.writable).toBe(false);

    const r = await ktadmin('b', ['backup-now']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    await waitFor(
      'backup-now on the new active',
      () => logEvents('b', 'backup written').length === 2,
      30_000,
    );
    expect(backups('b')).toHaveLength(2);
    expect(decryptAndList(join(backupDir('b'), backups('b')[1]))).toMatch(/keytrustee\.conf$/m);
    expect(((await metric('b', 'trustee_backup_last_success_timestamp_seconds')) ?? 0) > 0).toBe(true);
  });
});
