import { createPrivateKey } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ChildProcess } from 'node:child_process';
import { updateKeytrusteeConf, waitForHealth } from '@trustee/server';
import { BINS, runCli } from '../packages/server/test/support/cli';
import { registerTestClient, type TestClient } from '../packages/server/test/support/clients';
import { getDepositRaw, putDepositRaw, valueOf } from '../packages/server/test/support/deposit-requests';
import { httpsRequest } from '../packages/server/test/support/https-request';
import { untrackPid, waitFor, waitForExit } from '../packages/server/test/support/processes';
import { freePort } from '../packages/server/test/support/ports';
import { startSingleNode, type SingleNode } from '../packages/server/test/support/single-node';
import {
  createSoftHsmToken,
  keyhsmArgs,
  spawnWithToken,
  tokenArgs,
  type SoftHsmToken,
  type TokenFlags,
} from '../packages/server/test/support/softhsm';
import { withSuperuser } from '../packages/server/test/support/psql';
import { addOrgCli, orgtool } from '../packages/server/test/support/api';

/**
 * Issue 14, direct PKCS#11 on one node with a real SoftHSM2 token: `ktadmin keyhsm` refusals and
 * set-up, deposits under HSM data keys, /test_hsm, the token removed while running and at start.
 */
let token: SoftHsmToken;
let node: SingleNode;
let server: ChildProcess | undefined;
let port: number;
let client: TestClient;
let orgCode: string;
let url: string;

/**
 * keytrusteed as a child process: SoftHSM reads SOFTHSM2_CONF with getenv, and jest gives a test
 * a copy of process.env that native code never sees, so the in-process server could not.
 */
function spawnServer(): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const s = spawnWithToken(token, [BINS.keytrusteedDist, '--confdir', node.confdir, '--port', String(port)], {
    TRUSTEE_LOG_LEVEL: 'warn',
  });
  const exited = new Promise<number | null>((resolve) => s.child.on('exit', (code) => resolve(code)));
  return { ...s, exited };
}

async function stopServer(): Promise<void> {
  await node.server.close().catch(() => undefined);
  const child = server;
  server = undefined;
  if (!child?.pid) return;
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    await waitForExit(child.pid, 10_000);
  }
  untrackPid(child.pid);
}

async function restartServer(): Promise<void> {
  await stopServer();
  const s = spawnServer();
  server = s.child;
  url = `https://localhost:${port}`;
  await Promise.race([
    waitForHealth(url, 20_000),
    s.exited.then((code) => {
      throw new Error(`keytrusteed exited (${code}): ${s.output()}`);
    }),
  ]);
}

/** Starts keytrusteed expecting it to refuse; returns what it printed. */
async function failedStart(): Promise<string> {
  const s = spawnServer();
  const timer = setTimeout(() => s.child.kill('SIGKILL'), 20_000);
  const code = await s.exited;
  clearTimeout(timer);
  if (s.child.pid) untrackPid(s.child.pid);
  expect(code).toBe(1);
  return s.output();
}

/** `ktadmin keyhsm` on the node with the test's token (or a variant of it), then `extra`. */
function keyhsm(extra: string[] = [], flags: Partial<TokenFlags> = {}, input?: string) {
  return runCli(BINS.ktadmin, keyhsmArgs(node.confdir, { ...token, ...flags }, extra), { input });
}

function confText(): string {
  return readFileSync(join(node.confdir, 'keytrustee.conf'), 'utf8');
}

beforeAll(async () => {
  token = createSoftHsmToken();
  // SoftHSM reads its configuration from the environment: this process (the in-process server)
  // and the CLIs it spawns use the test's own token directory.
  process.env.SOFTHSM2_CONF = token.conf;
  // A new data key every second and room for one unwrapped key: the tests below need a row
  // whose data key is not cached.
  node = await startSingleNode({ conf: { HSM_DATA_KEY_MAX_AGE_SECONDS: 1, HSM_DATA_KEY_CACHE_SIZE: 1 } });
  // keytrusteed's own port in keytrustee.conf: `ktadmin keyhsm --migrate` asks it which keys it runs with.
  port = await freePort();
  updateKeytrusteeConf(node.confdir, { PORT: port });
  url = node.url;
  orgCode = await addOrgCli(node, 'hsmorg');
  client = await registerTestClient(url, 'hsmorg', orgCode);
});

