import { EdekQueue } from './edek-queue';

/** A fill function that numbers its values and can be held to observe background work. */
function counter(): {
  fill: (name: string, n: number) => Promise<string[]>;
  calls: Array<{ name: string; n: number }>;
  hold: () => void;
  release: () => void;
} {
  let next = 0;
  let gate: Promise<void> = Promise.resolve();
  let open: () => void = () => undefined;
  const calls: Array<{ name: string; n: number }> = [];
  return {
    calls,
    fill: async (name, n) => {
      calls.push({ name, n });
      await gate;
      return Array.from({ length: n }, () => `${name}-${next++}`);
    },
    hold: () => {
      gate = new Promise((r) => (open = r));
    },
    release: () => open(),
  };
}

describe('EdekQueue (Hadoop ValueQueue semantics)', () => {
  it('fills on first use, serves from the queue, refills in the background below the low watermark', async () => {
    const c = counter();
    const q = new EdekQueue(c.fill, { size: 10, lowWatermark: 0.3, maxKeys: 4 });
    // Empty: a refill to 10 starts and the caller's value is made now, both at once.
    expect(await q.take('k', 1)).toEqual(['k-10']);
    expect(c.calls).toEqual([
      { name: 'k', n: 10 },
      { name: 'k', n: 1 },
    ]);
    await q.idle();
    expect(q.stats('k')).toMatchObject({ queued: 10, misses: 1, refills: 1 });
    // 10 → 3 left: at the watermark (ceil(10 * 0.3) = 3) no refill yet.
    expect(await q.take('k', 7)).toHaveLength(7);
    expect(c.calls).toHaveLength(2);
    // 3 → 2: below it, one background refill of 8 while the caller got its value from the queue.
    c.hold();
    expect(await q.take('k', 1)).toEqual(['k-7']);
    expect(c.calls[2]).toEqual({ name: 'k', n: 8 });
    // Only one refill per key in flight.
    await q.take('k', 1);
    expect(c.calls).toHaveLength(3);
    c.release();
    await q.idle();
    expect(q.stats('k')).toMatchObject({ queued: 9, hits: 9, refills: 2 });
  });

  it('drain discards queued values and what a refill started before it makes', async () => {
    const c = counter();
    const q = new EdekQueue(c.fill, { size: 4, lowWatermark: 0.5, maxKeys: 4 });
    await q.warmUp(['k']);
    expect(q.stats('k').queued).toBe(4);
    c.hold();
    await q.take('k', 3); // 1 left, below 2: refill starts and is held
    q.drain('k');
    c.release();
    await q.idle();
    expect(q.stats('k').queued).toBe(0);
    // The next take makes a fresh value and refills.
    const [fresh] = await q.take('k', 1);
    await q.idle();
    expect(fresh).toBe('k-11');
    expect(q.stats('k').queued).toBe(4);
  });

  it('stays bounded: at most size values per key and maxKeys keys', async () => {
    const c = counter();
    const q = new EdekQueue(c.fill, { size: 3, lowWatermark: 1, maxKeys: 2 });
    for (const k of ['a', 'b', 'c']) await q.take(k, 1);
    await q.idle();
    expect(q.stats('a').queued).toBe(0); // evicted (least recently used)
    expect(q.stats('b').queued).toBe(3);
    expect(q.stats('c').queued).toBe(3);
    // A batch larger than the queue: the rest is made now, the queue never exceeds size.
    expect(await q.take('c', 5)).toHaveLength(5);
    await q.idle();
    expect(q.stats('c').queued).toBe(3);
  });

  it('reports a failed refill and tries again on the next take', async () => {
    const errors: string[] = [];
    let fail = true;
    const q = new EdekQueue<string>(
      async (_name, n) => {
        if (fail) throw new Error('no node');
        return Array.from({ length: n }, () => 'v');
      },
      { size: 2, lowWatermark: 1, maxKeys: 2 },
      (name) => errors.push(name),
    );
    await expect(q.take('k', 1)).rejects.toThrow('no node');
    await q.idle();
    expect(errors).toEqual(['k']);
    fail = false;
    expect(await q.take('k', 1)).toEqual(['v']);
    await q.idle();
    expect(q.stats('k')).toMatchObject({ queued: 2, refillErrors: 1, refills: 1 });
  });

  it('size 0 turns the cache off', async () => {
    const c = counter();
    const q = new EdekQueue(c.fill, { size: 0, lowWatermark: 0.3, maxKeys: 2 });
    expect(await q.take('k', 2)).toEqual(['k-0', 'k-1']);
    expect(q.stats('k').queued).toBe(0);
  });
});
