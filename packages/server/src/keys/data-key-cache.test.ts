import { DataKeyCache } from './data-key-cache';
import { HSM_NAME_RE } from './migrate-to-hsm';

describe('DataKeyCache: unwrapped data keys, bounded, least recently used out', () => {
  test('keeps at most maxEntries keys and evicts the least recently used (its buffer untouched: a seal in flight may hold it)', () => {
    const cache = new DataKeyCache(2);
    const a = Buffer.alloc(32, 1);
    cache.set('a', a);
    cache.set('b', Buffer.alloc(32, 2));
    expect(cache.get('a')).toBe(a); // a is now the most recently used
    cache.set('c', Buffer.alloc(32, 3));
    expect(cache.size).toBe(2);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe(a);
    cache.set('d', Buffer.alloc(32, 4));
    cache.set('e', Buffer.alloc(32, 5));
    expect(cache.get('a')).toBeUndefined();
    expect(a.equals(Buffer.alloc(32, 1))).toBe(true);
    expect([cache.hits, cache.misses]).toEqual([2, 2]);
  });

  test('refuses a bound below one', () => {
    expect(() => new DataKeyCache(0)).toThrow(RangeError);
  });
});

describe("the seed's rule for names that can move to the HSM", () => {
  test.each(['a', 'Key1', 'my-key.v2_x', '0abc'])('%s conforms', (n) =>
    expect(HSM_NAME_RE.test(n)).toBe(true),
  );
  test.each(['-a', '.a', '_a', 'a b', 'a@1', 'a/b', 'é', ''])('"%s" does not', (n) =>
    expect(HSM_NAME_RE.test(n)).toBe(false),
  );
});