afterAll(async () => {
  if (node) await stopServer();
  await node?.stop();
  token?.restore();
  token?.destroy();
});

test('ktadmin keyhsm refuses a group-readable PIN file, a wrong PIN and an unknown token, changing nothing', async () => {
  const loose = join(token.dir, 'loose.pin');
  writeFileSync(loose, readFileSync(token.pinFile));
  chmodSync(loose, 0o644);
  const r1 = await keyhsm([], { pinFile: loose });
  expect(r1.code).toBe(1);
  expect(r1.stderr).toMatch(/must be 0600/);

  const wrong = join(token.dir, 'wrong.pin');
  writeFileSync(wrong, '0000-wrong\n', { mode: 0o600 });
  const r2 = await keyhsm([], { pinFile: wrong });
  expect(r2.code).toBe(1);
  expect(r2.stderr).toMatch(/PIN .* was refused \(CKR_PIN_INCORRECT\)/);
  expect(r2.stderr).not.toContain('0000-wrong');

  const r3 = await keyhsm([], { label: 'no-such-token' });
  expect(r3.code).toBe(1);
  expect(r3.stderr).toMatch(/no token labelled "no-such-token"/);
  expect(confText()).not.toMatch(/HSM_PKCS11_MODULE/);
});

const dataKeyOf = (name: string) =>
  withSuperuser(node, async (c) => {
    const { rows } = await c.query<{ key_id: string }>(
      'select key_id from deposits where name = $1 order by version desc limit 1',
      [name],
    );
    return rows[0]?.key_id;
  });

/**
 * Writes `name` until its data key is no longer `name0`'s (one data key a second): after this,
 * with a cache of one, `name0`'s data key is not cached.
 */
async function untilNewerDataKey(name0: string, name: string, value: string): Promise<void> {
  const old = await dataKeyOf(name0);
  await waitFor(
    'a newer data key',
    async () => {
      const r = await putDepositRaw(url, client, name, value);
      return r.status === 201 && (await dataKeyOf(name)) !== old;
    },
    15_000,
    300,
  );
}

test('after ktadmin keyhsm and a restart, new deposits are sealed with HSM data keys and old ones still read', async () => {
  expect((await putDepositRaw(url, client, 'before-hsm', 'file-sealed')).status).toBe(201);
  const r = await keyhsm();
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/created the KEK "trustee-kek-1"/);
  expect(confText()).toMatch(/"HSM_TOKEN_LABEL": "trustee-test"/);
  expect(confText()).not.toContain('4321-test');
  // A second run (e.g. on a re-installed node) verifies the token instead of creating anything.
  const again = await keyhsm();
  expect(again.code).toBe(0);
  expect(again.stdout).toMatch(/holds the cluster's KEK "trustee-kek-1"/);

  await restartServer();
  expect((await putDepositRaw(url, client, 'under-hsm', 'hsm-sealed')).status).toBe(201);
  expect(await dataKeyOf('under-hsm')).toMatch(/^dk:/);
  expect(await dataKeyOf('before-hsm')).toMatch(/^file:/);
  const a = await getDepositRaw(url, client, 'under-hsm');
  expect(a.status).toBe(200);
  expect(valueOf(a)).toBe('hsm-sealed');
  const b = await getDepositRaw(url, client, 'before-hsm');
  expect(valueOf(b)).toBe('file-sealed');
  // The admin tools open the same hierarchy (org secrets are sealed with HSM data keys too).
  await addOrgCli(node, 'hsmorg2');
  const metrics = (await httpsRequest(url, { path: '/metrics', timeoutMs: 5000 })).text;
  expect(metrics).toMatch(/trustee_hsm_operations_total\{op="unwrap",result="ok"\} [1-9]/);
  expect(metrics).toMatch(/trustee_hsm_operation_duration_seconds_count\{op="unwrap"\} [1-9]/);
  expect(metrics).not.toContain('4321-test');
});

const fileSealedCount = () =>
  withSuperuser(node, async (c) => {
    const d = await c.query<{ n: string }>(
      "select count(*) as n from deposits where key_id like 'file:%' and sealed_value is not null",
    );
    const o = await c.query<{ n: string }>(
      "select count(*) as n from orgs where auth_secret_key_id like 'file:%'",
    );
    return Number(d.rows[0].n) + Number(o.rows[0].n);
  });

