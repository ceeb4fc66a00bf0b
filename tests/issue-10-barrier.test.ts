/**
 * Issue #10, finding 1 on a real pair: answering an idempotent replay used to run a "barrier"
 * write (an update of the single write_barrier row, held until the passive applied it), so a
 * flood of replays while the passive was slow queued on that row and drained the 20-connection
 * pool until every request on the active failed. A replay now waits for the standby's
 * replay_lsn without writing and without a connection; every write bounds its statements; a
 * COMMIT whose cancel does not land is terminated; a write whose client left stores nothing.
 */
import { randomUUID } from 'node:crypto';
import { Agent } from 'node:https';
import { Client, type Pool } from 'pg';
import { DB_NAME, DB_SUPERUSER, socketDirFor } from '@trustee/replicator';
import { DB_APP_ROLE } from '../packages/server/src/db/node-db';
import { createDb, type Db } from '../packages/server/src/db/pool';
import {
  runWrite,
  runWriteBarrier,
  touchWriteBarrier,
  type WritePathOptions,
} from '../packages/server/src/db/write-path';
import { registerTestClient, type TestClient } from '../packages/server/test/support/clients';
import { useTestCluster, type NodeName } from '../packages/server/test/support/cluster';
import {
  getDepositRaw,
  isWritable,
  putDepositRaw,
  valueOf,
  type TimedResponse,
} from '../packages/server/test/support/deposit-requests';
import { httpsRequest, type RawResponse } from '../packages/server/test/support/https-request';
import { waitFor } from '../packages/server/test/support/processes';
import { withSuperuser } from '../packages/server/test/support/psql';

const STORM = 500;

