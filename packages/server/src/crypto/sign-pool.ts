import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { AppError } from '../errors';
import type { Logger } from '../logger';
import { everyMs } from '../rate-limit';

/**
 * The worker's whole program, evaluated from this string (`eval: true`) rather than loaded from a
 * file: it needs only Node built-ins, so it runs the same from the compiled dist/ and under
 * ts-jest (which compiles src/*.ts in memory; a worker file path would have no .js there).
 * It holds the CA key as a KeyObject (parsed once) and answers one sha256WithRSA signature per
 * message — the only costly step of issuing a certificate (≈5 ms for RSA 4096 on these boxes).
 */
const WORKER_SOURCE = `
const { parentPort, workerData, threadId } = require('node:worker_threads');
const { createPrivateKey, sign } = require('node:crypto');
const key = createPrivateKey(workerData.keyPem);
parentPort.on('message', (job) => {
  try {
    const signature = sign('sha256', Buffer.from(job.data), key);
    parentPort.postMessage({ id: job.id, threadId, signature });
  } catch (e) {
    parentPort.postMessage({ id: job.id, threadId, error: String((e && e.message) || e) });
  }
});
`;

/** Threads used by default: two, or one on a single-core machine. */
export function defaultSigningThreads(): number {
  return Math.max(1, Math.min(2, availableParallelism()));
}

export interface SignPoolOptions {
  /** PEM private key (RSA) every signature is made with: the cluster identity key. */
  keyPem: string;
  /** Worker threads; default min(2, cores). */
  threads?: number;
  /** Signatures allowed to wait for a free thread; beyond, UNAVAILABLE at once. Default 128. */
  maxQueue?: number;
  log?: Logger;
}

interface Job {
  id: number;
  data: Buffer;
  resolve(signature: Buffer): void;
  reject(e: Error): void;
}

interface Slot {
  worker: Worker;
  job?: Job;
  startedAt: number;
  /** Exited; waiting for its replacement. */
  dead?: boolean;
}

interface WorkerReply {
  id: number;
  threadId: number;
  signature?: Uint8Array;
  error?: string;
}

/**
 * A bounded pool of worker threads making RSA signatures with the cluster CA key, so a flood of
 * registrations never blocks the event loop (issue 10, finding 5): bounded size, bounded queue
 * (UNAVAILABLE with Retry-After when full), a worker that dies is replaced (its job fails with
 * UNAVAILABLE), and close() terminates them all.
 */
export class SignPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private readonly keyPem: string;
  private readonly maxQueue: number;
  private readonly log?: Logger;
  private nextId = 1;
  /** One log line per 10 s while the queue overflows, not one per refusal. */
  private readonly fullWarning = everyMs(10_000);
  private closed = false;
  /** @internal Signatures completed per worker threadId (tests: proof the work left the main thread). */
  readonly completedByThread = new Map<number, number>();

  constructor(opts: SignPoolOptions) {
    this.keyPem = opts.keyPem;
    this.maxQueue = opts.maxQueue ?? 128;
    this.log = opts.log;
    const threads = opts.threads ?? defaultSigningThreads();
    if (!Number.isInteger(threads) || threads < 1)
      throw new RangeError(`threads must be ≥ 1, got ${threads}`);
    for (let i = 0; i < threads; i++) this.slots.push(this.spawn());
  }

  /** sha256WithRSAEncryption (PKCS#1 v1.5) signature of `data`, made on a worker thread. */
  sign(data: Buffer): Promise<Buffer> {
    if (this.closed) return Promise.reject(unavailable('the server is shutting down'));
    return new Promise<Buffer>((resolve, reject) => {
      const job: Job = { id: this.nextId++, data, resolve, reject };
      const idle = this.slots.find((s) => !s.job && !s.dead);
      if (idle) return this.run(idle, job);
      if (this.queue.length >= this.maxQueue) {
        if (this.fullWarning.due())
          this.log?.warn(
            { queued: this.queue.length },
            'certificate signing queue full: registrations refused',
          );
        return reject(unavailable('too many certificates are being signed at once'));
      }
      this.queue.push(job);
    });
  }

  /** Jobs waiting for a thread (not counting the ones running). */
  get queued(): number {
    return this.queue.length;
  }

  /** @internal The live workers' thread ids. */
  threadIds(): number[] {
    return this.slots.map((s) => s.worker.threadId);
  }

  /** @internal Terminates one worker as a crash would (tests of the replacement). */
  async killOneForTest(): Promise<number> {
    const slot = this.slots[0];
    await slot.worker.terminate();
    return slot.worker.threadId;
  }

  /** Rejects queued jobs and terminates every worker. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(unavailable('the server is shutting down'));
    await Promise.all(
      this.slots.map(async (s) => {
        s.job?.reject(unavailable('the server is shutting down'));
        s.job = undefined;
        await s.worker.terminate();
      }),
    );
  }

  private spawn(): Slot {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { keyPem: this.keyPem } });
    // A pool nobody closed must not keep the process alive.
    worker.unref();
    const slot: Slot = { worker, startedAt: Date.now() };
    worker.on('message', (reply: WorkerReply) => this.onReply(slot, reply));
    worker.on('error', (e) => this.log?.error({ err: e.message }, 'certificate signing thread failed'));
    worker.on('exit', (code) => this.onExit(slot, code));
    return slot;
  }

  private run(slot: Slot, job: Job): void {
    slot.job = job;
    slot.worker.postMessage({ id: job.id, data: job.data });
  }

  private onReply(slot: Slot, reply: WorkerReply): void {
    const job = slot.job;
    if (!job || job.id !== reply.id) return;
    slot.job = undefined;
    if (reply.signature) {
      this.completedByThread.set(reply.threadId, (this.completedByThread.get(reply.threadId) ?? 0) + 1);
      job.resolve(Buffer.from(reply.signature));
    } else {
      job.reject(new AppError('UNAVAILABLE', 'the certificate could not be signed', { cause: reply.error }));
    }
    this.dispatch(slot);
  }

  private dispatch(slot: Slot): void {
    const next = this.queue.shift();
    if (next) this.run(slot, next);
  }

  private onExit(slot: Slot, code: number): void {
    if (this.closed) return;
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    slot.dead = true;
    slot.job?.reject(unavailable('the certificate signing thread stopped'));
    slot.job = undefined;
    this.log?.warn({ threadId: slot.worker.threadId, code }, 'certificate signing thread exited; replaced');
    const replace = () => {
      if (this.closed) return;
      const fresh = this.spawn();
      this.slots[this.slots.indexOf(slot)] = fresh;
      this.dispatch(fresh);
    };
    // A thread that dies at once (e.g. an unreadable key) is not respawned in a tight loop.
    if (Date.now() - slot.startedAt < 1000) setTimeout(replace, 1000).unref();
    else replace();
  }
}

function unavailable(why: string): AppError {
  return new AppError('UNAVAILABLE', `${why}; retry shortly`, { retryAfterSec: 2 });
}