test('--migrate refuses a non-conforming deposit name, then asks the seed question and moves everything', async () => {
  // A name the API never accepts, as a database restored from elsewhere may hold.
  await withSuperuser(node, async (c) => {
    await c.query('alter table deposits drop constraint deposits_name_check');
    await c.query(
      `insert into deposits (owner_fp, name, version, sealed_value, key_id)
       select owner_fp, 'bad name@1', 1, sealed_value, key_id from deposits where name = 'before-hsm'`,
    );
  });
  const before = await fileSealedCount();
  const refused = await keyhsm(['--migrate', '--yes']);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(/migration refused: 1 deposit name\(s\) do not conform/);
  expect(refused.stderr).toContain('bad name@1');
  expect(refused.stderr).toMatch(/Nothing was moved/);
  expect(await fileSealedCount()).toBe(before);

  // The owner re-stores the data under a conforming name and destroys the old deposit.
  expect((await putDepositRaw(url, client, 'good-name', 'moved-by-owner')).status).toBe(201);
  await withSuperuser(node, (c) =>
    c.query(
      `update deposits set deleted = true, sealed_value = null, key_id = null where name = 'bad name@1'`,
    ),
  );

  const declined = await keyhsm(['--migrate'], {}, 'n\n');
  expect(declined.code).toBe(0);
  expect(declined.stdout).toContain('Some deposits were found that will need to be moved to the HSM.');
  expect(declined.stdout).toMatch(/Migration not performed; nothing was moved/);
  expect(await fileSealedCount()).toBe(before - 1);

  const yes = await keyhsm(['--migrate'], {}, 'yes\n');
  expect(yes.stderr).toBe('');
  expect(yes.code).toBe(0);
  expect(yes.stdout).toContain(`Some deposits were found that will need to be moved to the HSM.

        Note that although this operation can be interrupted, once complete,
        items stored in the HSM must remain there!

Do you want to perform this migration now? [y/N]: `);
  expect(yes.stdout).toMatch(/Migrating hsm deposits\.\.\.\n/);
  expect(yes.stdout).toMatch(/\d+\/\d+ deposit versions moved/);
  expect(yes.stdout).toMatch(/Migration Complete!/);
  expect(yes.stdout).toMatch(/There is no path for migrating keys from the HSM back/);
  expect(await fileSealedCount()).toBe(0);
  expect(await dataKeyOf('before-hsm')).toMatch(/^dk:/);
  const moved = await getDepositRaw(url, client, 'before-hsm');
  expect(moved.status).toBe(200);
  expect(valueOf(moved)).toBe('file-sealed');
  // Org secrets moved too: a registration still checks the org's auth code (now HSM-sealed).
  expect((await registerTestClient(url, 'hsmorg', orgCode)).state).toBe('active');
  await expect(registerTestClient(url, 'hsmorg', 'wrong-code')).rejects.toThrow(/403/);

  const again = await keyhsm(['--migrate']);
  expect(again.code).toBe(0);
  expect(again.stdout).toMatch(/No deposits need to be moved to the HSM/);
});

test('GET /test_hsm creates the sample deposit through the HSM and answers the seed sentence', async () => {
  const res = await httpsRequest(url, { path: '/test_hsm', timeoutMs: 10_000 });
  expect(res.status).toBe(200);
  expect(res.json).toMatch(/^Sample Key TEST_HELLO_DEPOSIT\d{4}-\d{2}-\d{2}-\d{6} has been created$/);
  const name = (res.json as string).split(' ')[2];
  const rows = await withSuperuser(node, (c) =>
    c.query<{ key_id: string }>('select key_id from hsm_test_deposits where name = $1', [name]),
  );
  expect(rows.rows[0].key_id).toMatch(/^dk:/);
});

