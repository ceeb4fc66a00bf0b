/**
 * Audit trail (issue 16) on a real pair: the audit rows replicate with their writes (they are
 * written by the same transaction), `ktadmin audit verify` passes on the passive too, and a
 * passive PostgreSQL stopped (SIGSTOP) during a burst of writes leaves exactly one audit row per
 * acknowledged write on both nodes, and none for a write refused before anything was written.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from 'pg';
import { BINS, runCli } from '../packages/server/test/support/cli';
import { useTestCluster, type NodeName } from '../packages/server/test/support/cluster';
import {
  isWritable,
  putDepositRaw,
  type TimedResponse,
} from '../packages/server/test/support/deposit-requests';
import { waitFor } from '../packages/server/test/support/processes';
import { withSuperuser } from '../packages/server/test/support/psql';

describe('audit trail on a pair', () => {
  const fixture = useTestCluster({ withClient: true });
  const onNode = <T>(n: NodeName, fn: (c: Client) => Promise<T>): Promise<T> =>
    withSuperuser(fixture.cluster.node(n), fn);
  const codeOf = (r: TimedResponse) => (r.status < 300 ? String(r.status) : String(r.json?.error?.code));

  /** Audit rows of deposit.put per "name@version" for names with `prefix`, on node n. */
  const putRows = (n: NodeName, prefix: string) =>
    onNode(n, async (c) => {
      const { rows } = await c.query<{ k: string; n: number }>(
        `select subject || '@' || subject_version as k, count(*)::int as n from audit_log
          where action = 'deposit.put' and subject like $1 group by 1`,
        [`${prefix}%`],
      );
      return new Map(rows.map((r) => [r.k, r.n]));
    });
  const unchained = (n: NodeName) =>
    onNode(
      n,
      async (c) =>
        (await c.query<{ n: number }>('select count(*)::int as n from audit_log where seq is null')).rows[0]
          .n,
    );
  const verify = (n: NodeName) =>
    runCli(BINS.ktadmin, ['--confdir', fixture.cluster.node(n).confdir, 'audit', 'verify']);

  it('audit rows are on the passive with their writes, chained by the active; verify passes on both nodes', async () => {
    const { cluster, client } = fixture;
    for (let i = 0; i < 10; i++) {
      expect((await putDepositRaw(cluster.a.url, client, `pair-${i}`, `v-${i}`)).status).toBe(201);
      // remote_apply: the row is on the passive as soon as the write is acknowledged.
      expect((await putRows('b', `pair-${i}`)).get(`pair-${i}@1`)).toBe(1);
    }
    await waitFor('the active chained every row', async () => (await unchained('a')) === 0, 10_000);
    await waitFor('the chain replicated', async () => (await unchained('b')) === 0, 10_000);
    for (const n of ['a', 'b'] as const) {
      const r = await verify(n);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/audit trail intact: (\d+) rows: \1 chained and intact/);
    }
    // The passive forwards nothing: its rows are the active's, byte for byte.
    const digest = (n: NodeName) =>
      onNode(
        n,
        async (c) =>
          (
            await c.query(
              "select md5(string_agg(row_mac::text || coalesce(chain_mac::text, ''), ',' order by id)) as d from audit_log",
            )
          ).rows[0].d as string,
      );
    expect(await digest('b')).toBe(await digest('a'));
  });

  it('passive PostgreSQL stopped during a burst: every acknowledged write has exactly one audit row on both nodes; refused writes have none', async () => {
    const { cluster, client } = fixture;
    interface Attempt {
      name: string;
      value: string;
      key: string;
      res: TimedResponse;
    }
    const attempts: Attempt[] = [];
    let resumed = false;
    const lane = async (l: number) => {
      // Bounded: until the passive was resumed and a few more writes went through.
      for (let i = 0, after = 0; i < 150 && after < 5; i++) {
        const name = `burst-${l}-${i}`;
        const value = `v-${randomUUID()}`;
        const key = randomUUID();
        const res = await putDepositRaw(cluster.a.url, client, name, value, {
          idempotencyKey: key,
          timeoutMs: 30_000,
        });
        attempts.push({ name, value, key, res });
        if (resumed) after++;
      }
    };
    const lanes = Promise.all(Array.from({ length: 4 }, (_, l) => lane(l)));
    await waitFor('writes flowing', () => attempts.filter((a) => a.res.status === 201).length >= 8);
    cluster.signalPostgres('b', 'SIGSTOP');
    try {
      // In doubt first (commits wait for the stopped passive), then refused once wal_sender_timeout
      // dropped its walsender: both outcomes are checked below.
      await waitFor(
        'a write refused with PASSIVE_UNAVAILABLE',
        () => attempts.some((a) => codeOf(a.res) === 'PASSIVE_UNAVAILABLE'),
        30_000,
      );
    } finally {
      cluster.signalPostgres('b', 'SIGCONT');
      resumed = true;
    }
    await lanes;
    const tally: Record<string, number> = {};
    for (const a of attempts) tally[codeOf(a.res)] = (tally[codeOf(a.res)] ?? 0) + 1;
    console.log(`audit burst across SIGSTOP: ${JSON.stringify(tally)}`);
    for (const a of attempts)
      expect(['201', 'WRITE_IN_DOUBT', 'PASSIVE_UNAVAILABLE']).toContain(codeOf(a.res));

    await waitFor('writable again after SIGCONT', () => isWritable(cluster.a.url), 30_000);
    // Writes left in doubt resolve through their retry; a replay adds no second row.
    for (const a of attempts.filter((x) => codeOf(x.res) === 'WRITE_IN_DOUBT')) {
      const retry = await putDepositRaw(cluster.a.url, client, a.name, a.value, { idempotencyKey: a.key });
      expect(retry.status).toBe(201);
      a.res = retry;
    }
    await waitFor('the active chained every row', async () => (await unchained('a')) === 0, 15_000);
    await waitFor('the passive has the chain', async () => (await unchained('b')) === 0, 15_000);
    const rows = { a: await putRows('a', 'burst-'), b: await putRows('b', 'burst-') };
    const acked = attempts.filter((a) => a.res.status === 201);
    expect(acked.length).toBeGreaterThan(8);
    for (const n of ['a', 'b'] as const) {
      const missingOrDoubled = acked.filter((a) => rows[n].get(`${a.name}@${a.res.json.version}`) !== 1);
      expect(missingOrDoubled.map((a) => a.name)).toEqual([]);
      // PASSIVE_UNAVAILABLE means nothing was written: no audit row either.
      const refused = attempts.filter((a) => codeOf(a.res) === 'PASSIVE_UNAVAILABLE');
      expect(refused.length).toBeGreaterThan(0);
      expect(refused.filter((a) => rows[n].has(`${a.name}@1`)).map((a) => a.name)).toEqual([]);
      expect(rows[n].size).toBe(acked.length);
    }
    for (const n of ['a', 'b'] as const) {
      const r = await verify(n);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
  });
});