describe('idempotent replays and bounded writes (issue #10, finding 1)', () => {
  const fixture = useTestCluster({ withClient: true });

  const node = (n: NodeName) => fixture.cluster.node(n);
  const onNode = <T>(n: NodeName, fn: (c: Client) => Promise<T>): Promise<T> => withSuperuser(node(n), fn);
  const pauseReplay = () => onNode('b', (c) => c.query('select pg_wal_replay_pause()'));
  const resumeReplay = () => onNode('b', (c) => c.query('select pg_wal_replay_resume()'));
  /** The active's URL reached through another loopback source address (the per-source cap is 256). */
  const viaLoopback = (url: string) => {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    return u.toString();
  };
  const codeOf = (r: RawResponse) => (r.status < 300 ? String(r.status) : String(r.json?.error?.code));
  const tally = (rs: RawResponse[]) => {
    const by: Record<string, number> = {};
    for (const r of rs) by[codeOf(r)] = (by[codeOf(r)] ?? 0) + 1;
    return by;
  };

  it(`${STORM} concurrent replays of an in-doubt write while the passive does not apply WAL: every read succeeds, no request holds a connection waiting, replays end WRITE_IN_DOUBT, then succeed once the passive applies`, async () => {
    const { cluster, client: reader } = fixture;
    // Several writers keep each one under the per-client request rate.
    const writers: TestClient[] = [];
    for (let i = 0; i < 4; i++)
      writers.push(await registerTestClient(cluster.a.url, cluster.org, cluster.authCode));
    expect((await putDepositRaw(cluster.a.url, reader, 'readable', 'r')).status).toBe(201);
    const keys = writers.map(() => randomUUID());

    // The passive keeps streaming (the write gate stays open) but stops applying WAL.
    await pauseReplay();
    let replays: TimedResponse[];
    const reads: RawResponse[] = [];
    let maxWaiting = 0;
    try {
      // Each writer's first attempt commits on the active and ends WRITE_IN_DOUBT.
      const firsts = await Promise.all(
        writers.map((w, i) =>
          putDepositRaw(cluster.a.url, w, 'in-doubt', `value-${i}`, { idempotencyKey: keys[i] }),
        ),
      );
      expect(firsts.map(codeOf)).toEqual(writers.map(() => 'WRITE_IN_DOUBT'));

      let storming = true;
      // The reader keeps one TLS connection (as a real client would), so its GETs measure the
      // server and its database, not the queue of 500 TLS handshakes. It reads at most one per
      // 4 ms (≤ 250/s): back to back, a fast machine passed the per-client rate limit (500/s)
      // and read RATE_LIMITED, which says nothing about the storm.
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const readLoop = (async () => {
        try {
          for (let i = 0; storming && i < 10_000; i++) {
            const paced = new Promise((r) => setTimeout(r, 4));
            reads.push(
              await httpsRequest(cluster.a.url, {
                path: '/v1/deposits/readable',
                cert: reader.cert,
                key: reader.key,
                agent,
                timeoutMs: 30_000,
              }),
            );
            await paced;
          }
        } finally {
          agent.destroy();
        }
      })();
      // How many of the server's request backends wait for the passive or for a lock, sampled on
      // the active. The audit loop's pass (keytrusteed-audit: one connection, chaining the audit
      // rows of the first attempts) may wait for the passive like any write; it is no request.
      const sampler = onNode('a', async (c) => {
        for (let i = 0; storming && i < 10_000; i++) {
          const { rows } = await c.query<{ n: number }>(
            `select count(*)::int as n from pg_stat_activity
              where application_name = 'keytrusteed' and (wait_event = 'SyncRep' or wait_event_type = 'Lock')`,
          );
          maxWaiting = Math.max(maxWaiting, rows[0].n);
          await new Promise((r) => setTimeout(r, 50));
        }
      });
      try {
        replays = await Promise.all(
          Array.from({ length: STORM }, (_, i) =>
            putDepositRaw(viaLoopback(cluster.a.url), writers[i % 4], 'in-doubt', `value-${i % 4}`, {
              idempotencyKey: keys[i % 4],
              localAddress: `127.0.0.${2 + (i % 3)}`,
              timeoutMs: 60_000,
            }),
          ),
        );
      } finally {
        storming = false;
        await readLoop;
        await sampler;
      }
    } finally {
      await resumeReplay();
    }
    const durations = replays.map((r) => r.durationMs);
    console.log(
      `replay storm: ${JSON.stringify(tally(replays))}; durations ms min ${Math.min(...durations)} max ${Math.max(...durations)}; ` +
        `reads during it ${JSON.stringify(tally(reads))}; most server backends waiting at once ${maxWaiting}`,
    );
    expect(reads.length).toBeGreaterThan(0);
    expect(tally(reads)).toEqual({ '200': reads.length });
    expect(tally(replays)).toEqual({ WRITE_IN_DOUBT: STORM });
    // Nothing queued on a row, and no replay held a connection while waiting for the passive.
    expect(maxWaiting).toBe(0);

    // Once the passive applies WAL again, a replay is acknowledged with the first result.
    for (const [i, w] of writers.entries()) {
      const ok = await waitFor(`replay ${i} acknowledged`, async () => {
        const r = await putDepositRaw(cluster.a.url, w, 'in-doubt', `value-${i}`, {
          idempotencyKey: keys[i],
        });
        return r.status === 201 ? r : undefined;
      });
      expect(ok.json.version).toBe(1);
      expect(ok.headers['idempotent-replayed']).toBe('true');
      const onPassive = await getDepositRaw(cluster.b.url, w, 'in-doubt');
      expect(onPassive.status).toBe(200);
      expect(valueOf(onPassive)).toBe(`value-${i}`);
    }
    // The replays wrote nothing: one version each.
    const versions = await onNode(
      'a',
      async (c) =>
        (await c.query<{ n: number }>(`select count(*)::int as n from deposits where name = 'in-doubt'`))
          .rows[0].n,
    );
    expect(versions).toBe(writers.length);
  });

  it('a write whose client leaves while it waits for a lock stores nothing', async () => {
    const { cluster, client } = fixture;
    const holder = new Client({
      host: socketDirFor(node('a').dbDir),
      port: node('a').dbPort,
      user: DB_SUPERUSER,
      database: DB_NAME,
    });
    await holder.connect();
    try {
      // The per-name lock a PUT takes (pg_advisory_xact_lock on owner/name), held elsewhere.
      await holder.query('select pg_advisory_lock(hashtextextended($1::text, 0))', [
        `${client.fingerprint}/left-behind`,
      ]);
      // The client gives up after 500 ms and closes its connection; the lock frees after that.
      const gone = putDepositRaw(cluster.a.url, client, 'left-behind', 'x', { timeoutMs: 500 }).then(
        () => 'answered',
        () => 'gave up',
      );
      expect(await gone).toBe('gave up');
      await new Promise((r) => setTimeout(r, 300));
      await holder.query('select pg_advisory_unlock_all()');
      // Bounded: the server's write ends within its lock timeout (3 s) either way.
      await new Promise((r) => setTimeout(r, 3500));
    } finally {
      await holder.end();
    }
    expect((await getDepositRaw(cluster.a.url, client, 'left-behind')).status).toBe(404);
    const rows = await onNode(
      'a',
      async (c) => (await c.query(`select version from deposits where name = 'left-behind'`)).rows,
    );
    expect(rows).toEqual([]);
    // The same write from a client that waits is stored.
    expect((await putDepositRaw(cluster.a.url, client, 'left-behind', 'y')).status).toBe(201);
  });

  describe('a COMMIT waiting for a passive that does not apply', () => {
    let db: Db;
    beforeAll(() => {
      // As the server: requests log in as the least-privilege app role, cancels and
      // terminations go through the owner's control pool.
      db = createDb(
        {
          host: socketDirFor(node('a').dbDir),
          port: node('a').dbPort,
          user: DB_SUPERUSER,
          database: DB_NAME,
        },
        { requestUser: DB_APP_ROLE },
      );
    });
    afterAll(async () => {
      await db?.close();
    });
    const backendAlive = (pid: number) =>
      onNode(
        'a',
        async (c) =>
          (
            await c.query<{ n: number }>('select count(*)::int as n from pg_stat_activity where pid = $1', [
              pid,
            ])
          ).rows[0].n === 1,
      );

    /** One barrier transaction (touchWriteBarrier: WAL, no row) through runWrite; its backend pid. */
    const barrierWrite = async (opts: WritePathOptions) => {
      let pid = 0;
      const outcome = await runWrite(opts, async (c) => {
        pid = (c as unknown as { processID: number }).processID;
        await touchWriteBarrier(c);
      }).then(
        () => 'committed',
        (e: { code?: string }) => String(e.code),
      );
      return { pid, outcome };
    };

    it('every write transaction bounds its statements (5 s) and lock waits (3 s); a slow statement stores nothing', async () => {
      const opts: WritePathOptions = { db, gate: () => 'sync', commitWaitMs: 2000 };
      const settings = await runWrite(opts, async (c) => {
        const { rows } = await c.query<{ st: string; lt: string }>(
          `select current_setting('statement_timeout') as st, current_setting('lock_timeout') as lt`,
        );
        return rows[0];
      });
      expect(settings).toEqual({ st: '5s', lt: '3s' });
      const marker = `slow-${randomUUID()}`;
      await expect(
        runWrite(opts, async (c) => {
          await c.query(`select pg_logical_emit_message(true, $1, '')`, [marker]);
          await c.query('select pg_sleep(6)');
        }),
      ).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/longer than 5000 ms/) });
      // The connection is healthy afterwards and outside any transaction.
      const after = await runWrite(opts, async (c) => (await c.query('select 1 as one')).rows[0]);
      expect(after).toEqual({ one: 1 });
    });

    it('pool checkout is bounded (UNAVAILABLE after 3 s), and a request whose client left stops waiting for a connection', async () => {
      const small = createDb(
        {
          host: socketDirFor(node('a').dbDir),
          port: node('a').dbPort,
          user: DB_SUPERUSER,
          database: DB_NAME,
        },
        { max: 1 },
      );
      const held = await small.pool.connect();
      try {
        const opts: WritePathOptions = { db: small, gate: () => 'sync', commitWaitMs: 2000 };
        let ran = false;
        await expect(
          runWrite(opts, async () => {
            ran = true;
          }),
        ).rejects.toMatchObject({
          code: 'UNAVAILABLE',
          retryAfterSec: 1,
          message: expect.stringMatching(/no database connection of this node became free within 3000 ms/),
        });
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 200);
        const abandoned = runWrite(
          opts,
          async () => {
            ran = true;
          },
          { signal: ac.signal },
        ).then(
          () => 'ran',
          (e: { code?: string; message?: string }) => `${e.code}: ${e.message}`,
        );
        // Answered as abandoned (the client left), not with the checkout timeout.
        expect(await abandoned).toMatch(/^UNAVAILABLE: the client went away/);
        expect(ran).toBe(false);
      } finally {
        held.release();
        await small.close();
      }
    });

    it('a cancel that lands: WRITE_IN_DOUBT, the backend lives on and its connection is reused', async () => {
      await pauseReplay();
      try {
        const opts: WritePathOptions = { db, gate: () => 'sync', commitWaitMs: 500 };
        const { pid, outcome } = await barrierWrite(opts);
        expect(outcome).toBe('WRITE_IN_DOUBT');
        expect(await backendAlive(pid)).toBe(true);
        expect(db.pool.idleCount).toBe(1);
      } finally {
        await resumeReplay();
      }
    });

    it('a cancel that does not land: the backend is terminated after the grace period, WRITE_IN_DOUBT, connection discarded', async () => {
      // The control pool swallows pg_cancel_backend: the cancel "was sent" but never reaches the backend.
      const control = {
        query: (text: string, params?: unknown[]) =>
          /pg_cancel_backend/.test(text)
            ? Promise.resolve({ rows: [{ pg_cancel_backend: true }] })
            : db.control.query(text, params),
      } as unknown as Pool;
      const opts: WritePathOptions = { db: { ...db, control }, gate: () => 'sync', commitWaitMs: 500 };
      await pauseReplay();
      let result: { pid: number; outcome: string };
      try {
        // Bounded here too: without the fallback the COMMIT would wait until replay resumes.
        result = await Promise.race([
          barrierWrite(opts),
          new Promise<{ pid: number; outcome: string }>((resolve) =>
            setTimeout(() => resolve({ pid: 0, outcome: 'still waiting after 15 s' }), 15_000),
          ),
        ]);
      } finally {
        await resumeReplay();
      }
      expect(result.outcome).toBe('WRITE_IN_DOUBT');
      expect(await backendAlive(result.pid)).toBe(false);
      // The terminated connection went out of the pool; the next write gets a fresh backend.
      const next = await barrierWrite({ db, gate: () => 'sync', commitWaitMs: 5000 });
      expect(next.outcome).toBe('committed');
      expect(next.pid).not.toBe(result.pid);
    });
  });

  it('passive PostgreSQL stopped (SIGSTOP) during a burst of writes and replays: every acknowledged write is on both nodes afterwards', async () => {
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
      for (let i = 0, after = 0; i < 200 && after < 5; i++) {
        const replayOf =
          i % 4 === 3 ? attempts.filter((a) => a.name.startsWith(`burst-${l}-`)).pop() : undefined;
        const name = replayOf?.name ?? `burst-${l}-${i}`;
        const value = replayOf?.value ?? `v-${l}-${i}-${randomUUID()}`;
        const key = replayOf?.key ?? randomUUID();
        const res = await putDepositRaw(cluster.a.url, client, name, value, {
          idempotencyKey: key,
          timeoutMs: 30_000,
        });
        attempts.push({ name, value, key, res });
        if (resumed) after++;
      }
    };
    const lanes = Promise.all(Array.from({ length: 6 }, (_, l) => lane(l)));
    await waitFor('writes flowing', () => attempts.filter((a) => a.res.status === 201).length >= 12);
    cluster.signalPostgres('b', 'SIGSTOP');
    try {
      // Until wal_sender_timeout (3 s) drops the walsender: commits in flight are cancelled,
      // later writes refused.
      await waitFor('the stopped standby left pg_stat_replication', () =>
        onNode('a', async (c) => (await c.query('select 1 from pg_stat_replication')).rowCount === 0),
      );
      // A replay wait that finds no synchronous standby answers PASSIVE_UNAVAILABLE at once, even
      // when the gate let it through (its snapshot may be up to one poll old).
      const direct = createDb({
        host: socketDirFor(node('a').dbDir),
        port: node('a').dbPort,
        user: DB_SUPERUSER,
        database: DB_NAME,
      });
      try {
        let missing = 0;
        await expect(
          runWriteBarrier({
            db: direct,
            gate: () => 'sync',
            commitWaitMs: 60_000,
            onStandbyMissing: () => missing++,
          }),
        ).rejects.toMatchObject({ code: 'PASSIVE_UNAVAILABLE' });
        expect(missing).toBe(1);
      } finally {
        await direct.close();
      }
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      cluster.signalPostgres('b', 'SIGCONT');
      resumed = true;
    }
    await lanes;
    console.log(`burst across SIGSTOP: ${JSON.stringify(tally(attempts.map((a) => a.res)))}`);
    for (const a of attempts)
      expect(['201', 'WRITE_IN_DOUBT', 'PASSIVE_UNAVAILABLE']).toContain(codeOf(a.res));
    expect(attempts.some((a) => a.res.status !== 201)).toBe(true);

    await waitFor('writable again after SIGCONT', () => isWritable(cluster.a.url), 30_000);
    // Every acknowledged write (first or replayed) is readable on both nodes with its value.
    const acked = attempts.filter((a) => a.res.status === 201);
    expect(acked.length).toBeGreaterThan(12);
    let lost = 0;
    for (const a of acked) {
      for (const n of ['a', 'b'] as const) {
        const got = await getDepositRaw(node(n).url, client, a.name, a.res.json.version);
        if (got.status !== 200 || valueOf(got) !== a.value) lost++;
      }
    }
    expect(lost).toBe(0);
    // Writes left in doubt resolve through a replay, exactly once.
    for (const a of attempts.filter((x) => codeOf(x.res) === 'WRITE_IN_DOUBT')) {
      const retry = await putDepositRaw(cluster.a.url, client, a.name, a.value, { idempotencyKey: a.key });
      expect(retry.status).toBe(201);
      expect(retry.json.version).toBe(1);
      expect(valueOf(await getDepositRaw(cluster.b.url, client, a.name, 1))).toBe(a.value);
      expect((await getDepositRaw(cluster.b.url, client, a.name, 2)).status).toBe(404);
    }
  });
});
