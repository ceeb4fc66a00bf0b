/**
 * Issue #8 on a real pair: losing the active, promotion, fencing, rejoin (pg_rewind and
 * --rebuild), and the expiring single-node-write mode. Every step goes through the operator's
 * commands (ktadmin) with real processes SIGKILLed; an SDK client configured with both nodes
 * follows every step without being reconfigured, and every acknowledged write is read back
 * from both nodes at the end of each scenario.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TrusteeClient, TrusteeError, readConfigFile } from '@trustee/sdk';
import { BINS, runCli, type CliResult } from '../packages/server/test/support/cli';
import { startTestCluster, type NodeName, type TestCluster } from '../packages/server/test/support/cluster';
import { getDepositRaw, health, isWritable } from '../packages/server/test/support/deposit-requests';
import { httpsRequest } from '../packages/server/test/support/https-request';
import { waitFor } from '../packages/server/test/support/processes';
import { registerSdkClient } from '../packages/server/test/support/sdk-client';
import { removeDir } from '../packages/server/test/support/temp-dir';

describe('losing a node: promote, fence, rejoin, single-node writes (issue #8)', () => {
  let cluster: TestCluster;
  let dir: string;
  let configPath: string;
  let sdk: TrusteeClient;
  /** Every write the cluster acknowledged, name -> value. */
  const acknowledged = new Map<string, string>();

  const ktadmin = (n: NodeName, args: string[]): Promise<CliResult> =>
    runCli(BINS.ktadmin, ['--confdir', cluster.node(n).confdir, ...args], { timeoutMs: 120_000 });
  const dbAddr = (n: NodeName) => `localhost:${cluster.node(n).dbPort}`;
  const role = async (n: NodeName) => (await health(cluster.node(n).url)).json?.role as string | undefined;
  const nodeClient = (n: NodeName) =>
    TrusteeClient.fromConfigFile(configPath, {
      endpoints: [cluster.node(n).url],
      cache: { maxEntries: 0 },
      deadlineMs: 5000,
    });

  async function put(name: string, value: string): Promise<void> {
    const r = await sdk.put(name, value);
    expect(r.version).toBeGreaterThan(0);
    acknowledged.set(name, value);
  }

  /** Every acknowledged write, read from each node separately (no cache). */
  async function expectAllOnBothNodes(): Promise<void> {
    for (const n of ['a', 'b'] as const) {
      const c = nodeClient(n);
      try {
        for (const [name, value] of acknowledged) {
          const d = await c.get(name);
          expect({ node: n, name, value: Buffer.from(d.value).toString('utf8') }).toEqual({
            node: n,
            name,
            value,
          });
        }
      } finally {
        c.close();
      }
    }
  }

  async function expectWriteRefused(name: string): Promise<string> {
    const e = await sdk.put(name, 'must-not-exist', { deadlineMs: 3000 }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(TrusteeError);
    return (e as TrusteeError).code;
  }

  async function metric(n: NodeName, name: string): Promise<number | undefined> {
    const m = await httpsRequest(cluster.node(n).url, { path: '/metrics' });
    const line = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(m.text);
    return line ? Number(line[1]) : undefined;
  }

  beforeAll(async () => {
    cluster = await startTestCluster();
    const reg = await registerSdkClient(cluster, 'trustee-failover-');
    dir = reg.dir;
    configPath = reg.configPath;
    sdk = TrusteeClient.fromConfigFile(configPath, { cache: { maxEntries: 0 }, deadlineMs: 20_000 });
    for (let i = 0; i < 5; i++) await put(`before-${i}`, `value-before-${i}`);
  });
  afterAll(async () => {
    sdk?.close();
    await cluster?.stop();
    if (dir) removeDir(dir);
  });

  it('refuses to promote the passive while the active answers, and says which part answers', async () => {
    const r = await ktadmin('b', ['promote']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refusing to promote: this passive still streams WAL|answers on its API/);
    expect(await role('b')).toBe('passive');
    expect(await isWritable(cluster.a.url)).toBe(true);
  });

  it('active SIGKILLed -> promote -> reads continue, writes refused (strict) -> old active comes back fenced -> rejoin -> synchronous pair', async () => {
    await cluster.killServer('a', 'SIGKILL');
    await cluster.killPostgres('a');
    // Reads continue on the passive while the active is gone.
    expect(Buffer.from((await sdk.get('before-0')).value).toString()).toBe('value-before-0');

    const t0 = Date.now();
    const promoted = await ktadmin('b', ['promote']);
    const promoteMs = Date.now() - t0;
    expect(promoted.stderr).toBe('');
    expect(promoted.code).toBe(0);
    expect(promoted.stdout).toMatch(/timeline 1 -> 2/);
    expect(promoted.stdout).toContain(`rejoin --master localhost:${cluster.b.dbPort}`);
    await waitFor('node b active', async () => (await role('b')) === 'active', 10_000);
    // Strict: no passive streams, so writes are refused and nothing is written.
    expect(await isWritable(cluster.b.url)).toBe(false);
    expect(await expectWriteRefused('during-promotion')).toBe('PASSIVE_UNAVAILABLE');
    expect(Buffer.from((await sdk.get('before-1')).value).toString()).toBe('value-before-1');
    const hb = await health(cluster.b.url);
    expect(hb.json).toMatchObject({ role: 'active', writable: false, timeline: 2 });
    expect(
      JSON.parse(readFileSync(join(cluster.b.confdir, 'ha-state.json'), 'utf8')).promotions,
    ).toHaveLength(1);

    // The old active restarts (PostgreSQL, then its server): it finds b active on a higher
    // timeline and fences itself: no reads, no writes, NOT_ACTIVE naming b.
    await cluster.startPostgres('a');
    await cluster.startServer('a');
    const ha = await health(cluster.a.url);
    expect(ha.status).toBe(503);
    expect(ha.json).toMatchObject({ role: 'fenced', writable: false, readable: false });
    expect(await isWritable(cluster.a.url)).toBe(false);
    const conf = readConfigFile(configPath);
    const raw = await getDepositRaw(
      cluster.a.url,
      { cert: conf.certificate, key: conf.privateKey },
      'before-0',
    );
    expect(raw.status).toBe(503);
    expect(raw.json.error).toMatchObject({ code: 'NOT_ACTIVE', active: cluster.b.url });
    expect(await metric('a', 'trustee_fenced')).toBe(1);
    // The fence is persisted: restarted while its peer's API is down, a stays fenced.
    await cluster.killServer('b', 'SIGTERM');
    await cluster.killServer('a', 'SIGTERM');
    await cluster.startServer('a');
    expect((await health(cluster.a.url)).json).toMatchObject({ role: 'fenced', writable: false });
    await cluster.startServer('b');
    expect(await isWritable(cluster.a.url)).toBe(false);
    // ktadmin status prints the same decision.
    const st = JSON.parse((await ktadmin('a', ['status', '--json'])).stdout);
    expect(st).toMatchObject({ role: 'fenced', writable: false });
    // A fenced node cannot be talked into writing alone.
    const degraded = await ktadmin('a', ['allow-single-node-writes', '--for', '1h']);
    expect(degraded.code).toBe(1);
    expect(degraded.stderr).toMatch(/fenced/);

    // Rejoin: pg_rewind the old active and follow b.
    const t1 = Date.now();
    const rejoined = await ktadmin('a', ['rejoin', '--master', dbAddr('b')]);
    const rejoinMs = Date.now() - t1;
    expect(rejoined.stderr).toBe('');
    expect(rejoined.code).toBe(0);
    expect(rejoined.stdout).toMatch(/rejoined as passive of .* by rewind/);
    await waitFor('b writable again', () => isWritable(cluster.b.url), 30_000);
    const writableMs = Date.now() - t1 - rejoinMs;
    await waitFor('a passive', async () => (await role('a')) === 'passive', 10_000);
    console.log(
      `promote ${promoteMs} ms (CLI incl. start-up); rejoin (pg_rewind) ${rejoinMs} ms; writable ${writableMs} ms after rejoin returned`,
    );
    for (let i = 0; i < 5; i++) await put(`after-rejoin-${i}`, `value-after-rejoin-${i}`);
    expect(await isWritable(cluster.a.url)).toBe(false);
    await expectAllOnBothNodes();
  });

  it('the other way round with --rebuild: b lost, a promoted, b rebuilt from a base backup', async () => {
    await cluster.killServer('b', 'SIGKILL');
    await cluster.killPostgres('b');
    const promoted = await ktadmin('a', ['promote']);
    expect(promoted.stderr).toBe('');
    expect(promoted.code).toBe(0);
    expect(promoted.stdout).toMatch(/timeline 2 -> 3/);
    await waitFor('a active', async () => (await role('a')) === 'active', 10_000);
    expect(await expectWriteRefused('while-b-lost')).toBe('PASSIVE_UNAVAILABLE');

    // b restarts in either order (server first this time): fenced, never writable.
    await cluster.startPostgres('b');
    await cluster.startServer('b');
    expect((await health(cluster.b.url)).json).toMatchObject({ role: 'fenced', writable: false });

    const t1 = Date.now();
    const rejoined = await ktadmin('b', ['rejoin', '--master', dbAddr('a'), '--rebuild']);
    expect(rejoined.stderr).toBe('');
    expect(rejoined.code).toBe(0);
    expect(rejoined.stdout).toMatch(/by rebuild/);
    const aside = /old data directory kept as (\S+)/.exec(rejoined.stdout)?.[1];
    expect(aside && existsSync(aside)).toBeTruthy();
    await waitFor('a writable again', () => isWritable(cluster.a.url), 30_000);
    console.log(`rejoin --rebuild ${Date.now() - t1} ms until writable`);
    await waitFor('b passive', async () => (await role('b')) === 'passive', 10_000);
    for (let i = 0; i < 3; i++) await put(`after-rebuild-${i}`, `value-after-rebuild-${i}`);
    await expectAllOnBothNodes();
  });

  it('single-node writes: refused while the peer answers, on while allowed, off with --off and on expiry', async () => {
    await cluster.killPostgres('b');
    await waitFor('a refuses writes', async () => !(await isWritable(cluster.a.url)), 10_000);
    const refused = await ktadmin('a', ['allow-single-node-writes', '--for', '1h']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/answers on its API/);
    const onPassive = await ktadmin('b', ['allow-single-node-writes', '--for', '1h']);
    expect(onPassive.code).toBe(1);
    const bad = await ktadmin('a', ['allow-single-node-writes', '--for', 'forever']);
    expect(bad.code).toBe(2);

    await cluster.killServer('b', 'SIGKILL');
    const on = await ktadmin('a', ['allow-single-node-writes', '--for', '1h']);
    expect(on.stderr).toBe('');
    expect(on.code).toBe(0);
    await waitFor('a writable (single-node)', () => isWritable(cluster.a.url), 5_000);
    const h = await health(cluster.a.url);
    expect(h.json).toMatchObject({ role: 'active', writable: true, writeMode: 'single-node' });
    expect(h.json.singleNodeWrites.until).toBeTruthy();
    await put('single-node-1', 'degraded-1');
    expect(await metric('a', 'trustee_single_node_writes_enabled')).toBe(1);
    expect(await metric('a', 'trustee_single_node_writes_total')).toBeGreaterThanOrEqual(1);

    const off = await ktadmin('a', ['allow-single-node-writes', '--off']);
    expect(off.code).toBe(0);
    await waitFor('a refuses writes again', async () => !(await isWritable(cluster.a.url)), 5_000);
    expect(await expectWriteRefused('after-off')).toBe('PASSIVE_UNAVAILABLE');

    // A short permission expires on its own.
    expect((await ktadmin('a', ['allow-single-node-writes', '--for', '3s'])).code).toBe(0);
    await waitFor('a writable (single-node)', () => isWritable(cluster.a.url), 5_000);
    await put('single-node-2', 'degraded-2');
    await waitFor('permission expired', async () => !(await isWritable(cluster.a.url)), 10_000);
    expect((await health(cluster.a.url)).json).toMatchObject({ writable: false, singleNodeWrites: null });

    // The passive returns while single-node writes are in flight: each write either commits
    // (alone, then confirmed by the passive once it streams) or is refused; none is lost.
    expect((await ktadmin('a', ['allow-single-node-writes', '--for', '1h'])).code).toBe(0);
    await waitFor('a writable (single-node)', () => isWritable(cluster.a.url), 5_000);
    const outcomes = { ok: 0, refused: 0 };
    let stop = false;
    const writer = async (w: number) => {
      for (let i = 0; i < 40 && !stop; i++) {
        const name = `mid-switch-${w}-${i}`;
        try {
          await put(name, `v-${w}-${i}`);
          outcomes.ok++;
        } catch (e) {
          expect(e).toBeInstanceOf(TrusteeError);
          outcomes.refused++;
        }
      }
    };
    const writers = [0, 1, 2].map((w) => writer(w));
    await cluster.startPostgres('b');
    await cluster.startServer('b');
    await waitFor(
      'a writable (sync)',
      async () => (await health(cluster.a.url)).json.writeMode === 'sync',
      30_000,
    );
    stop = true;
    await Promise.all(writers);
    console.log(
      `writes while the passive came back: ${outcomes.ok} acknowledged, ${outcomes.refused} refused`,
    );
    expect(outcomes.ok).toBeGreaterThan(0);
    expect((await ktadmin('a', ['allow-single-node-writes', '--off'])).code).toBe(0);
    await waitFor('a writable (sync)', () => isWritable(cluster.a.url), 30_000);
    expect((await health(cluster.a.url)).json).toMatchObject({ writeMode: 'sync' });
    await put('after-degraded', 'sync-again');
    await expectAllOnBothNodes();
    for (const n of ['a', 'b'] as const) {
      const c = nodeClient(n);
      for (const name of ['during-promotion', 'while-b-lost', 'after-off']) {
        const err = await c.get(name).catch((x: unknown) => x);
        expect((err as TrusteeError).code).toBe('NOT_FOUND');
      }
      c.close();
    }
  });

  it('promote --force while the old active still runs: it fences itself, and the two are never both writable', async () => {
    // Sample both nodes' write gates all along: at no instant may both say writable.
    let sampling = true;
    let bothWritable = 0;
    let samples = 0;
    const sampler = (async () => {
      while (sampling && samples < 2000) {
        const [wa, wb] = await Promise.all([isWritable(cluster.a.url), isWritable(cluster.b.url)]);
        samples++;
        if (wa && wb) bothWritable++;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const refused = await ktadmin('b', ['promote']);
    expect(refused.code).toBe(1);
    const forced = await ktadmin('b', ['promote', '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/WARNING: .*promoting anyway \(--force\)/);
    await waitFor('a fenced', async () => (await health(cluster.a.url)).json?.role === 'fenced', 10_000);
    expect(await isWritable(cluster.a.url)).toBe(false);
    expect(await isWritable(cluster.b.url)).toBe(false);
    expect(await expectWriteRefused('during-split')).toBe('PASSIVE_UNAVAILABLE');
    // Rejoin the fenced node while its PostgreSQL still runs (rejoin stops it first).
    const rejoined = await ktadmin('a', ['rejoin', '--master', dbAddr('b')]);
    expect(rejoined.stderr).toBe('');
    expect(rejoined.code).toBe(0);
    await waitFor('b writable', () => isWritable(cluster.b.url), 30_000);
    sampling = false;
    await sampler;
    expect(samples).toBeGreaterThan(10);
    expect(bothWritable).toBe(0);
    await put('after-forced-promotion', 'v-forced');
    await expectAllOnBothNodes();
    for (const n of ['a', 'b'] as const) {
      const c = nodeClient(n);
      const err = await c.get('during-split').catch((x: unknown) => x);
      expect((err as TrusteeError).code).toBe('NOT_FOUND');
      c.close();
    }
  });
});
