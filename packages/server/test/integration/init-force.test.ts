import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { readPostmasterPid, startPostgres, stopPostgres } from '@trustee/replicator';
import { confPaths, nodeInstance } from '@trustee/server';
import { BINS, runCli, type CliResult } from '../support/cli';
import { registerTestClient, type TestClient } from '../support/clients';
import { trackPid } from '../support/processes';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { makeTempDir, removeDir } from '../support/temp-dir';
import { addOrgCli, call, putDeposit } from '../support/api';

/**
 * Issue 10, finding 3: `ktadmin init --force` used to overwrite the master key, the identity and
 * the replication secret, so every deposit became unreadable. It now refuses on a node whose
 * database holds a cluster and otherwise keeps the old keys in retired-<time>/.
 */

const CONSEQUENCE =
  'deposits sealed with this master key would become unreadable; clients registered with this identity would stop validating';

const ktadmin = (confdir: string, ...args: string[]): Promise<CliResult> =>
  runCli(BINS.ktadmin, ['--confdir', confdir, ...args], { timeoutMs: 90_000 });

/** Every file under dir: relative path -> bytes and mode. */
function snapshot(dir: string): Map<string, { bytes: string; mode: number }> {
  const out = new Map<string, { bytes: string; mode: number }>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(relative(dir, p), { bytes: readFileSync(p, 'base64'), mode: statSync(p).mode & 0o777 });
    }
  };
  walk(dir);
  return out;
}

const retiredDirs = (confdir: string) => readdirSync(confdir).filter((f) => f.startsWith('retired-'));
const mode = (f: string) => statSync(f).mode & 0o777;
const KEY_FILES = [
  'trustee-identity.key',
  'trustee-identity.crt',
  'trustee-master.key',
  'trustee-replication.secret',
];

describe('ktadmin init --force on a node whose database holds deposits', () => {
  let node: SingleNode;
  let alice: TestClient;

  beforeAll(async () => {
    node = await startSingleNode();
    const code = await addOrgCli(node, 'acme');
    alice = await registerTestClient(node.url, 'acme', code);
    expect((await putDeposit(node, alice, 'db-password', 'v1')).status).toBe(201);
    expect((await putDeposit(node, alice, 'db-password', 'v2')).status).toBe(201);
  });

  afterAll(async () => {
    await node?.stop();
  });

  async function expectDepositReadable(): Promise<void> {
    const res = await call(node, alice, 'GET', '/v1/deposits/db-password');
    expect(res.status).toBe(200);
    expect(Buffer.from(res.json.value as string, 'base64').toString()).toBe('v2');
  }

  it('is refused with KEYS_IN_USE, counting what would be lost; every file stays byte-identical', async () => {
    const before = snapshot(node.confdir);
    const r = await ktadmin(node.confdir, 'init', '--force', '--host', 'localhost');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: KEYS_IN_USE: /);
    expect(r.stderr).toContain(`2 ${CONSEQUENCE} (1 registered)`);
    expect(r.stderr).toContain(node.dbDir);
    expect(r.stderr).toContain('Nothing was changed');
    expect(snapshot(node.confdir)).toEqual(before);
    expect(retiredDirs(node.confdir)).toEqual([]);
    await expectDepositReadable();
  });

  it('is refused while PostgreSQL is stopped too, naming the data directory; the deposits are readable after a restart', async () => {
    const before = snapshot(node.confdir);
    await stopPostgres(nodeInstance({ confdir: node.confdir }));
    try {
      const r = await ktadmin(node.confdir, 'init', '--force', '--host', 'localhost');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: KEYS_IN_USE: /);
      expect(r.stderr).toContain(`the database in ${node.dbDir}`);
      expect(r.stderr).toContain(
        `PostgreSQL is not running, so its deposits could not be counted: all ${CONSEQUENCE}`,
      );
      expect(snapshot(node.confdir)).toEqual(before);
    } finally {
      await startPostgres(nodeInstance({ confdir: node.confdir, prepareTls: true }));
      const pid = readPostmasterPid(node.dbDir);
      if (pid) trackPid(pid);
    }
    // The server's pool reconnects once the database is back.
    const deadline = Date.now() + 20_000;
    while (
      (await call(node, alice, 'GET', '/v1/deposits/db-password')).status !== 200 &&
      Date.now() < deadline
    )
      await new Promise((r) => setTimeout(r, 200));
    await expectDepositReadable();
  });

  it('names the consequence when refused without --force', async () => {
    const r = await ktadmin(node.confdir, 'init', '--host', 'localhost');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: ALREADY_INITIALIZED: /);
    expect(r.stderr).toContain(CONSEQUENCE);
  });
});

