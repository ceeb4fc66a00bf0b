import { LRUCache } from 'lru-cache';

/** EDEK cache policy (after Hadoop's `ValueQueue` as used by KMSClientProvider). */
export interface EdekCacheOptions {
  /** EDEKs kept per key; 0 disables the cache (every generate asks for the current key). Default 100. */
  size: number;
  /**
   * Fraction of `size` below which a background refill (back up to `size`) starts. Default 0.3
   * (Hadoop's `hadoop.security.kms.client.encrypted.key.cache.low-watermark`).
   */
  lowWatermark: number;
  /** Keys with a queue at most (least recently used dropped beyond that). Default 100. */
  maxKeys: number;
}

export const DEFAULT_EDEK_CACHE: EdekCacheOptions = { size: 100, lowWatermark: 0.3, maxKeys: 100 };

/** Counters of one key's queue, for monitoring and tests. */
export interface EdekQueueStats {
  /** Values waiting now. */
  queued: number;
  /** Values handed out from the queue. */
  hits: number;
  /** Values that had to be made while the caller waited (queue empty or short). */
  misses: number;
  /** Background refills finished (each fills up to `size`). */
  refills: number;
  /** Background refills that failed (the next take tries again). */
  refillErrors: number;
}

interface KeyQueue {
  items: unknown[];
  /** Bumped by drain: a refill started before it must not add values made with the old version. */
  epoch: number;
  refilling?: Promise<void>;
  stats: Omit<EdekQueueStats, 'queued'>;
}

/**
 * Per-key queues of pre-made values (EDEKs). Taking a value never waits on `fill` unless the
 * queue is short; falling below the low watermark starts one background refill per key. Bounded:
 * at most `size` values per key and `maxKeys` keys. `drain` (on a roll) empties a key's queue and
 * discards what an in-flight refill made from the old version.
 */
export class EdekQueue<T> {
  private readonly queues: LRUCache<string, KeyQueue>;

  constructor(
    private readonly fill: (name: string, count: number) => Promise<T[]>,
    private readonly options: EdekCacheOptions = DEFAULT_EDEK_CACHE,
    private readonly onRefillError: (name: string, error: unknown) => void = () => undefined,
  ) {
    this.queues = new LRUCache({ max: Math.max(1, options.maxKeys) });
  }

  /** Up to `count` values for `name`: from the queue first, the rest made now. */
  async take(name: string, count: number): Promise<T[]> {
    if (this.options.size <= 0) return this.fill(name, count);
    const q = this.queue(name);
    const taken = q.items.splice(0, count) as T[];
    q.stats.hits += taken.length;
    // The refill starts before the caller's own values are made, so both run at once.
    if (q.items.length < Math.ceil(this.options.size * this.options.lowWatermark)) this.refill(name, q);
    if (taken.length === count) return taken;
    q.stats.misses += count - taken.length;
    return [...taken, ...(await this.fill(name, count - taken.length))];
  }

  /** Starts filling the queues of `names` (Hadoop `warmUpEncryptedKeys`); resolves when full. */
  async warmUp(names: string[]): Promise<void> {
    if (this.options.size <= 0) return;
    await Promise.all(
      names.map((name) => {
        const q = this.queue(name);
        this.refill(name, q);
        return q.refilling;
      }),
    );
  }

  /** Drops the queued values of `name` (after a roll: they were made with the old version). */
  drain(name: string): void {
    const q = this.queues.get(name);
    if (q === undefined) return;
    q.items.length = 0;
    q.epoch += 1;
  }

  /** Resolves when no background refill is running (tests, orderly shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      const running = [...this.queues.values()].map((q) => q.refilling).filter((p) => p !== undefined);
      if (running.length === 0) return;
      await Promise.all(running);
    }
  }

  stats(name: string): EdekQueueStats {
    const q = this.queues.get(name);
    if (q === undefined) return { queued: 0, hits: 0, misses: 0, refills: 0, refillErrors: 0 };
    return { queued: q.items.length, ...q.stats };
  }

  private queue(name: string): KeyQueue {
    let q = this.queues.get(name);
    if (q === undefined) {
      q = { items: [], epoch: 0, stats: { hits: 0, misses: 0, refills: 0, refillErrors: 0 } };
      this.queues.set(name, q);
    }
    return q;
  }

  /** One background refill per key at a time, up to `size`. Never rejects. */
  private refill(name: string, q: KeyQueue): void {
    if (q.refilling !== undefined) return;
    const missing = this.options.size - q.items.length;
    if (missing <= 0) return;
    const epoch = q.epoch;
    q.refilling = this.fill(name, missing)
      .then(
        (values) => {
          if (q.epoch !== epoch) return;
          q.items.push(...values.slice(0, Math.max(0, this.options.size - q.items.length)));
          q.stats.refills += 1;
        },
        (e: unknown) => {
          q.stats.refillErrors += 1;
          this.onRefillError(name, e);
        },
      )
      .finally(() => {
        q.refilling = undefined;
      });
  }
}
