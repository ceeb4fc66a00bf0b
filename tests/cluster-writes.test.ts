/**
 * Issue #4 on a real two-node cluster (PostgreSQL 15 synchronous streaming replication, both
 * keytrusteed servers as child processes): read-your-writes on the passive, fail-fast writes when
 * the passive's PostgreSQL dies, recovery without operator action, NOT_ACTIVE on the passive,
 * reads from the passive when the active's server dies, health/metrics/status, disable-client.
 */
import { BINS, runCli } from '../packages/server/test/support/cli';
import { registerTestClient, makeCsr } from '../packages/server/test/support/clients';
import { useTestCluster } from '../packages/server/test/support/cluster';
import {
  getDepositRaw,
  health,
  isWritable,
  putDepositRaw,
  valueOf,
} from '../packages/server/test/support/deposit-requests';
import { httpsRequest, jsonRequest } from '../packages/server/test/support/https-request';
import { waitFor } from '../packages/server/test/support/processes';

describe('cluster writes (issue #4)', () => {
  const fixture = useTestCluster({ withClient: true });

  it('a write returns only after the row is readable on the passive (30 of 30)', async () => {
    let misses = 0;
    for (let i = 0; i < 30; i++) {
      const name = `ryw-${i}`;
      const put = await putDepositRaw(fixture.cluster.a.url, fixture.client, name, `value-${i}`);
      expect(put.status).toBe(201);
      const got = await getDepositRaw(fixture.cluster.b.url, fixture.client, name);
      if (got.status !== 200 || valueOf(got) !== `value-${i}` || got.json.version !== put.json.version)
        misses++;
    }
    expect(misses).toBe(0);
  });

  it('health endpoints tell the roles apart and the writable state', async () => {
    const [aActive, bActive, aPassive, bPassive, aWritable, bWritable, aHealth, bHealth] = await Promise.all([
      health(fixture.cluster.a.url, '/active'),
      health(fixture.cluster.b.url, '/active'),
      health(fixture.cluster.a.url, '/passive'),
      health(fixture.cluster.b.url, '/passive'),
      health(fixture.cluster.a.url, '/writable'),
      health(fixture.cluster.b.url, '/writable'),
      health(fixture.cluster.a.url),
      health(fixture.cluster.b.url),
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
    const put = await putDepositRaw(fixture.cluster.b.url, fixture.client, 'to-passive', 'x');
    expect(put.status).toBe(503);
    expect(put.json.error.code).toBe('NOT_ACTIVE');
    expect(put.json.error.active).toBe(fixture.cluster.a.url);
    const del = await httpsRequest(fixture.cluster.b.url, {
      method: 'DELETE',
      path: '/v1/deposits/ryw-0',
      cert: fixture.client.cert,
      key: fixture.client.key,
    });
    expect(del.status).toBe(503);
    expect(del.json.error.code).toBe('NOT_ACTIVE');
    expect((await getDepositRaw(fixture.cluster.a.url, fixture.client, 'to-passive')).status).toBe(404);
  });

  it('ktadmin status --json reports role and replication on both nodes', async () => {
    const [sa, sb] = await Promise.all([
      runCli(BINS.ktadmin, ['--confdir', fixture.cluster.a.confdir, 'status', '--json']),
      runCli(BINS.ktadmin, ['--confdir', fixture.cluster.b.confdir, 'status', '--json']),
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

  it('a fixture.client disabled with keytrustee-orgtool is refused by both nodes within 1 s', async () => {
    const victim = await registerTestClient(
      fixture.cluster.a.url,
      fixture.cluster.org,
      fixture.cluster.authCode,
    );
    expect((await putDepositRaw(fixture.cluster.a.url, victim, 'mine', 'v')).status).toBe(201);
    expect((await getDepositRaw(fixture.cluster.b.url, victim, 'mine')).status).toBe(200);
    const r = await runCli(BINS.orgtool, [
      '--confdir',
      fixture.cluster.a.confdir,
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
    await waitFor('the active refuses the disabled client', () => refused(fixture.cluster.a.url), 1000, 50);
    await waitFor(
      'the passive refuses the disabled client',
      () => refused(fixture.cluster.b.url),
      Math.max(1, 1000 - (Date.now() - disabledAt)),
      50,
    );
    // The other fixture.client is unaffected.
    expect((await getDepositRaw(fixture.cluster.b.url, fixture.client, 'ryw-0')).status).toBe(200);
  });

  it('kill -9 of the passive PostgreSQL: writes fail fast, nothing written, reads work; restart resumes writes', async () => {
    expect((await putDepositRaw(fixture.cluster.a.url, fixture.client, 'before-kill', 'kept')).status).toBe(
      201,
    );
    await fixture.cluster.killPostgres('b');

    // The very next write: refused with PASSIVE_UNAVAILABLE, within 1 s, and not written.
    const refused = await putDepositRaw(fixture.cluster.a.url, fixture.client, 'during-outage', 'lost');
    console.log(
      `refusal after kill -9 of the passive PostgreSQL: ${refused.durationMs} ms, ${refused.status} ${refused.json?.error?.code}`,
    );
    expect(refused.status).toBe(503);
    expect(refused.json.error.code).toBe('PASSIVE_UNAVAILABLE');
    expect(refused.durationMs).toBeLessThanOrEqual(1000);
    const refusedAgain = await putDepositRaw(
      fixture.cluster.a.url,
      fixture.client,
      'during-outage-2',
      'lost',
    );
    expect(refusedAgain.json.error.code).toBe('PASSIVE_UNAVAILABLE');
    expect(refusedAgain.durationMs).toBeLessThanOrEqual(1000);

    // Reads on the active keep working.
    const read = await getDepositRaw(fixture.cluster.a.url, fixture.client, 'before-kill');
    expect(read.status).toBe(200);
    expect(valueOf(read)).toBe('kept');
    expect((await getDepositRaw(fixture.cluster.a.url, fixture.client, 'ryw-29')).status).toBe(200);

    // Health: the active is still active and serving reads but not writable.
    expect((await health(fixture.cluster.a.url, '/writable')).status).toBe(503);
    expect((await health(fixture.cluster.a.url, '/active')).status).toBe(200);
    const h = await health(fixture.cluster.a.url);
    expect(h.status).toBe(200);
    expect(h.json.writable).toBe(false);

    // Registration and organization changes are writes: refused the same way.
    const { csr } = makeCsr(fixture.cluster.org);
    const reg = await jsonRequest(fixture.cluster.a.url, 'POST', '/v1/clients/register', {
      org: fixture.cluster.org,
      authCode: fixture.cluster.authCode,
      csr,
    });
    expect(reg.status).toBe(503);
    expect(reg.json.error.code).toBe('PASSIVE_UNAVAILABLE');
    const org = await runCli(BINS.orgtool, [
      '--confdir',
      fixture.cluster.a.confdir,
      'add',
      '-n',
      'outage-org',
      '-c',
      'ops@outage.example',
    ]);
    expect(org.code).toBe(1);
    expect(org.stderr).toContain('PASSIVE_UNAVAILABLE');

    // Metrics on the active count the refusals and show sync disconnected.
    const m = await httpsRequest(fixture.cluster.a.url, { path: '/metrics' });
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
      (await runCli(BINS.ktadmin, ['--confdir', fixture.cluster.a.confdir, 'status', '--json'])).stdout,
    );
    expect(st).toMatchObject({ role: 'active', syncStreaming: false });

    // Restart the passive's PostgreSQL: writes resume without operator action.
    const restartedAt = Date.now();
    await fixture.cluster.startPostgres('b');
    await waitFor(
      'writes accepted again',
      async () =>
        (await putDepositRaw(fixture.cluster.a.url, fixture.client, 'after-restart', 'ok')).status === 201,
      20_000,
      200,
    );
    console.log(`writes resumed ${Date.now() - restartedAt} ms after starting the passive's PostgreSQL`);
    expect(await isWritable(fixture.cluster.a.url)).toBe(true);
    // The passive's server notices its database is back on its next poll (≤ 200 ms, longer on a busy box).
    await waitFor(
      'passive serves reads again',
      async () => (await health(fixture.cluster.b.url)).status === 200,
      10_000,
      100,
    );
    const back = await getDepositRaw(fixture.cluster.b.url, fixture.client, 'after-restart');
    expect(back.status).toBe(200);
    expect(valueOf(back)).toBe('ok');

    // Nothing refused was written, on either node.
    for (const url of [fixture.cluster.a.url, fixture.cluster.b.url]) {
      expect((await getDepositRaw(url, fixture.client, 'during-outage')).status).toBe(404);
      expect((await getDepositRaw(url, fixture.client, 'during-outage-2')).status).toBe(404);
    }
    const orgs = JSON.parse(
      (await runCli(BINS.orgtool, ['--confdir', fixture.cluster.a.confdir, 'list'])).stdout,
    );
    expect(orgs['outage-org']).toBeUndefined();

    const m2 = await httpsRequest(fixture.cluster.a.url, { path: '/metrics' });
    expect(m2.text).toMatch(/^trustee_replication_sync_connected(\{[^}]*\})? 1$/m);
  });

  it('kill -9 of the active server process: reads are served by the passive', async () => {
    await fixture.cluster.killServer('a', 'SIGKILL');
    try {
      for (let i = 0; i < 30; i += 5) {
        const got = await getDepositRaw(fixture.cluster.b.url, fixture.client, `ryw-${i}`);
        expect(got.status).toBe(200);
        expect(valueOf(got)).toBe(`value-${i}`);
      }
      const h = await health(fixture.cluster.b.url);
      expect(h.status).toBe(200);
      expect(h.json.role).toBe('passive');
      const put = await putDepositRaw(fixture.cluster.b.url, fixture.client, 'while-active-down', 'x');
      expect(put.json.error.code).toBe('NOT_ACTIVE');
      expect(put.json.error.active).toBe(fixture.cluster.a.url);
    } finally {
      await fixture.cluster.startServer('a');
    }
    await waitFor('the active is writable again', () => isWritable(fixture.cluster.a.url), 10_000);
    expect(
      (await putDepositRaw(fixture.cluster.a.url, fixture.client, 'after-server-restart', 'y')).status,
    ).toBe(201);
  });
});
