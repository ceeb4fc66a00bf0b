/**
 * Issue #4 on a real two-node cluster (PostgreSQL 15 synchronous streaming replication, both
 * keytrusteed servers as child processes): read-your-writes on the passive, fail-fast writes when
 * the passive's PostgreSQL dies, recovery without operator action, NOT_ACTIVE on the passive,
 * reads from the passive when the active's server dies, health/metrics/status, disable-client.
 */
import { BINS, runCli } from './helpers/cli';
import { registerTestClient, makeCsr, type TestClient } from './helpers/clients';
import { startTestCluster, type TestCluster } from './helpers/cluster';
import { getDepositRaw, health, isWritable, putDepositRaw, valueOf } from './helpers/deposit-requests';
import { httpsRequest, jsonRequest } from './helpers/https-request';
import { waitFor } from './helpers/processes';

describe('cluster writes (issue #4)', () => {
  let cluster: TestCluster;
  let client: TestClient;

  beforeAll(async () => {
    cluster = await startTestCluster();
    client = await registerTestClient(cluster.a.url, cluster.org, cluster.authCode);
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('a write returns only after the row is readable on the passive (30 of 30)', async () => {
    let misses = 0;
    for (let i = 0; i < 30; i++) {
      const name = `ryw-${i}`;
      const put = await putDepositRaw(cluster.a.url, client, name, `value-${i}`);
      expect(put.status).toBe(201);
      const got = await getDepositRaw(cluster.b.url, client, name);
      if (got.status !== 200 || valueOf(got) !== `value-${i}` || got.json.version !== put.json.version)
        misses++;
    }
    expect(misses).toBe(0);
  });

  it('health endpoints tell the roles apart and the writable state', async () => {
    const [aActive, bActive, aPassive, bPassive, aWritable, bWritable, aHealth, bHealth] = await Promise.all([
      health(cluster.a.url, '/active'),
      health(cluster.b.url, '/active'),
      health(cluster.a.url, '/passive'),
      health(cluster.b.url, '/passive'),
      health(cluster.a.url, '/writable'),
      health(cluster.b.url, '/writable'),
      health(cluster.a.url),
      health(cluster.b.url),
    ]);
    expect([aActive.status, bActive.status]).toEqual([200, 503]);
    expect([aPassive.status, bPassive.status]).toEqual([503, 200]);
    expect([aWritable.status, bWritable.status]).toEqual([200, 503]);
    expect(aHealth.status).toBe(200);
    expect(bHealth.status).toBe(200);
    expect(aHealth.json).toMatchObject({
      role: 'active',
      writable: true,
      db: 'up',
      replication: { state: 'streaming', syncState: 'sync' },
    });
    expect(bHealth.json).toMatchObject({
      role: 'passive',
      writable: false,
      db: 'up',
      replication: { state: 'streaming' },
    });
  });

  it('writes to the passive are refused with NOT_ACTIVE naming the active', async () => {
    const put = await putDepositRaw(cluster.b.url, client, 'to-passive', 'x');
    expect(put.status).toBe(503);
    expect(put.json.error.code).toBe('NOT_ACTIVE');
    expect(put.json.error.active).toBe(cluster.a.url);
    const del = await httpsRequest(cluster.b.url, {
      method: 'DELETE',
      path: '/v1/deposits/ryw-0',
      cert: client.cert,
      key: client.key,
    });
    expect(del.status).toBe(503);
    expect(del.json.error.code).toBe('NOT_ACTIVE');
    expect((await getDepositRaw(cluster.a.url, client, 'to-passive')).status).toBe(404);
  });

  it('ktadmin status --json reports role and replication on both nodes', async () => {
    const [sa, sb] = await Promise.all([
      runCli(BINS.ktadmin, ['--confdir', cluster.a.confdir, 'status', '--json']),
      runCli(BINS.ktadmin, ['--confdir', cluster.b.confdir, 'status', '--json']),
    ]);
    expect(sa.code).toBe(0);
    expect(sb.code).toBe(0);
    const a = JSON.parse(sa.stdout);
    const b = JSON.parse(sb.stdout);
    expect(a).toMatchObject({
      role: 'active',
      syncStreaming: true,
      identity: 'ok',
      db: { up: true },
      replication: { state: 'streaming', syncState: 'sync' },
    });
    expect(b).toMatchObject({
      role: 'passive',
      identity: 'ok',
      db: { up: true },
      replication: { state: 'streaming' },
    });
    expect(a.fingerprint).toBe(b.fingerprint);
    expect(typeof a.replication.lagBytes).toBe('number');
  });

  it('a client disabled with keytrustee-orgtool is refused by both nodes within 1 s', async () => {
    const victim = await registerTestClient(cluster.a.url, cluster.org, cluster.authCode);
    expect((await putDepositRaw(cluster.a.url, victim, 'mine', 'v')).status).toBe(201);
    expect((await getDepositRaw(cluster.b.url, victim, 'mine')).status).toBe(200);
    const r = await runCli(BINS.orgtool, [
      '--confdir',
      cluster.a.confdir,
      'disable-client',
      '--fingerprint',
      victim.fingerprint,
    ]);
    expect(r.code).toBe(0);
    const disabledAt = Date.now();
    const refused = async (url: string) => {
      const res = await getDepositRaw(url, victim, 'mine');
      return res.status === 403 && res.json?.error?.code === 'CLIENT_DISABLED';
    };
    await waitFor('the active refuses the disabled client', () => refused(cluster.a.url), 1000, 50);
    await waitFor(
      'the passive refuses the disabled client',
      () => refused(cluster.b.url),
      Math.max(1, 1000 - (Date.now() - disabledAt)),
      50,
    );
    // The other client is unaffected.
    expect((await getDepositRaw(cluster.b.url, client, 'ryw-0')).status).toBe(200);
  });

  it('kill -9 of the passive PostgreSQL: writes fail fast, nothing written, reads work; restart resumes writes', async () => {
    expect((await putDepositRaw(cluster.a.url, client, 'before-kill', 'kept')).status).toBe(201);
    await cluster.killPostgres('b');

    // The very next write: refused with PASSIVE_UNAVAILABLE, within 1 s, and not written.
    const refused = await putDepositRaw(cluster.a.url, client, 'during-outage', 'lost');
    console.log(
      `refusal after kill -9 of the passive PostgreSQL: ${refused.durationMs} ms, ${refused.status} ${refused.json?.error?.code}`,
    );
    expect(refused.status).toBe(503);
    expect(refused.json.error.code).toBe('PASSIVE_UNAVAILABLE');
    expect(refused.durationMs).toBeLessThanOrEqual(1000);
    const refusedAgain = await putDepositRaw(cluster.a.url, client, 'during-outage-2', 'lost');
    expect(refusedAgain.json.error.code).toBe('PASSIVE_UNAVAILABLE');
    expect(refusedAgain.durationMs).toBeLessThanOrEqual(1000);

    // Reads on the active keep working.
    const read = await getDepositRaw(cluster.a.url, client, 'before-kill');
    expect(read.status).toBe(200);
    expect(valueOf(read)).toBe('kept');
    expect((await getDepositRaw(cluster.a.url, client, 'ryw-29')).status).toBe(200);

    // Health: the active is still active and serving reads but not writable.
    expect((await health(cluster.a.url, '/writable')).status).toBe(503);
    expect((await health(cluster.a.url, '/active')).status).toBe(200);
    const h = await health(cluster.a.url);
    expect(h.status).toBe(200);
    expect(h.json.writable).toBe(false);

    // Registration and organization changes are writes: refused the same way.
    const { csr } = makeCsr(cluster.org);
    const reg = await jsonRequest(cluster.a.url, 'POST', '/v1/clients/register', {
      org: cluster.org,
      authCode: cluster.authCode,
      csr,
    });
    expect(reg.status).toBe(503);
    expect(reg.json.error.code).toBe('PASSIVE_UNAVAILABLE');
    const org = await runCli(BINS.orgtool, [
      '--confdir',
      cluster.a.confdir,
      'add',
      '-n',
      'outage-org',
      '-c',
      'ops@outage.example',
    ]);
    expect(org.code).toBe(1);
    expect(org.stderr).toContain('PASSIVE_UNAVAILABLE');

    // Metrics on the active count the refusals and show sync disconnected.
    const m = await httpsRequest(cluster.a.url, { path: '/metrics' });
    expect(m.status).toBe(200);
    const refusals =
      /^trustee_write_refusals_total\{[^}]*reason="PASSIVE_UNAVAILABLE"[^}]*\} (\d+(?:\.\d+)?)$/m.exec(
        m.text,
      );
    expect(refusals).not.toBeNull();
    expect(Number(refusals![1])).toBeGreaterThan(0);
    expect(m.text).toMatch(/^trustee_replication_sync_connected(\{[^}]*\})? 0$/m);

    // ktadmin status on the active says so too.
    const st = JSON.parse(
      (await runCli(BINS.ktadmin, ['--confdir', cluster.a.confdir, 'status', '--json'])).stdout,
    );
    expect(st).toMatchObject({ role: 'active', syncStreaming: false });

    // Restart the passive's PostgreSQL: writes resume without operator action.
    const restartedAt = Date.now();
    await cluster.startPostgres('b');
    await waitFor(
      'writes accepted again',
      async () => (await putDepositRaw(cluster.a.url, client, 'after-restart', 'ok')).status === 201,
      20_000,
      200,
    );
    console.log(`writes resumed ${Date.now() - restartedAt} ms after starting the passive's PostgreSQL`);
    expect(await isWritable(cluster.a.url)).toBe(true);
    const back = await getDepositRaw(cluster.b.url, client, 'after-restart');
    expect(back.status).toBe(200);
    expect(valueOf(back)).toBe('ok');

    // Nothing refused was written, on either node.
    for (const url of [cluster.a.url, cluster.b.url]) {
      expect((await getDepositRaw(url, client, 'during-outage')).status).toBe(404);
      expect((await getDepositRaw(url, client, 'during-outage-2')).status).toBe(404);
    }
    const orgs = JSON.parse((await runCli(BINS.orgtool, ['--confdir', cluster.a.confdir, 'list'])).stdout);
    expect(orgs['outage-org']).toBeUndefined();

    const m2 = await httpsRequest(cluster.a.url, { path: '/metrics' });
    expect(m2.text).toMatch(/^trustee_replication_sync_connected(\{[^}]*\})? 1$/m);
  });

  it('kill -9 of the active server process: reads are served by the passive', async () => {
    await cluster.killServer('a', 'SIGKILL');
    try {
      for (let i = 0; i < 30; i += 5) {
        const got = await getDepositRaw(cluster.b.url, client, `ryw-${i}`);
        expect(got.status).toBe(200);
        expect(valueOf(got)).toBe(`value-${i}`);
      }
      const h = await health(cluster.b.url);
      expect(h.status).toBe(200);
      expect(h.json.role).toBe('passive');
      const put = await putDepositRaw(cluster.b.url, client, 'while-active-down', 'x');
      expect(put.json.error.code).toBe('NOT_ACTIVE');
      expect(put.json.error.active).toBe(cluster.a.url);
    } finally {
      await cluster.startServer('a');
    }
    await waitFor('the active is writable again', () => isWritable(cluster.a.url), 10_000);
    expect((await putDepositRaw(cluster.a.url, client, 'after-server-restart', 'y')).status).toBe(201);
  });
});
