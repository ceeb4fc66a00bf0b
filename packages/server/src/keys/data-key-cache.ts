/**
 * Unwrapped data keys by id, least recently used first out: at most `maxEntries` keys in memory,
 * so a read of a recently used key needs no HSM call (and works while the HSM is unreachable).
 */
export class DataKeyCache {
  private readonly keys = new Map<string, Buffer>();
  hits = 0;
  misses = 0;

  constructor(readonly maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('maxEntries must be ≥ 1');
  }

  get(id: string): Buffer | undefined {
    const key = this.keys.get(id);
    if (!key) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    // Re-insert: Map keeps insertion order, so the first entry is the least recently used.
    this.keys.delete(id);
    this.keys.set(id, key);
    return key;
  }

  set(id: string, key: Buffer): void {
    this.keys.delete(id);
    this.keys.set(id, key);
    while (this.keys.size > this.maxEntries) {
      // Dropped, not zeroed: a seal or open that got this buffer a moment ago may still be
      // using it (one await later), and zeroing it would seal that value with an all-zero key.
      const oldest = this.keys.keys().next().value as string;
      this.keys.delete(oldest);
    }
  }

  delete(id: string): void {
    this.keys.delete(id);
  }

  get size(): number {
    return this.keys.size;
  }
}