test('with the token gone, values of cached data keys still read; the others answer UNAVAILABLE with the reason', async () => {
  // Registration opens the org secret's data key: before the writes below, so that with a cache
  // of one the current data key is the cached one when the token goes.
  const spare = await registerTestClient(url, 'hsmorg', orgCode);
  // One data key a second and a cache of one: wait until under-hsm's key is no longer current.
  await untilNewerDataKey('under-hsm', 'recent', 'cached-key');
  token.remove();
  try {
    // Revocation needs no key: it works while the HSM is away.
    const revoked = await orgtool(node, 'disable-client', '--fingerprint', spare.fingerprint);
    expect(revoked.stderr).toBe('');
    expect(revoked.code).toBe(0);
    // The current data key is cached: writes and reads under it go on without the token.
    expect((await putDepositRaw(url, client, 'during-outage', 'cached-key')).status).toBe(201);
    const cached = await getDepositRaw(url, client, 'during-outage');
    expect(cached.status).toBe(200);
    expect(valueOf(cached)).toBe('cached-key');
    const uncached = await getDepositRaw(url, client, 'under-hsm');
    expect(uncached.status).toBe(503);
    expect(uncached.json.error.code).toBe('UNAVAILABLE');
    expect(uncached.json.error.reason).toBe('HSM');
    expect(uncached.json.error.hsmReason).toMatch(/^(CKR_[A-Z_]+|KEK_NOT_FOUND|TOKEN_NOT_PRESENT)$/);
    const metrics = (await httpsRequest(url, { path: '/metrics', timeoutMs: 5000 })).text;
    expect(metrics).toMatch(/trustee_hsm_errors_total\{op="[a-z]+",reason="[A-Z_]+"\} [1-9]/);
    expect(metrics).toMatch(/trustee_hsm_up 0/);
    const h = await httpsRequest(url, { path: '/v1/health', timeoutMs: 5000 });
    expect(h.status).toBe(200);
    expect(h.json.atRestKeys).toBe('hsm');
    expect(h.json.hsm.up).toBe(false);
    expect(h.json.hsm.reason).toMatch(/^[A-Z_]+$/);
  } finally {
    token.restore();
  }
  // The token back: a read reopens the session (at most one attempt a second), no restart needed.
  const again = await waitFor(
    'the token to be used again',
    async () => {
      const r = await getDepositRaw(url, client, 'under-hsm');
      return r.status === 200 ? r : undefined;
    },
    10_000,
    200,
  );
  expect(valueOf(again)).toBe('hsm-sealed');
});

test('keytrusteed refuses to start when the token is missing or the PIN is wrong, saying which', async () => {
  await stopServer();
  token.remove();
  try {
    expect(await failedStart()).toMatch(/key HSM: no token labelled "trustee-test"/);
  } finally {
    token.restore();
  }
  const pin = readFileSync(token.pinFile);
  writeFileSync(token.pinFile, '0000-wrong\n');
  try {
    const out = await failedStart();
    expect(out).toMatch(/PIN for token "trustee-test" was refused \(CKR_PIN_INCORRECT\)/);
    expect(out).not.toContain('0000-wrong');
  } finally {
    writeFileSync(token.pinFile, pin);
  }
  await restartServer();
  expect((await getDepositRaw(url, client, 'under-hsm')).status).toBe(200);
});

test('KEK rotation under read/write load: data keys re-wrapped in the background, old KEK retired, idempotent retries still recognised', async () => {
  const idem = 'rotation-idempotency-key';
  const first = await putDepositRaw(url, client, 'idem-before', 'v1', { idempotencyKey: idem });
  expect(first.status).toBe(201);
  let running = true;
  let ops = 0;
  const failures: string[] = [];
  const load = (async () => {
    for (let i = 0; running && i < 100_000; i++) {
      const name = `load-${i % 10}`;
      const w = await putDepositRaw(url, client, name, `x${i}`);
      if (w.status !== 201) failures.push(`put ${name}: ${w.status} ${w.text}`);
      const r = await getDepositRaw(url, client, name);
      if (r.status !== 200 || valueOf(r) !== `x${i}`) failures.push(`get ${name}: ${r.status} ${r.text}`);
      const o = await getDepositRaw(url, client, 'under-hsm');
      if (o.status !== 200) failures.push(`get under-hsm: ${o.status} ${o.text}`);
      ops++;
    }
  })();
  try {
    const rot = await runCli(BINS.ktadmin, ['--confdir', node.confdir, 'rotate-kek', '--wait', '30']);
    expect(rot.stderr).toBe('');
    expect(rot.code).toBe(0);
    expect(rot.stdout).toMatch(/KEK "trustee-kek-2" is active; "trustee-kek-1" is retiring/);
    expect(rot.stdout).toMatch(/"trustee-kek-1" is retired/);
  } finally {
    running = false;
    await load;
  }
  expect(failures).toEqual([]);
  expect(ops).toBeGreaterThan(3);
  const left = await withSuperuser(node, (c) =>
    c.query<{ n: string }>("select count(*) as n from data_keys where kek_id <> 'trustee-kek-2'"),
  );
  expect(Number(left.rows[0].n)).toBe(0);
  const status = await runCli(BINS.ktadmin, ['--confdir', node.confdir, 'rotate-kek', '--status']);
  expect(status.stdout).toMatch(/trustee-kek-1 {2}retired {2}0 data key/);
  // A fresh server (empty cache) unwraps the re-wrapped data keys with the new KEK.
  await restartServer();
  const old = await getDepositRaw(url, client, 'before-hsm');
  expect(old.status).toBe(200);
  expect(valueOf(old)).toBe('file-sealed');
  // The digest key moved with the rest: the retry is recognised, a different body is refused.
  const replay = await putDepositRaw(url, client, 'idem-before', 'v1', { idempotencyKey: idem });
  expect(replay.status).toBe(201);
  expect(replay.json.version).toBe(first.json.version);
  expect(replay.headers['idempotent-replayed']).toBe('true');
  const other = await putDepositRaw(url, client, 'idem-before', 'v2', { idempotencyKey: idem });
  expect(other.status).toBe(400);
  const metrics = (await httpsRequest(url, { path: '/metrics', timeoutMs: 5000 })).text;
  expect(metrics).toMatch(/trustee_hsm_operations_total\{op="unwrap",result="ok"\} [1-9]/);
});

