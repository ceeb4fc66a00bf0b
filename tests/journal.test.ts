/**
 * Issue 9, part 4 on a real pair: the change journal fed by logical decoding on the active
 * (JOURNAL_DIR in node-a's keytrustee.conf). Records appear encrypted; a SIGKILLed consumer
 * loses no acknowledged write; a dump taken before the writes plus the journal equals the
 * source; a dropped slot (what a promotion does) is recorded as a GAP that replay refuses.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { findPgBinDir, socketDirFor } from '@trustee/replicator';
import {
  JournalError,
  confPaths,
  deriveJournalKey,
  journalNeedsFreshBackup,
  readJournal,
  recordJournalBackup,
  replayJournal,
  updateKeytrusteeConf,
  type JournalRecord,
  type JournalTransaction,
} from '@trustee/server';
import { BINS, runCli } from '../packages/server/test/support/cli';
import { psqlAt } from '../packages/server/test/support/psql';
import { registerTestClient, type TestClient } from '../packages/server/test/support/clients';
import { startTestCluster, type TestCluster } from '../packages/server/test/support/cluster';
import { putDepositRaw } from '../packages/server/test/support/deposit-requests';
import { httpsRequest } from '../packages/server/test/support/https-request';
import { waitFor } from '../packages/server/test/support/processes';

describe('change journal (issue 9, part 4)', () => {
  let cluster: TestCluster;
  let client: TestClient;
  let dir: string;
  let key: Buffer;
  let dumpFile: string;
  let baseline: { lsn: string; timeline: number };
  const acknowledged = new Set<string>();

  async function sql<T>(fn: (c: Client) => Promise<T>, database = 'keytrustee'): Promise<T> {
    const a = cluster.node('a');
    const c = new Client({ host: socketDirFor(a.dbDir), port: a.dbPort, user: 'keytrustee', database });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  }

  const currentLsn = () =>
    sql(
      async (c) => (await c.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0].lsn,
    );

  /** Waits until the slot has confirmed everything written so far (the consumer fsync'ed it). */
  async function waitCaughtUp(): Promise<void> {
    const target = await currentLsn();
    await waitFor('the journal slot confirms every write', () =>
      sql(async (c) => {
        const { rows } = await c.query<{ done: boolean }>(
          `select confirmed_flush_lsn >= $1::pg_lsn as done from pg_replication_slots where slot_name = 'trustee_journal'`,
          [target],
        );
        return rows[0]?.done === true;
      }),
    );
  }

  /** Stops node-a's server (and so its consumer) and waits until PostgreSQL sees the slot unused. */
  async function stopConsumer(): Promise<void> {
    await cluster.killServer('a', 'SIGTERM');
    await waitFor('the slot is released', () =>
      sql(async (c) => {
        const { rows } = await c.query(
          `select 1 from pg_replication_slots where slot_name = 'trustee_journal' and not active`,
        );
        return rows.length === 1;
      }),
    );
  }

  async function records(): Promise<JournalRecord[]> {
    const out: JournalRecord[] = [];
    for await (const r of readJournal(dir, key)) out.push(r);
    return out;
  }

  const txs = (rs: JournalRecord[]) => rs.filter((r): r is JournalTransaction => r.type === 'tx');

  /** Deposit names inserted according to the journal. */
  const journaledNames = (rs: JournalRecord[]) =>
    new Set(
      txs(rs).flatMap((t) =>
        t.changes.filter((ch) => ch.table === 'deposits' && ch.op === 'insert').map((ch) => ch.row.name),
      ),
    );

  async function put(name: string, value: string): Promise<void> {
    const res = await putDepositRaw(cluster.a.url, client, name, value);
    if (res.status !== 201) throw new Error(`put ${name}: ${res.status} ${res.text}`);
    acknowledged.add(name);
  }

  async function metric(name: string): Promise<number | undefined> {
    const res = await httpsRequest(cluster.a.url, { path: '/metrics' });
    const line = res.text.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
  }

  /** A new database on node-a holding the dump taken before the writes. */
  async function restoredDump(db: string): Promise<void> {
    await sql((c) => c.query(`create database ${db}`));
    const a = cluster.node('a');
    psqlAt(a, ['-q', '-d', db, '-f', dumpFile]);
  }

  const TABLES = [
    ['orgs', 'id'],
    ['clients', 'fingerprint'],
    ['deposits', 'id'],
  ] as const;

  async function tableRows(db: string): Promise<Record<string, string[]>> {
    return sql(async (c) => {
      const out: Record<string, string[]> = {};
      for (const [t, pk] of TABLES)
        out[t] = (
          await c.query<{ r: string }>(`select row_to_json(x)::text as r from ${t} x order by ${pk}`)
        ).rows.map((r) => r.r);
      return out;
    }, db);
  }

  beforeAll(async () => {
    cluster = await startTestCluster();
    dir = join(cluster.home, 'journal');
    updateKeytrusteeConf(cluster.a.confdir, { JOURNAL_DIR: dir });
    await cluster.killServer('a', 'SIGTERM');
    await cluster.startServer('a');
    key = deriveJournalKey(confPaths(cluster.a.confdir).masterKey);
    // The consumer created its slot and opened the journal with a 'journal-start' gap.
    await waitFor('the journal starts', async () => (await records()).some((r) => r.type === 'gap'), 30_000);
    const tl = await sql(async (c) => {
      const { rows } = await c.query<{ tl: number }>(
        `select ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int as tl`,
      );
      return rows[0].tl;
    });
    baseline = { lsn: await currentLsn(), timeline: tl };
    dumpFile = join(cluster.home, 'before-writes.sql');
    const a = cluster.node('a');
    execFileSync(join(findPgBinDir(), 'pg_dump'), [
      '-h',
      socketDirFor(a.dbDir),
      '-p',
      String(a.dbPort),
      '-U',
      'keytrustee',
      '-f',
      dumpFile,
      'keytrustee',
    ]);
    client = await registerTestClient(cluster.a.url, cluster.org, cluster.authCode);
  }, 180_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  it('journals every committed write, encrypted, in 0600 segments of a 0700 directory', async () => {
    for (let i = 0; i < 20; i++) await put(`jrnl-secret-name-${i}`, `jrnl-secret-value-${i}`);
    await put('jrnl-secret-name-0', 'jrnl-secret-value-0-v2');
    const del = await httpsRequest(cluster.a.url, {
      method: 'DELETE',
      path: '/v1/deposits/jrnl-secret-name-1',
      cert: client.cert,
      key: client.key,
    });
    expect(del.status).toBe(204);
    const org = await runCli(BINS.orgtool, [
      '--confdir',
      cluster.a.confdir,
      'add',
      '-n',
      'jrnlorg',
      '-c',
      'ops@example.com',
    ]);
    expect(org.code).toBe(0);
    expect(
      (
        await runCli(BINS.orgtool, [
          '--confdir',
          cluster.a.confdir,
          'set-auth',
          '-n',
          'jrnlorg',
          '-s',
          'c0de',
        ])
      ).code,
    ).toBe(0);
    for (const cmd of ['disable-client', 'enable-client']) {
      const r = await runCli(BINS.orgtool, [
        '--confdir',
        cluster.a.confdir,
        cmd,
        '--fingerprint',
        client.fingerprint,
      ]);
      expect(r.code).toBe(0);
    }
    // A row DELETE (the API only ever adds versions): an operator's statement on the active.
    await sql((c) => c.query(`delete from deposits where name = 'jrnl-secret-name-2'`));
    await waitCaughtUp();

    const rs = await records();
    const names = journaledNames(rs);
    for (let i = 0; i < 20; i++) expect(names.has(`jrnl-secret-name-${i}`)).toBe(true);
    const ops = new Set(txs(rs).flatMap((t) => t.changes.map((ch) => `${ch.table}:${ch.op}`)));
    for (const op of [
      'orgs:insert',
      'orgs:update',
      'clients:insert',
      'clients:update',
      'deposits:insert',
      'deposits:delete',
    ])
      expect(ops).toContain(op);
    // One record per transaction, in commit order.
    const lsns = txs(rs).map((t) => t.lsn);
    expect(new Set(lsns).size).toBe(lsns.length);

    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const files = readdirSync(dir);
    const segments = files.filter((f) => f.endsWith('.tjl'));
    expect(segments.length).toBeGreaterThan(0);
    const bytes = Buffer.concat(files.map((f) => readFileSync(join(dir, f))));
    for (const f of segments) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
    for (const secret of [
      'jrnl-secret-name',
      'jrnl-secret-value',
      Buffer.from('jrnl-secret-value-3').toString('base64'),
      client.fingerprint,
      'jrnlorg',
      'ops@example.com',
    ])
      expect(bytes.includes(secret)).toBe(false);

    expect(await metric('trustee_journal_last_record_timestamp_seconds')).toBeGreaterThan(0);
    expect(await metric('trustee_journal_lag_bytes')).toBeDefined();
    // The journal started after the cluster: no backup covers its start yet.
    expect(await metric('trustee_journal_gap')).toBe(1);
    recordJournalBackup(dir, baseline);
    expect(journalNeedsFreshBackup(dir)).toBe(false);
    expect(await metric('trustee_journal_gap')).toBe(0);
  });

  it('loses no acknowledged write when the consumer is SIGKILLed mid-writes and restarts', async () => {
    let killed: Promise<void> | undefined;
    const writer = async (w: number) => {
      for (let i = 0; i < 200; i++) {
        try {
          await put(`kill-${w}-${i}`, `v-${w}-${i}`);
        } catch {
          return;
        }
        if (!killed && [...acknowledged].filter((n) => n.startsWith('kill-')).length >= 40)
          killed = cluster.killServer('a', 'SIGKILL');
      }
    };
    await Promise.all([0, 1, 2, 3].map(writer));
    await killed;
    expect(killed).toBeDefined();
    await cluster.startServer('a');
    await waitFor(
      'node-a writable again',
      async () => (await httpsRequest(cluster.a.url, { path: '/v1/health/writable' })).status === 200,
    );
    for (let i = 0; i < 5; i++) await put(`after-kill-${i}`, 'v');
    await waitCaughtUp();

    const rs = await records();
    const names = journaledNames(rs);
    const missing = [...acknowledged].filter((n) => !names.has(n));
    expect(missing).toEqual([]);
    const lsns = txs(rs).map((t) => t.lsn);
    // Duplicates are allowed (a record written but not yet acknowledged is sent again).
    console.log(
      `journal after SIGKILL: ${lsns.length} records, ${lsns.length - new Set(lsns).size} duplicates`,
    );
  });

  it('replays onto a dump taken before the writes and matches the source, idempotently', async () => {
    await waitCaughtUp();
    await restoredDump('j_replay');
    const result = await sql(
      (c) => replayJournal(c, dir, key, { fromLsn: baseline.lsn, fromTimeline: baseline.timeline }),
      'j_replay',
    );
    expect(result.applied).toBeGreaterThan(0);
    expect(result.gapsCrossed).toEqual([]);
    expect(result.missingRows).toBe(0);
    const source = await tableRows('keytrustee');
    expect(await tableRows('j_replay')).toEqual(source);
    expect(source.deposits.length).toBeGreaterThan(60);
    // Sequences follow the replayed keys: the next deposit id is past every replayed one.
    const ids = await sql(async (c) => {
      const { rows } = await c.query<{ next: string; max: string }>(
        `select nextval('deposits_id_seq')::text as next, (select max(id) from deposits)::text as max`,
      );
      return rows[0];
    }, 'j_replay');
    expect(BigInt(ids.next)).toBeGreaterThan(BigInt(ids.max));
    // Again from the same point: nothing changes.
    await sql(
      (c) => replayJournal(c, dir, key, { fromLsn: baseline.lsn, fromTimeline: baseline.timeline }),
      'j_replay',
    );
    expect(await tableRows('j_replay')).toEqual(source);
  });

  it('records a GAP when the slot is gone (as after a promotion); replay refuses to cross it unless allowed', async () => {
    await stopConsumer();
    await sql((c) => c.query(`select pg_drop_replication_slot('trustee_journal')`));
    await cluster.startServer('a');
    const gap = await waitFor('a slot-missing GAP record', async () =>
      (await records()).find((r) => r.type === 'gap' && r.reason === 'slot-missing'),
    );
    expect(gap.type === 'gap' && gap.fromLsn).toBeTruthy();
    // gap.json follows the durable GAP record (journal-consumer.ts): a read between the two
    // sees the record without it.
    await waitFor('gap.json asks for a fresh backup', () => journalNeedsFreshBackup(dir));
    await waitFor('trustee_journal_gap is 1', async () => (await metric('trustee_journal_gap')) === 1);
    const log = readFileSync(join(cluster.node('a').dir, 'keytrusteed.log'), 'utf8');
    expect(log).toMatch(/journal gap recorded.*a fresh backup must be taken/);

    await restoredDump('j_replay_gap');
    const depositsBefore = (await tableRows('j_replay_gap')).deposits.length;
    const refused = await sql(
      (c) =>
        replayJournal(c, dir, key, { fromLsn: baseline.lsn, fromTimeline: baseline.timeline }).catch(
          (e) => e,
        ),
      'j_replay_gap',
    );
    expect(refused).toBeInstanceOf(JournalError);
    expect((refused as JournalError).code).toBe('JOURNAL_GAP');
    expect((await tableRows('j_replay_gap')).deposits.length).toBe(depositsBefore);
    const crossed = await sql(
      (c) =>
        replayJournal(c, dir, key, {
          fromLsn: baseline.lsn,
          fromTimeline: baseline.timeline,
          allowGap: true,
        }),
      'j_replay_gap',
    );
    expect(crossed.gapsCrossed.map((g) => g.reason)).toEqual(['slot-missing']);

    // A backup newer than the gap clears the flag.
    recordJournalBackup(dir, { lsn: await currentLsn(), timeline: baseline.timeline });
    expect(journalNeedsFreshBackup(dir)).toBe(false);
  });

  it('caps the WAL a stopped consumer holds (slot invalidated) and recovers with a recorded gap', async () => {
    await stopConsumer();
    const setCap = (on: boolean) =>
      sql(async (c) => {
        for (const [k, v] of [
          ['max_slot_wal_keep_size', '1MB'],
          ['wal_keep_size', '0'],
        ])
          await c.query(on ? `alter system set ${k} = '${v}'` : `alter system reset ${k}`);
        await c.query('select pg_reload_conf()');
      });
    await setCap(true);
    try {
      await sql((c) => c.query('create table wal_filler (v text)'), 'j_replay');
      await waitFor(
        'the journal slot is invalidated (wal_status = lost)',
        async () => {
          await sql(
            (c) =>
              c.query(
                `insert into wal_filler select repeat(md5(g::text), 32) from generate_series(1, 4000) g`,
              ),
            'j_replay',
          );
          return sql(async (c) => {
            await c.query('checkpoint');
            const { rows } = await c.query<{ wal_status: string }>(
              `select wal_status from pg_replication_slots where slot_name = 'trustee_journal'`,
            );
            return rows[0]?.wal_status === 'lost';
          });
        },
        60_000,
      );
    } finally {
      await setCap(false);
    }
    await cluster.startServer('a');
    const gap = await waitFor('a slot-invalidated GAP record', async () =>
      (await records()).find((r) => r.type === 'gap' && r.reason === 'slot-invalidated'),
    );
    expect(gap.type === 'gap' && gap.fromLsn).toBeTruthy();
    // gap.json follows the durable GAP record (journal-consumer.ts): a read between the two
    // sees the record without it.
    await waitFor('gap.json asks for a fresh backup', () => journalNeedsFreshBackup(dir));
    await put('after-invalidation', 'v');
    await waitCaughtUp();
    expect(journaledNames(await records()).has('after-invalidation')).toBe(true);
    // The passive was never behind: its slot is untouched by the cap.
    const lost = await sql(
      async (c) =>
        (await c.query(`select slot_name from pg_replication_slots where wal_status = 'lost'`)).rows,
    );
    expect(lost).toEqual([]);
  });
});
