/**
 * Issue #9, item 2: the seed's runbook commands run as the service account work as written —
 * `sudo -u keytrustee gpg --import KEY`, `sudo -u keytrustee ktbackup --gpg-recipient=…`,
 * `su - keytrustee; pg_dump -c -p 11381 keytrustee`, `psql -p 11381 …` and the manual restore
 * (`psql -p 11381`, drop/create, `psql -p 11381 -f FILE.sql`), all without `-h` — while no other
 * unprivileged account reaches either database socket. Runs as root (as CI does); `runuser`
 * stands in for `sudo -u`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  DEFAULT_PG_OS_USER,
  LIBPQ_DEFAULT_SOCKET_DIR,
  readPostmasterPid,
  socketDirFor,
  stopPostgres,
} from '@trustee/replicator';
import {
  addOrg,
  bootstrapActiveDb,
  confPaths,
  createLogger,
  initConfdir,
  listOrgs,
  nodeInstance,
  openNodeServices,
  startServer,
  updateKeytrusteeConf,
  type RunningServer,
} from '@trustee/server';
import { BINS } from '../packages/server/test/support/cli';
import { registerTestClient } from '../packages/server/test/support/clients';
import { putDepositRaw } from '../packages/server/test/support/deposit-requests';
import { freePort } from '../packages/server/test/support/ports';
import { trackPid, untrackPid } from '../packages/server/test/support/processes';
import { makeTempDir, removeDir } from '../packages/server/test/support/temp-dir';

const SVC = DEFAULT_PG_OS_USER;
const isRoot = process.getuid?.() === 0;
const describeAsRoot = isRoot ? describe : describe.skip;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command as `user` (`runuser -u` = `sudo -u`: HOME, USER, SHELL of the account), clean env. */
function runAs(
  user: string,
  cmd: string[],
  opts: { env?: Record<string, string>; input?: string } = {},
): Run {
  const env = Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const r = spawnSync('runuser', ['-u', user, '--', 'env', ...env, ...cmd], {
    encoding: 'utf8',
    input: opts.input ?? '',
    timeout: 120_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8' },
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? r.error?.message ?? '' };
}

/** `su - USER -c '…'`: a login shell of the account, as the seed's `su - keytrustee`. */
function suLogin(user: string, script: string, input = ''): Run {
  const r = spawnSync('su', ['-', user, '-c', script], {
    encoding: 'utf8',
    input,
    timeout: 120_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8' },
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? r.error?.message ?? '' };
}

/** The account's home (the seed's /var/lib/keytrustee), from the passwd database. */
function accountHome(user = SVC): string {
  return execFileSync('getent', ['passwd', user], { encoding: 'utf8' }).trim().split(':')[5];
}

function uidOf(user: string): number {
  return Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
}

describeAsRoot('the service account runs the seed’s commands as written (issue #9)', () => {
  let root: string; // root-owned temp dir standing in for /var/lib
  let home: string; // stands in for /var/lib/keytrustee: created by ktadmin init
  let confdir: string;
  let dbDir: string;
  let dbPort: number;
  let pgPid: number | undefined;
  let server: RunningServer | undefined;
  let adminGnupg: string; // the key administrator's keyring (root's, in a temp dir)
  let svcGnupg: string; // a keyring of the service account's own, in a temp dir
  let shared: string; // world-readable: the exported public key
  let pubFile: string;
  let email: string;
  let fingerprint: string;
  let intruder: string | undefined;
  let canRunCli = false;
  let defaultKeyImported = false;
  let backupFile: string;
  const deposits = ['svc-0', 'svc-1', 'svc-2'];

  const adminGpg = (args: string[]) =>
    spawnSync('gpg', ['--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], {
      env: { ...process.env, GNUPGHOME: adminGnupg },
      encoding: 'utf8',
    });

  /**
   * `sudo -u keytrustee ktbackup …`. The checkout must be readable by the account; when it is not
   * (a root-only clone), the CLI runs as root with the account's HOME/GNUPGHOME instead.
   */
  const ktbackupAsService = (args: string[], env: Record<string, string> = {}): Run => {
    const cmd = [process.execPath, BINS.ktbackup, ...args];
    if (canRunCli) return runAs(SVC, cmd, { env });
    const r = spawnSync(cmd[0], cmd.slice(1), {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: accountHome(), ...env },
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  beforeAll(async () => {
    root = makeTempDir('trustee-svc-');
    home = join(root, 'keytrustee');
    confdir = join(home, '.keytrustee');
    dbDir = join(home, 'db');
    dbPort = await freePort();
    await initConfdir({ confdir, host: 'localhost', port: 0 });
    await bootstrapActiveDb({ confdir, pgRootdir: dbDir, port: dbPort, listenAddresses: '127.0.0.1' });
    pgPid = readPostmasterPid(dbDir);
    if (pgPid) trackPid(pgPid);
    // The server runs as root over a confdir that now belongs to the service account.
    server = await startServer({
      confdir,
      port: 0,
      listenAddress: '127.0.0.1',
      log: createLogger({ level: process.env.TRUSTEE_TEST_LOG_LEVEL ?? 'silent' }),
    });
    const url = `https://localhost:${server.port}`;
    const svc = await openNodeServices(confdir);
    let auth: string;
    try {
      await addOrg(svc, 'svc', ['admin@svc.example']);
      auth = (await listOrgs(svc)).svc.auth_secret;
    } finally {
      await svc.close();
    }
    const client = await registerTestClient(url, 'svc', auth);
    for (const d of deposits) expect((await putDepositRaw(url, client, d, `value of ${d}`)).status).toBe(201);

    // The key administrator's key pair, as in the seed (unique per run: the account's home persists).
    adminGnupg = makeTempDir('trustee-gnupg-');
    email = `svc-backup-${process.pid}-${Date.now()}@example.com`;
    expect(
      adminGpg(['--quick-gen-key', `Jane Roe (Key Trustee Backup) <${email}>`, 'default', 'default', 'never'])
        .status,
    ).toBe(0);
    fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(adminGpg(['--with-colons', '--list-keys', email]).stdout)![1];
    shared = makeTempDir('trustee-svc-pub-');
    pubFile = join(shared, 'janeroe.pub');
    writeFileSync(pubFile, adminGpg(['--export', '--armor', email]).stdout, { mode: 0o644 });

    svcGnupg = makeTempDir('trustee-svc-gnupg-');
    chownSync(svcGnupg, uidOf(SVC), Number(execFileSync('id', ['-g', SVC], { encoding: 'utf8' })));
    chmodSync(svcGnupg, 0o700);
    canRunCli = runAs(SVC, [process.execPath, BINS.ktbackup, '--version']).status === 0;
    if (!canRunCli) {
      process.stderr.write(
        `service-account.test: ${BINS.ktbackup} is not readable by ${SVC}; ktbackup runs as root with ${SVC}'s HOME/GNUPGHOME\n`,
      );
    }
  });

  afterAll(async () => {
    await server?.close().catch(() => undefined);
    await stopPostgres(nodeInstance({ confdir }), { mode: 'immediate' }).catch(() => undefined);
    if (pgPid) untrackPid(pgPid);
    if (defaultKeyImported) {
      // The account's home outlives the test: leave its default keyring as it was.
      runAs(SVC, ['gpg', '--batch', '--yes', '--delete-keys', fingerprint]);
    }
    runAs(SVC, ['gpgconf', '--kill', 'all']);
    if (svcGnupg) runAs(SVC, ['gpgconf', '--kill', 'all'], { env: { GNUPGHOME: svcGnupg } });
    if (intruder) spawnSync('userdel', [intruder]);
    for (const d of [root, adminGnupg, svcGnupg, shared]) if (d) removeDir(d);
  });

  it('ktadmin init (as root) gives the confdir and the parent it created to the account; modes stay private', () => {
    const passwd = execFileSync('getent', ['passwd', SVC], { encoding: 'utf8' }).trim().split(':');
    expect(passwd[6]).toMatch(/\/(ba)?sh$/); // a login shell: `su - keytrustee` works
    expect(statSync(accountHome()).uid).toBe(uidOf(SVC));
    const uid = uidOf(SVC);
    const p = confPaths(confdir);
    for (const [f, mode] of [
      [home, 0o700],
      [confdir, 0o700],
      [p.sslDir, 0o700],
      [p.identityKey, 0o600],
      [p.masterKey, 0o600],
      [p.replicationSecret, 0o600],
      [p.sslKey, 0o600],
      [p.conf, 0o644],
    ] as const) {
      const st = lstatSync(f);
      expect({ f, uid: st.uid, mode: st.mode & 0o777 }).toEqual({ f, uid, mode });
    }
    expect(statSync(root).uid).toBe(0); // a directory that existed before is left alone
    expect(server).toBeDefined();
  });

  it('root replaces a link the account planted in its confdir instead of writing through it', () => {
    const dir = join(home, 'planted');
    expect(runAs(SVC, ['mkdir', '-m', '0700', dir]).status).toBe(0);
    const target = join(root, 'root-owned.json');
    writeFileSync(target, '{"ROOT_ONLY": true}\n', { mode: 0o644 });
    expect(runAs(SVC, ['ln', '-s', target, join(dir, 'keytrustee.conf')]).status).toBe(0);
    updateKeytrusteeConf(dir, { HOST: 'planted' });
    expect(readFileSync(target, 'utf8')).toBe('{"ROOT_ONLY": true}\n');
    const st = lstatSync(join(dir, 'keytrustee.conf'));
    expect({ link: st.isSymbolicLink(), uid: st.uid, mode: st.mode & 0o777 }).toEqual({
      link: false,
      uid: uidOf(SVC),
      mode: 0o644,
    });
  });

  it('both sockets belong to the account’s group with mode 0770, one of them where libpq looks by default', () => {
    const gid = Number(execFileSync('id', ['-g', SVC], { encoding: 'utf8' }));
    for (const dir of [socketDirFor(dbDir), LIBPQ_DEFAULT_SOCKET_DIR]) {
      const st = statSync(join(dir, `.s.PGSQL.${dbPort}`));
      expect({ dir, socket: st.isSocket(), gid: st.gid, mode: st.mode & 0o777 }).toEqual({
        dir,
        socket: true,
        gid,
        mode: 0o770,
      });
    }
    expect(statSync(socketDirFor(dbDir)).mode & 0o777).toBe(0o700);
  });

  it('sudo -u keytrustee gpg --import, then sudo -u keytrustee ktbackup --gpg-recipient (its own keyring)', () => {
    const imported = runAs(SVC, ['gpg', '--batch', '--import', pubFile], { env: { GNUPGHOME: svcGnupg } });
    expect(imported.stderr).toMatch(/imported: 1/);
    expect(imported.status).toBe(0);
    const r = ktbackupAsService(['-c', confdir, `--gpg-recipient=${email}`], { GNUPGHOME: svcGnupg });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    backupFile = /backup written: (\S+)/.exec(r.stdout)![1];
    // Default output: the confdir's parent (the seed's /var/lib/keytrustee), writable by the account.
    expect(backupFile.startsWith(`${home}/kts_bak_localhost_`)).toBe(true);
    expect(statSync(backupFile).mode & 0o777).toBe(0o600);
    if (canRunCli) expect(statSync(backupFile).uid).toBe(uidOf(SVC));
    expect(r.stdout).toContain(`encrypted to ${fingerprint}`);
    // The key administrator decrypts it with the real gpg.
    const tar = join(root, 'backup.tar');
    expect(adminGpg(['-d', '-o', tar, backupFile]).status).toBe(0);
    const listing = execFileSync('tar', ['tvf', tar], { encoding: 'utf8' });
    expect(listing).toMatch(
      new RegExp(`^-rw------- ${SVC}/${SVC} .* ${confdir.slice(1)}/trustee-master\\.key$`, 'm'),
    );
    expect(listing).toMatch(/kts_bak_localhost_[0-9_-]+\.sql$/m);
  });

  it('the default keyring of the account (~keytrustee/.gnupg) is the one ktbackup uses without GNUPGHOME', () => {
    const imported = runAs(SVC, ['gpg', '--batch', '--import', pubFile]);
    expect(imported.status).toBe(0);
    defaultKeyImported = true;
    const gnupgHome = join(accountHome(), '.gnupg');
    expect(statSync(gnupgHome).uid).toBe(uidOf(SVC));
    const out = join(home, 'default-keyring');
    expect(runAs(SVC, ['mkdir', '-m', '0700', out]).status).toBe(0);
    const r = ktbackupAsService(['-c', confdir, `--gpg-recipient=${email}`, `--output=${out}`, '-q']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(readdirSync(out)).toEqual([r.stdout.trim().slice(out.length + 1)]);
    // Removed again: a recipient the keyring no longer holds is refused, naming gpg --import.
    expect(runAs(SVC, ['gpg', '--batch', '--yes', '--delete-keys', fingerprint]).status).toBe(0);
    defaultKeyImported = false;
    const gone = ktbackupAsService(['-c', confdir, `--gpg-recipient=${email}`, `--output=${out}`]);
    expect(gone.status).toBe(1);
    expect(gone.stderr).toMatch(/no public key for .*gpg --import/);
  });

  it('su - keytrustee: pg_dump -c -p PORT keytrustee and psql -p PORT, with no -h', () => {
    const dump = suLogin(SVC, `pg_dump -c -p ${dbPort} keytrustee`);
    expect(dump.stderr).toBe('');
    expect(dump.status).toBe(0);
    expect(dump.stdout).toContain('DROP TABLE public.deposits');
    expect(dump.stdout).toContain('COPY public.deposits');
    for (const d of deposits) expect(dump.stdout).toContain(d);
    const count = runAs(SVC, [
      'psql',
      '-p',
      String(dbPort),
      '-d',
      'keytrustee',
      '-Atc',
      'select count(*) from deposits',
    ]);
    expect(count.stderr).toBe('');
    expect(count.stdout.trim()).toBe(String(deposits.length));
    // Without -d and -U, psql is the account on its own database, as in the seed's `psql -p 11381`.
    const who = suLogin(SVC, `psql -p ${dbPort} -Atc 'select current_user, current_database()'`);
    expect(who.stdout.trim()).toBe('keytrustee|keytrustee');
  });

  it('another unprivileged account reaches neither socket (permission denied)', () => {
    intruder = `ktsvc-x${process.pid}`.slice(0, 31);
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', intruder]);
    for (const host of [LIBPQ_DEFAULT_SOCKET_DIR, socketDirFor(dbDir)]) {
      const r = runAs(intruder, [
        'psql',
        '-h',
        host,
        '-p',
        String(dbPort),
        '-U',
        'keytrustee',
        '-d',
        'keytrustee',
        '-Atc',
        'select 1',
      ]);
      expect({ host, status: r.status }).toEqual({ host, status: 2 });
      expect(r.stderr).toMatch(/Permission denied/);
    }
    // Debian's own postgres account is not let in either (it may write the directory, not connect).
    const pg = runAs('postgres', [
      'psql',
      '-p',
      String(dbPort),
      '-U',
      'keytrustee',
      '-d',
      'keytrustee',
      '-Atc',
      'select 1',
    ]);
    expect(pg.stderr).toMatch(/Permission denied/);
  });

  it('restores by hand as the seed: psql -p PORT, drop and create the database, psql -p PORT -f FILE.sql as keytrustee', async () => {
    // The seed's `tar xvf … -C /` put the dump beside the confdir, owned by the account.
    const sqlDir = join(root, 'extract');
    execFileSync('mkdir', ['-p', sqlDir]);
    execFileSync('tar', ['xf', join(root, 'backup.tar'), '-C', sqlDir]);
    const sql = join(
      sqlDir,
      home.slice(1),
      readdirSync(join(sqlDir, home.slice(1))).find((f) => f.endsWith('.sql'))!,
    );
    expect(existsSync(sql)).toBe(true);
    // tar as root keeps the archived owner; a backup taken as root gets the seed's `chown keytrustee:`.
    if (canRunCli) expect(statSync(sql).uid).toBe(uidOf(SVC));
    else chownSync(sql, uidOf(SVC), statSync(home).gid);
    await server?.close();
    server = undefined;
    const recreate = suLogin(
      SVC,
      `psql -p ${dbPort}`,
      '\\c postgres\ndrop database keytrustee;\ncreate database keytrustee;\n\\q\n',
    );
    expect(recreate.stderr).toBe('');
    expect(recreate.stdout).toMatch(/DROP DATABASE[\s\S]*CREATE DATABASE/);
    const load = runAs(SVC, ['psql', '-p', String(dbPort), '-q', '-v', 'ON_ERROR_STOP=1', '-f', sql]);
    expect(load.stderr).toBe('');
    expect(load.status).toBe(0);
    const count = runAs(SVC, ['psql', '-p', String(dbPort), '-Atc', 'select count(*) from deposits']);
    expect(count.stdout.trim()).toBe(String(deposits.length));
  });
});