/** The seed's Key HSM service (packages/server/src/cli/keyhsm.ts), built. */
const KEYHSM_BIN = join(__dirname, '..', 'packages/server/dist/cli/keyhsm.js');

test("the seed's Key HSM form: keyhsm service with mutual TLS, keyhsm trust, ktadmin keyhsm --server --trust", async () => {
  const khDir = join(token.dir, 'keyhsm');
  const khPort = await freePort();
  const setup = await runCli(KEYHSM_BIN, [
    '--confdir',
    khDir,
    'setup',
    ...tokenArgs(token),
    '--host',
    'localhost',
    '--port',
    String(khPort),
  ]);
  expect(setup.stderr).toBe('');
  expect(setup.code).toBe(0);
  let service: ChildProcess | undefined;
  const startService = async () => {
    const s = spawnWithToken(token, [KEYHSM_BIN, '--confdir', khDir, 'run'], { TRUSTEE_LOG_LEVEL: 'warn' });
    service = s.child;
    await waitFor('keyhsm listening', () => s.output().includes('keyhsm listening on'), 15_000, 50);
  };
  const stopService = async () => {
    const s = service;
    service = undefined;
    if (!s?.pid) return;
    s.kill('SIGTERM');
    await waitForExit(s.pid, 10_000);
    untrackPid(s.pid);
  };
  const certFile = join(node.confdir, '.ssl', 'ssl-cert-keytrustee.pem');
  const keyFile = join(node.confdir, '.ssl', 'ssl-cert-keytrustee-pk.pem');
  const server = `https://localhost:${khPort}`;
  const viaService = () =>
    runCli(BINS.ktadmin, [
      '--confdir',
      node.confdir,
      'keyhsm',
      '--server',
      server,
      '--client-certfile',
      certFile,
      '--client-keyfile',
      keyFile,
      '--trust',
    ]);
  try {
    await startService();
    // Not trusted yet: the service closes the connection, nothing changes here.
    const untrusted = await viaService();
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/Key HSM service https:\/\/localhost:\d+ is not usable/);
    expect(confText()).not.toMatch(/HSM_SERVER/);
    expect(existsSync(join(node.confdir, '.ssl', 'ssl-cert-keyhsm.pem'))).toBe(false);
    // A request sent right behind a TLS 1.3 handshake by an untrusted client is never served.
    const asNode = (method: string, path: string) =>
      httpsRequest(server, {
        method,
        path,
        cert: readFileSync(certFile, 'utf8'),
        key: readFileSync(keyFile, 'utf8'),
        timeoutMs: 5_000,
      }).then(
        (r) => r.status,
        () => 0,
      );
    expect(await asNode('PUT', '/v1/keks/planted-by-untrusted')).toBe(0);

    const trust = await runCli(KEYHSM_BIN, ['--confdir', khDir, 'trust', certFile]);
    expect(trust.code).toBe(0);
    expect(trust.stdout).toMatch(/trusted .*SHA-256/);
    const planted = await httpsRequest(server, {
      path: '/v1/keks/planted-by-untrusted',
      cert: readFileSync(certFile, 'utf8'),
      key: readFileSync(keyFile, 'utf8'),
      timeoutMs: 5_000,
    });
    expect(planted.json).toEqual({ exists: false });
    expect(await asNode('GET', '/v1/keks/%E0%A4%A')).toBe(400);

    const r = await viaService();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/trusting the Key HSM certificate/);
    expect(r.stdout).toMatch(/holds the cluster's KEK "trustee-kek-2"/); // rotated above
    expect(r.stdout).toMatch(/No deposits need to be moved to the HSM/);
    expect(readFileSync(join(node.confdir, '.ssl', 'ssl-cert-keyhsm.pem'), 'utf8')).toMatch(
      /BEGIN CERTIFICATE/,
    );
    expect(confText()).toMatch(/"HSM_SERVER": "https:\/\/localhost:\d+"/);
    expect(confText()).not.toMatch(/HSM_PKCS11_MODULE/);

    await restartServer();
    const read = await getDepositRaw(url, client, 'before-hsm');
    expect(valueOf(read)).toBe('file-sealed');
    expect((await putDepositRaw(url, client, 'via-service', 'keyhsm-sealed')).status).toBe(201);
    const sample = await httpsRequest(url, { path: '/test_hsm', timeoutMs: 10_000 });
    expect(sample.status).toBe(200);
    expect(sample.json).toMatch(/^Sample Key TEST_HELLO_DEPOSIT[\d-]+ has been created$/);

    // The service stopped: an uncached data key answers UNAVAILABLE with the network reason.
    await untilNewerDataKey('before-hsm', 'recent2', 'x');
    await stopService();
    const down = await getDepositRaw(url, client, 'before-hsm');
    expect(down.status).toBe(503);
    expect(down.json.error.reason).toBe('HSM');
    expect(down.json.error.hsmReason).toBe('ECONNREFUSED');
    await startService();
    const back = await getDepositRaw(url, client, 'before-hsm');
    expect(back.status).toBe(200);
    expect(valueOf(back)).toBe('file-sealed');

    // --passphrase: an encrypted client key; the passphrase is asked for and kept 0600 in .ssl/.
    const encKey = join(token.dir, 'client-key-encrypted.pem');
    writeFileSync(
      encKey,
      createPrivateKey(readFileSync(keyFile)).export({
        type: 'pkcs8',
        format: 'pem',
        cipher: 'aes-256-cbc',
        passphrase: 'kts-key-secret',
      }) as string,
      { mode: 0o600 },
    );
    const withPassphrase = (passphrase: string) =>
      runCli(
        BINS.ktadmin,
        [
          '--confdir',
          node.confdir,
          'keyhsm',
          '--passphrase',
          '--server',
          server,
          '--client-certfile',
          certFile,
          '--client-keyfile',
          encKey,
          '--trust',
        ],
        { input: `${passphrase}\n` },
      );
    // A wrong passphrase: refused, and no passphrase file (final or pending) stays behind.
    const wrongPass = await withPassphrase('not-the-passphrase');
    expect(wrongPass.code).not.toBe(0);
    expect(
      readdirSync(join(node.confdir, '.ssl')).filter((f) => /keyhsm-client-key|\.pending$/.test(f)),
    ).toEqual([]);
    const withPass = await withPassphrase('kts-key-secret');
    expect(withPass.stderr).toBe('');
    expect(withPass.code).toBe(0);
    expect(withPass.stdout).not.toContain('kts-key-secret');
    const passFile = join(node.confdir, '.ssl', 'keyhsm-client-key.pass');
    expect(statSync(passFile).mode & 0o777).toBe(0o600);
    expect(confText()).toContain(`"HSM_CLIENT_KEY_PASSPHRASE_FILE": "${passFile}"`);
    expect(confText()).not.toContain('kts-key-secret');
    await restartServer();
    const viaEncrypted = await getDepositRaw(url, client, 'via-service');
    expect(valueOf(viaEncrypted)).toBe('keyhsm-sealed');
  } finally {
    await stopService();
  }
});
