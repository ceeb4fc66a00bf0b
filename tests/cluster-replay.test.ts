import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { useTestCluster } from '../packages/server/test/support/cluster';
import { withSuperuser } from '../packages/server/test/support/psql';
import { getDepositRaw, putDepositRaw } from '../packages/server/test/support/deposit-requests';
import { waitFor } from '../packages/server/test/support/processes';

/**
 * A retry that arrives while the first attempt still waits for the passive must not be
 * acknowledged before the passive has the row (found by review: the retry used to see the
 * first attempt's row under the name lock and answer 201 with nothing to wait for).
 */
describe('idempotent retry racing an unconfirmed first attempt', () => {
  const fixture = useTestCluster({ withClient: true });

  const onPassive = <T>(fn: (c: Client) => Promise<T>): Promise<T> =>
    withSuperuser(fixture.cluster.node('b'), fn);

  it('answers the concurrent retry WRITE_IN_DOUBT while the passive has not applied the write, then 201 once it has', async () => {
    const { cluster, client } = fixture;
    const key = randomUUID();
    // The passive keeps streaming (so the gate lets writes through) but stops applying WAL.
    await onPassive((c) => c.query('select pg_wal_replay_pause()'));
    try {
      const first = putDepositRaw(cluster.a.url, client, 'raced', 'v', { idempotencyKey: key });
      await new Promise((r) => setTimeout(r, 300));
      const retry = putDepositRaw(cluster.a.url, client, 'raced', 'v', { idempotencyKey: key });
      const [a, b] = await Promise.all([first, retry]);
      expect(a.status).toBe(503);
      expect(a.json.error.code).toBe('WRITE_IN_DOUBT');
      expect(b.status).toBe(503);
      expect(b.json.error.code).toBe('WRITE_IN_DOUBT');
      expect((await getDepositRaw(cluster.b.url, client, 'raced')).status).toBe(404);
    } finally {
      await onPassive((c) => c.query('select pg_wal_replay_resume()'));
    }
    const resolved = await waitFor('the retry is acknowledged', async () => {
      const r = await putDepositRaw(cluster.a.url, client, 'raced', 'v', { idempotencyKey: key });
      return r.status === 201 ? r : undefined;
    });
    expect(resolved.json.version).toBe(1);
    expect(resolved.headers['idempotent-replayed']).toBe('true');
    expect((await getDepositRaw(cluster.b.url, client, 'raced')).status).toBe(200);
    expect((await getDepositRaw(cluster.a.url, client, 'raced', 2)).status).toBe(404);
  });
});
