import { generateKeyPairSync, verify } from 'node:crypto';
import { threadId } from 'node:worker_threads';
import { AppError } from '../errors';
import { SignPool } from './sign-pool';

const { privateKey, publicKey } = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});

describe('certificate signing pool', () => {
  const pools: SignPool[] = [];
  const pool = (opts: { threads?: number; maxQueue?: number } = {}) => {
    const p = new SignPool({ keyPem: privateKey, ...opts });
    pools.push(p);
    return p;
  };
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close()));
  });

  it('makes sha256WithRSA signatures that verify with the public key, on worker threads only', async () => {
    const p = pool({ threads: 2 });
    const data = Array.from({ length: 20 }, (_, i) => Buffer.from(`to be signed ${i}`));
    const signatures = await Promise.all(data.map((d) => p.sign(d)));
    data.forEach((d, i) => expect(verify('sha256', d, publicKey, signatures[i])).toBe(true));
    const threads = [...p.completedByThread.keys()];
    expect(threads.length).toBeGreaterThanOrEqual(1);
    expect(threads).not.toContain(threadId);
    expect([...p.completedByThread.values()].reduce((a, b) => a + b, 0)).toBe(20);
    expect(p.threadIds().sort()).toEqual(expect.arrayContaining(threads));
  });

  it('refuses with UNAVAILABLE and a Retry-After once the queue is full', async () => {
    const p = pool({ threads: 1, maxQueue: 2 });
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => p.sign(Buffer.from('x'))));
    const refused = results.filter((r) => r.status === 'rejected');
    // One running + two queued; the other seven are refused at once.
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    expect(refused).toHaveLength(7);
    const e = (refused[0] as PromiseRejectedResult).reason as AppError;
    expect(e).toBeInstanceOf(AppError);
    expect(e.code).toBe('UNAVAILABLE');
    expect(e.retryAfterSec).toBeGreaterThan(0);
  });

  it('replaces a thread that dies: its job fails with UNAVAILABLE, later signatures succeed on a new thread', async () => {
    const p = pool({ threads: 1 });
    await p.sign(Buffer.from('warm up'));
    // Keep the thread busy (hashing 128 MB, a message the pool ignores the answer to), so the
    // job below is certainly still in flight when the thread dies.
    const worker = (p as unknown as { slots: { worker: import('node:worker_threads').Worker }[] }).slots[0]
      .worker;
    worker.postMessage({ id: -1, data: Buffer.alloc(128 * 1024 * 1024) });
    const inFlight = p.sign(Buffer.from('caught in the crash'));
    const dead = await p.killOneForTest();
    await expect(inFlight).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    // The replacement comes after a 1 s pause when a thread dies young; the job waits in the queue.
    const after = await p.sign(Buffer.from('after'));
    expect(verify('sha256', Buffer.from('after'), publicKey, after)).toBe(true);
    expect(p.threadIds()).not.toContain(dead);
  });

  it('terminates its threads on close and refuses work afterwards', async () => {
    const p = pool({ threads: 2 });
    await p.sign(Buffer.from('x'));
    await p.close();
    await expect(p.sign(Buffer.from('y'))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});
