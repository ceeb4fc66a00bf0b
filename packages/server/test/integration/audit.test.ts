import { hostname, userInfo } from 'node:os';
import { BINS, runCli, type CliResult } from '../support/cli';
import { registerTestClient, makeCsr, type TestClient } from '../support/clients';
import { jsonRequest } from '../support/https-request';
import { addOrgCli, call, expectError, listOrgsCli, orgtool, putDeposit } from '../support/api';
import { withSuperuser } from '../support/psql';
import { startSingleNode, type SingleNode } from '../support/single-node';
import type { AuditDbRow } from '../../src/db/sql/audit';

/**
 * Audit trail (issue 16) on one real node: rows written by the writes themselves, refusals as
 * bounded aggregates, `ktadmin audit verify` catching a changed, removed or inserted row, and
 * `ktadmin audit export --since` as JSON lines.
 */
let node: SingleNode;
let client: TestClient;
let authCode: string;
const SECRET_VALUE = 'audit-test-secret-value-7f3a';
const NEW_CODE = 'new-auth-code-9c1e';

type AuditRow = AuditDbRow;

function ktadmin(...args: string[]): Promise<CliResult> {
  return runCli(BINS.ktadmin, ['--confdir', node.confdir, ...args]);
}

async function auditRows(): Promise<AuditRow[]> {
  return withSuperuser(
    node,
    async (c) => (await c.query<AuditRow>('select * from audit_log order by id')).rows,
  );
}

/** Runs SQL as the owner role (what someone with database access could do). */
function asOwner(sql: string, params: unknown[] = []): Promise<unknown> {
  return withSuperuser(node, (c) => c.query(sql, params));
}

beforeAll(async () => {
  node = await startSingleNode();
  authCode = await addOrgCli(node, 'acme');
  client = await registerTestClient(node.url, 'acme', authCode);
  expect((await putDeposit(node, client, 'db-pass', SECRET_VALUE)).status).toBe(201);
  expect((await putDeposit(node, client, 'db-pass', `${SECRET_VALUE}-2`)).status).toBe(201);
  expect((await call(node, client, 'DELETE', '/v1/deposits/db-pass')).status).toBe(204);
  // Refused: a stale If-Match (rolled back inside the write), a wrong code twice, no certificate.
  expectError(
    await putDeposit(node, client, 'conflicted', 'x', { headers: { 'If-Match': '7' } }),
    409,
    'VERSION_CONFLICT',
  );
  for (let i = 0; i < 2; i++) {
    const res = await jsonRequest(node.url, 'POST', '/v1/clients/register', {
      org: 'acme',
      authCode: `wrong-${i}`,
      csr: makeCsr('acme').csr,
    });
    expectError(res, 403, 'INVALID_AUTH_CODE');
  }
  expectError(await call(node, undefined, 'GET', '/v1/deposits/db-pass'), 401, 'UNAUTHENTICATED');
  expect((await orgtool(node, 'set-auth', '-n', 'acme', '-s', NEW_CODE)).code).toBe(0);
  expect((await orgtool(node, 'disable-client', '--fingerprint', client.fingerprint)).code).toBe(0);
  expect((await orgtool(node, 'enable-client', '--fingerprint', client.fingerprint)).code).toBe(0);
  await node.server.auditPass();
}, 120_000);

afterAll(async () => {
  await node?.stop();
});

