import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requestIdOf } from './app';
import { backupBaseName } from './backup/backup-name';
import { createMetrics } from './metrics';
import { clientCountsByState, depositEstimate, refreshBackupGauge } from './metrics-refresh';

describe('deposit and client gauges', () => {
  test('client counts cover every state, absent ones as 0, unknown states ignored', () => {
    expect(
      clientCountsByState([
        { state: 'active', n: '12' },
        { state: 'weird', n: '3' },
      ]),
    ).toEqual({ active: 12, pending: 0, disabled: 0 });
  });

  test('a never-analyzed table (reltuples -1) or no table reports 0 deposits', () => {
    expect(depositEstimate(-1)).toBe(0);
    expect(depositEstimate(undefined)).toBe(0);
    expect(depositEstimate(1234.6)).toBe(1235);
  });
});

describe('request ids', () => {
  test('a safe X-Request-Id is kept', () => {
    expect(requestIdOf('abc-123_x.y:z')).toBe('abc-123_x.y:z');
    expect(requestIdOf('a'.repeat(128))).toBe('a'.repeat(128));
  });

  test('a missing, long, repeated or unsafe id is replaced by a fresh UUID', () => {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
    for (const bad of [undefined, '', 'a'.repeat(129), 'x y', 'a\nb', '<script>', ['a', 'b']])
      expect(requestIdOf(bad)).toMatch(uuid);
  });
});

describe('write refusal code gauge', () => {
  test('one code at 1 while refused, all 0 while writable', async () => {
    const m = createMetrics();
    const node = (d: object) =>
      ({
        current: () => ({
          timeline: 1,
          lostSlots: [],
          dbUp: true,
          role: 'active',
          syncStreaming: false,
          replication: { state: null, lagBytes: null, replayLagSeconds: null },
          identityMatches: true,
        }),
        decide: () => ({ role: 'active', singleNodeWrites: false, ...d }),
        peerObservation: () => undefined,
      }) as never;
    m.observeNode(node({ writable: false, writeRefusal: { code: 'PASSIVE_UNAVAILABLE', message: 'x' } }));
    const refused = await m.registry.getSingleMetric('trustee_write_refusal_code')!.get();
    expect(Object.fromEntries(refused.values.map((v) => [v.labels.code, v.value]))).toEqual({
      NOT_ACTIVE: 0,
      PASSIVE_UNAVAILABLE: 1,
      UNAVAILABLE: 0,
    });
    m.observeNode(node({ writable: true }));
    const ok = await m.registry.getSingleMetric('trustee_write_refusal_code')!.get();
    expect(ok.values.every((v) => v.value === 0)).toBe(true);
  });
});

describe('backup gauge', () => {
  test('a newer backup file of this host (e.g. from the ktbackup timer) moves the gauge forward, never back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trustee-bkgauge-'));
    try {
      const m = createMetrics();
      const value = async () => (await m.backupLastSuccess.get()).values[0]?.value;
      const watch = { dir, host: 'kts01.example.com' };
      await refreshBackupGauge(watch, m);
      expect(await value()).toBe(0);
      const file = join(dir, `${backupBaseName('kts01.example.com', new Date())}.tar.gpg`);
      writeFileSync(file, 'x');
      writeFileSync(join(dir, `${backupBaseName('other-host', new Date())}.tar.gpg`), 'x');
      utimesSync(file, 1_700_000_000, 1_700_000_000);
      await refreshBackupGauge(watch, m);
      expect(await value()).toBe(1_700_000_000);
      m.backupLastSuccess.set(1_800_000_000); // a scheduled run finished later
      await refreshBackupGauge(watch, m);
      expect(await value()).toBe(1_800_000_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
