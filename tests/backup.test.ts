/**
 * Issue #9, ktbackup as the seed runs it, with the real gpg: a key made with
 * `gpg --quick-gen-key`, the backup encrypted to it by name, `gpg -d -o backup.tar FILE`,
 * `tar tvf` laid out as the seed lists it; the cleartext guard, -q, --roll, and a backup taken on
 * the passive.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPostmasterPid } from '@trustee/replicator';
import { BINS, runCli } from '../packages/server/test/support/cli';
import { registerTestClient, type TestClient } from '../packages/server/test/support/clients';
import { psqlAt } from '../packages/server/test/support/psql';
import { useTestCluster } from '../packages/server/test/support/cluster';
import {
  getDepositRaw,
  isWritable,
  putDepositRaw,
  valueOf,
} from '../packages/server/test/support/deposit-requests';
import { freePort } from '../packages/server/test/support/ports';
import { trackPid, waitFor, waitForExit } from '../packages/server/test/support/processes';
import {
  confPaths,
  deriveJournalKey,
  readJournal,
  spawnNodeServer,
  updateKeytrusteeConf,
  waitForHealth,
} from '@trustee/server';
import { makeTempDir, removeDir } from '../packages/server/test/support/temp-dir';

describe('ktbackup (issue #9)', () => {
  const fixture = useTestCluster();
  let client: TestClient;
  let gnupg: string;
  let out: string;
  const env = () => ({ GNUPGHOME: gnupg });
  const gpg = (args: string[], input?: string) =>
    spawnSync('gpg', ['--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], {
      env: { ...process.env, ...env() },
      encoding: 'utf8',
      input,
    });

  beforeAll(async () => {
    gnupg = makeTempDir('trustee-gnupg-');
    out = makeTempDir('trustee-backups-');
    const made = gpg([
      '--quick-gen-key',
      'John Doe (Key Trustee Backup) <john.doe@example.com>',
      'default',
      'default',
      'never',
    ]);
    expect(made.status).toBe(0);
    client = await registerTestClient(fixture.cluster.a.url, fixture.cluster.org, fixture.cluster.authCode);
    for (let i = 0; i < 5; i++) {
      expect((await putDepositRaw(fixture.cluster.a.url, client, `bk-${i}`, `value-${i}`)).status).toBe(201);
    }
  });
  afterAll(() => {
    removeDir(gnupg);
    removeDir(out);
  });

  const ktbackup = (args: string[]) => runCli(BINS.ktbackup, args, { env: env(), timeoutMs: 120_000 });

  it('encrypts to the recipient named as in the seed; gpg -d decrypts it; tar tvf lists the confdir and the dump', async () => {
    const { a } = fixture.cluster;
    const r = await ktbackup(['-c', a.confdir, '--gpg-recipient=John Doe', `--output=${out}`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const file = /backup written: (\S+)/.exec(r.stdout)![1];
    expect(file).toMatch(/\/kts_bak_localhost_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}\.tar\.gpg$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([]);
    // No plaintext leaks: neither a deposit name nor the conf text appears in the encrypted file.
    const raw = readFileSync(file);
    expect(raw.includes(Buffer.from('bk-0'))).toBe(false);
    expect(raw.includes(Buffer.from('keytrustee.conf'))).toBe(false);

    const tar = join(out, 'backup.tar');
    const dec = gpg(['-d', '-o', tar, file]);
    expect(dec.status).toBe(0);
    const listing = execFileSync('tar', ['tvf', tar], { encoding: 'utf8' });
    const confdirMember = a.confdir.replace(/^\//, '');
    const parentMember = confdirMember.replace(/\/[^/]+$/, '');
    expect(listing).toMatch(new RegExp(`^drwx------ \\S+/\\S+ +0 .* ${confdirMember}/$`, 'm'));
    expect(listing).toMatch(new RegExp(` ${confdirMember}/keytrustee\\.conf$`, 'm'));
    expect(listing).toMatch(
      new RegExp(`^-rw------- .* ${confdirMember}/\\.ssl/ssl-cert-keytrustee-pk\\.pem$`, 'm'),
    );
    expect(listing).toMatch(new RegExp(` ${parentMember}/kts_bak_localhost_[0-9_-]+\\.sql$`, 'm'));
    expect(listing).not.toMatch(/\.pid$/m);
    // The dump holds the deposits (as stored: sealed values, names in clear).
    const sql = execFileSync('tar', ['xOf', tar, '--wildcards', '*.sql'], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    expect(sql).toContain('COPY public.deposits');
    expect(sql).toContain('bk-4');
    expect(sql).not.toContain('value-4');
  });

  it('refuses to write cleartext without --cleartext, and says how', async () => {
    const r = await ktbackup(['-c', fixture.cluster.a.confdir, `--output=${out}`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--gpg-recipient=NAME.*--cleartext/);
    const unknown = await ktbackup([
      '-c',
      fixture.cluster.a.confdir,
      '--gpg-recipient=nobody@nowhere.example',
      `--output=${out}`,
    ]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no public key for "nobody@nowhere.example".*gpg --import/);
    const clear = await ktbackup([
      '-c',
      fixture.cluster.a.confdir,
      '--cleartext',
      `--output=${join(out, 'clear')}`,
      '-q',
    ]);
    expect(clear.code).toBe(0);
    expect(clear.stdout.trim()).toMatch(/\.tar$/);
    expect(execFileSync('tar', ['tf', clear.stdout.trim()], { encoding: 'utf8' })).toContain(
      'keytrustee.conf',
    );
  });

  it('-q prints only the path; --roll=N keeps the newest N backups of this host, nothing else', async () => {
    const dir = join(out, 'roll');
    mkdirSync(dir);
    // Ten older backups of this host, one of another host, one unrelated file.
    for (let d = 1; d <= 10; d++)
      writeFileSync(
        join(dir, `kts_bak_localhost_2020-01-${String(d).padStart(2, '0')}_00-00-00.tar.gpg`),
        'old',
      );
    writeFileSync(join(dir, 'kts_bak_other_host_2019-01-01_00-00-00.tar.gpg'), 'x');
    writeFileSync(join(dir, 'notes.txt'), 'x');
    const r = await ktbackup([
      '-c',
      fixture.cluster.a.confdir,
      '--gpg-recipient=john.doe@example.com',
      '--quiet',
      `--output=${dir}`,
      '--roll=10',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const path = r.stdout.trim();
    const left = readdirSync(dir).sort();
    expect(left).toContain(path.split('/').pop());
    expect(left).not.toContain('kts_bak_localhost_2020-01-01_00-00-00.tar.gpg');
    expect(left).toContain('kts_bak_localhost_2020-01-02_00-00-00.tar.gpg');
    expect(left).toContain('kts_bak_other_host_2019-01-01_00-00-00.tar.gpg');
    expect(left).toContain('notes.txt');
    expect(left.filter((f) => f.startsWith('kts_bak_localhost_'))).toHaveLength(10);
    const one = await ktbackup([
      '-c',
      fixture.cluster.a.confdir,
      '--gpg-recipient=john.doe@example.com',
      '-q',
      `--output=${dir}`,
      '--roll=1',
    ]);
    expect(one.code).toBe(0);
    expect(readdirSync(dir).filter((f) => f.startsWith('kts_bak_localhost_'))).toEqual([
      one.stdout.trim().split('/').pop(),
    ]);
  });

  it('writes keep succeeding, none in doubt, while backups run on the passive under write load', async () => {
    const { a, b } = fixture.cluster;
    const q = (dbDir: string, port: number, sql: string) =>
      psqlAt({ dbDir, dbPort: port }, ['-At', '-d', 'keytrustee', '-c', sql]).trim();
    // The settings that keep a dump on the passive from stalling replay (and every commit with it).
    expect(q(b.dbDir, b.dbPort, 'show max_standby_streaming_delay')).toBe('1s');
    expect(q(b.dbDir, b.dbPort, 'show hot_standby_feedback')).toBe('on');
    expect(
      q(
        a.dbDir,
        a.dbPort,
        "select count(*) from pg_class where relname in ('orgs','clients','deposits','write_barrier','cluster_identity') and 'vacuum_truncate=false' = any(reloptions)",
      ),
    ).toBe('5');
    const statuses = new Map<number, number>();
    let stop = false;
    const writer = async (w: number) => {
      for (let i = 0; i < 60 && !stop; i++) {
        const r = await putDepositRaw(a.url, client, `load-${w}-${i}`, `v-${w}-${i}`);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        // Keep the tables churning (updates leave dead rows for vacuum on the active).
        if (i % 10 === 0) q(a.dbDir, a.dbPort, 'vacuum deposits');
      }
    };
    const writers = [0, 1, 2, 3].map(writer);
    const backups: number[] = [];
    for (let k = 0; k < 3; k++) {
      const r = await ktbackup([
        '-c',
        b.confdir,
        '--gpg-recipient=john.doe@example.com',
        '-q',
        `--output=${join(out, 'under-load')}`,
      ]);
      backups.push(r.code ?? -1);
    }
    stop = true;
    await Promise.all(writers);
    expect(backups).toEqual([0, 0, 0]);
    expect([...statuses.keys()]).toEqual([201]);
    console.log(
      `writes during 3 passive backups: ${statuses.get(201)} acknowledged, none refused or in doubt`,
    );
  });

  it('runs on the passive too, and the dump there holds the same deposits', async () => {
    const fp = gpg(['--with-colons', '--list-keys', 'john.doe@example.com'])
      .stdout.split('\n')
      .find((l) => l.startsWith('fpr:'))!
      .split(':')[9];
    const r = await ktbackup([
      '-c',
      fixture.cluster.b.confdir,
      `--gpg-recipient=${fp}`,
      `--output=${join(out, 'passive')}`,
      '--verbose',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/taken on the passive/);
    expect(r.stderr).toMatch(/node is passive/);
    const file = /backup written: (\S+)/.exec(r.stdout)![1];
    const tar = join(out, 'passive.tar');
    expect(gpg(['-d', '-o', tar, file]).status).toBe(0);
    const sql = execFileSync('tar', ['xOf', tar, '--wildcards', '*.sql'], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    for (let i = 0; i < 5; i++) expect(sql).toContain(`bk-${i}`);
  });
});

describe('restoring from a ktbackup file (issue #9)', () => {
  const fixture = useTestCluster();
  let client: TestClient;
  let gnupg: string;
  let work: string;
  let backupFile: string;
  const env = () => ({ GNUPGHOME: gnupg });
  const gpg = (args: string[]) =>
    spawnSync('gpg', ['--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], {
      env: { ...process.env, ...env() },
      encoding: 'utf8',
    });
  const ktadmin = (confdir: string, args: string[], extraEnv: Record<string, string> = env()) =>
    runCli(BINS.ktadmin, ['--confdir', confdir, ...args], { env: extraEnv, timeoutMs: 120_000 });
  const versions = new Map<string, string[]>();
  const afterBackup = new Map<string, string[]>();
  let journalDir: string;

  beforeAll(async () => {
    gnupg = makeTempDir('trustee-gnupg-');
    work = makeTempDir('trustee-restore-');
    expect(
      gpg(['--quick-gen-key', 'Restore Admin <restore@example.com>', 'default', 'default', 'never']).status,
    ).toBe(0);
    const { a } = fixture.cluster;
    // The change journal runs on the active from before the writes.
    journalDir = join(work, 'journal');
    updateKeytrusteeConf(a.confdir, { JOURNAL_DIR: journalDir });
    await fixture.cluster.killServer('a', 'SIGTERM');
    await fixture.cluster.startServer('a');
    await waitFor('the journal starts', () => existsSync(join(journalDir, 'journal.json')), 30_000);
    client = await registerTestClient(a.url, fixture.cluster.org, fixture.cluster.authCode);
    for (let i = 0; i < 4; i++) {
      for (let v = 1; v <= 2; v++) {
        const value = `r-${i}-v${v}`;
        expect((await putDepositRaw(a.url, client, `rs-${i}`, value)).status).toBe(201);
        versions.set(`rs-${i}`, [...(versions.get(`rs-${i}`) ?? []), value]);
      }
    }
    const r = await runCli(
      BINS.ktbackup,
      ['-c', a.confdir, '--gpg-recipient=restore@example.com', `--output=${work}`, '-q'],
      {
        env: env(),
        timeoutMs: 120_000,
      },
    );
    expect(r.code).toBe(0);
    backupFile = r.stdout.trim();
    // Writes acknowledged after the backup: only the journal holds them.
    for (let i = 0; i < 3; i++) {
      const value = `after-backup-${i}`;
      expect((await putDepositRaw(a.url, client, `after-backup-${i}`, value)).status).toBe(201);
      afterBackup.set(`after-backup-${i}`, [value]);
    }
    const key = deriveJournalKey(confPaths(a.confdir).masterKey);
    await waitFor(
      'the journal holds the writes made after the backup',
      async () => {
        let found = 0;
        for await (const rec of readJournal(journalDir, key)) {
          if (rec.type === 'tx' && JSON.stringify(rec.changes).includes('after-backup-2')) found++;
        }
        return found > 0;
      },
      20_000,
    );
  });
  afterAll(() => {
    removeDir(gnupg);
    removeDir(work);
  });

  async function expectEveryVersion(url: string, extra = new Map<string, string[]>()): Promise<void> {
    for (const [name, values] of [...versions, ...extra]) {
      for (let v = 1; v <= values.length; v++) {
        const r = await getDepositRaw(url, client, name, v);
        expect({ url, name, v, status: r.status }).toEqual({ url, name, v, status: 200 });
        expect(valueOf(r)).toBe(values[v - 1]);
      }
      const latest = await getDepositRaw(url, client, name);
      expect(latest.json.version).toBe(values.length);
    }
  }

  it('restores into a fresh node with a private key file; refuses a non-empty node; --force keeps the old one aside', async () => {
    const keyFile = join(work, 'restore.key');
    const exported = gpg(['--armor', '--export-secret-keys', 'restore@example.com']);
    expect(exported.status).toBe(0);
    writeFileSync(keyFile, exported.stdout, { mode: 0o600 });
    const home = join(work, 'fresh');
    mkdirSync(home, { mode: 0o755 });
    const confdir = join(home, 'confdir');
    const dbDir = join(home, 'db');
    const port = await freePort();
    // No keyring at all: the key file alone decrypts.
    const noKeyring = { GNUPGHOME: join(work, 'empty-gnupg') };
    const args = [
      'restore',
      '--from',
      backupFile,
      '--key',
      keyFile,
      '--pg-rootdir',
      dbDir,
      '--port',
      String(port),
      '--journal',
      journalDir,
    ];
    try {
      const r = await ktadmin(confdir, args, noKeyring);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/restored 8 deposit versions, 1 clients?, 1 orgs?/);
      expect(r.stdout).toMatch(/change journal replayed: [1-9]\d* transactions after the backup/);
      expect(r.stdout).toMatch(/JOURNAL_DIR removed from keytrustee.conf/);
      trackPg(dbDir);
      const again = await ktadmin(confdir, args, noKeyring);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(
        /RESTORE_REFUSED: refusing to overwrite this node: .*holds a configuration.*PostgreSQL runs/,
      );
      const forced = await ktadmin(confdir, [...args, '--force'], noKeyring);
      expect(forced.stderr).toBe('');
      expect(forced.code).toBe(0);
      expect(forced.stdout).toMatch(/kept aside: .*db\.replaced-/);
      expect(forced.stdout).toMatch(/kept aside: .*confdir\.replaced-/);
      trackPg(dbDir);
      // The restored node serves every deposit, every version, to its client (on a port of its own).
      const apiPort = await freePort();
      updateKeytrusteeConf(confdir, { PORT: apiPort, PEERS: [] });
      const url = `https://localhost:${apiPort}`;
      const server = spawnNodeServer(
        { name: 'node-a', dir: home, confdir, dbDir, apiPort, dbPort: port, url },
        { keytrusteedBin: BINS.keytrusteedDist },
      );
      trackPid(server.pid!);
      try {
        await waitForHealth(url, 20_000);
        // Backup + journal: the writes acknowledged after the backup are back too.
        await expectEveryVersion(url, afterBackup);
      } finally {
        server.kill('SIGKILL');
        await waitForExit(server.pid!, 10_000);
      }
      const bad = await ktadmin(join(work, 'x', 'confdir'), [
        'restore',
        '--from',
        keyFile,
        '--pg-rootdir',
        join(work, 'x', 'db'),
      ]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/ARCHIVE_INVALID/);
    } finally {
      await ktadmin(confdir, ['db', '--stop']);
    }
  });

  it("the seed's manual path after losing both nodes: gpg -d, tar xvf -C /, recreate the database, psql -f; the passive rebuilt from it", async () => {
    const { a, b } = fixture.cluster;
    for (const n of ['a', 'b'] as const) {
      await fixture.cluster.killServer(n, 'SIGKILL');
      await fixture.cluster.killPostgres(n);
    }
    rmSync(a.confdir, { recursive: true, force: true });
    rmSync(a.dbDir, { recursive: true, force: true });
    rmSync(b.dbDir, { recursive: true, force: true });

    const tar = join(work, 'manual.tar');
    expect(gpg(['-d', '-o', tar, backupFile]).status).toBe(0);
    execFileSync('tar', ['xf', tar, '-C', '/']);
    const sql = readdirSync(join(a.confdir, '..')).find((f) => f.endsWith('.sql'))!;
    // A fresh database server for the node, then the seed's drop / create / psql -f.
    expectOk(
      await ktadmin(a.confdir, [
        'db',
        '--bootstrap',
        '--pg-rootdir',
        a.dbDir,
        '--port',
        String(a.dbPort),
        '--slave',
        `localhost:${b.dbPort}`,
      ]),
    );
    trackPg(a.dbDir);
    const psql = (args: string[]) => psqlAt(a, args);
    psql(['-d', 'postgres', '-c', 'drop database keytrustee']);
    psql(['-d', 'postgres', '-c', 'create database keytrustee']);
    psql(['-d', 'keytrustee', '-q', '-f', join(a.confdir, '..', sql)]);
    // The passive is rebuilt from the restored active, then synchronous replication.
    expectOk(
      await ktadmin(b.confdir, [
        'db',
        '--bootstrap',
        '--master',
        `localhost:${a.dbPort}`,
        '--pg-rootdir',
        b.dbDir,
        '--port',
        String(b.dbPort),
      ]),
    );
    trackPg(b.dbDir);
    expectOk(await ktadmin(a.confdir, ['enable-synchronous-replication']));
    await fixture.cluster.startServer('a');
    await fixture.cluster.startServer('b');
    await waitFor('restored active writable', () => isWritable(a.url), 30_000);
    await expectEveryVersion(a.url);
    await expectEveryVersion(b.url);
    expect((await putDepositRaw(a.url, client, 'after-restore', 'ok')).status).toBe(201);
  });
});

function expectOk(r: { code: number | null; stderr: string }): void {
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
}

function trackPg(dbDir: string): void {
  const pid = readPostmasterPid(dbDir);
  if (pid) trackPid(pid);
}