describe('audit rows', () => {
  it('records each write with who, what, which deposit, from where and how it committed', async () => {
    const rows = await auditRows();
    const deposits = rows.filter((r) => r.subject === 'db-pass');
    expect(deposits.map((r) => [r.action, r.subject_version])).toEqual([
      ['deposit.put', 1],
      ['deposit.put', 2],
      ['deposit.delete', 3],
    ]);
    for (const r of deposits) {
      expect(r).toMatchObject({
        actor_kind: 'client',
        actor: client.fingerprint,
        os_user: null,
        source: '127.0.0.1',
        result: 'ok',
        count: 1,
        write_mode: 'standalone',
      });
      expect(r.seq).not.toBeNull();
    }
  });

  it('records registration and the orgtool actions with the command, OS user and host', async () => {
    const rows = await auditRows();
    const admin = { actor_kind: 'admin', os_user: userInfo().username, source: hostname(), result: 'ok' };
    expect(rows.find((r) => r.action === 'org.add')).toMatchObject({
      ...admin,
      actor: 'keytrustee-orgtool add',
      org: 'acme',
      subject: 'acme',
    });
    expect(rows.find((r) => r.action === 'client.register' && r.result === 'ok')).toMatchObject({
      actor_kind: 'client',
      actor: client.fingerprint,
      org: 'acme',
      subject: client.fingerprint,
      source: '127.0.0.1',
      detail: 'active',
    });
    expect(rows.find((r) => r.action === 'org.set-auth')).toMatchObject({
      ...admin,
      actor: 'keytrustee-orgtool set-auth',
      org: 'acme',
    });
    expect(rows.find((r) => r.action === 'client.disable')).toMatchObject({
      ...admin,
      actor: 'keytrustee-orgtool disable-client',
      subject: client.fingerprint,
      detail: 'was active, now disabled',
    });
    expect(rows.find((r) => r.action === 'client.enable')).toMatchObject({
      ...admin,
      actor: 'keytrustee-orgtool enable-client',
      subject: client.fingerprint,
    });
  });

  it('leaves no row for a write that failed, and counts refusals as aggregates with their codes', async () => {
    const rows = await auditRows();
    expect(rows.filter((r) => r.subject === 'conflicted')).toEqual([]);
    expect(rows.find((r) => r.action === 'deposit.put' && r.result === 'VERSION_CONFLICT')).toMatchObject({
      actor: client.fingerprint,
      source: '127.0.0.1',
      subject: null,
      count: 1,
    });
    expect(
      rows.find((r) => r.action === 'client.register' && r.result === 'INVALID_AUTH_CODE'),
    ).toMatchObject({
      org: 'acme',
      source: '127.0.0.1',
      count: 2,
    });
    expect(rows.find((r) => r.action === 'client.auth' && r.result === 'UNAUTHENTICATED')).toMatchObject({
      source: '127.0.0.1',
      count: 1,
    });
  });

  it('never holds a deposit value or an auth code', async () => {
    const all = await withSuperuser(node, async (c) => (await c.query('select * from audit_log')).rows);
    const text = JSON.stringify(all);
    const codes = [authCode, NEW_CODE, (await listOrgsCli(node)).acme.auth_secret];
    for (const secret of [SECRET_VALUE, Buffer.from(SECRET_VALUE).toString('base64'), ...codes]) {
      expect(text).not.toContain(secret);
    }
  });

  it('lets the request role append and read rows but never change or delete one', async () => {
    await withSuperuser(node, async (c) => {
      await c.query('begin');
      try {
        await c.query('set local role keytrustee_app');
        await expect(c.query("update audit_log set action = 'org.add'")).rejects.toMatchObject({
          code: '42501',
        });
      } finally {
        await c.query('rollback');
      }
      await c.query('begin');
      try {
        await c.query('set local role keytrustee_app');
        await expect(c.query('delete from audit_log')).rejects.toMatchObject({ code: '42501' });
      } finally {
        await c.query('rollback');
      }
      const pub = await c.query(
        "select 1 from pg_publication_tables where pubname = 'trustee_journal' and tablename = 'audit_log'",
      );
      expect(pub.rowCount).toBe(1);
    });
  });
});

