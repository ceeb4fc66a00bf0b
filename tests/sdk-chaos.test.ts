/**
 * Issue #5 chaos: concurrent SDK writers (automatic idempotency keys) while the passive's
 * PostgreSQL is SIGKILLed and restarted repeatedly. Every acknowledged write must be on both
 * nodes with its value, none duplicated, and every failure a TrusteeError with a known code.
 */
import { randomUUID } from 'node:crypto';
import { TrusteeClient, TrusteeError, readConfigFile } from '@trustee/sdk';
import { startTestCluster, type TestCluster } from '../packages/server/test/support/cluster';
import { getDepositRaw, isWritable } from '../packages/server/test/support/deposit-requests';
import { isAlive, waitFor } from '../packages/server/test/support/processes';
import { removeDir } from '../packages/server/test/support/temp-dir';
import { registerSdkClient } from '../packages/server/test/support/sdk-client';

const WRITERS = 6;
const WRITES_EACH = 15;
const CYCLES = 3;
const KNOWN_FAILURES = [
  'PASSIVE_UNAVAILABLE',
  'WRITE_IN_DOUBT',
  'DEADLINE_EXCEEDED',
  'TIMEOUT',
  'NETWORK_ERROR',
  'UNAVAILABLE',
];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Acked {
  name: string;
  value: string;
  version: number;
}
interface Failed {
  name: string;
  value: string;
  error: unknown;
}

describe('SDK chaos: writers while the passive crashes repeatedly', () => {
  let cluster: TestCluster;
  let dir: string;
  let configPath: string;

  beforeAll(async () => {
    cluster = await startTestCluster();
    const registered = await registerSdkClient(cluster, 'trustee-chaos-');
    dir = registered.dir;
    configPath = registered.configPath;
    const reg = registered.registration;
    reg.client.close();
  });
  afterAll(async () => {
    await cluster?.stop();
    if (dir) removeDir(dir);
  });

  it('no acknowledged write is lost or duplicated; every failure is typed', async () => {
    const acked: Acked[] = [];
    const failed: Failed[] = [];
    const started = Date.now();
    let chaosDone = false;

    const chaos = async () => {
      try {
        for (let c = 0; c < CYCLES; c++) {
          await sleep(1000);
          await cluster.killPostgres('b');
          await sleep(2500);
          await cluster.startPostgres('b');
        }
      } finally {
        chaosDone = true;
      }
    };

    const writer = async (w: number) => {
      const client = TrusteeClient.fromConfigFile(configPath, { deadlineMs: 5000, timeoutMs: 3000 });
      try {
        for (let i = 0; i < WRITES_EACH && Date.now() - started < 60_000; i++) {
          const name = `chaos-${w}-${i}`;
          const value = `w${w}-i${i}-${randomUUID()}`;
          try {
            const r = await client.put(name, value);
            acked.push({ name, value, version: r.version });
          } catch (e) {
            failed.push({ name, value, error: e });
          }
          // Spread the writes over the chaos window.
          if (!chaosDone) await sleep(300);
        }
      } finally {
        client.close();
      }
    };

    await Promise.all([chaos(), ...Array.from({ length: WRITERS }, (_, w) => writer(w))]);
    const codes: Record<string, number> = {};
    for (const f of failed) {
      const code = f.error instanceof TrusteeError ? f.error.code : `untyped:${String(f.error)}`;
      codes[code] = (codes[code] ?? 0) + 1;
    }
    console.log(
      `chaos: ${acked.length} acknowledged, ${failed.length} failed ${JSON.stringify(codes)} in ${Date.now() - started} ms over ${CYCLES} passive crashes`,
    );
    expect(acked.length + failed.length).toBe(WRITERS * WRITES_EACH);
    for (const f of failed) {
      expect(f.error).toBeInstanceOf(TrusteeError);
      expect(KNOWN_FAILURES).toContain((f.error as TrusteeError).code);
      expect(typeof (f.error as TrusteeError).details.idempotencyKey).toBe('string');
    }
    expect(acked.length).toBeGreaterThan(0);

    await waitFor('the passive is streaming again', () => isWritable(cluster.a.url), 30_000, 200);
    // Both servers survived their databases' crashes (the passive's server polls its own database).
    for (const n of ['a', 'b'] as const) expect(isAlive(cluster.serverPid(n)!)).toBe(true);

    const cfg = readConfigFile(configPath);
    const creds = { cert: cfg.certificate, key: cfg.privateKey };
    const only = (url: string) =>
      TrusteeClient.fromConfigFile(configPath, { endpoints: [url], cache: { maxEntries: 0 } });
    const onA = only(cluster.a.url);
    const onB = only(cluster.b.url);
    try {
      // Every acknowledged write, on both nodes, with exactly its value, once.
      for (const a of acked) {
        expect(a.version).toBe(1); // one put per name
        for (const [url, c] of [
          [cluster.a.url, onA],
          [cluster.b.url, onB],
        ] as const) {
          const d = await c.get(a.name, { version: a.version });
          expect(d.text()).toBe(a.value);
          expect((await c.get(a.name)).version).toBe(a.version);
          expect((await getDepositRaw(url, creds, a.name, a.version + 1)).status).toBe(404);
        }
      }
      // A failed write may have landed (in doubt) but never twice, and only with its own value.
      let landed = 0;
      for (const f of failed) {
        for (const [url, c] of [
          [cluster.a.url, onA],
          [cluster.b.url, onB],
        ] as const) {
          expect((await getDepositRaw(url, creds, f.name, 2)).status).toBe(404);
          const v1 = await getDepositRaw(url, creds, f.name, 1);
          if (v1.status === 200) {
            if (url === cluster.a.url) landed++;
            expect((await c.get(f.name, { version: 1 })).text()).toBe(f.value);
          } else {
            expect(v1.status).toBe(404);
          }
        }
      }
      // Retrying each failed put with its idempotency key resolves it to exactly one version.
      const writerAgain = TrusteeClient.fromConfigFile(configPath);
      try {
        for (const f of failed) {
          const key = (f.error as TrusteeError).details.idempotencyKey as string;
          const r = await writerAgain.put(f.name, f.value, { idempotencyKey: key });
          expect(r.version).toBe(1);
          expect((await onB.get(f.name)).text()).toBe(f.value);
          expect((await getDepositRaw(cluster.b.url, creds, f.name, 2)).status).toBe(404);
        }
      } finally {
        writerAgain.close();
      }
      console.log(`failed writes that had landed anyway (in doubt): ${landed}`);
    } finally {
      onA.close();
      onB.close();
    }
  });
});
