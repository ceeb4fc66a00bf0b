import { BINS, runCli } from '../packages/server/test/support/cli';
import { untrackPid, waitFor, waitForExit } from '../packages/server/test/support/processes';
import { withSuperuser } from '../packages/server/test/support/psql';
import { useTestCluster } from '../packages/server/test/support/cluster';
import { getDepositRaw, putDepositRaw, valueOf } from '../packages/server/test/support/deposit-requests';
import { httpsRequest } from '../packages/server/test/support/https-request';
import {
  createSoftHsmToken,
  keyhsmArgs,
  spawnWithToken,
  type SoftHsmToken,
} from '../packages/server/test/support/softhsm';

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

/** `ktadmin keyhsm` on one node with the shared token, then `extra`. */
function keyhsm(confdir: string, extra: string[] = []) {
  return runCli(BINS.ktadmin, keyhsmArgs(confdir, token, extra));
}

const MIGRATED = 40;

test('deposits under the HSM read back on both nodes, and /test_hsm works on both', async () => {
  const { cluster, client } = fx;
  expect((await putDepositRaw(cluster.a.url, client, 'before', 'sealed-by-file')).status).toBe(201);
  for (let i = 0; i < MIGRATED; i += 8) {
    const batch = Array.from({ length: 8 }, (_, j) =>
      putDepositRaw(cluster.a.url, client, `m-${i + j}`, `v-${i + j}`),
    );
    for (const r of await Promise.all(batch)) expect(r.status).toBe(201);
  }

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

  // Migrating before both servers run with the HSM would leave rows they cannot read: refused.
  const early2 = await keyhsm(cluster.a.confdir, ['--migrate', '--yes']);
  expect(early2.code).toBe(1);
  expect(early2.stderr).toMatch(/does not run with the HSM yet .*Nothing was moved/);

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
  // The seed checks every host: the passive goes through its token too but stores nothing
  // (writes happen on the active), and answers the same sentence.
  const samples = () =>
    withSuperuser(cluster.a, async (c) =>
      Number((await c.query<{ n: string }>('select count(*) as n from hsm_test_deposits')).rows[0].n),
    );
  const before = await samples();
  const onPassive = await httpsRequest(cluster.b.url, { path: '/test_hsm', timeoutMs: 10_000 });
  expect(onPassive.status).toBe(200);
  expect(onPassive.json).toMatch(/^Sample Key TEST_HELLO_DEPOSIT[\d-]+ has been created$/);
  expect(await samples()).toBe(before);
});

const fileSealed = () =>
  withSuperuser(fx.cluster.a, async (c) => {
    const { rows } = await c.query<{ n: string }>(
      "select count(*) as n from deposits where key_id like 'file:%' and sealed_value is not null",
    );
    return Number(rows[0].n);
  });

test('an interrupted migration resumes, and deposits read on both nodes throughout', async () => {
  const { cluster, client } = fx;
  const total = await fileSealed();
  expect(total).toBe(MIGRATED + 1);
  // Readers on both nodes for the whole migration.
  let reading = true;
  let reads = 0;
  const failures: string[] = [];
  const reader = (async () => {
    for (let i = 0; reading && i < 100_000; i++) {
      const url = i % 2 ? cluster.b.url : cluster.a.url;
      const n = i % MIGRATED;
      const r = await getDepositRaw(url, client, `m-${n}`);
      reads++;
      if (r.status !== 200 || valueOf(r) !== `v-${n}`) failures.push(`${url} m-${n}: ${r.status} ${r.text}`);
    }
  })();
  try {
    // First run, SIGKILLed after its first batch.
    const slow = ['--migrate', '--yes', '--batch-size', '2', '--batch-pause-ms', '200'];
    const { child, output } = spawnWithToken(token, [
      BINS.ktadmin,
      ...keyhsmArgs(cluster.a.confdir, token, slow),
    ]);
    try {
      await waitFor('the first batch', () => / deposit versions moved/.test(output()), 20_000, 20);
    } finally {
      child.kill('SIGKILL');
      if (child.pid) {
        await waitForExit(child.pid, 10_000);
        untrackPid(child.pid);
      }
    }
    expect(output()).toMatch(/Migrating hsm deposits\.\.\./);
    const left = await fileSealed();
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(total);

    // Run again: it carries on with what is left.
    const resumed = await keyhsm(cluster.a.confdir, ['--migrate', '--yes', '--batch-size', '10']);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toContain(`${left}/${left} deposit versions moved`);
    expect(resumed.stdout).toMatch(/Migration Complete!/);
    expect(await fileSealed()).toBe(0);
  } finally {
    reading = false;
    await reader;
  }
  expect(failures).toEqual([]);
  expect(reads).toBeGreaterThan(10);
  for (const url of [cluster.a.url, cluster.b.url]) {
    const r = await getDepositRaw(url, client, 'before');
    expect(valueOf(r)).toBe('sealed-by-file');
  }
});
