/**
 * Issue #4: the passive's PostgreSQL hangs (SIGSTOP) instead of dying. Writes must end as
 * PASSIVE_UNAVAILABLE or WRITE_IN_DOUBT within COMMIT_WAIT_MS plus a margin — never hang — and
 * after SIGCONT a retry with the same Idempotency-Key returns the original version exactly once.
 */
import { randomUUID } from 'node:crypto';
import { useTestCluster } from '../packages/server/test/support/cluster';
import {
  getDepositRaw,
  isWritable,
  putDepositRaw,
  valueOf,
  type TimedResponse,
} from '../packages/server/test/support/deposit-requests';
import { waitFor } from '../packages/server/test/support/processes';

const COMMIT_WAIT_MS = 2000; // the server default; the cluster does not override it
const BOUND_MS = COMMIT_WAIT_MS + 1500;

interface Attempt {
  name: string;
  value: string;
  idempotencyKey: string;
  res: TimedResponse;
}

describe('passive PostgreSQL hangs (SIGSTOP)', () => {
  const fixture = useTestCluster({ withClient: true });

  it('writes end PASSIVE_UNAVAILABLE or WRITE_IN_DOUBT within the bound; retries after SIGCONT resolve each exactly once', async () => {
    expect((await putDepositRaw(fixture.cluster.a.url, fixture.client, 'warm-up', 'w')).status).toBe(201);

    const attempt = async (wave: number, i: number): Promise<Attempt> => {
      const name = `hang-${wave}-${i}`;
      const value = `value-${wave}-${i}-${randomUUID()}`;
      const idempotencyKey = randomUUID();
      // The client's own timeout is far beyond the bound, so a hang would show as a long duration.
      const res = await putDepositRaw(fixture.cluster.a.url, fixture.client, name, value, {
        idempotencyKey,
        timeoutMs: 20_000,
      });
      return { name, value, idempotencyKey, res };
    };

    fixture.cluster.signalPostgres('b', 'SIGSTOP');
    let attempts: Attempt[];
    try {
      // Wave 0 right away (the standby still looks connected: commits wait, then get cancelled),
      // wave 1 mid-way, wave 2 after wal_sender_timeout (3 s) dropped the standby.
      const waves = await Promise.all(
        [0, 1200, 4500].map(async (delay, wave) => {
          await new Promise((r) => setTimeout(r, delay));
          return Promise.all(Array.from({ length: 6 }, (_, i) => attempt(wave, i)));
        }),
      );
      attempts = waves.flat();
    } finally {
      fixture.cluster.signalPostgres('b', 'SIGCONT');
    }

    const byCode: Record<string, number> = {};
    for (const a of attempts) {
      const code = a.res.status === 201 ? 'OK' : String(a.res.json?.error?.code);
      byCode[code] = (byCode[code] ?? 0) + 1;
    }
    const durations = attempts.map((a) => a.res.durationMs);
    console.log(
      `SIGSTOP outcomes ${JSON.stringify(byCode)}; durations ms min ${Math.min(...durations)} max ${Math.max(...durations)}`,
    );
    for (const a of attempts) {
      expect(a.res.durationMs).toBeLessThanOrEqual(BOUND_MS);
      expect(a.res.status).toBe(503);
      expect(['PASSIVE_UNAVAILABLE', 'WRITE_IN_DOUBT']).toContain(a.res.json.error.code);
    }
    const inDoubt = attempts.filter((a) => a.res.json.error.code === 'WRITE_IN_DOUBT');
    const refused = attempts.filter((a) => a.res.json.error.code === 'PASSIVE_UNAVAILABLE');
    // The first wave hits a standby that still looks connected: its commits wait and are cancelled.
    expect(inDoubt.length).toBeGreaterThan(0);
    // After wal_sender_timeout the gate is closed: the last wave is refused up front.
    expect(refused.filter((a) => a.name.startsWith('hang-2-')).length).toBe(6);

    const resumedAt = Date.now();
    await waitFor(
      'synchronous standby streaming again after SIGCONT',
      () => isWritable(fixture.cluster.a.url),
      20_000,
      100,
    );
    console.log(`writable again ${Date.now() - resumedAt} ms after SIGCONT`);

    // Refused writes wrote nothing.
    for (const a of refused)
      expect((await getDepositRaw(fixture.cluster.a.url, fixture.client, a.name)).status).toBe(404);

    // Each in-doubt write: the retry returns the original version (twice: exactly once created).
    for (const a of inDoubt) {
      const retry = await putDepositRaw(fixture.cluster.a.url, fixture.client, a.name, a.value, {
        idempotencyKey: a.idempotencyKey,
      });
      expect(retry.status).toBe(201);
      expect(retry.json.version).toBe(1);
      expect(retry.headers['idempotent-replayed']).toBe('true');
      const again = await putDepositRaw(fixture.cluster.a.url, fixture.client, a.name, a.value, {
        idempotencyKey: a.idempotencyKey,
      });
      expect(again.json.version).toBe(1);
      for (const url of [fixture.cluster.a.url, fixture.cluster.b.url]) {
        const v1 = await getDepositRaw(url, fixture.client, a.name, 1);
        expect(v1.status).toBe(200);
        expect(valueOf(v1)).toBe(a.value);
        expect((await getDepositRaw(url, fixture.client, a.name, 2)).status).toBe(404);
        expect((await getDepositRaw(url, fixture.client, a.name)).json.version).toBe(1);
      }
    }

    // A refused write retried with its key is a first write: version 1, once.
    for (const a of refused.slice(0, 3)) {
      const retry = await putDepositRaw(fixture.cluster.a.url, fixture.client, a.name, a.value, {
        idempotencyKey: a.idempotencyKey,
      });
      expect(retry.status).toBe(201);
      expect(retry.json.version).toBe(1);
      expect(retry.headers['idempotent-replayed']).toBeUndefined();
      const v = await getDepositRaw(fixture.cluster.b.url, fixture.client, a.name);
      expect(valueOf(v)).toBe(a.value);
      expect((await getDepositRaw(fixture.cluster.b.url, fixture.client, a.name, 2)).status).toBe(404);
    }

    // The same key with a different value is refused, not silently replayed.
    const misuse = await putDepositRaw(fixture.cluster.a.url, fixture.client, inDoubt[0].name, 'other', {
      idempotencyKey: inDoubt[0].idempotencyKey,
    });
    expect(misuse.status).toBe(400);
    console.log(`WRITE_IN_DOUBT ${inDoubt.length}, PASSIVE_UNAVAILABLE ${refused.length}`);
  });
});
