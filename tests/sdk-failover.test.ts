/**
 * Issue #5 against a real two-node cluster, through the SDK only: zero failed reads while the
 * active's server and then its PostgreSQL are SIGKILLed; stale cache reads when both nodes are
 * down (within maxStaleMs, typed error after it); 0600 config rule; no plaintext on the server.
 */
import { socketDirFor } from '@trustee/replicator';
import { chmodSync, statSync } from 'node:fs';
import { Client as PgClient } from 'pg';
import {
  TrusteeClient,
  TrusteeError,
  isEnvelope,
  readConfigFile,
  type ClientConfigFile,
  type Deposit,
} from '@trustee/sdk';
import { startTestCluster, type TestCluster } from '../packages/server/test/support/cluster';
import { getDepositRaw, health, isWritable } from '../packages/server/test/support/deposit-requests';
import { isAlive, waitFor } from '../packages/server/test/support/processes';
import { removeDir } from '../packages/server/test/support/temp-dir';
import { registerSdkClient } from '../packages/server/test/support/sdk-client';

const MARKER = 'PLAINTEXT-MARKER';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('SDK failover, cache and encryption on a real cluster (issue #5)', () => {
  let cluster: TestCluster;
  let dir: string;
  let configPath: string;
  let config: ClientConfigFile;
  let writer: TrusteeClient;
  const values = new Map<string, string>();

  beforeAll(async () => {
    cluster = await startTestCluster();
    const registered = await registerSdkClient(cluster, 'trustee-sdk-');
    dir = registered.dir;
    configPath = registered.configPath;
    const reg = registered.registration;
    expect(reg.state).toBe('active');
    writer = reg.client;
    config = readConfigFile(configPath);
    for (let i = 0; i < 10; i++) {
      const value = `deposit-${i}-value`;
      const r = await writer.put(`dep-${i}`, value);
      expect(r.version).toBe(1);
      values.set(`dep-${i}`, value);
    }
  });
  afterAll(async () => {
    writer?.close();
    await cluster?.stop();
    if (dir) removeDir(dir);
  });

  /** Brings back whatever of node a is down and waits until writes work again. */
  async function restoreNodeA(): Promise<number> {
    const started = Date.now();
    if (!cluster.pgPid('a')) await cluster.startPostgres('a');
    if (!cluster.pgPid('b')) await cluster.startPostgres('b');
    if (!cluster.serverPid('a')) await cluster.startServer('a');
    if (!cluster.serverPid('b')) await cluster.startServer('b');
    await waitFor(
      'node a writable again (the passive reconnected)',
      () => isWritable(cluster.a.url),
      30_000,
      200,
    );
    return Date.now() - started;
  }

  it('a put retried from a fresh client with its Idempotency-Key resolves to the version that landed', async () => {
    // As after WRITE_IN_DOUBT: the first put landed, its caller never learned it, and a new
    // process retries with the key the error carried. The sealed value must be the same bytes
    // (same nonce), or the server takes the retry for a different request.
    const key = `retry-${Date.now()}`;
    const first = await writer.put('in-doubt-retry', 'the same value', { idempotencyKey: key });
    expect(first.version).toBe(1);
    const fresh = TrusteeClient.fromConfigFile(configPath);
    try {
      const again = await fresh.put('in-doubt-retry', 'the same value', { idempotencyKey: key });
      expect(again.version).toBe(1);
      expect((await fresh.get('in-doubt-retry')).text()).toBe('the same value');
      // The key still guards against a different request under it.
      let err: unknown;
      await fresh.put('in-doubt-retry', 'another value', { idempotencyKey: key }).catch((e) => (err = e));
      expect(err).toBeInstanceOf(TrusteeError);
      expect((err as TrusteeError).message).toContain('different request');
    } finally {
      fresh.close();
    }
    expect(
      (
        await getDepositRaw(
          cluster.b.url,
          { cert: config.certificate, key: config.privateKey },
          'in-doubt-retry',
          2,
        )
      ).status,
    ).toBe(404);
  });

  it('register writes a 0600 config; fromConfigFile refuses it once group/others can read it', async () => {
    expect(statSync(configPath).mode & 0o777).toBe(0o600);
    const ok = TrusteeClient.fromConfigFile(configPath);
    ok.close();
    chmodSync(configPath, 0o644);
    try {
      let err: unknown;
      try {
        TrusteeClient.fromConfigFile(configPath).close();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TrusteeError);
      expect((err as TrusteeError).code).toBe('CONFIG_INSECURE');
      expect((err as TrusteeError).message).toContain(configPath);
    } finally {
      chmodSync(configPath, 0o600);
    }
  });

  it('the server never receives plaintext', async () => {
    const put = await writer.put('secret-name', MARKER);
    const back = await writer.get('secret-name', { noCache: true });
    expect(back.text()).toBe(MARKER);
    expect(back.encrypted).toBe(true);

    // What the server holds for the client (after opening its own at-rest seal): an SDK envelope.
    for (const url of [cluster.a.url, cluster.b.url]) {
      const raw = await getDepositRaw(
        url,
        { cert: config.certificate, key: config.privateKey },
        'secret-name',
        put.version,
      );
      expect(raw.status).toBe(200);
      const stored = Buffer.from(raw.json.value as string, 'base64');
      expect(isEnvelope(stored)).toBe(true);
      expect(stored.includes(Buffer.from(MARKER))).toBe(false);
      expect(raw.text).not.toContain(MARKER);
      expect(raw.text).not.toContain(Buffer.from(MARKER).toString('base64'));
    }

    // The stored row on the active's PostgreSQL: no plaintext anywhere in it either.
    const pg = new PgClient({
      host: socketDirFor(cluster.a.dbDir),
      port: cluster.a.dbPort,
      user: 'keytrustee',
      database: 'keytrustee',
    });
    await pg.connect();
    try {
      const { rows } = await pg.query(`select * from deposits where name = 'secret-name'`);
      expect(rows).toHaveLength(1);
      const dump = JSON.stringify(rows[0], (_k, v: unknown) =>
        Buffer.isBuffer(v) ? v.toString('latin1') : v,
      );
      expect(dump).not.toContain(MARKER);
      for (const v of Object.values(rows[0] as Record<string, unknown>)) {
        if (Buffer.isBuffer(v)) expect(v.includes(Buffer.from(MARKER))).toBe(false);
      }
    } finally {
      await pg.end();
    }
  });

  it('reads never fail while the active server and then its PostgreSQL are SIGKILLed', async () => {
    const servedBy = new Map<string, number>();
    const reader = TrusteeClient.fromConfigFile(configPath, {
      cache: { maxEntries: 0 }, // every read goes to a node
      timeoutMs: 2000,
      deadlineMs: 10_000,
      hooks: { onResponse: (e) => void servedBy.set(e.node, (servedBy.get(e.node) ?? 0) + 1) },
    });
    const failures: unknown[] = [];
    const wrong: string[] = [];
    let reads = 0;
    const names = [...values.keys()];
    const loopStarted = Date.now();
    try {
      for (let i = 0; i < 200 && Date.now() - loopStarted < 20_000; i++) {
        if (i === 40) await cluster.killServer('a', 'SIGKILL');
        if (i === 100) await cluster.killPostgres('a');
        const name = names[i % names.length];
        let d: Deposit;
        try {
          d = await reader.get(name);
        } catch (e) {
          failures.push(e);
          continue;
        } finally {
          reads++;
        }
        if (d.text() !== values.get(name)) wrong.push(name);
        await sleep(20);
      }
    } finally {
      reader.close();
    }
    console.log(
      `failover reads: ${reads} reads in ${Date.now() - loopStarted} ms, ${failures.length} failures, served by ${JSON.stringify(Object.fromEntries(servedBy))}`,
    );
    expect(failures).toEqual([]);
    expect(wrong).toEqual([]);
    expect(reads).toBeGreaterThanOrEqual(150);
    expect(servedBy.get(cluster.b.url) ?? 0).toBeGreaterThan(100);

    const ms = await restoreNodeA();
    console.log(`node a restored and writable in ${ms} ms`);
    expect((await writer.put('after-failover', 'x')).version).toBe(1);
  });

  it('reads never fail when the active PostgreSQL dies under a running server', async () => {
    const servedBy = new Map<string, number>();
    const reader = TrusteeClient.fromConfigFile(configPath, {
      cache: { maxEntries: 0 },
      timeoutMs: 2000,
      deadlineMs: 10_000,
      hooks: {
        onResponse: (e) => void (e.status === 200 && servedBy.set(e.node, (servedBy.get(e.node) ?? 0) + 1)),
      },
    });
    const failures: unknown[] = [];
    const names = [...values.keys()];
    let inFlight: Promise<unknown>[] = [];
    try {
      for (let i = 0; i < 60; i++) {
        if (i === 10) {
          // Hang the database first so requests and the state poll hold pooled connections, then
          // crash it under them: keytrusteed must survive and answer 503, the SDK must fail over.
          cluster.signalPostgres('a', 'SIGSTOP');
          inFlight = Array.from({ length: 4 }, (_, k) =>
            getDepositRaw(
              cluster.a.url,
              { cert: config.certificate, key: config.privateKey },
              names[k],
            ).catch((e: unknown) => e),
          );
          await sleep(500);
          await cluster.killPostgres('a');
        }
        const name = names[i % names.length];
        try {
          expect((await reader.get(name)).text()).toBe(values.get(name));
        } catch (e) {
          failures.push(e);
        }
        await sleep(20);
      }
    } finally {
      reader.close();
    }
    expect(failures).toEqual([]);
    const serverA = cluster.serverPid('a');
    expect(serverA).toBeDefined();
    expect(isAlive(serverA!)).toBe(true);
    const ha = await health(cluster.a.url);
    expect(ha.status).toBe(503);
    expect(ha.json.db).toBe('down');
    const answers = await Promise.all(inFlight);
    for (const r of answers) expect((r as { status?: number }).status).toBeGreaterThanOrEqual(500);
    // Node a (the first endpoint) answered before its database died; node b took over after.
    expect(servedBy.get(cluster.a.url) ?? 0).toBeGreaterThan(0);
    expect(servedBy.get(cluster.b.url) ?? 0).toBeGreaterThanOrEqual(50);
    await restoreNodeA();
  });

  it('reads never fail while the passive server and then its PostgreSQL are SIGKILLed', async () => {
    const reader = TrusteeClient.fromConfigFile(configPath, {
      cache: { maxEntries: 0 },
      timeoutMs: 2000,
      deadlineMs: 10_000,
    });
    const failures: unknown[] = [];
    const wrong: string[] = [];
    const names = [...values.keys()];
    let reads = 0;
    const loopStarted = Date.now();
    try {
      // Prefer the passive first, so its death is felt by the reader.
      expect((await reader.get(names[0])).text()).toBe(values.get(names[0]));
      for (let i = 0; i < 120 && Date.now() - loopStarted < 20_000; i++) {
        if (i === 20) await cluster.killServer('b', 'SIGKILL');
        if (i === 60) await cluster.killPostgres('b');
        const name = names[i % names.length];
        try {
          const d = await reader.get(name);
          if (d.text() !== values.get(name)) wrong.push(name);
        } catch (e) {
          failures.push(e);
        } finally {
          reads++;
        }
        await sleep(20);
      }
    } finally {
      reader.close();
    }
    expect(failures).toEqual([]);
    expect(wrong).toEqual([]);
    expect(reads).toBeGreaterThanOrEqual(100);
    // Writes need both nodes meanwhile; once the passive is back they resume on their own.
    const ms = await restoreNodeA();
    console.log(`passive restored, writes accepted again in ${ms} ms`);
    expect((await writer.put('after-passive-death', 'y')).version).toBe(1);
  });

  it('serves stale cache within maxStaleMs when both nodes are down, then fails with a typed error', async () => {
    const cached = TrusteeClient.fromConfigFile(configPath, {
      cache: { ttlMs: 200, maxStaleMs: 1500, serveStaleOnError: true },
      timeoutMs: 500,
      deadlineMs: 1000,
      retry: { limit: 1, baseDelayMs: 20, backoffLimitMs: 50 },
    });
    try {
      const first = await cached.get('dep-3');
      expect(first.source).toBe('server');
      await cluster.killServer('a', 'SIGKILL');
      await cluster.killServer('b', 'SIGKILL');
      await sleep(300); // past ttlMs: only a stale answer is possible now

      const stale = await cached.get('dep-3');
      expect(stale.source).toBe('stale-cache');
      expect(stale.text()).toBe(values.get('dep-3'));

      // Never fetched: nothing to serve, a clear typed error.
      const unknownErr = await cached.get('dep-4').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(unknownErr).toBeInstanceOf(TrusteeError);

      await sleep(1600); // past maxStaleMs
      const err = await cached.get('dep-3').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(TrusteeError);
      expect(['NETWORK_ERROR', 'CIRCUIT_OPEN', 'TIMEOUT', 'DEADLINE_EXCEEDED']).toContain(
        (err as TrusteeError).code,
      );
      // DEADLINE_EXCEEDED wraps the per-node failures; otherwise the message names every node.
      if ((err as TrusteeError).code !== 'DEADLINE_EXCEEDED') {
        expect((err as TrusteeError).message).toMatch(/no node could serve the request/);
      }
      console.log(`after maxStaleMs: ${(err as TrusteeError).code}: ${(err as TrusteeError).message}`);
    } finally {
      cached.close();
      await cluster.startServer('a');
      await cluster.startServer('b');
    }
    const back = TrusteeClient.fromConfigFile(configPath);
    try {
      expect((await back.get('dep-3')).text()).toBe(values.get('dep-3'));
    } finally {
      back.close();
    }
  });
});
