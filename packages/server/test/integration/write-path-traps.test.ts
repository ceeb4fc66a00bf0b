/**
 * Issue 10, finding 7 (write-path traps), on a real PostgreSQL: a COMMIT of a transaction that an
 * earlier, caught error aborted answers ROLLBACK without an error — it must not be reported as a
 * stored write; and a commit whose wait for the synchronous standby is cancelled is recognised by
 * its SQLSTATE (01000), not by the (translatable) severity word.
 */
import { Client, Pool } from 'pg';
import { DB_NAME, DB_SUPERUSER, readPostmasterPid, socketDirFor } from '@trustee/replicator';
import { NodeState } from '../../src/node/node-state';
import { runWrite } from '../../src/db/write-path';
import { registerTestClient } from '../support/clients';
import { isWritable } from '../support/deposit-requests';
import { childPids, waitFor } from '../support/processes';
import { withSuperuser } from '../support/psql';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { addOrgCli, expectError, orgtool, putDeposit } from '../support/api';

describe('write path traps (issue 10, finding 7)', () => {
  let node: SingleNode;
  const superuser = <T>(fn: (c: Client) => Promise<T>): Promise<T> => withSuperuser(node, fn);
  const barrierAt = () =>
    superuser(async (c) =>
      (await c.query<{ at: Date }>('select at from write_barrier where id = 1')).rows[0].at.getTime(),
    );

  beforeAll(async () => {
    node = await startSingleNode();
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('reports a transaction aborted by a caught error as not stored, and stores nothing', async () => {
    const before = await barrierAt();
    await expect(
      runWrite(node.server.ctx.write, async (c) => {
        await c.query("update write_barrier set at = now() + interval '1 hour' where id = 1");
        // A statement fails and the caller swallows the error: PostgreSQL aborts the transaction.
        await c.query('select 1 / 0').catch(() => undefined);
      }),
    ).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: expect.stringMatching(/rolled this write back/),
    });
    expect(await barrierAt()).toBe(before);
    // The pooled connection is healthy afterwards: a normal write still commits.
    await runWrite(node.server.ctx.write, (c) =>
      c.query("update write_barrier set at = now() + interval '2 hours' where id = 1"),
    );
    expect(await barrierAt()).toBeGreaterThan(before);
  });

  it('answers WRITE_IN_DOUBT when the wait for a synchronous standby is cancelled (SQLSTATE 01000)', async () => {
    // A standby that never comes: every commit waits for it until the write path cancels the wait.
    await superuser(async (c) => {
      await c.query(`alter system set synchronous_standby_names = 'nobody_here'`);
      await c.query('select pg_reload_conf()');
    });
    const pool = node.server.ctx.db.pool;
    const poolSees = async (v: string) =>
      (await pool.query<{ v: string }>("select current_setting('synchronous_standby_names') as v")).rows[0]
        .v === v;
    try {
      // pg_reload_conf() signals the backends; each applies it before its next command.
      await waitFor('the pool sees the standby setting', () => poolSees('nobody_here'));
      // The gate is bypassed (it would refuse at once): this is about the commit wait itself.
      // A commit waits only once the checkpointer has applied the reload too (it publishes
      // whether synchronous standbys are defined); until then it returns at once: try again.
      const write = () =>
        runWrite(
          { ...node.server.ctx.write, gate: () => undefined, requireSyncStandby: false, commitWaitMs: 300 },
          (c) => c.query("update write_barrier set at = now() + interval '3 hours' where id = 1"),
        ).then(
          () => 'committed without waiting',
          (e: unknown) => e,
        );
      let outcome = await write();
      for (let i = 0; i < 50 && outcome === 'committed without waiting'; i++) {
        await new Promise((r) => setTimeout(r, 100));
        outcome = await write();
      }
      expect(outcome).toMatchObject({ code: 'WRITE_IN_DOUBT' });
    } finally {
      await superuser(async (c) => {
        await c.query('alter system reset synchronous_standby_names');
        await c.query('select pg_reload_conf()');
      });
      await waitFor('the pool sees the setting reset', () => poolSees(''));
    }
  });

  it('a node without PEERS whose PostgreSQL waits for a synchronous standby refuses writes (PASSIVE_UNAVAILABLE), nothing written', async () => {
    await addOrgCli(node, 'traps');
    expect((await orgtool(node, 'set-auth', '-n', 'traps', '-s', '')).code).toBe(0);
    const client = await registerTestClient(node.url, 'traps');
    await superuser(async (c) => {
      await c.query(`alter system set synchronous_standby_names = 'nobody_here'`);
      await c.query('select pg_reload_conf()');
    });
    try {
      // pg_reload_conf() signals the backends; each applies it before its next command.
      await waitFor('the node sees the synchronous standby setting', async () => {
        await node.server.ctx.nodeState.poll();
        return !node.server.ctx.nodeState.decide().writable;
      });
      expect(node.server.ctx.nodeState.decide()).toMatchObject({ writable: false, role: 'active' });
      const res = await putDeposit(node, client, 'never-written', 'x');
      expectError(res, 503, 'PASSIVE_UNAVAILABLE');
    } finally {
      await superuser(async (c) => {
        await c.query('alter system reset synchronous_standby_names');
        await c.query('select pg_reload_conf()');
      });
    }
    await waitFor('writable again', async () => {
      await node.server.ctx.nodeState.poll();
      return node.server.ctx.nodeState.decide().writable;
    });
    expect((await putDeposit(node, client, 'written-after', 'y')).status).toBe(201);
    const rows = await superuser(
      async (c) =>
        (await c.query("select name from deposits where name in ('never-written', 'written-after')")).rows,
    );
    expect(rows).toEqual([{ name: 'written-after' }]);
  });

  it('bounds the wait for a lock another write holds: UNAVAILABLE, nothing written, then the write works (issue 10, finding 1/6)', async () => {
    await addOrgCli(node, 'locks');
    expect((await orgtool(node, 'set-auth', '-n', 'locks', '-s', '')).code).toBe(0);
    const client = await registerTestClient(node.url, 'locks');
    const holder = new Client({
      host: socketDirFor(node.dbDir),
      port: node.dbPort,
      user: 'keytrustee',
      database: 'keytrustee',
    });
    await holder.connect();
    try {
      // The per-name lock a PUT takes (pg_advisory_xact_lock on owner/name), held elsewhere.
      await holder.query('select pg_advisory_lock(hashtextextended($1::text, 0))', [
        `${client.fingerprint}/contended`,
      ]);
      const res = await putDeposit(node, client, 'contended', 'x');
      expectError(res, 503, 'UNAVAILABLE');
      expect(res.json.error.message).toMatch(/waited too long for a lock/);
      await holder.query('select pg_advisory_unlock_all()');
      expect((await putDeposit(node, client, 'contended', 'y')).status).toBe(201);
      const rows = await superuser(
        async (c) => (await c.query("select version from deposits where name = 'contended'")).rows,
      );
      expect(rows).toEqual([{ version: 1 }]);
    } finally {
      await holder.end();
    }
  });

  it('forgives one timed-out state poll of a database that answered before; a second in a row marks it down', async () => {
    const pool = new Pool({
      host: socketDirFor(node.dbDir),
      port: node.dbPort,
      user: DB_SUPERUSER,
      database: DB_NAME,
      max: 1,
      query_timeout: 300,
      connectionTimeoutMillis: 300,
    });
    const ns = new NodeState({ pool, identityFingerprint: 'unused', requireSyncStandby: false });
    const pg = readPostmasterPid(node.dbDir)!;
    const freeze = (signal: NodeJS.Signals) => {
      for (const p of [pg, ...childPids(pg)]) process.kill(p, signal);
    };
    try {
      expect((await ns.poll()).dbUp).toBe(true);
      const answeredAt = ns.current().at;
      freeze('SIGSTOP');
      try {
        // The first timeout keeps the last snapshot (it only ages); the second calls it down.
        expect(await ns.poll()).toMatchObject({ dbUp: true, at: answeredAt });
        const down = await ns.poll();
        expect(down.dbUp).toBe(false);
        expect(down.error).toMatch(/timeout/);
      } finally {
        freeze('SIGCONT');
      }
      await waitFor('the database answers the poll again', async () => (await ns.poll()).dbUp, 10_000, 100);
      // A success resets the grace: one timeout is forgiven again.
      freeze('SIGSTOP');
      try {
        expect((await ns.poll()).dbUp).toBe(true);
      } finally {
        freeze('SIGCONT');
      }
    } finally {
      ns.stop();
      await pool.end().catch(() => undefined);
    }
    // The node itself kept serving through it.
    await waitFor('the node is writable again', () => isWritable(node.url), 15_000, 200);
  });
});
