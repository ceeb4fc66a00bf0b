import { DepositCache } from './cache';
import type { DepositWire } from './types';

function deposit(name: string, version: number): DepositWire {
  return {
    name,
    version,
    value: Buffer.from(`v${version}`).toString('base64'),
    metadata: null,
    createdAt: '2026-01-01T00:00:00Z',
  };
}

describe('DepositCache', () => {
  let nowMs = 0;
  const clock = (): number => nowMs;
  const options = { maxEntries: 3, ttlMs: 1000, serveStaleOnError: true, maxStaleMs: 10_000 };
  beforeEach(() => {
    nowMs = 1_000_000;
  });

  it('answers fresh within ttlMs and not after', () => {
    const cache = new DepositCache(options, clock);
    cache.store(deposit('a', 1), true);
    expect(cache.fresh('a')?.deposit.version).toBe(1);
    expect(cache.fresh('a', 1)?.ageMs).toBe(0);
    nowMs += 1001;
    expect(cache.fresh('a')).toBeUndefined();
  });

  it('serves stale entries up to maxStaleMs, and only when enabled', () => {
    const cache = new DepositCache(options, clock);
    cache.store(deposit('a', 1), true);
    nowMs += 9_000;
    expect(cache.stale('a')?.ageMs).toBe(9_000);
    nowMs += 1_001;
    expect(cache.stale('a')).toBeUndefined();
    const noStale = new DepositCache({ ...options, serveStaleOnError: false }, clock);
    noStale.store(deposit('b', 1), true);
    expect(noStale.stale('b')).toBeUndefined();
  });

  it('keeps a versioned read out of the latest entry', () => {
    const cache = new DepositCache(options, clock);
    cache.store(deposit('a', 1), false);
    expect(cache.fresh('a')).toBeUndefined();
    expect(cache.fresh('a', 1)).toBeDefined();
  });

  it('drops latest after a put and every version after a delete', () => {
    const cache = new DepositCache({ ...options, maxEntries: 10 }, clock);
    cache.store(deposit('a', 1), false);
    cache.store(deposit('a', 2), true);
    cache.store(deposit('ab', 1), true);
    cache.invalidateLatest('a');
    expect(cache.fresh('a')).toBeUndefined();
    expect(cache.fresh('a', 2)).toBeDefined();
    cache.invalidateName('a');
    expect(cache.fresh('a', 1)).toBeUndefined();
    expect(cache.fresh('a', 2)).toBeUndefined();
    expect(cache.fresh('ab')).toBeDefined();
  });

  it('is bounded by maxEntries (least recently used goes first)', () => {
    const cache = new DepositCache(options, clock);
    for (let v = 1; v <= 5; v += 1) cache.store(deposit('a', v), false);
    expect(cache.size).toBe(3);
    expect(cache.fresh('a', 1)).toBeUndefined();
    expect(cache.fresh('a', 5)).toBeDefined();
  });

  it('stores nothing with maxEntries 0', () => {
    const cache = new DepositCache({ ...options, maxEntries: 0 }, clock);
    cache.store(deposit('a', 1), true);
    expect(cache.fresh('a')).toBeUndefined();
  });
});

describe('DepositCache read tickets', () => {
  const options = { maxEntries: 10, ttlMs: 60_000, serveStaleOnError: true, maxStaleMs: 600_000 };

  it('does not store an answer fetched before an own put of the name finished', () => {
    const cache = new DepositCache(options);
    const ticket = cache.beginRead('a');
    cache.invalidateLatest('a'); // own put acknowledged while the read was in flight
    cache.finishRead(ticket, deposit('a', 1), true);
    expect(cache.fresh('a')).toBeUndefined();
    expect(cache.stale('a')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('does not store a versioned answer fetched before an own delete', () => {
    const cache = new DepositCache(options);
    const ticket = cache.beginRead('a');
    cache.invalidateName('a');
    cache.finishRead(ticket, deposit('a', 1), false);
    expect(cache.fresh('a', 1)).toBeUndefined();
  });

  it('stores answers of reads that no write overtook, and forgets finished reads', () => {
    const cache = new DepositCache(options);
    const other = cache.beginRead('b');
    const first = cache.beginRead('a');
    cache.invalidateLatest('b');
    cache.finishRead(first, deposit('a', 1), true);
    cache.finishRead(other);
    expect(cache.fresh('a')?.deposit.version).toBe(1);
    // A read begun after the write is not affected by it.
    const later = cache.beginRead('b');
    cache.finishRead(later, deposit('b', 2), true);
    expect(cache.fresh('b')?.deposit.version).toBe(2);
  });
});
