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
