import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import {
  bootstrapActiveReplication,
  connectLocal,
  createPgInstance,
  enableSyncReplication,
  initDataDir,
  INITDB_TEMPLATE_ENV,
  makeInitdbTemplate,
  readPostmasterPid,
  readReplicationState,
  ReplicatorError,
  startPostgres,
  stopPostgres,
  summarizeReplication,
  takeBasebackup,
  type PgInstance,
  type ReplicationSummary,
} from '../../src/index';

const STANDBY = 'node_b';
const PASSWORD = "rep l'ic\\ator:pw"; // spaces, quote, backslash, colon: exercises every escaping layer

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Clean stop, else SIGKILL the postmaster by the PID in its postmaster.pid. */
async function killCluster(inst: PgInstance | undefined): Promise<void> {
  if (!inst) return;
  await stopPostgres(inst, { mode: 'immediate' }).catch(() => undefined);
  const pid = readPostmasterPid(inst.dataDir);
  if (pid) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

async function summary(inst: PgInstance): Promise<ReplicationSummary> {
  const c = await connectLocal(inst, 'postgres');
  try {
    return summarizeReplication(await readReplicationState(c));
  } finally {
    await c.end();
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('streaming replication between two local clusters', () => {
  let root: string;
  let active: PgInstance | undefined;
  let passive: PgInstance | undefined;
  let slotName: string;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'trustee-repl-'));
    chmodSync(root, 0o755); // the unprivileged PostgreSQL user must traverse it
    const [activePort, passivePort] = [await freePort(), await freePort()];
    active = createPgInstance({ dataDir: join(root, 'node-a', 'db'), port: activePort });
    passive = createPgInstance({ dataDir: join(root, 'node-b', 'db'), port: passivePort });
    // Node directories as in DESIGN.md; 0755 so the passfile beside each data dir is reachable.
    for (const dir of ['node-a', 'node-b']) mkdirSync(join(root, dir), { mode: 0o755 });

    await initDataDir(active);
    await startPostgres(active);
    const access = await bootstrapActiveReplication(active, {
      standbyName: STANDBY,
      peerAddress: '127.0.0.1',
      password: PASSWORD,
    });
    slotName = access.slotName;
    expect(access).toMatchObject({ role: 'replicator', slotName: 'node_b', slotCreated: true });
    // Idempotent: a second run changes nothing.
    expect(
      (
        await bootstrapActiveReplication(active, {
          standbyName: STANDBY,
          peerAddress: '127.0.0.1',
          password: PASSWORD,
        })
      ).slotCreated,
    ).toBe(false);

    await takeBasebackup(passive, {
      primaryHost: '127.0.0.1',
      primaryPort: activePort,
      standbyName: STANDBY,
      password: PASSWORD,
    });
    await startPostgres(passive);
  }, 60_000);

  afterAll(async () => {
    await killCluster(passive);
    await killCluster(active);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('keeps the password out of the standby configuration, in a 0600 passfile owned by the PostgreSQL user', () => {
    const p = passive!;
    const autoConf = readFileSync(join(p.dataDir, 'postgresql.auto.conf'), 'utf8');
    expect(autoConf).toContain('application_name=node_b');
    expect(autoConf).toContain(`primary_slot_name = 'node_b'`);
    expect(autoConf).not.toContain('ator:pw');
    const passfile = join(root, 'node-b', 'db.pgpass');
    const st = statSync(passfile);
    expect(st.mode & 0o777).toBe(0o600);
    if (p.runAs) expect(st.uid).toBe(p.runAs.uid);
    expect(statSync(join(p.dataDir, 'standby.signal')).isFile()).toBe(true);
  });

  it('makes the passive the synchronous standby', async () => {
    await enableSyncReplication(active!, STANDBY, { timeoutMs: 20_000 });
    const c = await connectLocal(active!, 'postgres');
    try {
      const { rows } = await c.query('select application_name, state, sync_state from pg_stat_replication');
      expect(rows).toEqual([{ application_name: 'node_b', state: 'streaming', sync_state: 'sync' }]);
      const slot = await c.query('select active from pg_replication_slots where slot_name = $1', [slotName]);
      expect(slot.rows).toEqual([{ active: true }]);
    } finally {
      await c.end();
    }
  });

  it('makes a row committed with remote_apply readable on the passive at once', async () => {
    const a = await connectLocal(active!, 'postgres');
    const b = await connectLocal(passive!, 'postgres');
    try {
      await a.query('set synchronous_commit = remote_apply');
      await a.query('create table t (id int primary key, v text)');
      for (let i = 1; i <= 20; i++) {
        await a.query('insert into t values ($1, $2)', [i, `v${i}`]);
        const { rows } = await b.query('select v from t where id = $1', [i]);
        expect(rows).toEqual([{ v: `v${i}` }]);
      }
      expect((await b.query('select pg_is_in_recovery() as r')).rows[0].r).toBe(true);
      await expect(b.query('insert into t values (0, $1)', ['x'])).rejects.toThrow(/read-only transaction/);
    } finally {
      await a.end();
      await b.end();
    }
  });

  it('reports sensible replication state on both sides', async () => {
    let a: Client | undefined;
    let b: Client | undefined;
    try {
      a = await connectLocal(active!, 'postgres');
      b = await connectLocal(passive!, 'postgres');
      const onActive = await readReplicationState(a);
      expect(onActive).toMatchObject({
        role: 'active',
        inRecovery: false,
        syncStandbyNames: 'FIRST 1 ("node_b")',
      });
      expect(onActive.currentLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
      expect(onActive.standbys).toHaveLength(1);
      expect(onActive.standbys[0]).toMatchObject({
        applicationName: 'node_b',
        clientAddr: '127.0.0.1',
        state: 'streaming',
        syncState: 'sync',
      });
      expect(onActive.standbys[0].lagBytes).toBeGreaterThanOrEqual(0);
      expect(summarizeReplication(onActive)).toMatchObject({
        role: 'active',
        state: 'streaming',
        syncState: 'sync',
        writable: true,
      });

      const onPassive = await readReplicationState(b);
      expect(onPassive).toMatchObject({ role: 'passive', inRecovery: true, standbys: [] });
      expect(onPassive.walReceiver).toMatchObject({
        status: 'streaming',
        senderHost: '127.0.0.1',
        senderPort: active!.port,
      });
      expect(onPassive.receiveLsn).toMatch(/\//);
      expect(onPassive.replayLagBytes).toBeGreaterThanOrEqual(0);
      expect(summarizeReplication(onPassive)).toMatchObject({
        role: 'passive',
        state: 'streaming',
        writable: false,
      });
    } finally {
      await a?.end();
      await b?.end();
    }
  });

  it('stops being writable when the passive stops, and times out enabling sync with a clear error', async () => {
    await stopPostgres(passive!);
    await waitFor('active not writable', async () => !(await summary(active!)).writable, 10_000);
    expect(await summary(active!)).toMatchObject({
      state: 'disconnected',
      syncState: 'none',
      writable: false,
    });

    const started = Date.now();
    const err = await enableSyncReplication(active!, STANDBY, { timeoutMs: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReplicatorError);
    expect(err).toMatchObject({
      code: 'REPLICATION_TIMEOUT',
      message: expect.stringMatching(/^no standby connected after 1s/),
    });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('becomes writable again without intervention when the passive restarts', async () => {
    await startPostgres(passive!);
    await waitFor('active writable', async () => (await summary(active!)).writable, 20_000);
    const a = await connectLocal(active!, 'postgres');
    const b = await connectLocal(passive!, 'postgres');
    try {
      await a.query('set synchronous_commit = remote_apply');
      await a.query('insert into t values (100, $1)', ['after restart']);
      expect((await b.query('select v from t where id = 100')).rows).toEqual([{ v: 'after restart' }]);
    } finally {
      await a.end();
      await b.end();
    }
  });
  it('refuses a remote passive without TLS and leaves pg_hba.conf untouched', async () => {
    const hba = join(active!.dataDir, 'pg_hba.conf');
    const before = readFileSync(hba, 'utf8');
    await expect(
      bootstrapActiveReplication(active!, {
        standbyName: 'node_c',
        peerAddress: '10.9.9.9',
        password: PASSWORD,
      }),
    ).rejects.toMatchObject({
      code: 'REPLICATION_FAILED',
      message: expect.stringMatching(/must use TLS, but ssl is off/),
    });
    expect(readFileSync(hba, 'utf8')).toBe(before);
  });
});

describe('an initdb template (INITDB_TEMPLATE_ENV, the test suite’s per-run copy source)', () => {
  let root: string;
  let copy: PgInstance | undefined;
  const saved = process.env[INITDB_TEMPLATE_ENV];

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'trustee-template-'));
    chmodSync(root, 0o755);
  });
  afterAll(async () => {
    if (saved === undefined) delete process.env[INITDB_TEMPLATE_ENV];
    else process.env[INITDB_TEMPLATE_ENV] = saved;
    await killCluster(copy);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('is copied with its owner and modes, gets the node settings, and starts', async () => {
    const template = createPgInstance({ dataDir: join(root, 'template'), port: await freePort() });
    await makeInitdbTemplate(template);
    process.env[INITDB_TEMPLATE_ENV] = template.dataDir;
    copy = createPgInstance({ dataDir: join(root, 'copy'), port: await freePort() });
    await initDataDir(copy);
    expect(readdirSync(copy.dataDir)).not.toContain('trustee-initdb-template.json');
    const st = statSync(join(copy.dataDir, 'PG_VERSION'));
    expect(st.uid).toBe(statSync(join(template.dataDir, 'PG_VERSION')).uid);
    expect(statSync(copy.dataDir).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(copy.dataDir, 'postgresql.conf'), 'utf8')).toMatch(
      new RegExp(`port = '?${copy.port}'?\n`),
    );
    await startPostgres(copy);
    const c = await connectLocal(copy, 'postgres');
    try {
      expect((await c.query('show data_checksums')).rows).toEqual([{ data_checksums: 'on' }]);
    } finally {
      await c.end();
    }
  });

  it('refuses a directory that is not a template made the same way, and copies nothing', async () => {
    const fake = join(root, 'not-a-template');
    mkdirSync(fake);
    process.env[INITDB_TEMPLATE_ENV] = fake;
    const other = createPgInstance({ dataDir: join(root, 'refused'), port: await freePort() });
    await expect(initDataDir(other)).rejects.toMatchObject({
      code: 'INITDB_TEMPLATE_MISMATCH',
      message: expect.stringContaining('unset it to run initdb'),
    });
    expect(readdirSync(other.dataDir)).toEqual([]);
  });
});