describe('operator actions', () => {
  it('records allow-single-node-writes on and off with the ktadmin command, OS user and host', async () => {
    expect((await ktadmin('allow-single-node-writes', '--for', '1h')).code).toBe(0);
    expect((await ktadmin('allow-single-node-writes', '--off')).code).toBe(0);
    const rows = (await auditRows()).filter((r) => r.action === 'single-node-writes');
    expect(rows.map((r) => r.detail)).toEqual([expect.stringMatching(/^on until \d{4}-/), 'off']);
    for (const r of rows) {
      expect(r).toMatchObject({
        actor_kind: 'admin',
        actor: 'ktadmin allow-single-node-writes',
        os_user: userInfo().username,
        source: hostname(),
        result: 'ok',
      });
    }
    await node.server.auditPass();
  });
});

describe('ktadmin audit', () => {
  it('documents verify and export with --help', async () => {
    for (const sub of ['verify', 'export']) {
      const r = await ktadmin('audit', sub, '--help');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(sub === 'export' ? '--since' : '--max-unchained-age');
    }
  });

  it('verify passes on an intact trail, with counts', async () => {
    const r = await ktadmin('audit', 'verify');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const n = (await auditRows()).length;
    expect(r.stdout).toContain(`audit trail intact: ${n} rows: ${n} chained and intact`);
  });

  it('export --since prints JSON lines; a time in the future gives none; a bad value is a usage error', async () => {
    const all = await ktadmin('audit', 'export', '--since', '1h');
    expect(all.code).toBe(0);
    const lines = all.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength((await auditRows()).length);
    expect(lines.find((l) => l.action === 'deposit.delete')).toMatchObject({
      actor: client.fingerprint,
      subject: 'db-pass',
      subjectVersion: 3,
      result: 'ok',
    });
    expect(all.stdout).not.toContain(SECRET_VALUE);
    const future = await ktadmin('audit', 'export', '--since', new Date(Date.now() + 3600_000).toISOString());
    expect(future.code).toBe(0);
    expect(future.stdout).toBe('');
    const bad = await ktadmin('audit', 'export', '--since', 'yesterday');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('is neither a duration');
  });

  it('verify names a row whose action was changed, and passes again once it is put back', async () => {
    const put = (await auditRows()).find((r) => r.subject === 'db-pass' && r.subject_version === 2)!;
    await asOwner("update audit_log set action = 'deposit.delete' where id = $1", [put.id]);
    const r = await ktadmin('audit', 'verify');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`first: changed: row seq ${put.seq} (id ${put.id})`);
    expect(r.stdout).toContain('audit trail NOT intact');
    await asOwner("update audit_log set action = 'deposit.put' where id = $1", [put.id]);
    expect((await ktadmin('audit', 'verify')).code).toBe(0);
  });

  it('verify names an inserted row, which the chainer also refuses to chain', async () => {
    const { rows } = (await withSuperuser(node, (c) =>
      c.query<{ id: string }>(
        `insert into audit_log (uid, at, actor_kind, actor, action, subject, subject_version, source, result, row_mac)
         values (decode(md5('forged'), 'hex'), now() - interval '1 minute', 'client', $1, 'deposit.put', 'db-pass', 9,
                 '127.0.0.1', 'ok', decode(md5('a') || md5('b'), 'hex'))
         returning id`,
        [client.fingerprint],
      ),
    )) as { rows: { id: string }[] };
    const forged = rows[0].id;
    await node.server.auditPass();
    expect((await auditRows()).find((r) => r.id === forged)?.seq).toBeNull();
    const r = await ktadmin('audit', 'verify');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`first: inserted: row id ${forged} (unchained)`);
    await asOwner('delete from audit_log where id = $1', [forged]);
    expect((await ktadmin('audit', 'verify')).code).toBe(0);
  });

  it('verify names the gap a deleted row leaves', async () => {
    const victim = (await auditRows()).find((r) => r.action === 'client.disable')!;
    await asOwner('delete from audit_log where id = $1', [victim.id]);
    const r = await ktadmin('audit', 'verify');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`chain position ${victim.seq} is missing before it`);
    expect(r.stderr).toContain(`first: removed: row seq ${Number(victim.seq) + 1}`);
  });
});
