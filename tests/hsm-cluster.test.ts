import { BINS, runCli } from './helpers/cli';
import { useTestCluster } from './helpers/cluster';
import { getDepositRaw, putDepositRaw, valueOf } from './helpers/deposit-requests';
import { httpsRequest } from './helpers/https-request';
import { createSoftHsmToken, type SoftHsmToken } from './helpers/softhsm';

/**
 * Issue 14 on a real two-node cluster: both nodes point at one SoftHSM2 token (one SOFTHSM2_CONF),
 * `ktadmin keyhsm` on the active then the passive, both restarted; deposits sealed before and
 * after read back on both nodes.
 */
const fx = useTestCluster({ withClient: true });
let token: SoftHsmToken;

beforeAll(() => {
  token = createSoftHsmToken();
  // The cluster's keytrusteed children and the CLIs inherit this (SoftHSM reads it with getenv).
  process.env.SOFTHSM2_CONF = token.conf;
});

afterAll(() => {
  token?.destroy();
});

function keyhsm(confdir: string) {
  return runCli(BINS.ktadmin, [
    '--confdir',
    confdir,
    'keyhsm',
    '--pkcs11-module',
    token.module,
    '--token-label',
    token.label,
    '--pin-file',
    token.pinFile,
  ]);
}

test('deposits under the HSM read back on both nodes, and /test_hsm works on the active', async () => {
  const { cluster, client } = fx;
  expect((await putDepositRaw(cluster.a.url, client, 'before', 'sealed-by-file')).status).toBe(201);

  // The passive first is refused: the cluster's KEK does not exist yet.
  const early = await keyhsm(cluster.b.confdir);
  expect(early.code).toBe(1);
  expect(early.stderr).toMatch(/run `ktadmin keyhsm` on the active first/);

  const a = await keyhsm(cluster.a.confdir);
  expect(a.stderr).toBe('');
  expect(a.code).toBe(0);
  expect(a.stdout).toMatch(/created the KEK/);
  const b = await keyhsm(cluster.b.confdir);
  expect(b.stderr).toBe('');
  expect(b.code).toBe(0);
  expect(b.stdout).toMatch(/holds the cluster's KEK "trustee-kek-1"/);

  for (const n of ['a', 'b'] as const) {
    await cluster.killServer(n, 'SIGTERM');
    await cluster.startServer(n);
  }
  const put = await putDepositRaw(cluster.a.url, client, 'after', 'sealed-by-hsm');
  expect(put.status).toBe(201);
  for (const url of [cluster.a.url, cluster.b.url]) {
    const before = await getDepositRaw(url, client, 'before');
    expect(before.status).toBe(200);
    expect(valueOf(before)).toBe('sealed-by-file');
    const after = await getDepositRaw(url, client, 'after');
    expect(after.status).toBe(200);
    expect(valueOf(after)).toBe('sealed-by-hsm');
  }

  const onActive = await httpsRequest(cluster.a.url, { path: '/test_hsm', timeoutMs: 10_000 });
  expect(onActive.status).toBe(200);
  expect(onActive.json).toMatch(/^Sample Key TEST_HELLO_DEPOSIT[\d-]+ has been created$/);
  // The passive checks its token but stores nothing: writes happen on the active.
  const onPassive = await httpsRequest(cluster.b.url, { path: '/test_hsm', timeoutMs: 10_000 });
  expect(onPassive.status).toBe(503);
  expect(onPassive.json.error.code).toBe('NOT_ACTIVE');
});
