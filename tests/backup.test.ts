/**
 * Issue #9, ktbackup as the seed runs it, with the real gpg: a key made with
 * `gpg --quick-gen-key`, the backup encrypted to it by name, `gpg -d -o backup.tar FILE`,
 * `tar tvf` laid out as the seed lists it; the cleartext guard, -q, --roll, and a backup taken on
 * the passive.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BINS, runCli } from './helpers/cli';
import { registerTestClient, type TestClient } from './helpers/clients';
import { useTestCluster } from './helpers/cluster';
import { putDepositRaw } from './helpers/deposit-requests';
import { makeTempDir, removeDir } from './helpers/temp-dir';


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
