import { Pool, type PoolClient } from 'pg';
import { AppError, toAppError } from '../errors';

/**
 * Longest a request waits for a free connection of the main pool, ms. Every connection busy
 * (or the database not answering) for this long ends the request 503 UNAVAILABLE with nothing
 * done, instead of queueing without bound.
 */
export const POOL_CHECKOUT_TIMEOUT_MS = 3000;

export interface DbTarget {
  /** Unix socket directory (the PostgreSQL data dir) or a host name. */
  host: string;
  port: number;
  user: string;
  database: string;
  password?: string;
}

/** Main pool for requests, plus a tiny control pool for cancels and state polling that a busy main pool never starves. */
export interface Db {
  pool: Pool;
  control: Pool;
  close(): Promise<void>;
}

/**
 * `requestUser`: the role the request pool logs in as (keytrusteed: the least-privilege app role);
 * the control pool keeps `target.user` (it cancels request backends and reads replication state).
 */
export function createDb(target: DbTarget, opts: { max?: number; requestUser?: string } = {}): Db {
  const common = { ...target, connectionTimeoutMillis: POOL_CHECKOUT_TIMEOUT_MS, idleTimeoutMillis: 30_000 };
  const pool = createRequestPool(target, opts);
  // Control queries are tiny: a database that does not answer them within 2 s counts as down
  // (the state poll fails instead of hanging), and the broken connection is discarded.
  const control = new Pool({
    ...common,
    max: 3,
    application_name: 'keytrusteed-control',
    query_timeout: 2000,
  });
  // A pooled idle client whose backend dies emits 'error' on the pool; without a listener that crashes the process.
  control.on('error', () => undefined);
  // pg-pool removes its idle listener while a client is checked out, and a pg Client emits 'error'
  // when its connection drops (even with a query in flight, which also gets the error): without a
  // listener of our own, a PostgreSQL crash during any request or state poll killed keytrusteed.
  // The query/commit still fails and the caller releases the client as broken.
  control.on('connect', (client) => void client.on('error', () => undefined));
  const db: Db = {
    pool,
    control,
    async close() {
      // db.pool, not the first pool: startup may swap the request pool's login role.
      await Promise.allSettled([db.pool.end(), control.end()]);
    },
  };
  return db;
}

/** The pool requests run on (login role `requestUser`, default the target's), with the same crash guards. */
export function createRequestPool(target: DbTarget, opts: { max?: number; requestUser?: string } = {}): Pool {
  const pool = new Pool({
    ...target,
    connectionTimeoutMillis: POOL_CHECKOUT_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
    user: opts.requestUser ?? target.user,
    max: opts.max ?? 20,
    application_name: 'keytrusteed',
  });
  pool.on('error', () => undefined);
  pool.on('connect', (client) => void client.on('error', () => undefined));
  return pool;
}

/**
 * What a request that its client abandoned (socket closed before the answer) ends with. Nobody
 * reads it; the route recognises it by its cause (the signal's reason) and logs nothing.
 */
export function requestAbandoned(signal: AbortSignal): AppError {
  return new AppError('UNAVAILABLE', 'the client went away; the request was abandoned before any write', {
    cause: signal.reason,
  });
}

/** True when `e` is the error `requestAbandoned(signal)` made for this request's signal. */
export function isRequestAbandoned(e: unknown, signal: AbortSignal | undefined): boolean {
  return !!signal?.aborted && e instanceof AppError && e.cause === signal.reason;
}

/**
 * Checks out a connection, bounded by POOL_CHECKOUT_TIMEOUT_MS (UNAVAILABLE with Retry-After).
 * When `signal` aborts first, the request stops waiting and the connection, once the pool hands
 * it over, goes straight back.
 */
export async function checkoutClient(pool: Pool, signal?: AbortSignal): Promise<PoolClient> {
  if (signal?.aborted) throw requestAbandoned(signal);
  const pending = pool.connect().catch((e: unknown) => {
    throw checkoutError(e);
  });
  if (!signal) return pending;
  return new Promise<PoolClient>((resolve, reject) => {
    const onAbort = () => reject(requestAbandoned(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    pending.then(
      (client) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) client.release();
        else resolve(client);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e as Error);
      },
    );
  });
}

function checkoutError(e: unknown): AppError {
  // pg-pool's own message for connectionTimeoutMillis (a plain Error without a code).
  if (
    e instanceof Error &&
    !(e as { code?: unknown }).code &&
    /timeout exceeded when trying to connect/i.test(e.message)
  ) {
    return new AppError(
      'UNAVAILABLE',
      `no database connection of this node became free within ${POOL_CHECKOUT_TIMEOUT_MS} ms (all busy or the database is not answering); retry`,
      { cause: e, retryAfterSec: 1 },
    );
  }
  return toAppError(e);
}

/**
 * Runs fn with a pooled client, always released; a client that saw a connection error is
 * destroyed. Checkout is bounded (see checkoutClient) and skipped when `signal` already aborted.
 */
export async function withClient<T>(
  pool: Pool,
  fn: (c: PoolClient) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  const client = await checkoutClient(pool, signal);
  let broken: Error | undefined;
  try {
    return await fn(client);
  } catch (e) {
    if (!(e as { code?: string }).code) broken = e as Error;
    throw e;
  } finally {
    client.release(broken);
  }
}