describe('ktadmin init --force on a confdir without a database', () => {
  let home: string;

  beforeAll(() => {
    home = makeTempDir();
  });

  afterAll(() => {
    if (home) removeDir(home);
  });

  it('moves the old keys to retired-<time>/ (0700, same bytes, 0600 keys), says where, and writes new ones', async () => {
    const confdir = join(home, 'standalone');
    expect((await ktadmin(confdir, 'init', '--host', 'localhost')).code).toBe(0);
    // A data directory named in keytrustee.conf but moved aside: nothing in it to lose.
    const conf = JSON.parse(readFileSync(confPaths(confdir).conf, 'utf8')) as Record<string, unknown>;
    writeFileSync(
      confPaths(confdir).conf,
      JSON.stringify({ ...conf, DB_ROOTDIR: join(home, 'moved-aside') }, null, 2),
    );
    const before = snapshot(confdir);

    const r = await ktadmin(confdir, 'init', '--force', '--host', 'localhost');
    expect(r.code).toBe(0);
    const retired = retiredDirs(confdir);
    expect(retired).toHaveLength(1);
    expect(retired[0]).toMatch(/^retired-\d{8}T\d{6}Z$/);
    const retiredDir = join(confdir, retired[0]);
    expect(r.stdout).toContain(`moved to ${retiredDir}`);
    expect(mode(retiredDir)).toBe(0o700);

    const kept = snapshot(retiredDir);
    for (const f of [...KEY_FILES, '.ssl/ssl-cert-keytrustee-pk.pem', '.ssl/ssl-cert-keytrustee.pem'])
      expect({ f, kept: kept.get(f) }).toEqual({ f, kept: before.get(f) });
    for (const f of ['trustee-identity.key', 'trustee-master.key', 'trustee-replication.secret'])
      expect({ f, mode: mode(join(retiredDir, f)) }).toEqual({ f, mode: 0o600 });

    const after = snapshot(confdir);
    for (const f of KEY_FILES) {
      expect(after.get(f)).toBeDefined();
      expect({ f, same: after.get(f)?.bytes === before.get(f)?.bytes }).toEqual({ f, same: false });
    }
    expect(after.get('trustee-master.key')?.mode).toBe(0o600);
  });

  it('keeps a copied confdir (identity, no .ssl/) as it is under --force: only its TLS files are made', async () => {
    const active = join(home, 'active');
    const copy = join(home, 'copy');
    expect((await ktadmin(active, 'init', '--host', 'kt01.example.test')).code).toBe(0);
    // The seed's rsync --exclude .ssl.
    cpSync(active, copy, { recursive: true, filter: (src) => !src.endsWith('/.ssl') });
    expect(existsSync(confPaths(copy).sslDir)).toBe(false);

    const r = await ktadmin(copy, 'init', '--force', '--host', 'kt02.example.test');
    expect(r.code).toBe(0);
    for (const f of KEY_FILES)
      expect(readFileSync(join(copy, f)).equals(readFileSync(join(active, f)))).toBe(true);
    expect(existsSync(confPaths(copy).sslKey)).toBe(true);
    expect(retiredDirs(copy)).toEqual([]);
  });

  it('--from-peer-confdir --force keeps differing keys in retired-<time>/ and takes the peer identity; a re-copy retires nothing', async () => {
    const peer = join(home, 'active');
    const node = join(home, 'stray');
    expect((await ktadmin(node, 'init', '--host', 'kt02.example.test')).code).toBe(0);
    const own = snapshot(node);

    const r = await ktadmin(
      node,
      'init',
      '--from-peer-confdir',
      peer,
      '--force',
      '--host',
      'kt02.example.test',
    );
    expect(r.code).toBe(0);
    for (const f of KEY_FILES)
      expect(readFileSync(join(node, f)).equals(readFileSync(join(peer, f)))).toBe(true);
    const [retired, ...more] = retiredDirs(node);
    expect(more).toEqual([]);
    const kept = snapshot(join(node, retired));
    for (const f of KEY_FILES) expect({ f, kept: kept.get(f) }).toEqual({ f, kept: own.get(f) });

    const again = await ktadmin(
      node,
      'init',
      '--from-peer-confdir',
      peer,
      '--force',
      '--host',
      'kt02.example.test',
    );
    expect(again.code).toBe(0);
    expect(retiredDirs(node)).toEqual([retired]);
    rmSync(node, { recursive: true, force: true });
  });
});
