/**
 * Issue 10, finding 8: keytrusteed answered requests as the PostgreSQL superuser, so any SQL a
 * request could run (a bug, an injection) could run COPY … PROGRAM, read files, change the
 * schema or the server's settings. Requests now run as `keytrustee_app` (migration 0004): the
 * product's rows, nothing else. Checked on a real node: what its request backends log in as,
 * that the request path still works end to end, and what that role is refused.
 */
import { Client } from 'pg';
import { DB_NAME, socketDirFor } from '@trustee/replicator';
import { DB_APP_ROLE } from '@trustee/server';
import { registerTestClient } from '../support/clients';
import { getDepositRaw, putDepositRaw, valueOf } from '../support/deposit-requests';
import { withSuperuser } from '../support/psql';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { addOrgCli } from '../support/api';

describe('least privilege for requests (issue 10, finding 8)', () => {
  let node: SingleNode;
  let app: Client;

  beforeAll(async () => {
    node = await startSingleNode();
    app = new Client({
      host: socketDirFor(node.dbDir),
      port: node.dbPort,
      user: DB_APP_ROLE,
      database: DB_NAME,
    });
    await app.connect();
  });
  afterAll(async () => {
    await app?.end().catch(() => undefined);
    await node?.stop();
  });

  it('serves registration, writes and reads with request backends logged in as the app role', async () => {
    const code = await addOrgCli(node, 'leastpriv');
    const client = await registerTestClient(node.url, 'leastpriv', code);
    expect(client.state).toBe('active');
    const put = await putDepositRaw(node.url, client, 'db-key', 'sealed-by-client');
    expect(put.status).toBe(201);
    const got = await getDepositRaw(node.url, client, 'db-key');
    expect(got.status).toBe(200);
    expect(valueOf(got)).toBe('sealed-by-client');

    const logins = await withSuperuser(node, async (c) => {
      const { rows } = await c.query<{ application_name: string; usename: string; superuser: boolean }>(
        `select a.application_name, a.usename, r.rolsuper as superuser
           from pg_stat_activity a join pg_roles r on r.oid = a.usesysid
          where a.datname = $1 and a.application_name like 'keytrusteed%'`,
        [DB_NAME],
      );
      return rows;
    });
    const requestBackends = logins.filter((r) => r.application_name === 'keytrusteed');
    expect(requestBackends.length).toBeGreaterThan(0);
    expect(new Set(requestBackends.map((r) => r.usename))).toEqual(new Set([DB_APP_ROLE]));
    expect(requestBackends.every((r) => !r.superuser)).toBe(true);
  });

  it('gives the app role no superuser, DDL, file, program, settings or replication power', async () => {
    const { rows } = await app.query<Record<string, boolean>>(
      `select rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls
         from pg_roles where rolname = current_user`,
    );
    expect(rows[0]).toEqual({
      rolsuper: false,
      rolcreaterole: false,
      rolcreatedb: false,
      rolreplication: false,
      rolbypassrls: false,
    });
    const refused: [string, string][] = [
      ['DDL', 'create table stolen (x int)'],
      ['drop a table', 'drop table deposits'],
      ['COPY TO PROGRAM', "copy (select 1) to program 'id'"],
      ['read a server file', "select pg_read_file('PG_VERSION')"],
      ['server settings', "alter system set log_statement = 'all'"],
      ['session superuser setting', "set session_replication_role = 'replica'"],
      ['delete rows', 'delete from deposits'],
      ['change organizations', "update orgs set name = 'x' where false"],
      ['rewrite the cluster identity', "update cluster_identity set fingerprint = 'x' where false"],
      ['create a role', 'create role intruder login'],
      ['a replication slot', "select pg_create_physical_replication_slot('intruder')"],
    ];
    for (const [what, sql] of refused) {
      const err = await app.query(sql).then(
        () => undefined,
        (e: { code?: string }) => e,
      );
      expect({ what, code: err?.code }).toEqual({ what, code: '42501' });
    }
  });

  it('still reads the replication state the node decision needs', async () => {
    const { rows } = await app.query<{ tl: number; recovery: boolean }>(
      `select (select timeline_id from pg_control_checkpoint()) as tl, pg_is_in_recovery() as recovery`,
    );
    expect(rows[0].tl).toBeGreaterThanOrEqual(1);
    expect(rows[0].recovery).toBe(false);
    // Positions in pg_stat_replication are hidden from roles without pg_read_all_stats.
    const member = await app.query<{ ok: boolean }>(
      "select pg_has_role(current_user, 'pg_read_all_stats', 'usage') as ok",
    );
    expect(member.rows[0].ok).toBe(true);
    // The in-transaction write barrier (a transactional logical message) is allowed.
    await app.query('begin');
    try {
      await app.query("select pg_logical_emit_message(true, 'trustee/write-barrier', '')");
    } finally {
      await app.query('rollback');
    }
  });
});
