import { RefusalCounter } from './audit-refusals';

function counter(opts: { maxKeysPerWindow?: number; maxWindows?: number } = {}) {
  const clock = { t: Date.parse('2026-12-03T10:00:10Z') };
  const c = new RefusalCounter({ windowMs: 60_000, now: () => clock.t, ...opts });
  return { c, clock };
}

describe('RefusalCounter', () => {
  it('aggregates per key and minute, and hands out only closed windows', () => {
    const { c, clock } = counter();
    for (let i = 0; i < 5; i++)
      c.count({ action: 'client.register', result: 'INVALID_AUTH_CODE', source: '10.0.0.1', org: 'acme' });
    c.count({ action: 'client.auth', result: 'UNAUTHENTICATED', source: '10.0.0.2' });
    expect(c.takeClosed()).toEqual([]);
    clock.t += 60_000;
    c.count({ action: 'client.auth', result: 'UNAUTHENTICATED', source: '10.0.0.2' });
    const rows = c.takeClosed();
    expect(rows).toEqual([
      expect.objectContaining({
        action: 'client.register',
        result: 'INVALID_AUTH_CODE',
        count: 5,
        org: 'acme',
        at: new Date('2026-12-03T10:00:00Z'),
        who: { kind: 'client', name: '-', source: '10.0.0.1' },
      }),
      expect.objectContaining({ action: 'client.auth', count: 1 }),
    ]);
    expect(c.held()).toBe(1);
    expect(c.takeClosed(true)).toEqual([expect.objectContaining({ action: 'client.auth', count: 1 })]);
    expect(c.held()).toBe(0);
  });

  it('bounds the rows of a window: keys beyond the cap fold into one overflow row per action and code', () => {
    const { c, clock } = counter({ maxKeysPerWindow: 3 });
    for (let i = 0; i < 1000; i++)
      c.count({ action: 'client.auth', result: 'UNAUTHENTICATED', source: `10.0.${i >> 8}.${i & 255}` });
    clock.t += 60_000;
    const rows = c.takeClosed();
    expect(rows).toHaveLength(4);
    expect(rows[3]).toMatchObject({ who: { name: '*', source: '*' }, count: 997 });
    expect(rows.reduce((n, r) => n + (r.count ?? 0), 0)).toBe(1000);
  });

  it('holds a bounded number of windows (a passive), dropping and counting the oldest', () => {
    const { c, clock } = counter({ maxWindows: 2 });
    for (let w = 0; w < 4; w++) {
      c.count({ action: 'client.auth', result: 'CLIENT_DISABLED', actor: 'FP' });
      clock.t += 60_000;
    }
    expect(c.dropped).toBe(2);
    expect(c.takeClosed().map((r) => r.count)).toEqual([1, 1]);
  });

  it('takes back entries that could not be written, merging their counts', () => {
    const { c, clock } = counter();
    c.count({ action: 'deposit.put', result: 'VERSION_CONFLICT', actor: 'FP', source: '10.0.0.1' });
    clock.t += 60_000;
    const first = c.takeClosed();
    c.putBack(first);
    c.putBack(first);
    expect(c.takeClosed()).toEqual([
      expect.objectContaining({ count: 2, who: expect.objectContaining({ name: 'FP' }) }),
    ]);
  });
});
